//! The `system` schema: what a database holds, as tables.
//!
//! - `system.databases`: every database, its retention period and its number of tables.
//! - `system.tables`: tables with their column, file and byte counts.
//! - `system.tag_keys`, `system.fields`: the schema, one row per tag or field.
//! - `system.tag_values`: each tag value with the number of series that carry it.
//! - `system.series`: each series (its tags as `k=v,…`) with first and last time and its
//!   point count.
//! - `system.metadata`: key/value metadata on tables and series, set with `INSERT` and
//!   removed with `DELETE`, stored in the catalog.
//!
//! The catalog-backed tables are built from a catalog snapshot. `tag_values` and `series`
//! are answered by SQL over the data itself (a `GROUP BY` over the tag columns), planned by
//! DataFusion like any query, so they use the same pruning and parallelism.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::{CatalogOp, ColumnKind, MetadataKey, TIME_COLUMN, format_retention};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::common::{DFSchema, Result, exec_err, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;

use crate::QueryEngine;

/// The schema's name.
pub const SYSTEM_SCHEMA: &str = "system";

/// The system tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SystemTable {
    Databases,
    Tables,
    TagKeys,
    TagValues,
    Fields,
    Series,
    Metadata,
}

impl SystemTable {
    const ALL: [SystemTable; 7] = [
        SystemTable::Databases,
        SystemTable::Tables,
        SystemTable::TagKeys,
        SystemTable::TagValues,
        SystemTable::Fields,
        SystemTable::Series,
        SystemTable::Metadata,
    ];

    fn name(self) -> &'static str {
        match self {
            SystemTable::Databases => "databases",
            SystemTable::Tables => "tables",
            SystemTable::TagKeys => "tag_keys",
            SystemTable::TagValues => "tag_values",
            SystemTable::Fields => "fields",
            SystemTable::Series => "series",
            SystemTable::Metadata => "metadata",
        }
    }

    fn schema(self) -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let count = |name: &str| Field::new(name, DataType::UInt64, true);
        let time =
            |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, None), true);
        Arc::new(Schema::new(match self {
            SystemTable::Databases => vec![
                text("database_name"),
                text("retention_period"),
                count("table_count"),
            ],
            SystemTable::Tables => vec![
                text("table_name"),
                count("tag_count"),
                count("field_count"),
                count("file_count"),
                count("file_bytes"),
                count("persisted_rows"),
            ],
            SystemTable::TagKeys => vec![text("table_name"), text("tag_key")],
            SystemTable::TagValues => vec![
                text("table_name"),
                text("tag_key"),
                text("tag_value"),
                Field::new("series_count", DataType::Int64, true),
            ],
            SystemTable::Fields => {
                vec![text("table_name"), text("field_name"), text("field_type")]
            }
            SystemTable::Series => vec![
                text("table_name"),
                text("series"),
                time("first_time"),
                time("last_time"),
                Field::new("point_count", DataType::Int64, true),
            ],
            SystemTable::Metadata => vec![
                text("table_name"),
                text("series"),
                text("key"),
                text("value"),
            ],
        }))
    }
}

/// The `system` schema of one database.
#[derive(Debug)]
pub struct SystemSchema {
    query: QueryEngine,
    database: String,
}

impl SystemSchema {
    pub fn new(query: QueryEngine, database: &str) -> Self {
        Self {
            query,
            database: database.to_string(),
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SystemTable::ALL
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(SystemTable::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .map(|table| {
                Arc::new(SystemTableProvider {
                    table,
                    schema: table.schema(),
                    query: self.query.clone(),
                    database: self.database.clone(),
                }) as Arc<dyn TableProvider>
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        SystemTable::ALL.iter().any(|t| t.name() == name)
    }
}

#[derive(Debug)]
struct SystemTableProvider {
    table: SystemTable,
    schema: SchemaRef,
    query: QueryEngine,
    database: String,
}

/// Double quotes an identifier for SQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Single quotes a string literal for SQL.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl SystemTableProvider {
    /// Rows built from the catalog.
    fn catalog_batch(&self) -> Result<RecordBatch> {
        let catalog = self.query.engine().catalog().snapshot();
        let mut columns: Vec<StringBuilder> = Vec::new();
        let mut counts: Vec<Vec<u64>> = Vec::new();
        let text_columns = self
            .schema
            .fields()
            .iter()
            .filter(|f| f.data_type() == &DataType::Utf8)
            .count();
        columns.resize_with(text_columns, StringBuilder::new);
        counts.resize_with(self.schema.fields().len() - text_columns, Vec::new);
        let db = catalog.database(&self.database);
        match self.table {
            SystemTable::Databases => {
                for (name, def) in &catalog.databases {
                    columns[0].append_value(name);
                    columns[1].append_option(def.retention_nanos.map(format_retention));
                    counts[0].push(def.tables.len() as u64);
                }
            }
            SystemTable::Tables => {
                for (name, def) in db.iter().flat_map(|d| d.tables.iter()) {
                    let tags = def
                        .schema
                        .columns()
                        .iter()
                        .filter(|c| c.kind == ColumnKind::Tag)
                        .count();
                    let fields = def.schema.columns().len() - tags - 1;
                    columns[0].append_value(name);
                    counts[0].push(tags as u64);
                    counts[1].push(fields as u64);
                    counts[2].push(def.files.len() as u64);
                    counts[3].push(def.files.iter().map(|f| f.size_bytes).sum());
                    counts[4].push(def.files.iter().map(|f| f.row_count).sum());
                }
            }
            SystemTable::TagKeys | SystemTable::Fields => {
                for (name, def) in db.iter().flat_map(|d| d.tables.iter()) {
                    for column in def.schema.columns() {
                        match (self.table, column.kind) {
                            (SystemTable::TagKeys, ColumnKind::Tag) => {
                                columns[0].append_value(name);
                                columns[1].append_value(&column.name);
                            }
                            (SystemTable::Fields, ColumnKind::Field(t)) => {
                                columns[0].append_value(name);
                                columns[1].append_value(&column.name);
                                columns[2].append_value(t.name());
                            }
                            _ => {}
                        }
                    }
                }
            }
            SystemTable::Metadata => {
                for (key, value) in db.iter().flat_map(|d| d.metadata.iter()) {
                    columns[0].append_value(&key.table);
                    if key.series.is_empty() {
                        columns[1].append_null();
                    } else {
                        columns[1].append_value(&key.series);
                    }
                    columns[2].append_value(&key.key);
                    columns[3].append_value(value);
                }
            }
            SystemTable::TagValues | SystemTable::Series => {
                return exec_err!("{} is computed from data", self.table.name());
            }
        }
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let (mut texts, mut numbers) = (columns.into_iter(), counts.into_iter());
        for field in self.schema.fields() {
            if field.data_type() == &DataType::Utf8 {
                let mut builder = texts.next().unwrap_or_default();
                arrays.push(Arc::new(builder.finish()));
            } else {
                arrays.push(Arc::new(UInt64Array::from(
                    numbers.next().unwrap_or_default(),
                )));
            }
        }
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// SQL over the data answering `tag_values` or `series`, or `None` without tables.
    fn data_sql(&self) -> Option<String> {
        let catalog = self.query.engine().catalog().snapshot();
        let db = catalog.database(&self.database)?;
        let mut parts = Vec::new();
        for (name, def) in &db.tables {
            let tags = def.schema.sorted_tag_names();
            let table = format!("public.{}", ident(name));
            match self.table {
                SystemTable::TagValues => {
                    let all_tags: Vec<String> = tags.iter().map(|t| ident(t)).collect();
                    for tag in &tags {
                        parts.push(format!(
                            "SELECT {name_lit} AS table_name, {tag_lit} AS tag_key, CAST(tag_value AS VARCHAR) AS tag_value, count(*) AS series_count \
                             FROM (SELECT DISTINCT {all}, {col} AS tag_value FROM {table} WHERE {col} IS NOT NULL) GROUP BY tag_value",
                            name_lit = literal(name),
                            tag_lit = literal(tag),
                            all = all_tags.join(", "),
                            col = ident(tag),
                        ));
                    }
                }
                _ => {
                    let key = if tags.is_empty() {
                        "''".to_string()
                    } else {
                        let pairs: Vec<String> = tags
                            .iter()
                            .map(|t| {
                                format!(
                                    "CASE WHEN {c} IS NULL THEN NULL ELSE {k} || CAST({c} AS VARCHAR) END",
                                    c = ident(t),
                                    k = literal(&format!("{t}="))
                                )
                            })
                            .collect();
                        format!("concat_ws(',', {})", pairs.join(", "))
                    };
                    let group = if tags.is_empty() {
                        String::new()
                    } else {
                        let cols: Vec<String> = tags.iter().map(|t| ident(t)).collect();
                        format!(" GROUP BY {}", cols.join(", "))
                    };
                    parts.push(format!(
                        "SELECT {name_lit} AS table_name, {key} AS series, min({time}) AS first_time, max({time}) AS last_time, count(*) AS point_count FROM {table}{group}",
                        name_lit = literal(name),
                        time = ident(TIME_COLUMN),
                    ));
                }
            }
        }
        (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
    }
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan: Arc<dyn ExecutionPlan> = match self.table {
            SystemTable::TagValues | SystemTable::Series => {
                let Some(sql) = self.data_sql() else {
                    let schema = match projection {
                        Some(p) => Arc::new(self.schema.project(p)?),
                        None => self.schema.clone(),
                    };
                    return Ok(Arc::new(EmptyExec::new(schema)));
                };
                let ctx = self
                    .query
                    .session_for(&self.database)
                    .map_err(crate::external)?;
                ctx.sql(&sql).await?.create_physical_plan().await?
            }
            _ => {
                let batch = self.catalog_batch()?;
                return MemorySourceConfig::try_new_exec(
                    &[vec![batch]],
                    self.schema.clone(),
                    projection.cloned(),
                )
                .map(|exec| exec as Arc<dyn ExecutionPlan>);
            }
        };
        match projection {
            None => Ok(plan),
            Some(indices) => {
                let exprs: Vec<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, String)> =
                    indices
                        .iter()
                        .map(|&i| {
                            let name = self.schema.field(i).name().clone();
                            (
                                Arc::new(datafusion::physical_expr::expressions::Column::new(
                                    &name, i,
                                )) as _,
                                name,
                            )
                        })
                        .collect();
                Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
            }
        }
    }

    /// `INSERT INTO system.metadata VALUES (table, series, key, value)` sets a value.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.table != SystemTable::Metadata {
            return plan_err!(
                "system.{} is read-only (only system.metadata can be written)",
                self.table.name()
            );
        }
        if insert_op != InsertOp::Append {
            return plan_err!("{insert_op} is not supported; INSERT replaces an existing key");
        }
        let sink = MetadataSink {
            query: self.query.clone(),
            database: self.database.clone(),
            schema: self.schema.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    /// `DELETE FROM system.metadata WHERE …` removes values.
    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.table != SystemTable::Metadata {
            return plan_err!("system.{} is read-only", self.table.name());
        }
        let batch = self.catalog_batch()?;
        let keep_all = vec![true; batch.num_rows()];
        let matches: Vec<bool> = match conjunction(filters) {
            None => keep_all,
            Some(filter) => {
                let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
                let predicate = state.create_physical_expr(filter, &df_schema)?;
                let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask.as_boolean();
                (0..batch.num_rows())
                    .map(|i| mask.is_valid(i) && mask.value(i))
                    .collect()
            }
        };
        let text = |column: usize, row: usize| {
            let array = batch.column(column).as_string::<i32>();
            if array.is_valid(row) {
                array.value(row).to_string()
            } else {
                String::new()
            }
        };
        let ops: Vec<CatalogOp> = (0..batch.num_rows())
            .filter(|&row| matches[row])
            .map(|row| CatalogOp::SetMetadata {
                database: self.database.clone(),
                key: MetadataKey {
                    table: text(0, row),
                    series: text(1, row),
                    key: text(2, row),
                },
                value: None,
            })
            .collect();
        let deleted = ops.len() as u64;
        if !ops.is_empty() {
            self.query
                .engine()
                .apply_catalog_ops(ops)
                .await
                .map_err(crate::external)?;
        }
        // The one-row `count` result every DML statement returns.
        let schema = Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(UInt64Array::from(vec![deleted]))],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            None,
        )?)
    }
}

/// Stores rows inserted into `system.metadata` in the catalog.
#[derive(Debug)]
struct MetadataSink {
    query: QueryEngine,
    database: String,
    schema: SchemaRef,
}

impl DisplayAs for MetadataSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetadataSink")
    }
}

#[async_trait]
impl DataSink for MetadataSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut ops = Vec::new();
        while let Some(batch) = data.next().await {
            let batch = batch?;
            let column = |i: usize| -> Result<StringArray> {
                Ok(cast(batch.column(i), &DataType::Utf8)?
                    .as_string::<i32>()
                    .clone())
            };
            let (table, series, key, value) = (column(0)?, column(1)?, column(2)?, column(3)?);
            for row in 0..batch.num_rows() {
                if table.is_null(row) || key.is_null(row) {
                    return exec_err!("system.metadata: table_name and key cannot be NULL");
                }
                let series = if series.is_null(row) {
                    String::new()
                } else {
                    canonical_series(series.value(row))?
                };
                ops.push(CatalogOp::SetMetadata {
                    database: self.database.clone(),
                    key: MetadataKey {
                        table: table.value(row).to_string(),
                        series,
                        key: key.value(row).to_string(),
                    },
                    value: (!value.is_null(row)).then(|| value.value(row).to_string()),
                });
            }
        }
        let rows = ops.len() as u64;
        self.query
            .engine()
            .apply_catalog_ops(ops)
            .await
            .map_err(crate::external)?;
        Ok(rows)
    }
}

/// A series written as `k=v` pairs, in tag-name order, so one series has one spelling.
fn canonical_series(series: &str) -> Result<String> {
    let mut pairs = Vec::new();
    for pair in series.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return exec_err!(
                "system.metadata: series must be written as tag=value pairs separated by commas (like \"host=a,region=eu\"), got {series:?}"
            );
        };
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    pairs.sort();
    Ok(pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}
