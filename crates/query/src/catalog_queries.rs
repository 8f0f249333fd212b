//! Rewrites that let the catalog queries of ORMs and BI tools plan in DataFusion.
//!
//! SQLAlchemy's column reflection (and with it Superset) reads `pg_catalog` with scalar
//! subqueries correlated to the outer row, such as
//! `(SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = attrelid …)`.
//! PostgreSQL allows them when at most one row matches; DataFusion plans a correlated
//! scalar subquery only when it is an aggregate. In a statement that reads `pg_catalog`,
//! such a subquery's single output is wrapped in `max(…)`, which is the same value when
//! at most one row matches (these look rows up by key). Statements over user tables are
//! never rewritten: there, more than one row must stay an error. A `CASE` whose only
//! branch is such a subquery is folded into the subquery, which DataFusion can then
//! decorrelate.
//!
//! Two more constructs of SQLAlchemy's key and index reflection are rewritten before
//! planning (they never plan as written): `generate_subscripts(array, dim)`, a set-returning
//! function DataFusion lacks, becomes `unnest(generate_series(1, array_length(array, dim)))`
//! (the same subscripts; `unnest`s of one select list advance together, as in PostgreSQL),
//! and `pg_class.reloptions`, a column chronosdb's `pg_class` lacks, becomes a NULL array
//! (no table has storage options).
//!
//! Statements over user tables are protected from one of datafusion-postgres' own rewrites
//! instead: it gives every scalar subquery of a select list a `LIMIT 1` and replaces
//! correlated ones with NULL (for catalog queries it cannot plan), which over user data
//! would answer silently wrong. [`shield_projection_subqueries`] wraps such subqueries in
//! parentheses, which the rewrite does not match and the planner ignores, so they keep
//! PostgreSQL's meaning: more than one row is an error (SQLSTATE 21000).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArguments, Query, Select, SelectItem, SetExpr,
    Statement, VisitMut, VisitorMut, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Aggregates that already make a subquery return one row.
const AGGREGATES: &[&str] = &[
    "max",
    "min",
    "count",
    "sum",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
];

fn is_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or(&name);
            AGGREGATES.contains(&name)
        }
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => is_aggregate(inner),
        _ => false,
    }
}

fn wrapped_in_max(expr: &Expr) -> Option<Expr> {
    parse_expr(&format!("max({expr})"))
}

/// `CASE WHEN c THEN (SELECT max(x) FROM t WHERE p) [ELSE NULL] END` as
/// `(SELECT max(x) FROM t WHERE (p) AND (c))`: the same value (an aggregate over no rows is
/// NULL), in a form DataFusion can decorrelate (it cannot plan a correlated subquery
/// inside CASE).
fn case_into_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Case {
        operand: None,
        conditions,
        else_result,
        ..
    } = expr
    else {
        return None;
    };
    if conditions.len() != 1
        || else_result
            .as_ref()
            .is_some_and(|e| e.to_string() != "NULL")
    {
        return None;
    }
    let Expr::Subquery(query) = &conditions[0].result else {
        return None;
    };
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let output = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] => e,
        _ => return None,
    };
    // count() of no rows is 0, not NULL: only aggregates that are NULL over no rows.
    let null_when_empty =
        is_aggregate(output) && !output.to_string().to_ascii_lowercase().starts_with("count");
    if !null_when_empty {
        return None;
    }
    let condition = Expr::Nested(Box::new(conditions[0].condition.clone()));
    select.selection = Some(match select.selection.take() {
        Some(existing) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(existing))),
            op: BinaryOperator::And,
            right: Box::new(condition),
        },
        None => condition,
    });
    Some(Expr::Subquery(query))
}

/// `generate_subscripts(array, dim)` as `unnest(generate_series(1, array_length(array, dim)))`.
fn subscripts_as_unnest(expr: &Expr) -> Option<Expr> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if name.rsplit('.').next() != Some("generate_subscripts") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(array), FunctionArg::Unnamed(dim)] = list.args.as_slice() else {
        return None;
    };
    parse_expr(&format!(
        "unnest(generate_series(1, array_length({array}, {dim})))"
    ))
}

/// `pg_class.reloptions` (however qualified) as a NULL text array.
fn is_reloptions(expr: &Expr) -> bool {
    matches!(expr, Expr::CompoundIdentifier(parts)
        if parts.len() >= 2
            && parts[parts.len() - 1].value.eq_ignore_ascii_case("reloptions")
            && parts[parts.len() - 2].value.eq_ignore_ascii_case("pg_class"))
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// Gives each selected `pg_class.reloptions` its column name as an alias, so that it
/// keeps it once replaced.
struct NameSelectedReloptions;

impl VisitorMut for NameSelectedReloptions {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item
                && is_reloptions(expr)
                && let Expr::CompoundIdentifier(parts) = expr
            {
                let alias = parts[parts.len() - 1].clone();
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias,
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// The statement with the catalog constructs DataFusion cannot plan replaced (see the
/// module comment), or `None` if it has none.
pub fn rewrite_catalog_functions(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("generate_subscripts") && !lower.contains("reloptions") {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
        return None;
    }
    let mut changed = false;
    // A selected `reloptions` keeps its name: clients read the column by it.
    let _ = statements.visit(&mut NameSelectedReloptions);
    let _ = visit_expressions_mut(&mut statements, |expr| {
        let replacement = if is_reloptions(expr) {
            parse_expr("CAST(NULL AS TEXT[])")
        } else {
            subscripts_as_unnest(expr)
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| statements[0].to_string())
}

/// The statement with one-row scalar subqueries aggregated, if `sql` reads `pg_catalog`
/// and has any; `None` leaves `sql` as it is.
pub fn rewrite_catalog_query(sql: &str) -> Option<String> {
    if !sql.contains("pg_") {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
        return None;
    }
    let mut changed = false;
    // Children are visited first: a subquery is aggregated before the CASE around it.
    let _ = visit_expressions_mut(&mut statements, |expr| {
        if let Some(merged) = case_into_subquery(expr) {
            *expr = merged;
            changed = true;
            return ControlFlow::<()>::Continue(());
        }
        let Expr::Subquery(query) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let grouped = !matches!(
            &select.group_by,
            datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty()
        );
        if select.projection.len() != 1 || grouped || query.limit_clause.is_some() {
            return ControlFlow::Continue(());
        }
        let item = &mut select.projection[0];
        let target = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return ControlFlow::Continue(()),
        };
        if !is_aggregate(target)
            && let Some(max) = wrapped_in_max(target)
        {
            *target = max;
            changed = true;
        }
        ControlFlow::Continue(())
    });
    changed.then(|| statements[0].to_string())
}

/// `sql` with every scalar subquery that is a whole select-list item wrapped in parentheses,
/// if `sql` does not read the catalog and has one (see the module comment); `None` leaves
/// `sql` as it is.
pub fn shield_projection_subqueries(sql: &str) -> Option<String> {
    if sql.contains("pg_") || sql.contains("information_schema") {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    if lower.matches("select").count() < 2 {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let mut shield = ShieldProjectionSubqueries { changed: false };
    let _ = statements.visit(&mut shield);
    shield.changed.then(|| statements[0].to_string())
}

/// Wraps the select-list subqueries of every query it visits (see
/// [`shield_projection_subqueries`]).
struct ShieldProjectionSubqueries {
    changed: bool,
}

impl VisitorMut for ShieldProjectionSubqueries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                && matches!(expr, Expr::Subquery(_))
            {
                let subquery = std::mem::replace(
                    expr,
                    Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
                );
                *expr = Expr::Nested(Box::new(subquery));
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::{rewrite_catalog_functions, rewrite_catalog_query, shield_projection_subqueries};

    #[test]
    fn select_list_subqueries_over_user_tables_are_shielded() {
        let sql = "SELECT (SELECT v FROM m WHERE m.t = o.t) AS x, (SELECT max(v) FROM m) FROM o";
        let shielded = shield_projection_subqueries(sql).expect("shielded");
        assert_eq!(
            shielded,
            "SELECT ((SELECT v FROM m WHERE m.t = o.t)) AS x, ((SELECT max(v) FROM m)) FROM o"
        );
        assert_eq!(shield_projection_subqueries("SELECT v FROM m"), None);
        assert_eq!(
            shield_projection_subqueries("SELECT (SELECT relname FROM pg_class LIMIT 1)"),
            None
        );
        assert_eq!(
            shield_projection_subqueries("SELECT v FROM m WHERE v IN (SELECT v FROM o)"),
            None
        );
    }

    #[test]
    fn catalog_subqueries_are_aggregated() {
        let sql = "SELECT a.attname, (SELECT pg_get_expr(d.adbin, d.adrelid) AS def FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a";
        let rewritten = rewrite_catalog_query(sql).expect("rewritten");
        assert!(
            rewritten.contains("SELECT max(pg_get_expr(d.adbin, d.adrelid)) AS def"),
            "{rewritten}"
        );
        // Already aggregated, or not about the catalog: untouched.
        assert!(rewrite_catalog_query("SELECT (SELECT count(*) FROM pg_class)").is_none());
        // A subquery inside CASE becomes one DataFusion can decorrelate.
        let sql = "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_attrdef d WHERE d.adrelid = a.attrelid) ELSE NULL END FROM pg_attribute a";
        let rewritten = rewrite_catalog_query(sql).expect("rewritten");
        assert_eq!(
            rewritten,
            "SELECT (SELECT max(d.adbin) FROM pg_attrdef d WHERE (d.adrelid = a.attrelid) AND (a.atthasdef)) FROM pg_attribute a"
        );
        assert!(
            rewrite_catalog_query("SELECT (SELECT v FROM cpu WHERE cpu.h = m.h) FROM m").is_none()
        );
    }

    #[test]
    fn set_returning_catalog_functions_are_rewritten() {
        let sql = "SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord, pg_catalog.pg_class.reloptions FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ON true";
        let rewritten = rewrite_catalog_functions(sql).expect("rewritten");
        assert_eq!(
            rewritten,
            "SELECT unnest(i.indkey) AS attnum, unnest(generate_series(1, array_length(i.indkey, 1))) AS ord, CAST(NULL AS TEXT[]) AS reloptions FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ON true"
        );
        assert!(rewrite_catalog_functions("SELECT reloptions FROM t").is_none());
        assert!(rewrite_catalog_functions("SELECT 1").is_none());
    }
}
