//! `/api/v3/configure/token`: list (GET), create (POST) and revoke (DELETE `?name=`) API
//! tokens. Every call needs an admin token. A created token's secret is in the answer to
//! the POST and nowhere else: the server keeps only its hashes.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chronosdb_catalog::tokens::{Permission, TokenScope, TokenStore, expiry_after};
use serde::Deserialize;

use crate::databases::json;
use crate::{ApiError, AppState, Peer, auth, required};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenParams {
    name: Option<String>,
}

/// `{"name": "grafana", "db": "metrics", "permission": "read", "expires_in": "30d"}`; no
/// `db` and `"permission": "admin"` makes an admin token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    db: Option<String>,
    permission: String,
    /// Lifetime from now (`12h`, `30d`, …).
    expires_in: Option<String>,
    /// Unix seconds.
    expires_at: Option<i64>,
}

fn store(state: &AppState) -> Result<&TokenStore, ApiError> {
    state.auth.tokens().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "auth disabled",
            "the server runs with --without-auth: there are no tokens to manage",
        )
    })
}

/// `GET`: every token, without secrets.
pub(crate) async fn list(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let tokens: Vec<_> = store(&state)?.list().iter().map(|t| t.describe()).collect();
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "tokens": tokens }),
    ))
}

/// `POST`: 201 with the new token's secret (shown this once), 409 if the name is taken.
pub(crate) async fn create(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let request: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"name\": \"grafana\", \"db\": \"metrics\", \"permission\": \"read\", \"expires_in\": \"30d\"}}: {e}"
        ))
    })?;
    let scope = match (request.db, request.permission.as_str()) {
        (None, "admin") => TokenScope::Admin,
        (Some(_), "admin") => {
            return Err(ApiError::bad_request(
                "an admin token reaches every database: leave out \"db\"",
            ));
        }
        (None, _) => {
            return Err(ApiError::bad_request(
                "say which database the token is for (\"db\"), or make an admin token with \"permission\": \"admin\"",
            ));
        }
        (Some(database), permission) => TokenScope::Database {
            database,
            permission: permission
                .parse::<Permission>()
                .map_err(ApiError::from_tokens)?,
        },
    };
    let expires_at = match (request.expires_in, request.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give \"expires_in\" or \"expires_at\", not both",
            ));
        }
        (Some(lifetime), None) => Some(expiry_after(&lifetime).map_err(ApiError::from_tokens)?),
        (None, at) => at,
    };
    let made = store(&state)?
        .create(&request.name, scope, expires_at)
        .map_err(ApiError::from_tokens)?;
    let mut body = made.record.describe();
    body["token"] = serde_json::Value::String(made.token);
    Ok(json(StatusCode::CREATED, body))
}

/// `DELETE ?name=`: the token is refused from now on; 404 if there is none.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(params): Query<TokenParams>,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let name = required(params.name, "name")?;
    let record = store(&state)?
        .revoke(&name)
        .map_err(ApiError::from_tokens)?;
    Ok(json(StatusCode::OK, record.describe()))
}
