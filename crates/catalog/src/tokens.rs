//! API tokens: random secrets that are shown once and stored only as hashes.
//!
//! A token is `cdb_` followed by 256 random bits (base64url). The store keeps, per token,
//! its SHA-256 (to check a token presented over HTTP or as a cleartext password) and its
//! SCRAM-SHA-256 salted password (PBKDF2, so pgwire clients can authenticate without the
//! token crossing the wire); neither gives the token back. The file is written atomically
//! with mode 0600. An admin token reaches everything; a database token reads, writes, or
//! both, in one database, optionally until an expiry time.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{constant_time, digest, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// What a token may do in its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    Write,
    ReadWrite,
}

impl std::str::FromStr for Permission {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        match s
            .to_ascii_lowercase()
            .replace(['+', ',', '-'], "_")
            .as_str()
        {
            "read" | "r" => Ok(Permission::Read),
            "write" | "w" => Ok(Permission::Write),
            "read_write" | "readwrite" | "rw" | "write_read" | "all" => Ok(Permission::ReadWrite),
            _ => Err(TokenError::Invalid(format!(
                "unknown permission {s:?}: use read, write or read_write"
            ))),
        }
    }
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::ReadWrite => "read_write",
        }
    }
}

/// Where a token reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenScope {
    /// Every database, database and token management.
    Admin,
    Database {
        database: String,
        permission: Permission,
    },
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
}

/// A stored token: what it may do, and hashes of the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Unique; also the user name for pgwire's SCRAM authentication.
    pub name: String,
    pub scope: TokenScope,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the token is refused from then on.
    pub expires_at: Option<i64>,
    /// Hex SHA-256 of the token.
    sha256: String,
    /// SCRAM-SHA-256: base64 salt and salted password (PBKDF2-HMAC-SHA256).
    scram_salt: String,
    scram_salted_password: String,
}

impl TokenRecord {
    /// Whether this token may do `access` in `database` (`None`: no database, such as
    /// token management).
    pub fn allows(&self, database: Option<&str>, access: Access) -> bool {
        match &self.scope {
            TokenScope::Admin => true,
            TokenScope::Database {
                database: own,
                permission,
            } => {
                database == Some(own.as_str())
                    && match access {
                        Access::Read => *permission != Permission::Write,
                        Access::Write => *permission != Permission::Read,
                        Access::Admin => false,
                    }
            }
        }
    }

    /// The identity of every request when authentication is off.
    pub fn anonymous_admin() -> Self {
        Self::without_secret("anonymous", TokenScope::Admin)
    }

    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, scope: TokenScope) -> Self {
        Self::without_secret(name, scope)
    }

    fn without_secret(name: &str, scope: TokenScope) -> Self {
        Self {
            name: name.to_string(),
            scope,
            created_at: 0,
            expires_at: None,
            sha256: String::new(),
            scram_salt: String::new(),
            scram_salted_password: String::new(),
        }
    }

    /// What may be shown about the token: everything but its hashes.
    pub fn describe(&self) -> serde_json::Value {
        let (database, permission) = match &self.scope {
            TokenScope::Admin => (None, "admin"),
            TokenScope::Database {
                database,
                permission,
            } => (Some(database.as_str()), permission.as_str()),
        };
        serde_json::json!({
            "name": self.name,
            "db": database,
            "permission": permission,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        })
    }

    pub fn is_admin(&self) -> bool {
        self.scope == TokenScope::Admin
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// SCRAM-SHA-256 salt and salted password, for pgwire.
    pub fn scram_secret(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((
            STANDARD.decode(&self.scram_salt).ok()?,
            STANDARD.decode(&self.scram_salted_password).ok()?,
        ))
    }
}

/// A token just made: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("a token named \"{0}\" already exists")]
    Exists(String),
    #[error("no token named \"{0}\"")]
    NotFound(String),
    #[error("the token file {path} cannot be used: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("no randomness available for a new token")]
    Random,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no token was given")]
    Missing,
    #[error("the token is not valid (unknown or revoked)")]
    Invalid,
    #[error("the token \"{0}\" has expired")]
    Expired(String),
}

/// The Unix time `lifetime` (`90s`, `30m`, `12h`, `30d`, `4w`) from now.
pub fn expiry_after(lifetime: &str) -> Result<i64, TokenError> {
    let invalid = || {
        TokenError::Invalid(format!(
            "invalid token lifetime {:?}: use e.g. 3600s, 90m, 12h, 30d or 4w",
            lifetime.trim()
        ))
    };
    crate::parse_period_seconds(lifetime)
        .and_then(|s| s.checked_add(now()))
        .ok_or_else(invalid)
}

/// SCRAM iteration count (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;
const TOKEN_PREFIX: &str = "cdb_";

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: BTreeMap<String, TokenRecord>,
}

/// The tokens of a server, kept in one JSON file.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    file: RwLock<TokenFile>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TokenError::Random)?;
    Ok(bytes)
}

fn sha256_hex(token: &str) -> String {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn salted_password(token: &str, salt: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(SCRAM_ITERATIONS).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        token.as_bytes(),
        &mut out,
    );
    out
}

impl TokenStore {
    /// Opens the store at `path`. The first time (no file), creates it with an admin token
    /// and returns that token: the caller shows it once.
    pub fn open(path: &Path) -> Result<(Self, Option<NewToken>), TokenError> {
        let file_error = |reason: String| TokenError::File {
            path: path.to_path_buf(),
            reason,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let file: TokenFile =
                    serde_json::from_slice(&bytes).map_err(|e| file_error(e.to_string()))?;
                let store = Self {
                    path: path.to_path_buf(),
                    file: RwLock::new(file),
                };
                Ok((store, None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let store = Self {
                    path: path.to_path_buf(),
                    file: RwLock::new(TokenFile::default()),
                };
                let admin = store.create("admin", TokenScope::Admin, None)?;
                Ok((store, Some(admin)))
            }
            Err(e) => Err(file_error(e.to_string())),
        }
    }

    /// Makes a token; `name` must be new. The secret is in the answer and nowhere else.
    pub fn create(
        &self,
        name: &str,
        scope: TokenScope,
        expires_at: Option<i64>,
    ) -> Result<NewToken, TokenError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(TokenError::Invalid(format!(
                "invalid token name {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
                name.chars().take(64).collect::<String>()
            )));
        }
        if let TokenScope::Database { database, .. } = &scope {
            crate::validate_name(database).map_err(|e| TokenError::Invalid(e.to_string()))?;
        }
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let salt = random_bytes::<16>()?;
        let record = TokenRecord {
            name: name.to_string(),
            scope,
            created_at: now(),
            expires_at,
            sha256: sha256_hex(&token),
            scram_salt: STANDARD.encode(salt),
            scram_salted_password: STANDARD.encode(salted_password(&token, &salt)),
        };
        let mut file = self.file.write();
        if file.tokens.contains_key(name) {
            return Err(TokenError::Exists(name.to_string()));
        }
        file.tokens.insert(name.to_string(), record.clone());
        if let Err(e) = self.save(&file) {
            file.tokens.remove(name);
            return Err(e);
        }
        Ok(NewToken { record, token })
    }

    /// Every token, by name (no secrets: only hashes are stored).
    pub fn list(&self) -> Vec<TokenRecord> {
        self.file.read().tokens.values().cloned().collect()
    }

    /// Revokes a token: it is refused from now on.
    pub fn revoke(&self, name: &str) -> Result<TokenRecord, TokenError> {
        let mut file = self.file.write();
        let record = file
            .tokens
            .remove(name)
            .ok_or_else(|| TokenError::NotFound(name.to_string()))?;
        let at = now();
        if record.is_admin()
            && !file
                .tokens
                .values()
                .any(|t| t.is_admin() && !t.is_expired(at))
        {
            file.tokens.insert(name.to_string(), record);
            return Err(TokenError::Invalid(format!(
                "\"{name}\" is the last admin token: create another admin token before revoking it"
            )));
        }
        if let Err(e) = self.save(&file) {
            file.tokens.insert(name.to_string(), record);
            return Err(e);
        }
        Ok(record)
    }

    /// Revokes every token of a dropped database; returns their names.
    pub fn revoke_database(&self, database: &str) -> Result<Vec<String>, TokenError> {
        let mut file = self.file.write();
        let names: Vec<String> = file
            .tokens
            .values()
            .filter(
                |t| matches!(&t.scope, TokenScope::Database { database: d, .. } if d == database),
            )
            .map(|t| t.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(names);
        }
        let removed: Vec<TokenRecord> =
            names.iter().filter_map(|n| file.tokens.remove(n)).collect();
        if let Err(e) = self.save(&file) {
            for record in removed {
                file.tokens.insert(record.name.clone(), record);
            }
            return Err(e);
        }
        Ok(names)
    }

    /// The token whose secret is `token`, if it is valid now.
    pub fn authenticate(&self, token: &str) -> Result<TokenRecord, AuthFailure> {
        if token.is_empty() {
            return Err(AuthFailure::Missing);
        }
        let hash = sha256_hex(token);
        let file = self.file.read();
        let record = file
            .tokens
            .values()
            .find(|t| {
                constant_time::verify_slices_are_equal(t.sha256.as_bytes(), hash.as_bytes()).is_ok()
            })
            .ok_or(AuthFailure::Invalid)?;
        if record.is_expired(now()) {
            return Err(AuthFailure::Expired(record.name.clone()));
        }
        Ok(record.clone())
    }

    /// The token named `name`, if it exists and has not expired (pgwire's SCRAM looks
    /// tokens up by user name).
    pub fn by_name(&self, name: &str) -> Option<TokenRecord> {
        self.file
            .read()
            .tokens
            .get(name)
            .filter(|t| !t.is_expired(now()))
            .cloned()
    }

    /// Writes the file atomically (a temporary file, fsynced, renamed), readable by the
    /// server's user only.
    /// The token file as it is saved (names, scopes, hashes and SCRAM secrets; never a
    /// token itself): what a backup keeps so that clients' tokens work after a restore.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings, integers and maps: serializing cannot fail.
        serde_json::to_vec_pretty(&*self.file.read()).unwrap_or_default()
    }

    fn save(&self, file: &TokenFile) -> Result<(), TokenError> {
        use std::io::Write as _;
        let file_error = |e: std::io::Error| TokenError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| TokenError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(file_error)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut out = options.open(&tmp).map_err(file_error)?;
        out.write_all(&bytes).map_err(file_error)?;
        out.sync_all().map_err(file_error)?;
        std::fs::rename(&tmp, &self.path).map_err(file_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_checked() {
        let dir = std::env::temp_dir().join(format!("chronosdb-tokens-{}", now()));
        let path = dir.join(format!(
            "tokens-{:x}.json",
            random_bytes::<8>().map(u64::from_le_bytes).unwrap_or(0)
        ));
        let (store, admin) = TokenStore::open(&path).expect("open");
        let admin = admin.expect("first start makes an admin token");
        assert!(admin.token.starts_with("cdb_") && admin.token.len() >= 4 + 43);
        let reader = store
            .create(
                "reader",
                TokenScope::Database {
                    database: "a".into(),
                    permission: Permission::Read,
                },
                None,
            )
            .expect("create");
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(!text.contains(&admin.token) && !text.contains(&reader.token));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Reopened: the admin token is not made again, the tokens still work.
        let (store, again) = TokenStore::open(&path).expect("reopen");
        assert!(again.is_none());
        let found = store.authenticate(&reader.token).expect("valid");
        assert!(found.allows(Some("a"), Access::Read));
        assert!(!found.allows(Some("a"), Access::Write));
        assert!(!found.allows(Some("b"), Access::Read));
        assert!(!found.allows(None, Access::Admin));
        assert!(store.authenticate(&admin.token).expect("admin").is_admin());
        assert_eq!(store.authenticate("cdb_nope"), Err(AuthFailure::Invalid));
        store.revoke("reader").expect("revoke");
        assert!(matches!(store.revoke("admin"), Err(TokenError::Invalid(_))));
        assert_eq!(store.authenticate(&reader.token), Err(AuthFailure::Invalid));
        let expired = store
            .create("old", TokenScope::Admin, Some(now() - 1))
            .expect("create");
        assert!(matches!(
            store.authenticate(&expired.token),
            Err(AuthFailure::Expired(_))
        ));
        assert!(matches!(
            store.create("old", TokenScope::Admin, None),
            Err(TokenError::Exists(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scram_secret_matches_pbkdf2_of_the_token() {
        let salt = [7u8; 16];
        let a = salted_password("cdb_x", &salt);
        assert_eq!(a, salted_password("cdb_x", &salt));
        assert_ne!(a, salted_password("cdb_y", &salt));
    }
}
