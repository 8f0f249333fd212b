//! The HTTP API: InfluxDB-compatible line-protocol writes (`/write`, `/api/v2/write`,
//! `/api/v3/write_lp`), InfluxDB 2's delete (`/api/v2/delete`), databases (`/api/v3/configure/database`), tokens
//! (`/api/v3/configure/token`), backups (`/api/v3/backup`), `/ping` and `/health`.
//!
//! This layer only speaks HTTP: it reads and inflates bodies within the size limit, maps
//! each API's parameters onto one write call of the storage engine, and turns outcomes into
//! the status codes and JSON bodies InfluxDB clients expect. Everything it refuses gets a
//! JSON body that says why. Every endpoint but `/ping` and `/health` checks the request's
//! token first (see [`auth`]): writes need write permission on the database, database and
//! token management an admin token.

mod auth;
mod backup;
mod body;
mod databases;
mod delete;
mod error;
mod listener;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chronosdb_catalog::auth::Authenticator;
use chronosdb_catalog::tokens::Access;
use chronosdb_storage::{Engine, Precision};
use serde::Deserialize;

use listener::HttpListener;
pub use listener::{ClientAddr, HttpTls};

pub use error::ApiError;

/// The version reported to clients in `/ping` and `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body, after decompression.
    pub max_request_bytes: usize,
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    config: HttpConfig,
}

/// The router of every endpoint (serve it with connect info: the peer address is what
/// failed authentications are counted against).
pub fn router(engine: Arc<Engine>, auth: Arc<Authenticator>, config: HttpConfig) -> Router {
    Router::new()
        .route("/write", post(write_v1))
        .route("/api/v2/write", post(write_v2))
        .route("/api/v3/write_lp", post(write_v3))
        .route(
            "/api/v3/configure/database",
            get(databases::list)
                .post(databases::create)
                .put(databases::update)
                .delete(databases::drop),
        )
        .route(
            "/api/v3/configure/token",
            get(tokens::list)
                .post(tokens::create)
                .delete(tokens::revoke),
        )
        .route("/api/v2/delete", post(delete::delete_v2))
        .route("/api/v3/backup", post(backup::begin).delete(backup::end))
        .route("/api/v3/backup/file", get(backup::file))
        .route("/ping", get(ping).head(ping))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(AppState {
            engine,
            auth,
            config,
        })
}

/// Serves the API on `listener` (over TLS too when `tls` is given) until the future is
/// dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<HttpTls>,
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    config: HttpConfig,
) -> std::io::Result<()> {
    let listener = HttpListener::new(listener, tls)?;
    let app = router(engine, auth, config).into_make_service_with_connect_info::<ClientAddr>();
    axum::serve(listener, app).await
}

/// The address of the request's peer.
type Peer = ConnectInfo<ClientAddr>;

fn peer_ip(peer: &Peer) -> IpAddr {
    peer.0.0.ip()
}

#[derive(Debug, Deserialize)]
struct V1Params {
    db: Option<String>,
    precision: Option<String>,
    /// v1 credentials: the user is ignored, the password is the token.
    #[allow(dead_code)]
    u: Option<String>,
    p: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Params {
    bucket: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V3Params {
    db: Option<String>,
    precision: Option<String>,
    accept_partial: Option<bool>,
}

async fn write_v1(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<V1Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let db = required(params.db, "db")?;
    let ip = peer_ip(&peer);
    auth::authorize(
        &state,
        ip,
        &headers,
        params.p.as_deref(),
        Some(&db),
        Access::Write,
    )
    .await?;
    write(&state, &db, params.precision, true, &headers, body).await
}

async fn write_v2(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<V2Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let db = bucket_database(required(params.bucket, "bucket")?);
    auth::require_write(&state, &peer, &headers, &db).await?;
    write(&state, &db, params.precision, true, &headers, body).await
}

async fn write_v3(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<V3Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let db = required(params.db, "db")?;
    let partial = params.accept_partial.unwrap_or(true);
    auth::require_write(&state, &peer, &headers, &db).await?;
    write(&state, &db, params.precision, partial, &headers, body).await
}

/// The database of a v2 bucket, which may carry a retention policy suffix (`db/rp`).
fn bucket_database(bucket: String) -> String {
    match bucket.split_once('/') {
        Some((db, _)) => db.to_string(),
        None => bucket,
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "missing query parameter \"{name}\""
        ))),
    }
}

async fn write(
    state: &AppState,
    db: &str,
    precision: Option<String>,
    accept_partial: bool,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let precision: Precision = precision.as_deref().unwrap_or("ns").parse().map_err(
        |e: chronosdb_line_protocol::PrecisionError| ApiError::bad_request(e.to_string()),
    )?;
    body::check_content_type(headers)?;
    let bytes = body::read_body(body, headers, state.config.max_request_bytes).await?;
    let outcome = state
        .engine
        .write_lp(db, bytes, precision, accept_partial)
        .await
        .map_err(ApiError::from_storage)?;
    if outcome.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(ApiError::partial_write(
        outcome.lines_written,
        &outcome.rejected,
        accept_partial,
    ))
}

async fn ping() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("X-Influxdb-Version", HeaderValue::from_static(VERSION));
    headers.insert("X-Influxdb-Build", HeaderValue::from_static("chronosdb"));
    headers.insert("X-Chronosdb-Version", HeaderValue::from_static(VERSION));
    response
}

async fn health() -> Response {
    let body = serde_json::json!({
        "name": "chronosdb",
        "message": "ready for queries and writes",
        "status": "pass",
        "checks": [],
        "version": VERSION,
        "commit": "",
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not found",
        "no such endpoint; writes go to /write, /api/v2/write or /api/v3/write_lp, databases are managed at /api/v3/configure/database and tokens at /api/v3/configure/token",
    )
}
