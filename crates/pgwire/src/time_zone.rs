//! A query hook that shows result times in the session's time zone.
//!
//! `datafusion-postgres` records `SET TIME ZONE` in the connection's metadata but prints
//! times as they are. For a session whose zone is not UTC, this hook plans each query
//! itself and wraps the plan with [`chronosdb_query::time_zone::in_time_zone`]: in the
//! extended protocol at parse time (so `Describe` reports `timestamptz` and the rows
//! match), in the simple protocol when it runs the statement. Other sessions and
//! statements are left to the default path.

use crate::errors::api_error;
use async_trait::async_trait;
use chronosdb_query::time_zone::{in_time_zone, is_utc};
use datafusion::arrow::array::timezone::Tz;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::Response;
use pgwire::api::results::Tag;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;

/// The connection metadata key `datafusion-postgres` stores `SET TIME ZONE` under.
const TIME_ZONE_KEY: &str = "timezone";

/// The session's time zone, when it is set and not UTC.
pub(crate) fn session_zone<C: ClientInfo + ?Sized>(client: &C) -> Option<String> {
    client
        .metadata()
        .get(TIME_ZONE_KEY)
        .filter(|zone| !is_utc(zone))
        .cloned()
}

async fn plan_in_zone(
    statement: &Statement,
    context: &SessionContext,
    zone: &str,
) -> PgWireResult<LogicalPlan> {
    let plan = context
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
        .await
        .map_err(api_error)?;
    in_time_zone(plan, zone).map_err(api_error)
}

/// The zone a `SET TIME ZONE x` / `SET timezone = x` / `SET TimeZone TO x` sets, if the
/// statement is one of those.
fn zone_assignment(statement: &Statement) -> Option<String> {
    let Statement::Set(set) = statement else {
        return None;
    };
    let value = match set {
        Set::SetTimeZone { value, .. } => value.to_string(),
        Set::SingleAssignment {
            variable, values, ..
        } if variable.to_string().eq_ignore_ascii_case("timezone") && values.len() == 1 => {
            values[0].to_string()
        }
        _ => return None,
    };
    Some(value.trim_matches(['\'', '"']).to_string())
}

/// Validates and records a session time zone, and tells the client, as PostgreSQL does.
async fn set_zone(client: &mut dyn HookClient, zone: &str) -> PgWireResult<Response> {
    let zone = if zone.eq_ignore_ascii_case("local") || zone.eq_ignore_ascii_case("default") {
        "UTC"
    } else {
        zone
    };
    if !is_utc(zone) && zone.parse::<Tz>().is_err() {
        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "22023".into(),
            format!(
                "invalid value for parameter \"TimeZone\": \"{zone}\" (use an IANA name such as 'Europe/Berlin' or an offset such as '+02:00')"
            ),
        ))));
    }
    client
        .metadata_mut()
        .insert(TIME_ZONE_KEY.to_string(), zone.to_string());
    client
        .send_message(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            "TimeZone".to_string(),
            zone.to_string(),
        )))
        .await?;
    Ok(Response::Execution(Tag::new("SET")))
}

pub struct SessionTimeZoneHook;

#[async_trait]
impl QueryHook for SessionTimeZoneHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(zone) = zone_assignment(statement) {
            return Some(set_zone(client, &zone).await);
        }
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let zone = session_zone(client)?;
        let result = async {
            let plan = plan_in_zone(statement, context, &zone).await?;
            let response =
                crate::execute::stream_plan(&*client, context, plan, &Format::UnifiedText).await?;
            Ok(Response::Query(response))
        }
        .await;
        Some(result)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let zone = session_zone(client)?;
        Some(plan_in_zone(statement, context, &zone).await)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The parse step of a SET is left to datafusion-postgres (an empty plan).
        let zone = zone_assignment(statement)?;
        Some(set_zone(client, &zone).await)
    }
}
