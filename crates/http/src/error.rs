//! The HTTP API's error type and its JSON body.
//!
//! Bodies carry InfluxDB's `code` and `message` keys, which its client libraries surface
//! to users, and, for refused lines, the line numbers and reasons.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chronosdb_catalog::CatalogError;
use chronosdb_catalog::auth::AuthError;
use chronosdb_catalog::tokens::TokenError;
use chronosdb_storage::{LineError, StorageError};

/// An error answer: a status and a JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: serde_json::json!({ "code": code, "message": message.into() }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            message,
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
            format!(
                "the request body is larger than the limit of {limit} bytes (after decompression); split it into smaller writes or raise --max-request-size"
            ),
        )
    }

    /// Some lines were refused; `written` lines were kept (0 when nothing was written).
    pub fn partial_write(written: usize, rejected: &[LineError], partial_allowed: bool) -> Self {
        let errors: Vec<_> = rejected
            .iter()
            .map(|e| serde_json::json!({ "line": e.line, "message": e.message }))
            .collect();
        let summary = if partial_allowed {
            format!(
                "partial write: {} line(s) refused, {written} written; first error: {}",
                rejected.len(),
                rejected.first().map(|e| e.to_string()).unwrap_or_default()
            )
        } else {
            format!(
                "nothing written: {} line(s) refused and accept_partial=false; first error: {}",
                rejected.len(),
                rejected.first().map(|e| e.to_string()).unwrap_or_default()
            )
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::json!({
                "code": "invalid",
                "message": summary,
                "lines_written": written,
                "errors": errors,
            }),
        }
    }

    /// 401 for a missing or bad token, 403 for a valid one without the permission.
    pub fn from_auth(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(failure) => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "{failure}: send a token as 'Authorization: Token <token>' (or Bearer, or Basic with the token as password, or v1's p= parameter)"
                ),
            ),
            AuthError::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
        }
    }

    pub fn from_tokens(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(_) => Self::bad_request(e.to_string()),
            TokenError::Exists(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            TokenError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not found", e.to_string()),
            TokenError::File { .. } | TokenError::Random => {
                tracing::error!(error = %e, "token store failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    e.to_string(),
                )
            }
        }
    }

    pub fn from_storage(e: StorageError) -> Self {
        match e {
            StorageError::Catalog(e @ CatalogError::DatabaseNotFound(_)) => {
                Self::new(StatusCode::NOT_FOUND, "not found", e.to_string())
            }
            StorageError::Catalog(e @ CatalogError::DatabaseExists(_)) => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StorageError::Catalog(e) => Self::bad_request(e.to_string()),
            other => {
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    format!("the request failed: {other}"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body.to_string(),
        )
            .into_response()
    }
}
