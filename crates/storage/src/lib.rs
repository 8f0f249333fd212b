//! chronosdb's storage engine for one node: the write-ahead log, the in-memory write
//! buffer, persistence to Parquet through `object_store`, and the write path that ties
//! them together with the catalog.
//!
//! Modules, in the order data flows through them: [`write_batch`] (parse and validate a
//! request into Arrow batches), [`record`] and [`wal`] (log it durably), [`buffer`] (make it
//! queryable), [`persist`] (sort, merge and encode it as Parquet), [`compaction`] (merge small
//! files into large ones), [`engine`] (the threads
//! and tasks that run all of this, and recovery at start-up). [`series_index`] says where
//! each series is in a file (written in its footer), [`file_cache`] keeps what the engine
//! knows of each file, [`shard`] names the shard every point is routed to; [`tag_times`] and
//! [`tag_rows`] index the buffer per tag value (time ranges, row positions) for queries.

pub mod backup;
pub mod buffer;
pub mod compaction;
pub mod engine;
pub mod error;
pub mod file_cache;
pub mod persist;
pub mod record;
pub mod series_index;
pub mod shard;
pub mod tag_rows;
pub mod tag_times;
pub mod wal;
pub mod write_batch;

pub use backup::BackupSnapshot;
pub use chronosdb_line_protocol::{LineError, Precision};
pub use compaction::{CompactionConfig, CompactionOutcome};
pub use engine::{
    DeleteOutcome, Engine, EngineConfig, RowMatcher, TableExtent, TableSnapshot, WriteOutcome,
};
pub use error::{Result, StorageError};
pub use write_batch::WriteLimits;

/// Nanoseconds since the epoch of an RFC 3339 time (`2024-01-01T00:00:00Z`, offsets and
/// fractions allowed); `None` if it is not one.
pub fn parse_timestamp_nanos(text: &str) -> Option<i64> {
    datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(text.trim()).ok()
}

/// Stops the process at a named step when `CHRONOSDB_CRASH_AT` names it: how the tests
/// prove that a crash at that step loses nothing and leaves a consistent catalog.
pub fn crash_point(name: &str) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("CHRONOSDB_CRASH_AT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("chronosdb: stopping at crash point {name} (CHRONOSDB_CRASH_AT)");
        std::process::abort();
    }
}
