//! The PostgreSQL wire protocol front end.
//!
//! `datafusion-postgres` supplies the protocol handling (simple and extended query,
//! parameters, `SET`/`SHOW`, transactions, cursors) over one DataFusion `SessionContext`;
//! `arrow-pg` encodes Arrow results; `datafusion-pg-catalog` serves the `pg_catalog` that
//! psql, drivers and BI tools query. What this crate adds is chronosdb's own: a session per
//! database, chosen by the database name of the startup message, and the mapping of engine
//! errors onto SQLSTATE codes a client can act on.

mod access;
mod auth;
mod connection;
mod copy;
mod errors;
mod execute;
mod panic_guard;
mod parameters;
mod savepoints;
mod session_control;
mod sessions;
mod text_output;
mod time_zone;
mod token_commands;

use std::sync::Arc;
use std::time::Duration;

use crate::errors::api_error;
use async_trait::async_trait;
use chronosdb_query::catalog_queries::{
    rewrite_catalog_functions, rewrite_catalog_query, shield_projection_subqueries,
};
use chronosdb_query::column_names::{
    alias_casts_of_columns, alias_duplicate_names, alias_special_syntax,
};
use chronosdb_query::copy::parse_copy;
use chronosdb_query::databases::{DatabaseCommand, parse_database_command};
use chronosdb_query::plan_cache::{Lookup, parameterize};
use chronosdb_query::{QueryEngine, rewrite_show};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_query_response};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, ErrorHandler,
    METADATA_DATABASE, PgWireConnectionState, PgWireServerHandlers, RandomPidSecretKeyGenerator,
    Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use auth::{Startup, StartupShared};
use chronosdb_catalog::auth::Authenticator;
use chronosdb_query::delete::{expand_regex_delete, is_regex_delete};
use session_control::{Activity, CancelRequests, Cancels, close_when_idle};
use sessions::{Database, Sessions};
use token_commands::{parse_token_command, run_token_command};

/// The statement type of the extended protocol, as `datafusion-postgres` parses it.
type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// The state every connection shares: database sessions, the connections cancel requests
/// can reach, and the idle limit.
pub struct PgFrontend {
    router: Arc<QueryRouter>,
    startup: Arc<StartupShared>,
    idle_timeout: Option<Duration>,
    tls: Option<TlsAcceptor>,
    require_tls: bool,
}

impl PgFrontend {
    pub fn new(query: QueryEngine, auth: Arc<Authenticator>) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        Self {
            router: Arc::new(QueryRouter {
                sessions: Arc::new(Sessions::new(query)),
                auth: auth.clone(),
            }),
            startup: Arc::new(StartupShared {
                auth,
                cancels: Arc::new(Cancels::new(connections.clone())),
                connections,
                pids: RandomPidSecretKeyGenerator::default(),
            }),
            idle_timeout: None,
            tls: None,
            require_tls: false,
        }
    }

    /// Offers TLS to clients that ask (`sslmode=prefer` and stricter, or a direct TLS
    /// handshake); with `required`, clients that do not are refused at start-up.
    pub fn with_tls(mut self, config: Arc<ServerConfig>, required: bool) -> Self {
        self.tls = Some(TlsAcceptor::from(config));
        self.require_tls = required;
        self
    }

    /// Closes connections idle (no statement, no open result) for longer than `timeout`.
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
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
        let activity = Activity::new();
        // A second handle on the socket, to shut it when the connection idles.
        let idle_watch = match (frontend.idle_timeout, socket_clone(&socket)) {
            (Some(timeout), Ok(handle)) => Some(tokio::spawn(close_when_idle(
                activity.clone(),
                handle,
                timeout,
                peer,
            ))),
            (Some(_), Err(e)) => {
                tracing::warn!(%peer, error = %e, "cannot watch the connection for idleness");
                None
            }
            (None, _) => None,
        };
        let handlers = ConnectionHandlers {
            startup: Arc::new(Startup::new(
                frontend.startup.clone(),
                activity,
                frontend.require_tls,
            )),
            frontend: frontend.clone(),
        };
        let tls = frontend.tls.clone();
        tokio::spawn(async move {
            if let Err(e) = connection::serve_connection(socket, tls, handlers).await {
                tracing::debug!(%peer, error = %e, "pgwire connection ended with an error");
            }
            if let Some(watch) = idle_watch {
                watch.abort();
            }
        });
    }
}

/// A duplicate of the socket's descriptor (for shutting it down from outside pgwire).
fn socket_clone(socket: &tokio::net::TcpStream) -> std::io::Result<std::net::TcpStream> {
    let fd = socket2::SockRef::from(socket);
    Ok(fd.try_clone()?.into())
}

/// The handlers of one connection: the shared ones, and a startup handler that knows the
/// connection's activity record.
struct ConnectionHandlers {
    frontend: Arc<PgFrontend>,
    startup: Arc<Startup>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.frontend.router.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.frontend.router.clone()
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
        Arc::new(CancelRequests(self.frontend.startup.cancels.clone()))
    }
}

/// Parses and plans `sql` with the database's `datafusion-postgres` parser (its rewrites
/// and hooks). A catalog query with scalar subqueries that DataFusion cannot plan as
/// written (correlated and unaggregated, as SQLAlchemy writes them) is planned again after
/// chronosdb's rewrite; statements that plan as written are never rewritten. Catalog
/// functions and columns DataFusion lacks (`generate_subscripts`, `pg_class.reloptions`)
/// are replaced first; in other statements, select-list subqueries are shielded from
/// datafusion-postgres' `LIMIT 1` rewrite (see `shield_projection_subqueries`).
async fn parse_statement<C>(
    database: &Database,
    client: &C,
    sql: &str,
    types: &[Option<Type>],
) -> PgWireResult<Option<Statement>>
where
    C: ClientInfo + Unpin + Send + Sync,
{
    let parser = database.service.query_parser();
    let replaced = rewrite_catalog_functions(sql).or_else(|| shield_projection_subqueries(sql));
    let sql = replaced.as_deref().unwrap_or(sql);
    // `EXTRACT(…)` and friends named as PostgreSQL names them (see `alias_special_syntax`).
    let named = alias_special_syntax(sql);
    let sql = named.as_deref().unwrap_or(sql);
    let parsed = match parser.parse_sql(client, sql, types).await {
        // `SELECT time::text … ORDER BY time` (see `alias_casts_of_columns`), `SELECT v, v`
        // (see `alias_duplicate_names`).
        Err(e) if e.to_string().contains("require unique expression names") => {
            for rewritten in [alias_casts_of_columns(sql), alias_duplicate_names(sql)]
                .into_iter()
                .flatten()
            {
                if let Ok(parsed) = parser.parse_sql(client, &rewritten, types).await {
                    return Ok(parsed);
                }
            }
            return Err(e);
        }
        parsed => parsed?,
    };
    let may_need_rewrite = sql.contains("pg_") && sql.to_ascii_lowercase().contains("(select");
    if may_need_rewrite
        && let Some((_, Some((_, plan)))) = &parsed
        && let Err(e) = database.context.state().optimize(plan)
        && e.to_string().to_ascii_lowercase().contains("subquery")
        && let Some(rewritten) = rewrite_catalog_query(sql)
    {
        return parser.parse_sql(client, &rewritten, types).await;
    }
    Ok(parsed)
}

/// `sql` from the database's plan cache, its literals bound (see
/// `chronosdb_query::plan_cache`); `None` to parse and plan it as usual
/// ([`parse_statement`]). Both protocols look here first, before any other parsing. Statements with
/// typed parameters, catalog queries (often rewritten first) and sessions in a time zone
/// (whose plans the time-zone hook wraps) always take the usual way.
async fn cached_statement<C>(
    database: &Database,
    client: &C,
    sql: &str,
    types: &[Option<Type>],
) -> PgWireResult<Option<Statement>>
where
    C: ClientInfo + Unpin + Send + Sync,
{
    if !types.is_empty()
        || sql.contains("pg_")
        || sql.contains("information_schema")
        || time_zone::session_zone(client).is_some()
    {
        return Ok(None);
    }
    let named = alias_special_syntax(sql);
    let sql = named.as_deref().unwrap_or(sql);
    let Some(statement) = parameterize(sql) else {
        return Ok(None);
    };
    let cached = match database.plans.lookup(&statement.key) {
        Lookup::Hit(cached) => cached,
        Lookup::Uncacheable => return Ok(None),
        Lookup::Miss => {
            let parser = database.service.query_parser();
            // A generic form that does not plan is not cached: the statement itself is
            // planned and reports its own error.
            let shielded = shield_projection_subqueries(&statement.key);
            let generic_sql = shielded.as_deref().unwrap_or(&statement.key);
            let Ok(Some((_, Some((generic, plan))))) =
                parser.parse_sql(client, generic_sql, &[]).await
            else {
                return Ok(None);
            };
            let state = database.context.state();
            match database.plans.insert(&state, &statement.key, generic, plan) {
                Some(cached) => cached,
                None => return Ok(None),
            }
        }
    };
    Ok(cached
        .bind(&statement)
        .map(|plan| (sql.to_string(), Some((cached.statement.clone(), plan)))))
}

/// The plan of a portal chronosdb runs itself, its parameters bound: any query (what BI
/// tools and drivers send); other statements go to datafusion-postgres.
fn bound_query_plan(
    sessions: &Sessions,
    portal: &Portal<Statement>,
) -> PgWireResult<Option<LogicalPlan>> {
    bound_plan(sessions, portal, |s| matches!(s, SqlStatement::Query(_)))
}

/// The plan of a portal whose statement is of the kind `wanted` accepts, with its
/// parameters bound.
fn bound_plan(
    sessions: &Sessions,
    portal: &Portal<Statement>,
    wanted: fn(&SqlStatement) -> bool,
) -> PgWireResult<Option<LogicalPlan>> {
    let (_, Some((statement, plan))) = &portal.statement.statement else {
        return Ok(None);
    };
    if !wanted(statement) {
        return Ok(None);
    }
    if portal.parameters.is_empty() {
        return Ok(Some(plan.clone()));
    }
    let reported = sessions
        .describer()
        .query_parser()
        .get_parameter_types(&portal.statement.statement)?;
    parameters::bind(portal, plan, reported).map(Some)
}

/// The `SELECT` that answers `sql` if it is a `SHOW` chronosdb answers itself: its own
/// views (`SHOW TABLES`, … see `rewrite_show`) and the settings datafusion-postgres does
/// not know, which it would answer with an empty row: a startup parameter of the
/// client's, a server setting (`current_setting`'s values), `SHOW timezone` as
/// `SHOW TIME ZONE`; an unknown name is refused as PostgreSQL refuses it (42704).
fn rewrite_show_for<C: ClientInfo>(client: &C, sql: &str) -> PgWireResult<Option<String>> {
    if let Some(rewritten) = rewrite_show(sql) {
        return Ok(Some(rewritten));
    }
    let words = sql.trim_start().get(..5).unwrap_or_default();
    if !words.eq_ignore_ascii_case("show ") {
        return Ok(None);
    }
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql);
    let Ok([SqlStatement::ShowVariable { variable }]) = parsed.as_deref() else {
        return Ok(None);
    };
    let name = variable
        .iter()
        .map(|v| v.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    // What datafusion-postgres answers itself.
    const ANSWERED: &[&str] = &[
        "time zone",
        "server_version",
        "transaction_isolation",
        "transaction isolation level",
        "catalogs",
        "statement_timeout",
        "bytea_output",
        "datestyle",
        "intervalstyle",
        "extra_float_digits",
        "application_name",
        "search_path",
        "all",
    ];
    if name == "timezone" {
        return Ok(Some("SHOW TIME ZONE".to_string()));
    }
    if ANSWERED.contains(&name.as_str()) || client.metadata().contains_key(&name) {
        return Ok(None);
    }
    let value = client
        .metadata()
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(&name))
        .map(|(_, value)| value.clone())
        .or_else(|| chronosdb_query::functions::postgres::setting(&name));
    match value {
        Some(value) => Ok(Some(format!(
            "SELECT '{}' AS \"{}\"",
            value.replace('\'', "''"),
            name.replace('"', "\"\"")
        ))),
        None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "42704".into(),
            format!("unrecognized configuration parameter \"{name}\""),
        )))),
    }
}

/// Whether `sql` is exactly one query (`SELECT`, `WITH`, `VALUES`, …).
fn is_single_query(sql: &str) -> bool {
    matches!(
        Parser::parse_sql(&PostgreSqlDialect {}, sql).as_deref(),
        Ok([SqlStatement::Query(_)])
    )
}

/// Whether `sql` is exactly one `DELETE`.
fn is_single_delete(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("delete"))
        && matches!(
            Parser::parse_sql(&PostgreSqlDialect {}, sql).as_deref(),
            Ok([SqlStatement::Delete(_)])
        )
}

/// Runs the planned query of a simple Query message: checked against the connection's
/// token, then streamed.
async fn run_simple_query<C>(
    client: &C,
    database: &Database,
    plan: LogicalPlan,
) -> PgWireResult<Vec<Response>>
where
    C: ClientInfo + Unpin + Send + Sync,
{
    access::check_plan(client, &plan)?;
    let response =
        execute::stream_plan(client, &database.context, plan, &Format::UnifiedText).await?;
    Ok(vec![Response::Query(response)])
}

/// Refuses a statement nested too deep to plan safely (SQLSTATE 54001; see
/// `chronosdb_query::statement_depth`), before anything parses it.
fn check_depth(sql: &str) -> PgWireResult<()> {
    chronosdb_query::statement_depth::check_statement_depth(sql)
        .map_err(|e| PgWireError::ApiError(Box::new(chronosdb_query::QueryError::from(e))))
}

/// Records that the client sent a statement (for the idle check).
fn touch<C: ClientInfo + ?Sized>(client: &C) {
    if let Some(activity) = client.session_extensions().get::<Arc<Activity>>() {
        activity.touch();
    }
}

/// Sends each statement to the session of the connection's database.
struct QueryRouter {
    sessions: Arc<Sessions>,
    auth: Arc<Authenticator>,
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
        touch(client);
        check_depth(query)?;
        panic_guard::caught(self.simple_query(client, query)).await
    }
}

impl QueryRouter {
    /// The statements of one simple Query message, run in order.
    async fn simple_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = parse_copy(query) {
            let command = command.map_err(api_error)?;
            return Ok(vec![
                copy::start_copy(&self.sessions, client, command).await?,
            ]);
        }
        if let Some(command) = parse_database_command(query) {
            return Ok(vec![self.run_database_command(client, &command).await?]);
        }
        if let Some(command) = parse_token_command(query) {
            return Ok(vec![
                run_token_command(&self.auth, client, command?, &Format::UnifiedText).await?,
            ]);
        }
        let database = self.sessions.for_client(client)?;
        let rewritten = rewrite_show_for(client, query)?;
        let query = rewritten.as_deref().unwrap_or(query);
        if let Some((_, Some((SqlStatement::Query(_), plan)))) =
            cached_statement(&database, client, query, &[]).await?
        {
            return run_simple_query(client, &database, plan).await;
        }
        // Queries (what psql and BI tools mostly send) take the same streaming,
        // cancellable path as the extended protocol; other statements (SET, DDL, cursors,
        // transactions) go to datafusion-postgres, one at a time, in order.
        let statements = match Parser::parse_sql(&PostgreSqlDialect {}, query) {
            Ok(statements) if statements.len() > 1 => statements,
            _ => return self.run_simple(client, &database, query).await,
        };
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            match self
                .run_simple(client, &database, &statement.to_string())
                .await
            {
                Ok(mut done) => responses.append(&mut done),
                Err(mut e) => {
                    // Like PostgreSQL: the results so far, then the error; the rest of
                    // the message is not run.
                    errors::SqlStateErrors.on_error(client, &mut e);
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

impl QueryRouter {
    /// `CREATE DATABASE` / `DROP DATABASE`: they need no session of their own, so a
    /// client connected to a database that does not exist yet can create it.
    async fn run_database_command<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        command: &DatabaseCommand,
    ) -> PgWireResult<Response> {
        access::check(client, access::Needs::ADMIN)?;
        let current = client.metadata().get(METADATA_DATABASE).cloned();
        self.sessions
            .query()
            .run_database_command(command, current.as_deref())
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        if let DatabaseCommand::Drop { name, .. } = command {
            self.sessions.forget(name);
            if let Some(tokens) = self.auth.tokens() {
                tokens
                    .revoke_database(name)
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            }
        }
        Ok(Response::Execution(Tag::new(command.tag())))
    }

    /// Runs one statement of a simple Query message.
    async fn run_simple<C>(
        &self,
        client: &mut C,
        database: &Database,
        sql: &str,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = parse_database_command(sql) {
            return Ok(vec![self.run_database_command(client, &command).await?]);
        }
        if let Some(command) = parse_token_command(sql) {
            return Ok(vec![
                run_token_command(&self.auth, client, command?, &Format::UnifiedText).await?,
            ]);
        }
        if is_single_query(sql) {
            let parsed = parse_statement(database, client, sql, &[]).await?;
            if let Some((_, Some((SqlStatement::Query(_), plan)))) = parsed {
                return run_simple_query(client, database, plan).await;
            }
        }
        if let Some(response) = self.run_regex_delete(client, database, sql).await? {
            return Ok(vec![response]);
        }
        if is_single_delete(sql) {
            let parsed = parse_statement(database, client, sql, &[]).await?;
            if let Some((_, Some((SqlStatement::Delete(_), plan)))) = parsed {
                access::check_plan(client, &plan)?;
                return Ok(vec![
                    execute::run_delete(client, &database.context, &plan).await?,
                ]);
            }
        }
        check_statement(database, client, sql).await?;
        SimpleQueryHandler::do_query(&database.service, client, sql).await
    }
}

impl QueryRouter {
    /// Runs `DELETE FROM /regex/ [WHERE …]` as one `DELETE` per matching table (each
    /// checked against the session's token); `None` if `sql` is not of that form.
    async fn run_regex_delete<C>(
        &self,
        client: &C,
        database: &Database,
        sql: &str,
    ) -> PgWireResult<Option<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let name = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_default();
        let Some(statements) = expand_regex_delete(self.sessions.query().engine(), &name, sql)
        else {
            return Ok(None);
        };
        let statements = statements.map_err(|message| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "42601".into(),
                message,
            )))
        })?;
        let mut deleted = 0;
        for statement in statements {
            if let Some((_, Some((SqlStatement::Delete(_), plan)))) =
                parse_statement(database, client, &statement, &[]).await?
            {
                access::check_plan(client, &plan)?;
                deleted += execute::delete_count(client, &database.context, &plan).await?;
            }
        }
        Ok(Some(Response::Execution(
            Tag::new("DELETE").with_rows(deleted),
        )))
    }
}

/// Refuses a statement that datafusion-postgres will run unless the connection's token
/// may: its plan is checked, and cursors count as reads.
async fn check_statement<C>(database: &Database, client: &C, sql: &str) -> PgWireResult<()>
where
    C: ClientInfo + Unpin + Send + Sync,
{
    if access::is_admin(client) {
        return Ok(());
    }
    if Parser::parse_sql(&PostgreSqlDialect {}, sql).is_ok_and(|statements| {
        statements
            .iter()
            .any(|s| matches!(s, SqlStatement::Declare { .. } | SqlStatement::Fetch { .. }))
    }) {
        access::check(client, access::Needs::READ)?;
    }
    // A statement that does not plan here fails the same way when it is run.
    if let Ok(Some((_, Some((_, plan))))) = parse_statement(database, client, sql, &[]).await {
        access::check_plan(client, &plan)?;
    }
    Ok(())
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
        touch(client);
        panic_guard::caught(self.extended_query(client, portal, max_rows)).await
    }

    async fn on_execute<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire gathers every row of an Execute without a row limit into memory before
        // sending any; a query on chronosdb's path is streamed to the client instead. An
        // Execute with a row limit (a fetch size) goes the default way, one batch of
        // rows at a time.
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        if message.max_rows == 0
            && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && let Some(Entry::Value(portal)) = client.portal_store().get_portal(name)
            && let Some(plan) = bound_query_plan(&self.sessions, &portal)?
            && matches!(*portal.state().lock().await, PortalExecutionState::Initial)
        {
            touch(client);
            let database = self.sessions.for_client(client)?;
            client.set_state(PgWireConnectionState::QueryInProgress);
            let sent = match panic_guard::caught(execute::stream_plan(
                client,
                &database.context,
                plan,
                &portal.result_column_format,
            ))
            .await
            {
                Ok(response) => send_query_response(client, response, false).await,
                Err(e) => Err(e),
            };
            *portal.state().lock().await = PortalExecutionState::Finished;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return sent;
        }
        self._on_execute(client, message).await
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
                .map_err(api_error)?;
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

impl QueryRouter {
    /// Runs an Execute of a portal (see `ExtendedQueryHandler::do_query`).
    async fn extended_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = parse_copy(&portal.statement.statement.0) {
            let command = command.map_err(api_error)?;
            return copy::start_copy(&self.sessions, client, command).await;
        }
        if let Some(command) = parse_database_command(&portal.statement.statement.0) {
            return self.run_database_command(client, &command).await;
        }
        if let Some(command) = parse_token_command(&portal.statement.statement.0) {
            return run_token_command(&self.auth, client, command?, &portal.result_column_format)
                .await;
        }
        let database = self.sessions.for_client(client)?;
        if let Some(response) = self
            .run_regex_delete(client, &database, &portal.statement.statement.0)
            .await?
        {
            return Ok(response);
        }
        if let Some(plan) = bound_query_plan(&self.sessions, portal)? {
            let response = execute::stream_plan(
                client,
                &database.context,
                plan,
                &portal.result_column_format,
            )
            .await?;
            return Ok(Response::Query(response));
        }
        if let Some(plan) = bound_plan(&self.sessions, portal, |s| {
            matches!(s, SqlStatement::Delete(_))
        })? {
            return execute::run_delete(client, &database.context, &plan).await;
        }
        ExtendedQueryHandler::do_query(&database.service, client, portal, max_rows).await
    }
}

/// Parses with the session of the client's database; describes with any session, since
/// describing only reads the already planned statement.
pub struct RoutingParser {
    sessions: Arc<Sessions>,
}

impl RoutingParser {
    /// Parses and plans `sql` (see `QueryParser::parse_sql`).
    async fn parse<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // COPY is run by the router at Execute (DataFusion's parser knows only its own
        // COPY … TO 'file').
        if parse_copy(sql).is_some()
            || parse_database_command(sql).is_some()
            || parse_token_command(sql).is_some()
            || is_regex_delete(sql)
        {
            return Ok(Some((sql.to_string(), None)));
        }
        let database = self.sessions.for_client(client)?;
        let rewritten = rewrite_show_for(client, sql)?;
        let sql = rewritten.as_deref().unwrap_or(sql);
        let parsed = match cached_statement(&database, client, sql, types).await? {
            Some(cached) => Some(cached),
            None => parse_statement(&database, client, sql, types).await?,
        };
        if !access::is_admin(client) {
            match &parsed {
                Some((_, Some((statement, plan)))) => {
                    if matches!(statement, SqlStatement::Declare { .. }) {
                        access::check(client, access::Needs::READ)?;
                    }
                    access::check_plan(client, plan)?;
                }
                _ => check_statement(&database, client, sql).await?,
            }
        }
        Ok(parsed)
    }
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
        touch(client);
        check_depth(sql)?;
        panic_guard::caught(self.parse(client, sql, types)).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        let reported = self
            .sessions
            .describer()
            .query_parser()
            .get_parameter_types(stmt)?;
        Ok(match stmt {
            (_, Some((SqlStatement::Query(_), plan))) => {
                parameters::wire_types(reported, &parameters::inferred_types(plan)?)
            }
            _ => reported,
        })
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        if let (sql, None) = stmt
            && let Some(Ok(command)) = parse_token_command(sql)
        {
            return token_commands::result_fields(&command, column_format);
        }
        let fields = self
            .sessions
            .describer()
            .query_parser()
            .get_result_schema(stmt, column_format)?;
        Ok(match stmt {
            (_, Some((SqlStatement::Query(_), plan))) => execute::postgres_names(plan, fields),
            _ => fields,
        })
    }
}
