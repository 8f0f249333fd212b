//! `/api/v3/configure/database`: list (GET), create (POST `{"db": "name",
//! "retention_period": "30d"}`), change the retention period (PUT `{"db": "name",
//! "retention_period": "7d" | null}`) and drop (DELETE `?db=name`) databases, on the paths
//! InfluxDB 3 uses for the same. Each needs an admin token; dropping a database also
//! revokes its tokens.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chronosdb_catalog::{format_retention, parse_retention, validate_name};
use serde::Deserialize;

use crate::{ApiError, AppState, Peer, auth, required};

#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseParams {
    db: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DatabaseBody {
    db: String,
    /// `30d`, `12h`, `4w`…; absent, `null` or `"none"` for no retention.
    #[serde(default)]
    retention_period: Option<String>,
}

impl DatabaseBody {
    fn parse(body: &[u8]) -> Result<(Self, Option<i64>), ApiError> {
        let request: DatabaseBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be JSON like {{\"db\": \"name\", \"retention_period\": \"30d\"}}: {e}"
            ))
        })?;
        validate_name(&request.db).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let retention = match &request.retention_period {
            Some(period) => {
                parse_retention(period).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            None => None,
        };
        Ok((request, retention))
    }
}

pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET`: every database with its number of tables.
pub(crate) async fn list(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let catalog = state.engine.catalog().snapshot();
    let databases: Vec<_> = catalog
        .databases
        .iter()
        .map(|(name, def)| {
            serde_json::json!({
                "name": name,
                "tables": def.tables.len(),
                "retention_period": def.retention_nanos.map(format_retention),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "databases": databases }),
    ))
}

/// The answer to a create or update: the database and its retention period.
fn database_answer(status: StatusCode, db: &str, retention: Option<i64>) -> Response {
    json(
        status,
        serde_json::json!({ "db": db, "retention_period": retention.map(format_retention) }),
    )
}

/// `POST {"db": "name", "retention_period": "30d"}`: 201, or 409 if it exists.
pub(crate) async fn create(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let (request, retention) = DatabaseBody::parse(&body)?;
    state
        .engine
        .create_database(&request.db, retention)
        .await
        .map_err(ApiError::from_storage)?;
    Ok(database_answer(StatusCode::CREATED, &request.db, retention))
}

/// `PUT {"db": "name", "retention_period": "7d"}` (or `null`/`"none"`): sets the retention
/// period; 404 if the database does not exist.
pub(crate) async fn update(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let (request, retention) = DatabaseBody::parse(&body)?;
    state
        .engine
        .set_retention(&request.db, retention)
        .await
        .map_err(ApiError::from_storage)?;
    Ok(database_answer(StatusCode::OK, &request.db, retention))
}

/// `DELETE ?db=name`: drops the database and deletes its files; 404 if it does not exist.
pub(crate) async fn drop(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(params): Query<DatabaseParams>,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let db = required(params.db, "db")?;
    let files_deleted = state
        .engine
        .drop_database(&db)
        .await
        .map_err(ApiError::from_storage)?;
    let tokens_revoked = match state.auth.tokens() {
        Some(tokens) => tokens.revoke_database(&db).map_err(ApiError::from_tokens)?,
        None => Vec::new(),
    };
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "db": db,
            "files_deleted": files_deleted,
            "tokens_revoked": tokens_revoked,
        }),
    ))
}
