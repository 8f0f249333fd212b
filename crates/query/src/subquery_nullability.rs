//! Makes the value of every scalar subquery nullable in physical projections.
//!
//! A scalar subquery that finds no row is NULL, whatever the column it selects.
//! DataFusion 55 takes the subquery's nullability from its selected column instead
//! (apache/datafusion#24513, fixed after 55.2), so `SELECT (SELECT time FROM m WHERE
//! false)` failed with "declared as non-nullable but contains null values". This rule
//! marks such subquery values nullable and rebuilds the projections that carry them.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

/// See the module comment.
#[derive(Debug, Default)]
pub struct NullableScalarSubqueries;

impl PhysicalOptimizerRule for NullableScalarSubqueries {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
                return Ok(Transformed::no(node));
            };
            let input_schema = projection.input().schema();
            let mut changed = false;
            let mut exprs = Vec::with_capacity(projection.expr().len());
            for item in projection.expr() {
                let expr = Arc::clone(&item.expr).transform_up(|e| {
                    Ok(match nullable_subquery(e.as_ref(), &input_schema)? {
                        Some(nullable) => Transformed::yes(nullable),
                        None => Transformed::no(e),
                    })
                })?;
                changed |= expr.transformed;
                exprs.push(ProjectionExpr::new(expr.data, item.alias.clone()));
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            let rebuilt = ProjectionExec::try_new_with_schema_metadata(
                exprs,
                Arc::clone(projection.input()),
                &node.schema(),
            )?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "nullable_scalar_subqueries"
    }

    /// The rule changes nullability, which the schema check compares.
    fn schema_check(&self) -> bool {
        false
    }
}

/// `expr` as a nullable subquery value, if it is a scalar subquery's value that is not.
fn nullable_subquery(
    expr: &dyn PhysicalExpr,
    input_schema: &datafusion::arrow::datatypes::Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let Some(subquery) = expr.downcast_ref::<ScalarSubqueryExpr>() else {
        return Ok(None);
    };
    let field = subquery.return_field(input_schema)?;
    if field.is_nullable() {
        return Ok(None);
    }
    #[allow(deprecated)] // the index is the only way to name the same subquery result
    let index = subquery.index();
    Ok(Some(Arc::new(ScalarSubqueryExpr::new(
        field.data_type().clone(),
        true,
        index,
        subquery.results().clone(),
    ))))
}
