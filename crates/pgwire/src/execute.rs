//! Runs a planned query and streams its rows to the client.
//!
//! `datafusion-postgres` optimizes a prepared plan at Execute and hands DataFusion a plan
//! it optimizes again while planning it physically; for a short time-series query that
//! second pass cost as much as reading the data. Here a plan is optimized once, on its
//! way to a physical plan, and the rows are encoded batch by batch as they are produced,
//! so a large result streams with the memory of a few batches. `statement_timeout`
//! bounds the whole query, streaming included (PostgreSQL's SQLSTATE 57014 when it
//! expires), not just its planning.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use futures::{StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::QueryResponse;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use tokio::time::Instant;

/// The connection metadata key `datafusion-postgres` keeps `SET statement_timeout` under.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

fn statement_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<Duration> {
    client
        .metadata()
        .get(STATEMENT_TIMEOUT_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

fn timed_out() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "57014".into(),
        "canceling statement due to statement timeout".into(),
    )))
}

fn api_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Plans `plan` (analyzed and optimized once) and returns its rows as a stream of data
/// rows in `format`, ready for pgwire to send or to keep in a suspended portal.
pub async fn stream_plan<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: LogicalPlan,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let deadline = statement_timeout(client).map(|t| Instant::now() + t);
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(
        plan.schema().as_arrow(),
        format,
        Some(options),
    )?);
    let state = context.state();
    let planning = state.create_physical_plan(&plan);
    let physical = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, planning)
            .await
            .map_err(|_| timed_out())?,
        None => planning.await,
    }
    .map_err(api_error)?;
    let batches = execute_stream(physical, context.task_ctx()).map_err(api_error)?;
    let batches = stream::unfold(Some(batches), move |batches| async move {
        let mut batches = batches?;
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, batches.next()).await {
                Ok(next) => next,
                // After the error the stream ends.
                Err(_) => return Some((Err(timed_out()), None)),
            },
            None => batches.next().await,
        };
        match next? {
            Ok(batch) => Some((Ok(batch), Some(batches))),
            Err(e) => Some((Err(api_error(e)), None)),
        }
    });
    let encoder_fields = fields.clone();
    let rows = batches.flat_map(move |batch: PgWireResult<RecordBatch>| {
        let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
            Ok(batch) => encode_recordbatch(encoder_fields.clone(), batch),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        stream::iter(rows)
    });
    Ok(QueryResponse::new(fields, rows))
}
