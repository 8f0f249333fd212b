//! The last point of every series without reading every row.
//!
//! `SELECT DISTINCT ON (host) … ORDER BY host, time DESC`, `last(x, time) … GROUP BY host`
//! and `max(time) … GROUP BY host` only need, for each series, its newest row. Persisted
//! files are sorted by series then time and never change, so the newest row of each series
//! in a file is fixed: [`LastPointRule`] recognises such an aggregate (grouped by tags only,
//! selecting by time, filtered by tags only) and replaces it with a projection over a
//! [`LastRowsTable`]. Its scan, a [`LastRowsExec`], does the work when the query runs
//! (never while it is planned or explained): it takes each file's newest row per series
//! from the engine (which computes them when it writes the file; after a restart the first
//! query reads the file once) and the write buffer, applies the tag filters, and keeps the
//! newest row of each group.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::{ColumnKind, ParquetFile, TIME_COLUMN};
use chronosdb_storage::Engine;
use chronosdb_storage::buffer::align_batch;
use chronosdb_storage::buffer::drop_older_than;
use chronosdb_storage::persist::{newest_per_series, sort_and_merge};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::array::{AsArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, filter_record_batch, lexsort_to_indices, partition,
    take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result, plan_err};
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::expr::{AggregateFunction, NullTreatment};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Projection, TableScanBuilder};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use crate::external;
use crate::series_rows::{ParquetScan, load_layouts};
use crate::table::{ChronosTable, parquet_plan};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::parquet::arrow::arrow_reader::RowSelection;

/// The newest row per series of `file`: remembered by the engine when it wrote the file,
/// otherwise read here once and remembered for next time. A file with a series index
/// gives the last row of each series, and only those rows are read; one without is read
/// whole.
async fn file_newest_rows(
    engine: &Engine,
    state: &dyn Session,
    file: &ParquetFile,
    tags: &[String],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    if let Some(rows) = engine.newest_rows_of(&file.path) {
        return Ok(rows);
    }
    let layout = load_layouts(engine, state, std::slice::from_ref(file))
        .await?
        .pop()
        .ok_or_else(|| datafusion::common::internal_datafusion_err!("no layout"))?;
    if let Some(index) = &layout.index {
        let last = index.last_rows();
        let selection =
            RowSelection::from_consecutive_ranges(last.iter().cloned(), index.row_count());
        let partitioned = PartitionedFile::new(file.path.clone(), file.size_bytes)
            .with_arrow_schema(layout.schema.clone())
            .with_extension(ParquetRowSelection::new(selection));
        let scan = ParquetScan {
            files: vec![partitioned],
            rows: last.len() as u64,
            bytes: file.size_bytes,
            prune: false,
            exact_rows: true,
        };
        let plan = parquet_plan(state, schema, scan, None, None)?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let rows = concat_batches(schema, &batches)?;
        engine.remember_newest_rows(file.path.clone(), rows.clone());
        return Ok(rows);
    }
    // One sequential read of the whole file (files are written whole and are at most one
    // day of one table), decoded off the async threads.
    let bytes = engine
        .object_store()
        .get(&ObjectPath::from(file.path.as_str()))
        .await
        .map_err(external)?
        .bytes()
        .await
        .map_err(external)?;
    let tags = tags.to_vec();
    let rows = tokio::task::spawn_blocking(move || -> Result<RecordBatch> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        let schema = datafusion::arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        newest_per_series(&concat_batches(&schema, &batches)?, &tags).map_err(external)
    })
    .await
    .map_err(external)??;
    engine.remember_newest_rows(file.path.clone(), rows.clone());
    Ok(rows)
}

/// The newest row of each group of a table, among the rows that pass `predicates`.
///
/// Candidates are each file's newest row per series (cached) and the buffer, merged with
/// the persistence rule (a point rewritten later wins field by field); the predicates (on
/// tags only) are applied, then the newest row of each group is kept.
#[derive(Debug)]
pub struct LastRowsTable {
    table: Arc<ChronosTable>,
    group_columns: Vec<String>,
    predicates: Vec<Expr>,
}

#[async_trait]
impl TableProvider for LastRowsTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// A [`LastRowsExec`]: the newest rows are found when the query runs, not while it
    /// is planned (so that EXPLAIN reads nothing).
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
            return plan_err!("last points need a DataFusion session");
        };
        let schema = self.table.schema();
        let predicate = match conjunction(self.predicates.iter().cloned()) {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                Some(state.create_physical_expr(predicate, &df_schema)?)
            }
            None => None,
        };
        let output = match projection {
            Some(projection) => Arc::new(schema.project(projection)?),
            None => schema,
        };
        Ok(Arc::new(LastRowsExec {
            query: Arc::new(LastRowsQuery {
                table: Arc::clone(&self.table),
                group_columns: self.group_columns.clone(),
                predicate,
                projection: projection.cloned(),
                session: session.clone(),
            }),
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(output),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
        }))
    }
}

/// What a [`LastRowsExec`] computes when it runs.
#[derive(Debug)]
struct LastRowsQuery {
    table: Arc<ChronosTable>,
    group_columns: Vec<String>,
    /// The tag filters, over the table's schema.
    predicate: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<usize>>,
    /// The planning session, for the file reads (their metadata, reader and options).
    session: SessionState,
}

/// The newest row of each group (see [`LastRowsTable`]), computed when executed.
#[derive(Debug)]
pub struct LastRowsExec {
    query: Arc<LastRowsQuery>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for LastRowsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LastRowsExec: table={}, group=[{}]",
            self.query.table.name(),
            self.query.group_columns.join(", ")
        )?;
        if let Some(predicate) = &self.query.predicate {
            write!(f, ", predicate={predicate}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LastRowsExec {
    fn name(&self) -> &str {
        "LastRowsExec"
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.query.predicate {
            Some(predicate) => f(predicate),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let query = Arc::clone(&self.query);
        let schema = self.properties.equivalence_properties().schema().clone();
        let rows = futures::stream::once(async move {
            let rows = query.newest_rows().await?;
            match &query.projection {
                Some(projection) => Ok(rows.project(projection)?),
                None => Ok(rows),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

impl LastRowsQuery {
    async fn newest_rows(&self) -> Result<RecordBatch> {
        let state = &self.session;
        let engine = self.table.engine();
        let schema = self.table.schema();
        let Some(snapshot) = engine
            .table_snapshot(self.table.database(), self.table.name())
            .map_err(external)?
        else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let tags: Vec<String> = snapshot
            .schema
            .columns()
            .iter()
            .filter(|c| c.kind == ColumnKind::Tag)
            .map(|c| c.name.clone())
            .collect();
        let current = snapshot.schema.arrow_schema();
        // Oldest first, as the merge below expects: files in write order, then the buffer.
        let mut files = snapshot.files.clone();
        files.sort_by_key(ParquetFile::write_position);
        let mut candidates = Vec::with_capacity(files.len() + snapshot.buffered.len());
        for file in &files {
            let rows = file_newest_rows(engine, state, file, &tags, &current).await?;
            candidates.push(align_batch(&rows, &current).map_err(external)?);
        }
        let buffered = snapshot
            .buffered
            .iter()
            .map(|b| align_batch(b, &current).map_err(external))
            .collect::<Result<Vec<_>>>()?;
        if !buffered.is_empty() {
            candidates.extend(newest_buffered(&buffered, &tags)?);
        }
        let all = concat_batches(&current, &candidates)?;
        let mut merged = sort_and_merge(&all, &snapshot.schema).map_err(external)?;
        if let Some(cutoff) = snapshot.retention_cutoff {
            // A series whose newest point is older than the retention period has none left.
            merged = drop_older_than(&merged, cutoff)
                .map_err(external)?
                .unwrap_or_else(|| merged.slice(0, 0));
        }
        let mut rows = align_batch(&merged, &schema).map_err(external)?;
        if let Some(predicate) = &self.predicate {
            let mask = predicate.evaluate(&rows)?.into_array(rows.num_rows())?;
            rows = filter_record_batch(&rows, mask.as_boolean())?;
        }
        newest_per_group(&rows, &self.group_columns)
    }
}

/// The rows of `buffered` (batches in write order) at the newest time of their series:
/// every write of each series' newest point, still in write order, so that the merge that
/// follows combines them field by field. One pass to find each series' newest time, one to
/// keep its rows, instead of sorting (or even concatenating) the whole buffer.
fn newest_buffered(buffered: &[RecordBatch], tags: &[String]) -> Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{BooleanArray, TimestampNanosecondArray};
    use datafusion::arrow::row::{RowConverter, Rows, SortField};
    use std::collections::HashMap;
    let times = |batch: &RecordBatch| -> Result<TimestampNanosecondArray> {
        batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .cloned()
            .ok_or_else(|| datafusion::common::internal_datafusion_err!("time is not a timestamp"))
    };
    let Some(first) = buffered.first() else {
        return Ok(Vec::new());
    };
    let present: Vec<&String> = tags
        .iter()
        .filter(|t| first.column_by_name(t).is_some())
        .collect();
    if present.is_empty() {
        // No tags: one series.
        let newest = buffered
            .iter()
            .map(|b| Ok(times(b)?.values().iter().copied().max()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .max();
        let mut kept = Vec::new();
        for batch in buffered {
            let keep: BooleanArray = times(batch)?
                .values()
                .iter()
                .map(|t| Some(Some(*t) == newest))
                .collect();
            kept.push(filter_record_batch(batch, &keep)?);
        }
        return Ok(kept);
    }
    let converter = RowConverter::new(
        present
            .iter()
            .filter_map(|t| first.column_by_name(t))
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let mut series: Vec<Rows> = Vec::with_capacity(buffered.len());
    for batch in buffered {
        let columns: Vec<_> = present
            .iter()
            .filter_map(|t| batch.column_by_name(t).cloned())
            .collect();
        series.push(converter.convert_columns(&columns)?);
    }
    let mut newest: HashMap<Vec<u8>, i64> = HashMap::new();
    for (batch, keys) in buffered.iter().zip(&series) {
        for (i, time) in times(batch)?.values().iter().enumerate() {
            let key = keys.row(i).data();
            match newest.get_mut(key) {
                Some(t) => *t = (*t).max(*time),
                None => {
                    newest.insert(key.to_vec(), *time);
                }
            }
        }
    }
    let mut kept = Vec::new();
    for (batch, keys) in buffered.iter().zip(&series) {
        let keep: BooleanArray = times(batch)?
            .values()
            .iter()
            .enumerate()
            .map(|(i, time)| Some(newest.get(keys.row(i).data()) == Some(time)))
            .collect();
        let rows = filter_record_batch(batch, &keep)?;
        if rows.num_rows() > 0 {
            kept.push(rows);
        }
    }
    Ok(kept)
}

/// The newest row (largest time) of each group of `rows`.
fn newest_per_group(rows: &RecordBatch, group_columns: &[String]) -> Result<RecordBatch> {
    if rows.num_rows() == 0 {
        return Ok(rows.clone());
    }
    let mut keys: Vec<SortColumn> = Vec::with_capacity(group_columns.len() + 1);
    for name in group_columns {
        let Some(values) = rows.column_by_name(name) else {
            return plan_err!("last point: no column {name}");
        };
        keys.push(SortColumn {
            values: values.clone(),
            options: None,
        });
    }
    let Some(time) = rows.column_by_name(TIME_COLUMN) else {
        return plan_err!("last point: no time column");
    };
    keys.push(SortColumn {
        values: time.clone(),
        options: Some(SortOptions {
            descending: true,
            nulls_first: false,
        }),
    });
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(rows, &order)?;
    let groups: Vec<_> = group_columns
        .iter()
        .filter_map(|g| sorted.column_by_name(g).cloned())
        .collect();
    let firsts: Vec<u32> = partition(&groups)?
        .ranges()
        .into_iter()
        .map(|r| r.start as u32)
        .collect();
    Ok(take_record_batch(&sorted, &UInt32Array::from(firsts))?)
}

/// Answers a last-point aggregate from [`LastRowsTable`].
#[derive(Debug, Default)]
pub struct LastPointRule;

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
            match self.answer(aggregate)? {
                Some(plan) => Ok(Transformed::new(plan, true, TreeNodeRecursion::Jump)),
                None => Ok(Transformed::no(node)),
            }
        })
    }
}

impl LastPointRule {
    /// A projection over a [`LastRowsTable`] scan that produces what `aggregate` would, if
    /// the aggregate only asks for each group's newest row.
    fn answer(&self, aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
        let Some(group_columns) = aggregate
            .group_expr
            .iter()
            .map(|e| match e {
                Expr::Column(c) => Some(c.name.clone()),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(None);
        };
        if group_columns.is_empty() {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            match newest_value(expr, &group_columns) {
                Some(value) => values.push(value),
                None => return Ok(None),
            }
        }
        // Down to the scan: projections of plain columns and filters on tags only.
        let mut predicates = Vec::new();
        let mut plan = aggregate.input.as_ref();
        let scan = loop {
            match plan {
                LogicalPlan::Filter(filter) => {
                    predicates.push(filter.predicate.clone());
                    plan = filter.input.as_ref();
                }
                LogicalPlan::Projection(p)
                    if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
                {
                    plan = p.input.as_ref();
                }
                LogicalPlan::TableScan(scan) => break scan,
                _ => return Ok(None),
            }
        };
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<ChronosTable>() else {
            return Ok(None);
        };
        predicates.extend(scan.filters.iter().cloned());
        let tags = table.tag_names();
        if scan.fetch.is_some()
            || !group_columns.iter().all(|g| tags.contains(g))
            || !predicates.iter().all(|p| only_tags(p, &tags))
        {
            return Ok(None);
        }
        let last_rows = LastRowsTable {
            table: Arc::new(table.clone()),
            group_columns,
            predicates: predicates.iter().map(unqualified).collect::<Result<_>>()?,
        };
        let source = provider_as_source(Arc::new(last_rows));
        let input =
            LogicalPlan::TableScan(TableScanBuilder::new(scan.table_name.clone(), source).build()?);
        // The aggregate's outputs, under the aggregate's names: group columns as they are,
        // each aggregate as the newest row's value.
        let outputs = aggregate.group_expr.iter().cloned().chain(values);
        let exprs = outputs
            .enumerate()
            .map(|(i, expr)| {
                let (qualifier, field) = aggregate.schema.qualified_field(i);
                expr.alias_qualified(qualifier.cloned(), field.name())
            })
            .collect::<Vec<_>>();
        Ok(Some(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(input),
        )?)))
    }
}

/// `expr` with its columns unqualified, to evaluate against the table's own schema.
fn unqualified(expr: &Expr) -> Result<Expr> {
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

fn only_tags(expr: &Expr, tags: &[String]) -> bool {
    expr.column_refs().iter().all(|c| tags.contains(&c.name))
}

/// The newest row's value an aggregate asks for, if that is all it asks: `max(time)`,
/// `first_value(x ORDER BY <group columns>, time DESC)` (what `DISTINCT ON` becomes), or
/// `last_value(x ORDER BY <group columns>, time)` (what `last(x, time)` becomes).
fn newest_value(expr: &Expr, group_columns: &[String]) -> Option<Expr> {
    let expr = match expr {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    let respects_nulls = matches!(
        params.null_treatment,
        None | Some(NullTreatment::RespectNulls)
    );
    if params.distinct || params.filter.is_some() || !respects_nulls || params.args.len() != 1 {
        return None;
    }
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == TIME_COLUMN);
    let value = params.args[0].clone();
    match func.name() {
        "max" if is_time(&value) => Some(value),
        name @ ("first_value" | "last_value") => {
            let (last, before) = params.order_by.split_last()?;
            let newest_first = name == "first_value";
            let ordered = is_time(&last.expr)
                && last.asc != newest_first
                && before
                    .iter()
                    .all(|s| matches!(&s.expr, Expr::Column(c) if group_columns.contains(&c.name)));
            ordered.then_some(value)
        }
        _ => None,
    }
}
