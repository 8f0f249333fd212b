//! Reading request bodies within the size limit, and inflating gzip ones.
//!
//! The limit applies to the decompressed size and is checked while inflating, so a small
//! gzip bomb is refused after reading at most `limit` bytes of its output.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures::StreamExt;

use crate::error::ApiError;

/// Refuses content types that cannot be line protocol (JSON, forms with files).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or("").to_ascii_lowercase();
    if value.starts_with("application/json") || value.starts_with("multipart/") {
        return Err(ApiError::unsupported_media_type(format!(
            "content type {value:?} is not line protocol; send text/plain"
        )));
    }
    Ok(())
}

/// Reads the whole body, inflating it if `Content-Encoding: gzip`, refusing it with 413
/// once it exceeds `limit` bytes.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    let expected = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if expected > limit {
        return Err(ApiError::too_large(limit));
    }
    let raw = read_limited(body, limit, expected).await?;
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => inflate(&raw, limit),
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "content encoding {other:?} is not supported; use gzip or none"
        ))),
    }
}

async fn read_limited(body: Body, limit: usize, expected: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::with_capacity(expected);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

fn inflate(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(Bytes::from(out))
}
