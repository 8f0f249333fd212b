//! `POST /api/v2/delete?bucket=<db>`: InfluxDB 2's delete, for the clients and scripts that
//! use it. The body is `{"start": RFC 3339, "stop": RFC 3339, "predicate": "..."}`; the
//! predicate is InfluxDB's: `tag="value"` terms joined by `AND`, with `_measurement="cpu"`
//! choosing the table (all tables of the database without it). The points go the same
//! way as with SQL's `DELETE`: files rewritten without them, disk space given back.

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chronosdb_catalog::ColumnKind;
use chronosdb_storage::buffer::matching_tags;
use chronosdb_storage::{RowMatcher, parse_timestamp_nanos};
use regex::Regex;
use serde::Deserialize;

use crate::{ApiError, AppState, Peer, auth, bucket_database, required};

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteParams {
    bucket: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeleteBody {
    start: String,
    stop: String,
    #[serde(default)]
    predicate: String,
}

/// One `key="value"` term.
static TERM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*([A-Za-z0-9_.\-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$"#).expect("regex")
});
static AND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\s+and\s+").expect("regex"));

/// A parsed predicate: the `_measurement` if given, and the tag equalities.
type Predicate = (Option<String>, Vec<(String, String)>);

/// The `_measurement` and the tag equalities of a predicate.
fn parse_predicate(predicate: &str) -> Result<Predicate, ApiError> {
    let mut measurement = None;
    let mut tags = Vec::new();
    if predicate.trim().is_empty() {
        return Ok((None, tags));
    }
    for term in AND.split(predicate.trim()) {
        let captures = TERM.captures(term).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid delete predicate term {term:?}: use key=\"value\" terms joined by AND"
            ))
        })?;
        let value = captures[2].replace("\\\"", "\"").replace("\\\\", "\\");
        match &captures[1] {
            "_measurement" => measurement = Some(value),
            key => tags.push((key.to_string(), value)),
        }
    }
    Ok((measurement, tags))
}

pub(crate) async fn delete_v2(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<DeleteParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let db = bucket_database(required(params.bucket, "bucket")?);
    auth::require_write(&state, &peer, &headers, &db).await?;
    let request: DeleteBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"start\": \"2024-01-01T00:00:00Z\", \"stop\": \"2024-02-01T00:00:00Z\", \"predicate\": \"_measurement=\\\"cpu\\\" AND host=\\\"a\\\"\"}}: {e}"
        ))
    })?;
    let time = |what: &str, text: &str| {
        parse_timestamp_nanos(text).ok_or_else(|| {
            ApiError::bad_request(format!("invalid {what} time {text:?}: use RFC 3339"))
        })
    };
    let (start, stop) = (time("start", &request.start)?, time("stop", &request.stop)?);
    if stop < start {
        return Err(ApiError::bad_request("stop is before start"));
    }
    let (measurement, tags) = parse_predicate(&request.predicate)?;
    let catalog = state.engine.catalog().snapshot();
    let Some(database) = catalog.database(&db) else {
        return Err(ApiError::from_storage(
            chronosdb_catalog::CatalogError::DatabaseNotFound(db).into(),
        ));
    };
    let mut deleted = 0;
    for (table, def) in &database.tables {
        if measurement.as_ref().is_some_and(|m| m != table) {
            continue;
        }
        // A table without one of the tags holds no point the predicate selects.
        let mut applies = true;
        for (key, _) in &tags {
            match def.schema.columns().iter().find(|c| &c.name == key) {
                Some(column) if column.kind == ColumnKind::Tag => {}
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "{key} is a field of {table}: delete predicates compare tags only"
                    )));
                }
                None => applies = false,
            }
        }
        if !applies {
            continue;
        }
        let wanted = tags.clone();
        let matcher: RowMatcher =
            Arc::new(move |batch| matching_tags(batch, (start, stop), &wanted));
        deleted += state
            .engine
            .delete_rows(&db, table, (start, stop), matcher)
            .await
            .map_err(ApiError::from_storage)?
            .rows_deleted;
    }
    tracing::info!(db, deleted, "deleted points over HTTP");
    Ok(StatusCode::NO_CONTENT.into_response())
}
