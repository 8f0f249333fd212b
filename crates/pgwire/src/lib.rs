//! The PostgreSQL wire protocol front end.
//!
//! `datafusion-postgres` supplies the protocol handling (simple and extended query,
//! parameters, `SET`/`SHOW`, transactions, cursors) over one DataFusion `SessionContext`;
//! `arrow-pg` encodes Arrow results; `datafusion-pg-catalog` serves the `pg_catalog` that
//! psql, drivers and BI tools query. What this crate adds is chronosdb's own: a session per
//! database, chosen by the database name of the startup message, and the mapping of engine
//! errors onto SQLSTATE codes a client can act on.

mod copy;
mod errors;
mod execute;
mod savepoints;
mod sessions;
mod time_zone;

use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_query::copy::parse_copy;
use chronosdb_query::{QueryEngine, rewrite_show};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;

use sessions::Sessions;

/// The statement type of the extended protocol, as `datafusion-postgres` parses it.
type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// All handlers of the pgwire server.
pub struct PgFrontend {
    router: Arc<QueryRouter>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgFrontend {
    pub fn new(query: QueryEngine) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        Self {
            router: Arc::new(QueryRouter {
                sessions: Arc::new(Sessions::new(query)),
            }),
            startup: Arc::new(Startup {
                connections: connections.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        }
    }
}

/// Accepts connections on `listener` and serves each on its own task.
pub async fn serve(listener: TcpListener, frontend: Arc<PgFrontend>) -> std::io::Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "pgwire accept failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let frontend = frontend.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, frontend).await {
                tracing::debug!(%peer, error = %e, "pgwire connection ended with an error");
            }
        });
    }
}

impl PgWireServerHandlers for PgFrontend {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.router.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.router.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(errors::SqlStateErrors)
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(copy::CopyIngest)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts every startup for now (authentication is the job of the token layer) and
/// registers the connection so cancel requests can find it.
struct Startup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Startup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// Sends each statement to the session of the connection's database.
struct QueryRouter {
    sessions: Arc<Sessions>,
}

#[async_trait]
impl SimpleQueryHandler for QueryRouter {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = parse_copy(query) {
            let command = command.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            return Ok(vec![
                copy::start_copy(&self.sessions, client, command).await?,
            ]);
        }
        let database = self.sessions.for_client(client)?;
        let rewritten = rewrite_show(query);
        let query = rewritten.as_deref().unwrap_or(query);
        SimpleQueryHandler::do_query(&database.service, client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryRouter {
    type Statement = Statement;
    type QueryParser = RoutingParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(RoutingParser {
            sessions: self.sessions.clone(),
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = parse_copy(&portal.statement.statement.0) {
            let command = command.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            return copy::start_copy(&self.sessions, client, command).await;
        }
        let database = self.sessions.for_client(client)?;
        // A query without parameters (what BI tools and most drivers send) takes the
        // single-planning streaming path; parameters are decoded by datafusion-postgres.
        if portal.parameters.is_empty()
            && let (_, Some((SqlStatement::Query(_), plan))) = &portal.statement.statement
        {
            let response = execute::stream_plan(
                client,
                &database.context,
                plan.clone(),
                &portal.result_column_format,
            )
            .await?;
            return Ok(Response::Query(response));
        }
        ExtendedQueryHandler::do_query(&database.service, client, portal, max_rows).await
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // A portal named after a cursor that `DECLARE` opened carries only the cursor's
        // SQL; psycopg and libpq describe it before `FETCH`, so plan it for its columns
        // (FETCH sends text).
        if let (sql, None) = &portal.statement.statement
            && !portal.name.is_empty()
        {
            let database = self.sessions.for_client(client)?;
            let plan = database
                .context
                .state()
                .create_logical_plan(sql)
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let fields =
                arrow_schema_to_pg_fields(plan.schema().as_arrow(), &Format::UnifiedText, None)?;
            return Ok(DescribePortalResponse::new(fields));
        }
        let fields = self.query_parser().get_result_schema(
            &portal.statement.statement,
            Some(&portal.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }
}

/// Parses with the session of the client's database; describes with any session, since
/// describing only reads the already planned statement.
pub struct RoutingParser {
    sessions: Arc<Sessions>,
}

#[async_trait]
impl QueryParser for RoutingParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // COPY is run by the router at Execute (DataFusion's parser knows only its own
        // COPY … TO 'file').
        if parse_copy(sql).is_some() {
            return Ok(Some((sql.to_string(), None)));
        }
        let database = self.sessions.for_client(client)?;
        let rewritten = rewrite_show(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        database
            .service
            .query_parser()
            .parse_sql(client, sql, types)
            .await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.sessions
            .describer()
            .query_parser()
            .get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.sessions
            .describer()
            .query_parser()
            .get_result_schema(stmt, column_format)
    }
}
