//! The COPY sub-protocol: `COPY … FROM STDIN` feeds [`CopyIn`], `COPY … TO STDOUT`
//! streams a query's rows as `CopyData` messages.
//!
//! The statement itself is parsed by `chronosdb_query::copy`. A `COPY FROM` in progress
//! lives in the connection's session extensions between the `CopyData` messages; an
//! error ends it at once (the client gets the error and its remaining data is ignored,
//! as PostgreSQL does), and `CopyDone` writes what is left and reports `COPY n`.

use std::fmt::Debug;

use crate::errors::api_error;
use async_trait::async_trait;
use chronosdb_query::copy::{CopyCommand, CopyIn, copy_header, encode_copy_rows};
use datafusion::prelude::SessionContext;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::api::{ClientInfo, METADATA_DATABASE};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone};
use tokio::sync::Mutex;

use crate::execute::record_batches;
use crate::sessions::Sessions;

/// The `COPY FROM` in progress on a connection, if any.
#[derive(Default)]
struct CopyInSlot(Mutex<Option<CopyIn>>);

/// Starts a `COPY` statement: returns the response that switches the client into the
/// copy sub-protocol.
pub async fn start_copy<C: ClientInfo + ?Sized>(
    sessions: &Sessions,
    client: &C,
    command: CopyCommand,
) -> PgWireResult<Response> {
    let database = sessions.for_client(client)?;
    match command {
        CopyCommand::From {
            table,
            columns,
            format,
        } => {
            crate::access::check(client, crate::access::Needs::WRITE)?;
            let name = client
                .metadata()
                .get(METADATA_DATABASE)
                .cloned()
                .unwrap_or_default();
            let copy = sessions
                .query()
                .copy_in(&name, &table, &columns, &format)
                .map_err(api_error)?;
            let width = copy.width();
            let slot = client
                .session_extensions()
                .get_or_insert_with(CopyInSlot::default);
            *slot.0.lock().await = Some(copy);
            Ok(Response::CopyIn(CopyResponse::new(
                0,
                width,
                stream::empty::<PgWireResult<CopyData>>(),
            )))
        }
        CopyCommand::To { query, format } => {
            copy_out(client, &database.context, &query, format).await
        }
    }
}

async fn copy_out<C: ClientInfo + ?Sized>(
    client: &C,
    context: &SessionContext,
    query: &str,
    format: chronosdb_query::copy::CopyFormat,
) -> PgWireResult<Response> {
    let plan = context
        .state()
        .create_logical_plan(query)
        .await
        .map_err(api_error)?;
    crate::access::check_plan(client, &plan)?;
    let schema = plan.schema().as_arrow().clone();
    let batches = record_batches(client, context, &plan).await?;
    let header = format
        .header
        .then(|| Ok(CopyData::new(copy_header(&schema, &format).into())));
    let rows = batches.flat_map(move |batch| {
        let lines: Vec<PgWireResult<CopyData>> =
            match batch.and_then(|b| encode_copy_rows(&b, &format).map_err(api_error)) {
                Ok(lines) => lines
                    .into_iter()
                    .map(|line| Ok(CopyData::new(line.into())))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
        stream::iter(lines)
    });
    let data = stream::iter(header).chain(rows);
    Ok(Response::CopyOut(CopyResponse::new(
        0,
        schema.fields().len(),
        data,
    )))
}

/// Receives the data of a `COPY … FROM STDIN`.
pub struct CopyIngest;

impl CopyIngest {
    async fn take<C: ClientInfo>(client: &C) -> Option<CopyIn> {
        let slot = client.session_extensions().get::<CopyInSlot>()?;
        slot.0.lock().await.take()
    }
}

#[async_trait]
impl CopyHandler for CopyIngest {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(slot) = client.session_extensions().get::<CopyInSlot>() else {
            return Ok(());
        };
        let mut copy = slot.0.lock().await;
        let Some(active) = copy.as_mut() else {
            return Ok(());
        };
        if let Err(e) = active.push(&copy_data.data).await {
            // The COPY is over: what the client still sends is ignored.
            *copy = None;
            return Err(api_error(e));
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(copy) = Self::take(client).await else {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "08P01".into(),
                "CopyDone without a COPY FROM STDIN in progress".into(),
            ))));
        };
        let rows = copy.finish().await.map_err(api_error)?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(
        &self,
        client: &mut C,
        fail: pgwire::messages::copy::CopyFail,
    ) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let written = match Self::take(client).await {
            Some(copy) => copy.written(),
            None => 0,
        };
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!(
                "COPY from stdin failed: {} ({written} rows before it were written)",
                fail.message
            ),
        )))
    }
}
