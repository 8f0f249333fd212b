//! `DELETE FROM t [WHERE …]`: the points a predicate selects are removed from the table's
//! files, which are rewritten without them, so the disk space comes back when the
//! statement returns (see `Engine::delete_rows`).
//!
//! DataFusion hands `ChronosTable::delete_from` the statement's filters; the work happens
//! when the plan runs, not when it is planned, so `EXPLAIN DELETE …` deletes nothing. The
//! plan answers one row, `count`, the number of points deleted.

use std::fmt;
use std::sync::Arc;

use chronosdb_catalog::TableSchema;
use chronosdb_storage::{Engine, RowMatcher, StorageError};
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::table::TimeBounds;

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
