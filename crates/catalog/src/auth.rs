//! Who may do what: the one place HTTP and pgwire check a presented token.
//!
//! [`Authenticator`] turns a token (or its absence) into a [`TokenRecord`] and checks that
//! record against what a request needs. With authentication off (`--without-auth`) every
//! request acts as an anonymous admin. Failed attempts are counted per peer address: a
//! peer that keeps presenting bad tokens has its failures answered one at a time, a second
//! apart, so guessing is slowed to a crawl while valid tokens, even from that peer, are
//! answered at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::tokens::{Access, AuthFailure, TokenRecord, TokenScope, TokenStore};

/// Failures a peer may make before it is slowed down.
const FREE_FAILURES: f64 = 10.0;
/// Failures a peer is forgiven per second.
const FORGIVEN_PER_SECOND: f64 = 0.5;
/// How long each failure of a slowed peer takes; they are answered one after another.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);
/// Peers remembered before forgiven ones are forgotten.
const MAX_TRACKED_PEERS: usize = 10_000;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or a bad one: HTTP 401, SQLSTATE 28P01.
    #[error(transparent)]
    Unauthenticated(#[from] AuthFailure),
    /// A valid token without the permission: HTTP 403, SQLSTATE 42501.
    #[error("{0}")]
    Forbidden(String),
}

#[derive(Debug)]
struct PeerFailures {
    budget: f64,
    updated: Instant,
    /// Slowed failures queue here, so parallel guesses do not go faster.
    line: Arc<tokio::sync::Mutex<()>>,
}

/// Checks tokens for every protocol.
#[derive(Debug)]
pub struct Authenticator {
    tokens: Option<TokenStore>,
    peers: Mutex<HashMap<IpAddr, PeerFailures>>,
}

impl Authenticator {
    /// Authentication off: every request is allowed (local development).
    pub fn disabled() -> Self {
        Self {
            tokens: None,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Authentication with the tokens of `store`.
    pub fn new(store: TokenStore) -> Self {
        Self {
            tokens: Some(store),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether tokens are checked.
    pub fn is_enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// The token store (`None` with authentication off).
    pub fn tokens(&self) -> Option<&TokenStore> {
        self.tokens.as_ref()
    }

    /// The record of `token`, presented by `peer`. A failure of a peer that has failed
    /// too often is answered only after its turn in the peer's penalty line.
    pub async fn authenticate(
        &self,
        peer: IpAddr,
        token: Option<&str>,
    ) -> Result<TokenRecord, AuthFailure> {
        let Some(store) = &self.tokens else {
            return Ok(TokenRecord::anonymous_admin());
        };
        let result = match token {
            None => Err(AuthFailure::Missing),
            Some(token) => store.authenticate(token),
        };
        if result.is_err() {
            self.penalize(peer).await;
        }
        result
    }

    /// The record of the token named `name` (pgwire's SCRAM looks tokens up by user name
    /// and checks the proof itself). `None` if there is none, it expired, or auth is off.
    pub fn by_name(&self, name: &str) -> Option<TokenRecord> {
        self.tokens.as_ref()?.by_name(name)
    }

    /// Counts a failed attempt of `peer` and, once it has failed too often, waits for its
    /// turn in the peer's line plus [`FAILURE_PENALTY`].
    pub async fn penalize(&self, peer: IpAddr) {
        let line = {
            let mut peers = self.peers.lock();
            if peers.len() >= MAX_TRACKED_PEERS {
                let now = Instant::now();
                peers.retain(|_, p| refreshed_budget(p, now) < FREE_FAILURES);
            }
            let now = Instant::now();
            let entry = peers.entry(peer).or_insert_with(|| PeerFailures {
                budget: FREE_FAILURES,
                updated: now,
                line: Arc::new(tokio::sync::Mutex::new(())),
            });
            entry.budget = refreshed_budget(entry, now);
            entry.updated = now;
            if entry.budget >= 1.0 {
                entry.budget -= 1.0;
                None
            } else {
                Some(entry.line.clone())
            }
        };
        if let Some(line) = line {
            let _turn = line.lock().await;
            tokio::time::sleep(FAILURE_PENALTY).await;
        }
    }

    /// Whether `record` may do `access` in `database` (`None`: server-wide, such as
    /// managing tokens); the error says what is missing.
    pub fn authorize(
        record: &TokenRecord,
        database: Option<&str>,
        access: Access,
    ) -> Result<(), AuthError> {
        if record.allows(database, access) {
            return Ok(());
        }
        let what = match access {
            Access::Read => "read from",
            Access::Write => "write to",
            Access::Admin => "administer",
        };
        let target = match database {
            Some(db) if access != Access::Admin => format!("database \"{db}\""),
            _ => "the server (databases and tokens need an admin token)".to_string(),
        };
        let granted = match &record.scope {
            TokenScope::Admin => "admin".to_string(),
            TokenScope::Database {
                database,
                permission,
            } => format!("{} on database \"{database}\"", permission.as_str()),
        };
        Err(AuthError::Forbidden(format!(
            "the token \"{}\" may not {what} {target}; it grants {granted}",
            record.name
        )))
    }
}

fn refreshed_budget(peer: &PeerFailures, now: Instant) -> f64 {
    let forgiven = now.duration_since(peer.updated).as_secs_f64() * FORGIVEN_PER_SECOND;
    (peer.budget + forgiven).min(FREE_FAILURES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Permission;

    #[tokio::test]
    async fn bad_tokens_are_slowed_valid_ones_are_not() {
        let dir =
            std::env::temp_dir().join(format!("chronosdb-auth-{}-{}", std::process::id(), line!()));
        let (store, admin) = TokenStore::open(&dir.join("tokens.json")).expect("open");
        let admin = admin.expect("admin token");
        let auth = Authenticator::new(store);
        let peer: IpAddr = [10, 0, 0, 1].into();
        let start = tokio::time::Instant::now();
        for _ in 0..FREE_FAILURES as usize {
            assert_eq!(
                auth.authenticate(peer, Some("cdb_bad")).await,
                Err(AuthFailure::Invalid)
            );
        }
        assert!(start.elapsed() < FAILURE_PENALTY);
        // Over the budget: each failure takes the penalty, the admin token does not.
        let slowed = tokio::time::Instant::now();
        assert!(auth.authenticate(peer, Some("cdb_bad")).await.is_err());
        assert!(slowed.elapsed() >= FAILURE_PENALTY);
        let valid = tokio::time::Instant::now();
        assert!(auth.authenticate(peer, Some(&admin.token)).await.is_ok());
        assert!(valid.elapsed() < FAILURE_PENALTY);
        // Another peer is not slowed.
        let other = tokio::time::Instant::now();
        assert!(auth.authenticate([10, 0, 0, 2].into(), None).await.is_err());
        assert!(other.elapsed() < FAILURE_PENALTY);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn forbidden_says_what_the_token_grants() {
        let auth = Authenticator::disabled();
        let anonymous = futures_lite_block_on(auth.authenticate([127, 0, 0, 1].into(), None));
        assert!(anonymous.expect("auth off").is_admin());
        let record = TokenRecord::for_tests(
            "reader",
            TokenScope::Database {
                database: "a".into(),
                permission: Permission::Read,
            },
        );
        let Err(AuthError::Forbidden(message)) =
            Authenticator::authorize(&record, Some("a"), Access::Write)
        else {
            panic!("a read token cannot write");
        };
        assert!(
            message.contains("may not write to database \"a\""),
            "{message}"
        );
        assert!(Authenticator::authorize(&record, Some("a"), Access::Read).is_ok());
    }

    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
