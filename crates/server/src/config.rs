//! Command-line and environment configuration of `chronosdb serve`.
//!
//! Every flag can also be set with a `CHRONOSDB_*` environment variable; flags win.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Options of `chronosdb serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory for the WAL and, by default, the Parquet files and catalog.
    #[arg(long, env = "CHRONOSDB_DATA_DIR", default_value = "./chronosdb-data")]
    pub data_dir: PathBuf,

    /// Where Parquet files and the catalog are stored: a local directory under the data
    /// directory when unset; `file:///path`, `memory://` (lost at exit; for tests), or
    /// `s3://bucket[/prefix]` with endpoint and credentials from the standard AWS_*
    /// variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint such as MinIO on loopback).
    #[arg(long, env = "CHRONOSDB_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// Address of the HTTP API (line-protocol writes, /ping, /health).
    #[arg(long, env = "CHRONOSDB_HTTP_BIND", default_value = "127.0.0.1:8086")]
    pub http_bind: SocketAddr,

    /// Address of the PostgreSQL wire protocol listener.
    #[arg(long, env = "CHRONOSDB_PG_BIND", default_value = "127.0.0.1:5433")]
    pub pg_bind: SocketAddr,

    /// Close pgwire connections that send nothing and have no result open for this long
    /// (e.g. `30m`; `0` keeps them open, as PostgreSQL's default does).
    #[arg(long, env = "CHRONOSDB_PG_IDLE_TIMEOUT", default_value = "0", value_parser = parse_duration)]
    pub pg_idle_timeout: Duration,

    /// Memory all running queries together may use for sorts, joins and aggregations
    /// (e.g. `4GiB`). A query that needs more spills to disk where it can, or fails with
    /// "Resources exhausted"; other sessions keep working.
    #[arg(long, env = "CHRONOSDB_QUERY_MEMORY", default_value = "2GiB", value_parser = parse_size)]
    pub query_memory: usize,

    /// Extra time the WAL waits to gather concurrent writes into one fsync
    /// (e.g. `0ms`, `2ms`). Writes are acknowledged only after their fsync either way.
    #[arg(long, env = "CHRONOSDB_WAL_FLUSH_INTERVAL", default_value = "0ms", value_parser = parse_duration)]
    pub wal_flush_interval: Duration,

    /// Persist the write buffer to Parquet once it holds this much data (e.g. `256MiB`).
    #[arg(long, env = "CHRONOSDB_BUFFER_SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub buffer_size: usize,

    /// Persist buffered data at the latest this long after it was written (e.g. `5m`).
    #[arg(long, env = "CHRONOSDB_PERSIST_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub persist_interval: Duration,

    /// Persist the write buffer once no write has come for this long, if it holds at
    /// least an eighth of `--buffer-size` (e.g. `10s`; `0` waits for the size or the
    /// interval): the last rows of a bulk load leave memory soon after it ends.
    #[arg(long, env = "CHRONOSDB_PERSIST_WHEN_IDLE", default_value = "10s", value_parser = parse_duration)]
    pub persist_when_idle: Duration,

    /// How often files older than their database's retention period are deleted
    /// (e.g. `1m`); queries never see such points, whenever the files go.
    #[arg(long, env = "CHRONOSDB_RETENTION_CHECK_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub retention_check_interval: Duration,

    /// How often partitions are checked for small Parquet files to merge (e.g. `1m`;
    /// `0` turns compaction off).
    #[arg(long, env = "CHRONOSDB_COMPACTION_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub compaction_interval: Duration,

    /// The size compaction makes files (e.g. `64MiB`); a merge reads at most this much,
    /// and at most 32 million rows, into memory.
    #[arg(long, env = "CHRONOSDB_COMPACTION_TARGET_SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub compaction_target_size: usize,

    /// The longest series key a line may write: its measurement and tags as written
    /// (`cpu,host=a`); each field key is bounded by it too. Longer lines are refused.
    #[arg(long, env = "CHRONOSDB_MAX_SERIES_KEY_SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub max_series_key_size: usize,

    /// The longest string field value a line may write. Longer lines are refused.
    #[arg(long, env = "CHRONOSDB_MAX_STRING_FIELD_SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_string_field_size: usize,

    /// Small files of similar size that make a partition still being written worth
    /// merging (a partition whose day ended over an hour ago merges any two).
    #[arg(long, env = "CHRONOSDB_COMPACTION_MIN_FILES", default_value = "8", value_parser = clap::value_parser!(u16).range(2..))]
    pub compaction_min_files: u16,

    /// Largest accepted write request body, after gzip decompression (e.g. `32MiB`).
    #[arg(long, env = "CHRONOSDB_MAX_REQUEST_SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub max_request_size: usize,

    /// Turn authentication off: every client may do everything, without a token. For
    /// local development only; the server warns at start-up.
    #[arg(long, env = "CHRONOSDB_WITHOUT_AUTH")]
    pub without_auth: bool,

    /// PEM file with the server's TLS certificate chain (leaf first). With `--tls-key`,
    /// both listeners offer TLS: pgwire to clients that ask (`sslmode=require`,
    /// `verify-full`, ...), HTTP on the same port as plain HTTP (`https://`).
    #[arg(long, env = "CHRONOSDB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CHRONOSDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse unencrypted connections: plaintext pgwire start-ups get a FATAL error and
    /// plain-HTTP requests a 400. Needs `--tls-cert` and `--tls-key`.
    #[arg(long, env = "CHRONOSDB_REQUIRE_TLS", requires = "tls_cert")]
    pub require_tls: bool,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `chronosdb_storage=debug`).
    #[arg(long, env = "CHRONOSDB_LOG", default_value = "info")]
    pub log: String,
}

/// Parses `500ms`, `2s`, `5m`, `1h` (a bare number means milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 2s, 5m"))?;
    let millis = match unit.trim() {
        "" | "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_millis(millis))
}

/// Parses `1048576`, `64KiB`, `32MiB`, `1GiB` (also KB/MB/GB as powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64MiB"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}: use KiB, MiB or GiB")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_millis(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("10kb"), Ok(10_000));
        assert!(parse_size("lots").is_err());
    }
}
