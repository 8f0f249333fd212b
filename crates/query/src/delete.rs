//! `DELETE FROM t [WHERE …]`: the points a predicate selects are removed from the table's
//! files, which are rewritten without them, so the disk space comes back when the
//! statement returns (see `Engine::delete_rows`). `DELETE FROM /<regex>/ [WHERE …]`
//! (InfluxQL's form) deletes from every table whose name matches; front ends expand it
//! with [`expand_regex_delete`] into one `DELETE` per table.
//!
//! DataFusion hands `ChronosTable::delete_from` the statement's filters; the work happens
//! when the plan runs, not when it is planned, so `EXPLAIN DELETE …` deletes nothing. The
//! plan answers one row, `count`, the number of points deleted.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock};

use chronosdb_catalog::TableSchema;
use chronosdb_storage::{Engine, RowMatcher, StorageError};
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use regex::Regex;

use crate::table::TimeBounds;

/// `DELETE FROM /regex/ [WHERE …]`.
static REGEX_DELETE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)^\s*delete\s+from\s+/((?:[^/\\]|\\.)*)/\s*(?:where\s+(.*?))?\s*;?\s*$")
        .expect("regex")
});

/// Whether `sql` is `DELETE FROM /<regex>/ …`.
pub fn is_regex_delete(sql: &str) -> bool {
    REGEX_DELETE.is_match(sql)
}

/// Expands `DELETE FROM /<regex>/ [WHERE <predicate>]` into a `DELETE` for each table of
/// `database` whose name matches and which has every column the predicate names (a
/// table without the column has no point it could select). `None` if `sql` is not of
/// this form; an error for a bad regular expression or predicate.
pub fn expand_regex_delete(
    engine: &Engine,
    database: &str,
    sql: &str,
) -> Option<std::result::Result<Vec<String>, String>> {
    let captures = REGEX_DELETE.captures(sql)?;
    let pattern = captures
        .get(1)
        .map_or("", |m| m.as_str())
        .replace("\\/", "/");
    let predicate = captures.get(2).map(|m| m.as_str().to_string());
    Some(expand(engine, database, &pattern, predicate.as_deref()))
}

fn expand(
    engine: &Engine,
    database: &str,
    pattern: &str,
    predicate: Option<&str>,
) -> std::result::Result<Vec<String>, String> {
    let regex = Regex::new(pattern)
        .map_err(|e| format!("DELETE FROM /{pattern}/: invalid regular expression: {e}"))?;
    let mut columns = Vec::new();
    if let Some(predicate) = predicate {
        let expr = SqlParser::new(&PostgreSqlDialect {})
            .try_with_sql(predicate)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| format!("DELETE FROM /{pattern}/: invalid WHERE clause: {e}"))?;
        let _ = visit_expressions(&expr, |e| {
            if let SqlExpr::Identifier(ident) = e {
                columns.push(match ident.quote_style {
                    Some(_) => ident.value.clone(),
                    None => ident.value.to_lowercase(),
                });
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let catalog = engine.catalog().snapshot();
    let Some(db) = catalog.database(database) else {
        return Ok(Vec::new());
    };
    Ok(db
        .tables
        .iter()
        .filter(|(name, def)| {
            regex.is_match(name)
                && columns
                    .iter()
                    .all(|c| def.schema.columns().iter().any(|col| &col.name == c))
        })
        .map(|(name, _)| {
            let table = format!("\"{}\"", name.replace('"', "\"\""));
            match predicate {
                Some(predicate) => format!("DELETE FROM {table} WHERE {predicate}"),
                None => format!("DELETE FROM {table}"),
            }
        })
        .collect())
}

/// Refuses `DELETE`s whose condition needs other rows: DataFusion hands the table only
/// the filters on its own columns, so a subquery or a join would be dropped and the
/// remaining filters would select more points than the statement asked for.
#[derive(Debug, Default)]
pub struct DeleteGuard;

impl AnalyzerRule for DeleteGuard {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut refused = false;
        plan.apply(|node| {
            if let LogicalPlan::Dml(dml) = node
                && dml.op == WriteOp::Delete
            {
                refused |= dml.input.exists(|n| {
                    Ok(matches!(n, LogicalPlan::Join(_) | LogicalPlan::Subquery(_))
                        || n.expressions().iter().any(|e| {
                            e.exists(|e| {
                                Ok(matches!(
                                    e,
                                    Expr::InSubquery(_) | Expr::Exists(_) | Expr::ScalarSubquery(_)
                                ))
                            })
                            .unwrap_or(true)
                        }))
                })?;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if refused {
            return plan_err!(
                "DELETE takes conditions on the table's own columns only: subqueries and joins are not supported"
            );
        }
        Ok(plan)
    }

    fn name(&self) -> &str {
        "delete_guard"
    }
}

/// Runs one `DELETE` on the engine and answers its count.
pub struct DeleteExec {
    engine: Arc<Engine>,
    database: String,
    table: String,
    bounds: TimeBounds,
    /// `None`: every point of the table.
    predicate: Option<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
}

impl DeleteExec {
    /// Plans the deletion of the points of `table` that all `filters` select.
    pub fn try_new(
        state: &dyn Session,
        engine: Arc<Engine>,
        database: &str,
        table: &str,
        schema: &TableSchema,
        filters: &[Expr],
    ) -> Result<Self> {
        let predicate = match conjunction(filters.iter().cloned()) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(schema.arrow_schema().as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        let output = count_schema();
        Ok(Self {
            engine,
            database: database.to_string(),
            table: table.to_string(),
            bounds: TimeBounds::from_filters(filters),
            predicate,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(output),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
        })
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl fmt::Debug for DeleteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteExec")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for DeleteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeleteExec: table={}", self.table)?;
        if let Some(predicate) = &self.predicate {
            write!(f, ", predicate={predicate}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DeleteExec {
    fn name(&self) -> &str {
        "DeleteExec"
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.predicate {
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
        let engine = self.engine.clone();
        let database = self.database.clone();
        let table = self.table.clone();
        let bounds = (self.bounds.min, self.bounds.max);
        let predicate = self.predicate.clone();
        let matcher: RowMatcher = Arc::new(move |batch: &RecordBatch| {
            let Some(predicate) = &predicate else {
                return Ok(BooleanArray::from(vec![true; batch.num_rows()]));
            };
            let value = predicate
                .evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(|e| {
                    StorageError::Arrow(format!("evaluating the DELETE predicate: {e}"))
                })?;
            Ok(value.as_boolean().clone())
        });
        let schema = count_schema();
        let output = schema.clone();
        let deleted = futures::stream::once(async move {
            let outcome = engine
                .delete_rows(&database, &table, bounds, matcher)
                .await
                .map_err(crate::external)?;
            Ok(RecordBatch::try_new(
                output,
                vec![Arc::new(UInt64Array::from(vec![outcome.rows_deleted]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, deleted)))
    }
}

#[cfg(test)]
mod tests {
    use super::REGEX_DELETE;

    #[test]
    fn regex_form_is_recognised() {
        let c = REGEX_DELETE
            .captures("DELETE FROM /^cpu\\/x/ WHERE host = 'a';")
            .expect("match");
        assert_eq!(&c[1], "^cpu\\/x");
        assert_eq!(&c[2], "host = 'a'");
        let c = REGEX_DELETE.captures("delete from /.*/").expect("match");
        assert!(c.get(2).is_none());
        assert!(
            REGEX_DELETE
                .captures("DELETE FROM cpu WHERE a = '/x/'")
                .is_none()
        );
    }
}
