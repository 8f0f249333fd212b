//! Showing times in a session's time zone.
//!
//! Stored times are UTC instants in `timestamp` columns. When a session sets a time zone
//! other than UTC (`SET TIME ZONE 'Europe/Berlin'`), the front end wraps each query's plan
//! with [`in_time_zone`]: every timestamp column of the result becomes the same instant in
//! that zone (a `timestamptz`), so it prints as `2024-01-01 01:00:00+01`, as PostgreSQL
//! prints a `timestamptz` in the session's zone. A cast of a timestamp to text inside the
//! query (`CAST(time AS text)`) writes the same local time and offset.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, plan_err};
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, Projection};

use crate::expr_rewrite::rewrite_node_expressions;

fn is_text_cast(expr: &Expr) -> bool {
    matches!(expr, Expr::Cast(cast) if matches!(
        cast.field.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ))
}

/// `CAST(t AS text)` of a naive (UTC) timestamp `t` as `CAST(t AT zone AS text)`.
fn text_in_zone(expr: Expr, schema: &DFSchema, zone: &str) -> Result<Transformed<Expr>> {
    if !is_text_cast(&expr) {
        return Ok(Transformed::no(expr));
    }
    let Expr::Cast(Cast { expr: inner, field }) = expr else {
        return Ok(Transformed::no(expr));
    };
    let DataType::Timestamp(unit, None) = inner.get_type(schema)? else {
        return Ok(Transformed::no(Expr::Cast(Cast { expr: inner, field })));
    };
    let utc = Expr::Cast(Cast::new(
        inner,
        DataType::Timestamp(unit, Some("UTC".into())),
    ));
    let local = Expr::Cast(Cast::new(
        Box::new(utc),
        DataType::Timestamp(unit, Some(zone.into())),
    ));
    Ok(Transformed::yes(Expr::Cast(Cast {
        expr: Box::new(local),
        field,
    })))
}

/// Whether a session time zone names UTC (nothing to convert).
pub fn is_utc(zone: &str) -> bool {
    matches!(
        zone.to_ascii_uppercase().as_str(),
        "UTC" | "ETC/UTC" | "Z" | "+00:00" | "GMT" | "ETC/GMT" | "UCT" | "ZULU"
    )
}

/// `plan` with every timestamp column of its result shown in `zone`.
pub fn in_time_zone(plan: LogicalPlan, zone: &str) -> Result<LogicalPlan> {
    if zone.parse::<Tz>().is_err() {
        return plan_err!(
            "time zone \"{zone}\" is not known; use an IANA name such as 'Europe/Berlin' or an offset such as '+02:00'"
        );
    }
    let plan = plan
        .transform_up_with_subqueries(|node| {
            rewrite_node_expressions(node, is_text_cast, |e, schema| {
                text_in_zone(e, schema, zone)
            })
        })?
        .data;
    let schema = plan.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None)))
    {
        return Ok(plan);
    }
    let exprs = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            match field.data_type() {
                DataType::Timestamp(unit, None) => {
                    // Naive values are UTC: label them UTC, then move the label to `zone`.
                    let utc = Expr::Cast(Cast::new(
                        Box::new(column),
                        DataType::Timestamp(*unit, Some("UTC".into())),
                    ));
                    Expr::Cast(Cast::new(
                        Box::new(utc),
                        DataType::Timestamp(*unit, Some(zone.into())),
                    ))
                    .alias_qualified(qualifier.cloned(), field.name())
                }
                _ => column,
            }
        })
        .collect::<Vec<_>>();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?))
}
