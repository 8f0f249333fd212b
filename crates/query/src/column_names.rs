//! Result column names as PostgreSQL gives them.
//!
//! DataFusion names an unaliased expression after its full text (`count(*)`,
//! `max(cpu.usage_user)`, `Int64(1)`); PostgreSQL names it after the function (`count`,
//! `max`) or `?column?`. psql headers, Grafana series names and ORM result mappings show
//! these names, so a query's output is renamed the way PostgreSQL's `FigureColname` would,
//! with one projection on top. A name two columns would share keeps DataFusion's
//! spelling (DataFusion requires distinct names).

use std::collections::HashMap;

use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

/// PostgreSQL's name for an output column DataFusion named `name`, if it differs.
fn postgres_name(name: &str) -> Option<String> {
    let Some(open) = name.find('(') else {
        // A column, an alias, or an operator expression.
        return name
            .contains([' ', '+', '-', '*', '/', '%', '|', '<', '>', '='])
            .then(|| "?column?".to_string());
    };
    let head = &name[..open];
    if head.eq_ignore_ascii_case("case") || name.starts_with("CASE ") {
        return Some("case".into());
    }
    if head.starts_with(|c: char| c.is_ascii_uppercase()) {
        // A literal, e.g. `Int64(1)`, `Utf8("x")`, or `CAST(...)`.
        return Some(if head == "CAST" || head == "TRY_CAST" {
            cast_name(name)
        } else {
            "?column?".into()
        });
    }
    let function = head.rsplit('.').next().unwrap_or(head);
    let is_identifier = !function.is_empty()
        && function
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if is_identifier && function != name {
        Some(function.to_string())
    } else {
        None
    }
}

/// `CAST(cpu.x AS Int64)` is named after `x`; a cast of anything else is `?column?`.
fn cast_name(name: &str) -> String {
    let inner = name
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(" AS "))
        .map(|(inner, _)| inner)
        .unwrap_or("");
    let column = inner.rsplit('.').next().unwrap_or(inner);
    if !column.is_empty() && column.chars().all(|c| c.is_alphanumeric() || c == '_') {
        column.to_string()
    } else {
        "?column?".into()
    }
}

/// The expressions of the projection that makes `plan`'s output, looking through the
/// sorts and limits above it.
fn output_exprs(plan: &LogicalPlan) -> Option<&[Expr]> {
    match plan {
        LogicalPlan::Projection(p) => Some(&p.expr),
        LogicalPlan::Sort(s) => output_exprs(&s.input),
        LogicalPlan::Limit(l) => output_exprs(&l.input),
        _ => None,
    }
}

/// `plan` with its output columns renamed as PostgreSQL names them (unchanged when no
/// name differs). Aliases and table columns keep their names.
pub fn with_postgres_column_names(plan: LogicalPlan) -> Result<LogicalPlan> {
    let Some(exprs) = output_exprs(&plan) else {
        return Ok(plan);
    };
    if exprs.len() != plan.schema().fields().len() {
        return Ok(plan);
    }
    let renamed: Vec<Option<String>> = exprs
        .iter()
        .zip(plan.schema().fields())
        .map(|(expr, field)| match expr {
            Expr::Alias(_) => None,
            Expr::Column(c) if c.relation.is_some() => None,
            _ => postgres_name(field.name()),
        })
        .collect();
    if renamed.iter().all(Option::is_none) {
        return Ok(plan);
    }
    let fields: Vec<(Option<String>, String)> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| (qualifier.map(|q| q.to_string()), field.name().clone()))
        .collect();
    let mut uses: HashMap<String, usize> = HashMap::new();
    for ((_, name), new) in fields.iter().zip(&renamed) {
        *uses
            .entry(new.clone().unwrap_or_else(|| name.clone()))
            .or_default() += 1;
    }
    let columns: Vec<Expr> = fields
        .iter()
        .zip(renamed)
        .map(|((qualifier, name), new)| {
            let column = Expr::Column(Column::new(qualifier.clone(), name));
            match new {
                Some(new) if uses.get(&new) == Some(&1) => column.alias(new),
                _ => column,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

#[cfg(test)]
mod tests {
    use super::postgres_name;

    #[test]
    fn names_follow_postgres() {
        assert_eq!(postgres_name("count(*)").as_deref(), Some("count"));
        assert_eq!(postgres_name("max(cpu.usage_user)").as_deref(), Some("max"));
        assert_eq!(
            postgres_name("time_bucket(Utf8(\"1 minute\"),cpu.time)").as_deref(),
            Some("time_bucket")
        );
        assert_eq!(postgres_name("Int64(1)").as_deref(), Some("?column?"));
        assert_eq!(postgres_name("cpu.a + cpu.b").as_deref(), Some("?column?"));
        assert_eq!(postgres_name("CAST(cpu.v AS Int32)").as_deref(), Some("v"));
        assert_eq!(postgres_name("usage_user"), None);
        assert_eq!(postgres_name("minute"), None);
    }
}
