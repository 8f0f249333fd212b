//! Runs a planned query and streams its rows to the client.
//!
//! `datafusion-postgres` optimizes a prepared plan at Execute and hands DataFusion a plan
//! it optimizes again while planning it physically; for a short time-series query that
//! second pass cost as much as reading the data. Here a plan is optimized once, on its
//! way to a physical plan, and the rows are encoded batch by batch as they are produced,
//! so a large result streams with the memory of a few batches. A cancel request or the
//! session's `statement_timeout` stops the query while it streams, not only while it is
//! planned (see `session_control`).

use std::sync::Arc;

use crate::errors::api_error;
use crate::panic_guard::caught_stream;
use crate::text_output::postgres_text;
use chronosdb_query::column_names::postgres_column_names;
use chronosdb_query::newest_buckets::NewestBuckets;
use chronosdb_query::plan_cache::optimized_inner;
use chronosdb_query::scan_size;
use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use crate::session_control::{deadline, interruptible, within_deadline};

/// `fields` (the columns of `plan`) named as PostgreSQL names result columns.
pub fn postgres_names(plan: &LogicalPlan, fields: Vec<FieldInfo>) -> Vec<FieldInfo> {
    let Some(names) = postgres_column_names(plan) else {
        return fields;
    };
    fields
        .into_iter()
        .zip(names)
        .map(|(field, name)| {
            FieldInfo::new(
                name,
                field.table_id(),
                field.column_id(),
                field.datatype().clone(),
                field.format(),
            )
            .with_format_options(field.format_options().clone())
            .with_type_size(field.type_size())
            .with_type_modifier(field.type_modifier())
        })
        .collect()
}

/// Plans `plan` and returns its record batches, interruptible by the client. A query for
/// the newest `k` time buckets runs over recent windows first (see
/// `chronosdb_query::newest_buckets`).
pub async fn record_batches<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: &LogicalPlan,
) -> PgWireResult<BoxStream<'static, PgWireResult<RecordBatch>>> {
    // A cached plan is optimized already; the newest-bucket windows are new plans.
    let inner = optimized_inner(plan).map_or(plan, |optimized| &optimized.plan);
    let Some(strategy) = NewestBuckets::detect(inner) else {
        return Ok(plan_and_run(client, context, plan).await?.boxed());
    };
    let mut attempt = 0u32;
    loop {
        // lower_bound reaches None (everything) long before 64 doublings of a day.
        let lower = if attempt < 64 {
            strategy.lower_bound(attempt)
        } else {
            None
        };
        let window = strategy.window(lower).map_err(api_error)?;
        let stream = plan_and_run(client, context, &window).await?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        tracing::debug!(attempt, ?lower, rows, "newest buckets: a window ran");
        if strategy.answered(rows, lower) {
            let mut left = strategy.limit;
            let mut kept = Vec::with_capacity(batches.len());
            for batch in batches {
                if left == 0 {
                    break;
                }
                let take = batch.num_rows().min(left);
                left -= take;
                kept.push(Ok(batch.slice(0, take)));
            }
            return Ok(stream::iter(kept).boxed());
        }
        attempt += 1;
    }
}

/// Plans `plan` physically (after optimizing it, unless it is an optimized plan from
/// the plan cache) and starts it.
async fn plan_and_run<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: &LogicalPlan,
) -> PgWireResult<impl futures::Stream<Item = PgWireResult<RecordBatch>> + Send + 'static> {
    let deadline = deadline(client);
    let optimized = optimized_inner(plan);
    // A short window: one partition plans and runs faster than two (see scan_size).
    let small = scan_size::is_small(optimized.map_or(plan, |optimized| &optimized.plan));
    if small && let Some(optimized) = optimized {
        // A statement whose physical plan is reused: rebound under the session's read
        // lock, without the copy of the session state a full planning works on.
        let rebound = {
            let state = context.state_ref();
            let state = state.read();
            optimized.rebind_in_one_partition(&state)
        };
        if let Some((physical, task)) = rebound.map_err(api_error)? {
            let batches = execute_stream(physical, task).map_err(api_error)?;
            return Ok(interruptible(client, batches, deadline));
        }
    }
    let mut state = context.state();
    if small {
        state.config_mut().options_mut().execution.target_partitions = 1;
    }
    let planning = async {
        match optimized {
            Some(optimized) => optimized.create_physical_plan(&state).await,
            None => state.create_physical_plan(plan).await,
        }
    };
    let physical = within_deadline(deadline, planning)
        .await?
        .map_err(api_error)?;
    let batches =
        execute_stream(physical, Arc::new(TaskContext::from(&state))).map_err(api_error)?;
    Ok(interruptible(client, batches, deadline))
}

/// Runs a `DELETE` plan and answers PostgreSQL's `DELETE <count>` tag (drivers read
/// the count as the statement's update count).
pub async fn run_delete<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: &LogicalPlan,
) -> PgWireResult<Response> {
    let deleted = delete_count(client, context, plan).await?;
    Ok(Response::Execution(Tag::new("DELETE").with_rows(deleted)))
}

/// Runs a `DELETE` plan; the number of points it deleted.
pub async fn delete_count<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: &LogicalPlan,
) -> PgWireResult<usize> {
    let batches = record_batches(client, context, plan).await?;
    let mut batches = std::pin::pin!(batches);
    let mut deleted = 0usize;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if let Some(counts) = batch
            .column_by_name("count")
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        {
            deleted += counts.iter().flatten().sum::<u64>() as usize;
        }
    }
    Ok(deleted)
}

/// Plans `plan` (analyzed and optimized once) and returns its rows as a stream of data
/// rows in `format`, ready for pgwire to send or to keep in a suspended portal.
pub async fn stream_plan<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    plan: LogicalPlan,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = arrow_schema_to_pg_fields(plan.schema().as_arrow(), format, Some(options))?;
    let fields = Arc::new(postgres_names(&plan, fields));
    let batches = record_batches(client, context, &plan).await?;
    let encoder_fields = fields.clone();
    let rows = batches.flat_map(move |batch: PgWireResult<RecordBatch>| {
        let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
            Ok(batch) => match postgres_text(batch, &encoder_fields) {
                Ok(batch) => encode_recordbatch(encoder_fields.clone(), batch),
                Err(e) => Box::new(std::iter::once(Err(api_error(e.into())))),
            },
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        stream::iter(rows)
    });
    Ok(QueryResponse::new(fields, caught_stream(rows)))
}
