//! The last point of every series without reading every row.
//!
//! `SELECT DISTINCT ON (host) … ORDER BY host, time DESC`, `last(x, time) … GROUP BY host`
//! and `max(time) … GROUP BY host` only need, for each series, its newest row. Persisted
//! files are sorted by series then time and never change, so the newest row of each series
//! in a file is fixed: [`LastPointRule`] recognises such an aggregate (grouped by tags only,
//! selecting by time, filtered by tags only) and swaps the table scan for a
//! [`LastRowsTable`] scan, which reads each file's last row per series from a cache (filled
//! the first time a file is asked, by one read of it) plus the write buffer. The aggregate
//! above still runs, over a few rows per series instead of all of them.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::{ColumnKind, ParquetFile, TIME_COLUMN};
use chronosdb_storage::Engine;
use chronosdb_storage::buffer::align_batch;
use chronosdb_storage::persist::sort_and_merge;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{concat_batches, partition};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableScan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_plan::ExecutionPlan;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parking_lot::Mutex;

use crate::table::ChronosTable;

/// The newest row of each series of each file, by file path. Files are immutable, so an
/// entry never goes stale; it is only dropped with its file.
#[derive(Debug, Default)]
pub struct LastRowsCache {
    files: Mutex<HashMap<String, RecordBatch>>,
}

impl LastRowsCache {
    /// The newest row per series of `file`, reading the file on the first call.
    async fn last_rows(
        &self,
        engine: &Engine,
        file: &ParquetFile,
        tags: &[String],
    ) -> Result<RecordBatch> {
        if let Some(rows) = self.files.lock().get(&file.path) {
            return Ok(rows.clone());
        }
        // One sequential read of the whole file (files are written whole and are at most
        // one day of one table), decoded off the async threads.
        let bytes = engine
            .object_store()
            .get(&ObjectPath::from(file.path.as_str()))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .bytes()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let tags = tags.to_vec();
        let rows = tokio::task::spawn_blocking(move || -> Result<RecordBatch> {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
            let schema = datafusion::arrow::record_batch::RecordBatchReader::schema(&reader);
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            newest_per_series(&concat_batches(&schema, &batches)?, &tags)
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
        self.files.lock().insert(file.path.clone(), rows.clone());
        Ok(rows)
    }
}

/// The last row of each run of equal tags in a batch sorted by (tags, time).
fn newest_per_series(batch: &RecordBatch, tags: &[String]) -> Result<RecordBatch> {
    let columns: Vec<_> = tags
        .iter()
        .filter_map(|t| batch.column_by_name(t).cloned())
        .collect();
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    if columns.is_empty() {
        return Ok(batch.slice(batch.num_rows() - 1, 1));
    }
    let ends: Vec<u32> = partition(&columns)?
        .ranges()
        .into_iter()
        .map(|r| r.end as u32 - 1)
        .collect();
    let indices = datafusion::arrow::array::UInt32Array::from(ends);
    let columns = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// A table's candidate last rows: each file's newest row per series, and the buffer.
#[derive(Debug)]
pub struct LastRowsTable {
    table: Arc<ChronosTable>,
    cache: Arc<LastRowsCache>,
}

#[async_trait]
impl TableProvider for LastRowsTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let engine = self.table.engine();
        let snapshot = engine
            .table_snapshot(self.table.database(), self.table.name())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let schema = self.table.schema();
        let Some(snapshot) = snapshot else {
            return MemorySourceConfig::try_new_exec(&[vec![]], schema, projection.cloned())
                .map(|e| e as Arc<dyn ExecutionPlan>);
        };
        let tags: Vec<String> = snapshot
            .schema
            .columns()
            .iter()
            .filter(|c| c.kind == ColumnKind::Tag)
            .map(|c| c.name.clone())
            .collect();
        let current = snapshot.schema.arrow_schema();
        // Oldest first, as the merge below expects: files by id, then the buffer.
        let mut files = snapshot.files.clone();
        files.sort_by_key(|f| f.id);
        let mut candidates = Vec::with_capacity(files.len() + snapshot.buffered.len());
        for file in &files {
            let rows = self.cache.last_rows(engine, file, &tags).await?;
            candidates.push(
                align_batch(&rows, &current).map_err(|e| DataFusionError::External(Box::new(e)))?,
            );
        }
        for batch in &snapshot.buffered {
            candidates.push(
                align_batch(batch, &current).map_err(|e| DataFusionError::External(Box::new(e)))?,
            );
        }
        let all = concat_batches(&current, &candidates)?;
        // A point may be in a file and again (rewritten) in the buffer or a newer file:
        // merge as everywhere else, so the last write of each field wins.
        let merged = sort_and_merge(&all, &snapshot.schema)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch =
            align_batch(&merged, &schema).map_err(|e| DataFusionError::External(Box::new(e)))?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], schema, projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

/// Swaps the scan under a last-point aggregate for a [`LastRowsTable`].
#[derive(Debug)]
pub struct LastPointRule {
    cache: Arc<LastRowsCache>,
}

impl LastPointRule {
    pub fn new(cache: Arc<LastRowsCache>) -> Self {
        Self { cache }
    }
}

impl OptimizerRule for LastPointRule {
    fn name(&self) -> &str {
        "last_point"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            let LogicalPlan::Aggregate(aggregate) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(group_columns) = aggregate
                .group_expr
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => Some(c.name.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>()
            else {
                return Ok(Transformed::no(node));
            };
            if group_columns.is_empty()
                || !aggregate
                    .aggr_expr
                    .iter()
                    .all(|e| selects_newest(e, &group_columns))
            {
                return Ok(Transformed::no(node));
            }
            let Some(input) = self.swap_scan(&aggregate.input, &group_columns)? else {
                return Ok(Transformed::no(node));
            };
            let rewritten = node.with_new_exprs(node.expressions(), vec![input])?;
            Ok(Transformed::new(rewritten, true, TreeNodeRecursion::Jump))
        })
    }
}

impl LastPointRule {
    /// The aggregate's input with its scan swapped, if everything between filters on tags.
    fn swap_scan(
        &self,
        plan: &LogicalPlan,
        group_columns: &[String],
    ) -> Result<Option<LogicalPlan>> {
        match plan {
            LogicalPlan::Filter(filter) => {
                let Some(table) = scanned_table(&filter.input) else {
                    return Ok(None);
                };
                if !only_tags(&filter.predicate, &table) {
                    return Ok(None);
                }
                let Some(input) = self.swap_scan(&filter.input, group_columns)? else {
                    return Ok(None);
                };
                Ok(Some(plan.with_new_exprs(plan.expressions(), vec![input])?))
            }
            LogicalPlan::Projection(projection) => {
                if !projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
                    return Ok(None);
                }
                let Some(input) = self.swap_scan(&projection.input, group_columns)? else {
                    return Ok(None);
                };
                Ok(Some(plan.with_new_exprs(plan.expressions(), vec![input])?))
            }
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source)?;
                let Some(table) = provider.downcast_ref::<ChronosTable>() else {
                    return Ok(None);
                };
                let tags = table.tag_names();
                if !group_columns.iter().all(|g| tags.contains(g))
                    || !scan.filters.iter().all(|f| only_tags(f, &tags))
                    || scan.fetch.is_some()
                {
                    return Ok(None);
                }
                let last_rows = LastRowsTable {
                    table: Arc::new(table.clone()),
                    cache: self.cache.clone(),
                };
                Ok(Some(LogicalPlan::TableScan(TableScan {
                    source: provider_as_source(Arc::new(last_rows)),
                    ..scan.clone()
                })))
            }
            _ => Ok(None),
        }
    }
}

/// The tag names of the table a plan (filters and projections over a scan) reads.
fn scanned_table(plan: &LogicalPlan) -> Option<Vec<String>> {
    match plan {
        LogicalPlan::Filter(f) => scanned_table(&f.input),
        LogicalPlan::Projection(p) => scanned_table(&p.input),
        LogicalPlan::TableScan(scan) => source_as_provider(&scan.source)
            .ok()?
            .downcast_ref::<ChronosTable>()
            .map(ChronosTable::tag_names),
        _ => None,
    }
}

fn only_tags(expr: &Expr, tags: &[String]) -> bool {
    expr.column_refs().iter().all(|c| tags.contains(&c.name))
}

/// Whether an aggregate picks the newest row's value in each group: `max(time)`,
/// `first_value(x ORDER BY <group columns>, time DESC)` (what `DISTINCT ON` becomes), or
/// `last_value(x ORDER BY <group columns>, time)` (what `last(x, time)` becomes).
fn selects_newest(expr: &Expr, group_columns: &[String]) -> bool {
    let expr = match expr {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return false;
    };
    if params.distinct || params.filter.is_some() {
        return false;
    }
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == TIME_COLUMN);
    match func.name() {
        "max" => params.args.len() == 1 && is_time(&params.args[0]),
        name @ ("first_value" | "last_value") => {
            let Some((last, before)) = params.order_by.split_last() else {
                return false;
            };
            let newest_first = name == "first_value";
            is_time(&last.expr)
                && last.asc != newest_first
                && before
                    .iter()
                    .all(|s| matches!(&s.expr, Expr::Column(c) if group_columns.contains(&c.name)))
        }
        _ => false,
    }
}
