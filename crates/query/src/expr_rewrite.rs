//! The walk analyzer rules share to rewrite expressions of a plan node: only nodes with
//! an expression the rule looks for are touched, each expression is rewritten bottom-up
//! against the node's input schema, and an output keeps the name it had.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `plan` with every expression rewritten by `rewrite` (each sub-expression, bottom-up),
/// if one of them holds a sub-expression `wanted` accepts; otherwise as it is.
pub(crate) fn rewrite_node_expressions(
    plan: LogicalPlan,
    wanted: impl Fn(&Expr) -> bool,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let has_wanted = plan
        .expressions()
        .iter()
        .any(|e| e.exists(|e| Ok(wanted(e))).unwrap_or(false));
    if !has_wanted {
        return Ok(Transformed::no(plan));
    }
    let schema = match &plan {
        LogicalPlan::TableScan(scan) => scan.projected_schema.as_ref().clone(),
        plan => merge_schema(&plan.inputs()),
    };
    let names = NamePreserver::new(&plan);
    let rewritten = plan.map_expressions(|expr| {
        let saved = names.save(&expr);
        let expr = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(expr.update_data(|e| saved.restore(e)))
    })?;
    if !rewritten.transformed {
        return Ok(rewritten);
    }
    rewritten.data.recompute_schema().map(Transformed::yes)
}
