//! Finding the token of an HTTP request and checking it.
//!
//! Clients send tokens the ways InfluxDB accepts them: `Authorization: Token …` (v2),
//! `Authorization: Bearer …` (v3), `Authorization: Basic …` with the token as password,
//! or v1's `u`/`p` query parameters (the token in `p`). The first one present is used.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chronosdb_catalog::auth::{AuthError, Authenticator};
use chronosdb_catalog::tokens::{Access, TokenRecord};

use crate::{ApiError, AppState, Peer, peer_ip};

/// The token a request presents, if any.
pub(crate) fn presented_token(headers: &HeaderMap, password_param: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        return match scheme.to_ascii_lowercase().as_str() {
            "token" | "bearer" => Some(rest.to_string()),
            "basic" => STANDARD
                .decode(rest)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(|pair| {
                    pair.split_once(':')
                        .map(|(_, p)| p.to_string())
                        .unwrap_or(pair)
                }),
            // An unknown scheme is a bad token, not a missing one.
            _ => Some(value.to_string()),
        }
        .filter(|t| !t.is_empty());
    }
    password_param.filter(|p| !p.is_empty()).map(str::to_string)
}

/// Checks that the request may do `access` in `database` (`None`: server-wide).
pub(crate) async fn authorize(
    state: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
    password_param: Option<&str>,
    database: Option<&str>,
    access: Access,
) -> Result<TokenRecord, ApiError> {
    let token = presented_token(headers, password_param);
    let record = state
        .auth
        .authenticate(peer, token.as_deref())
        .await
        .map_err(|e| ApiError::from_auth(AuthError::Unauthenticated(e)))?;
    Authenticator::authorize(&record, database, access).map_err(ApiError::from_auth)?;
    Ok(record)
}

/// Checks that the request may write to `database` (writes and deletes over v2/v3; v1
/// also accepts the token in `p` and calls [`authorize`] itself).
pub(crate) async fn require_write(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    database: &str,
) -> Result<TokenRecord, ApiError> {
    authorize(
        state,
        peer_ip(peer),
        headers,
        None,
        Some(database),
        Access::Write,
    )
    .await
}

/// Checks that the request carries an admin token (database and token management).
pub(crate) async fn require_admin(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<TokenRecord, ApiError> {
    authorize(state, peer_ip(peer), headers, None, None, Access::Admin).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn every_client_style_is_understood() {
        assert_eq!(
            presented_token(&with("Token abc"), None).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_token(&with("Bearer abc"), None).as_deref(),
            Some("abc")
        );
        let basic = format!("Basic {}", STANDARD.encode("user:abc"));
        assert_eq!(presented_token(&with(&basic), None).as_deref(), Some("abc"));
        assert_eq!(
            presented_token(&HeaderMap::new(), Some("abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(presented_token(&HeaderMap::new(), None), None);
        assert_eq!(presented_token(&with("Token "), None), None);
        assert_eq!(
            presented_token(&with("Weird abc"), None).as_deref(),
            Some("Weird abc")
        );
    }
}
