//! `/api/v3/backup`: what `chronosdb backup` talks to. `POST` starts a backup (the buffer is
//! persisted, the catalog snapshotted and its files pinned under a lease) and answers the
//! catalog, the token file and the list of files; `GET /api/v3/backup/file?lease=&path=`
//! streams one of those files; `DELETE ?lease=` ends the lease. All need an admin token.
//! The client decides what to copy (only files its destination lacks: incremental, and
//! resumable after an interruption).

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;

use crate::databases::json;
use crate::{ApiError, AppState, Peer, auth, required};

#[derive(Debug, Deserialize)]
pub(crate) struct LeaseParams {
    lease: Option<String>,
    path: Option<String>,
}

/// `POST`: starts a backup.
pub(crate) async fn begin(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let snapshot = state
        .engine
        .begin_backup()
        .await
        .map_err(ApiError::from_storage)?;
    let catalog: serde_json::Value = serde_json::from_slice(&snapshot.catalog_json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let tokens = match state.auth.tokens() {
        Some(store) => serde_json::from_slice(&store.to_json()).unwrap_or(serde_json::Value::Null),
        None => serde_json::Value::Null,
    };
    let files: Vec<_> = snapshot
        .files
        .iter()
        .map(|(path, size)| serde_json::json!({ "path": path, "size": size }))
        .collect();
    Ok(json(
        StatusCode::OK,
        serde_json::json!({
            "lease": snapshot.lease,
            "catalog": catalog,
            "tokens": tokens,
            "files": files,
        }),
    ))
}

/// `GET ?lease=&path=`: the bytes of one file of the backup's snapshot.
pub(crate) async fn file(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<LeaseParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let lease = lease_number(params.lease)?;
    let path = required(params.path, "path")?;
    if !state.engine.backup_pins(lease, &path) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!(
                "backup {lease} has no file {path:?}: the backup ended (or was idle for 10 minutes); start it again"
            ),
        ));
    }
    let object = state
        .engine
        .object_store()
        .get(&ObjectPath::from(path.as_str()))
        .await
        .map_err(|e| ApiError::from_storage(e.into()))?;
    let size = object.meta.size;
    let stream = object.into_stream().map_err(std::io::Error::other);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `DELETE ?lease=`: ends the backup; files only it kept are deleted.
pub(crate) async fn end(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<LeaseParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, &peer, &headers).await?;
    let lease = lease_number(params.lease)?;
    let existed = state.engine.end_backup(lease).await;
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "lease": lease, "ended": existed }),
    ))
}

fn lease_number(lease: Option<String>) -> Result<u64, ApiError> {
    let lease = required(lease, "lease")?;
    lease
        .parse()
        .map_err(|_| ApiError::bad_request(format!("lease {lease:?} is not a backup's number")))
}
