//! Bound parameters of a prepared query, typed and decoded.
//!
//! `datafusion-postgres` types a parameter from DataFusion's inference and, failing that,
//! from a cast around it (`$1::VARCHAR`), but looks for casts only outside subqueries: a
//! casted parameter inside a subquery stays untyped, and decoding then fails or misreads
//! it (SQLAlchemy's column reflection is one such query). Here both are collected through
//! subqueries too; where `datafusion-postgres` knows a type (including its overrides for
//! OID columns) it is kept, and only its gaps are filled.

use std::collections::HashMap;

use crate::errors::api_error;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::PgWireResult;

/// Each parameter's type, in `$1, $2, …` order, from DataFusion's inference and from the
/// casts around parameters, subqueries included.
pub fn inferred_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let mut types: HashMap<String, Option<DataType>> =
        plan.get_parameter_types().map_err(api_error)?;
    let mut casts: HashMap<String, DataType> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Cast(cast) = e
                    && let Expr::Placeholder(placeholder) = cast.expr.as_ref()
                {
                    casts
                        .entry(placeholder.id.clone())
                        .or_insert_with(|| cast.field.data_type().clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(api_error)?;
    for (id, data_type) in casts {
        let slot = types.entry(id).or_insert(None);
        if slot.is_none() {
            *slot = Some(data_type);
        }
    }
    // Indexed by number: a parameter the plan no longer mentions (a rewrite dropped the
    // expression holding it) keeps its place, untyped, instead of shifting the rest.
    let mut ordered: Vec<Option<DataType>> = Vec::new();
    for (id, data_type) in types {
        let Some(n) = id
            .trim_start_matches('$')
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
        else {
            continue;
        };
        if ordered.len() < n {
            ordered.resize(n, None);
        }
        ordered[n - 1] = data_type;
    }
    Ok(ordered)
}

/// The wire types to describe: what [`inferred_types`] found, position by position, and
/// where it found nothing, `reported` (datafusion-postgres's) if it has the same number
/// of parameters (its list closes up gaps, so with fewer entries it is out of step).
pub fn wire_types(reported: Vec<Type>, inferred: &[Option<DataType>]) -> Vec<Type> {
    let aligned = reported.len() == inferred.len();
    inferred
        .iter()
        .enumerate()
        .map(|(i, data_type)| {
            let ours = data_type.as_ref().and_then(|t| into_pg_type(t).ok());
            // Theirs first when aligned: it carries overrides (OID columns, vectors).
            let theirs = aligned
                .then(|| reported[i].clone())
                .filter(|t| *t != Type::UNKNOWN);
            theirs.or(ours).unwrap_or(Type::UNKNOWN)
        })
        .collect()
}

/// `plan` with the portal's parameters decoded and substituted.
pub fn bind<S: Clone>(
    portal: &Portal<S>,
    plan: &LogicalPlan,
    reported: Vec<Type>,
) -> PgWireResult<LogicalPlan> {
    let inferred = inferred_types(plan)?;
    let wire = wire_types(reported, &inferred);
    let inferred_refs: Vec<Option<&DataType>> = inferred.iter().map(Option::as_ref).collect();
    let wire_refs: Vec<Option<&Type>> = wire
        .iter()
        .map(|t| (*t != Type::UNKNOWN).then_some(t))
        .collect();
    let values: ParamValues =
        deserialize_parameters_with_server_types(portal, &inferred_refs, &wire_refs)?;
    plan.clone()
        .replace_params_with_values(&values)
        .map_err(api_error)
}
