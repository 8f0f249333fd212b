//! `series_match('<regex>')`: every table whose name matches, as one table.
//!
//! Metrics often spread one kind of data over many measurements (`cpu_user`, `cpu_system`,
//! or one table per device). The table function unions all matching tables, reconciles
//! their columns by name (a column missing from a table reads as NULL; a column whose type
//! differs between tables is widened to double or, failing that, text) and adds a `_table`
//! column naming the source table. Each table is scanned with its own time pruning and
//! pushed-down filters, so the union costs no more than querying the tables one by one.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::TIME_COLUMN;
use chronosdb_storage::Engine;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{Column, Result, ScalarValue, plan_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column as ColumnExpr, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::union::UnionExec;
use regex::Regex;

use crate::table::{ChronosTable, empty_plan};

/// The column that names each row's source table.
pub const TABLE_COLUMN: &str = "_table";

/// The `series_match` table function of one database.
#[derive(Debug)]
pub struct SeriesMatch {
    engine: Arc<Engine>,
    database: String,
}

impl SeriesMatch {
    pub fn new(engine: Arc<Engine>, database: &str) -> Self {
        Self {
            engine,
            database: database.to_string(),
        }
    }
}

impl TableFunctionImpl for SeriesMatch {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let pattern = match args.exprs() {
            [Expr::Literal(value, _)] => match value.try_as_str() {
                Some(Some(p)) => p.to_string(),
                _ => return plan_err!("series_match takes a regular expression as text"),
            },
            _ => return plan_err!("usage: series_match('<regular expression>')"),
        };
        let regex = Regex::new(&pattern)
            .or_else(|e| plan_err!("series_match: invalid regular expression: {e}"))?;
        let catalog = self.engine.catalog().snapshot();
        let Some(db) = catalog.database(&self.database) else {
            return plan_err!("database \"{}\" does not exist", self.database);
        };
        let tables: Vec<Arc<ChronosTable>> = db
            .tables
            .iter()
            .filter(|(name, _)| regex.is_match(name))
            .map(|(name, def)| {
                Arc::new(ChronosTable::new(
                    self.engine.clone(),
                    &self.database,
                    name,
                    &def.schema,
                ))
            })
            .collect();
        if tables.is_empty() {
            let names: Vec<&str> = db.tables.keys().map(String::as_str).collect();
            return plan_err!(
                "series_match('{pattern}') matches no table (tables: {})",
                names.join(", ")
            );
        }
        Ok(Arc::new(MatchedTables::try_new(tables)?))
    }
}

/// The union of several tables with reconciled columns.
#[derive(Debug)]
struct MatchedTables {
    tables: Vec<(String, Arc<ChronosTable>)>,
    schema: SchemaRef,
}

impl MatchedTables {
    fn try_new(tables: Vec<Arc<ChronosTable>>) -> Result<Self> {
        // Column types by name, in first-seen order (time first, as in every table).
        let mut order: Vec<String> = Vec::new();
        let mut types: BTreeMap<String, DataType> = BTreeMap::new();
        for table in &tables {
            for field in table.schema().fields() {
                let name = field.name();
                if name == TABLE_COLUMN {
                    return plan_err!(
                        "series_match: table {} has its own {TABLE_COLUMN} column",
                        table.name()
                    );
                }
                match types.get(name) {
                    None => {
                        order.push(name.clone());
                        types.insert(name.clone(), field.data_type().clone());
                    }
                    Some(existing) if existing == field.data_type() => {}
                    Some(existing) => {
                        let widened = if existing.is_numeric() && field.data_type().is_numeric() {
                            DataType::Float64
                        } else {
                            DataType::Utf8
                        };
                        types.insert(name.clone(), widened);
                    }
                }
            }
        }
        let mut fields = vec![Field::new(TABLE_COLUMN, DataType::Utf8, false)];
        for name in &order {
            let data_type = types[name].clone();
            fields.push(Field::new(name, data_type, name != TIME_COLUMN));
        }
        Ok(Self {
            tables: tables
                .into_iter()
                .map(|t| (t.name().to_string(), t))
                .collect(),
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[async_trait]
impl TableProvider for MatchedTables {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut plans = Vec::with_capacity(self.tables.len());
        for (name, table) in &self.tables {
            let table_schema = table.schema();
            // A filter is pushed into a table only if every column it names exists there;
            // the union re-applies all filters anyway.
            let pushable: Vec<Expr> = filters
                .iter()
                .filter(|f| {
                    f.column_refs()
                        .iter()
                        .all(|c: &&Column| table_schema.index_of(&c.name).is_ok())
                })
                .cloned()
                .collect();
            // The table's own columns this query needs, in the table's order.
            let mut inner: Vec<usize> = wanted
                .iter()
                .filter_map(|&i| table_schema.index_of(self.schema.field(i).name()).ok())
                .collect();
            inner.sort_unstable();
            inner.dedup();
            let scan = table.scan(state, Some(&inner), &pushable, None).await?;
            let scan_schema = scan.schema();
            let mut exprs = Vec::with_capacity(wanted.len());
            for &i in &wanted {
                let field = self.schema.field(i);
                let expr: Arc<dyn PhysicalExpr> = if field.name() == TABLE_COLUMN {
                    Arc::new(Literal::new(ScalarValue::Utf8(Some(name.clone()))))
                } else {
                    match scan_schema.index_of(field.name()) {
                        Ok(idx) => {
                            let column: Arc<dyn PhysicalExpr> =
                                Arc::new(ColumnExpr::new(field.name(), idx));
                            if scan_schema.field(idx).data_type() == field.data_type() {
                                column
                            } else {
                                Arc::new(CastExpr::new(column, field.data_type().clone(), None))
                            }
                        }
                        Err(_) => Arc::new(Literal::new(ScalarValue::try_from(field.data_type())?)),
                    }
                };
                exprs.push(ProjectionExpr::new(expr, field.name().clone()));
            }
            plans.push(Arc::new(ProjectionExec::try_new(exprs, scan)?) as Arc<dyn ExecutionPlan>);
        }
        if plans.is_empty() {
            return empty_plan(&self.schema, projection);
        }
        UnionExec::try_new(plans)
    }
}
