//! The single-node storage engine: the write path from a line-protocol body to a durable,
//! queryable point, the persister that moves buffered data into Parquet, and start-up
//! recovery from the catalog and the WAL.
//!
//! Write path: validate and build batches on the caller's task (parallel across requests)
//! → hand the record to the WAL thread → the WAL thread appends a group of records, makes
//! them durable with one fsync, applies them to the buffer in log order, then acknowledges
//! each. A write is thus acknowledged only when it is both durable and visible to queries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chronosdb_catalog::{Catalog, CatalogError, CatalogOp, ParquetFile, TableSchema};
use chronosdb_line_protocol::{LineError, Precision};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::backup::Pins;
use crate::buffer::{Generation, WriteBuffer};
use crate::buffer::{drop_older_than, time_range};
use crate::compaction::{CompactionConfig, compactor_loop};
use crate::error::{Result, StorageError};
use crate::file_cache::FileCache;
use crate::persist::{
    EncodedFile, decode_aligned, encode_file, for_each_partition, sort_and_merge_by, sort_key,
};
use crate::record::WalPayload;
use crate::series_index::{FileLayout, LAYOUT_CACHE_BYTES};
use crate::shard::ShardMap;
use crate::tag_times::TagTimes;
use crate::wal::{WalWriter, replay};
use crate::write_batch::{TableBatch, WriteLimits, prepare_write};
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;

/// The part of `persist_buffer_bytes` an idle buffer must hold to be persisted early
/// (see [`EngineConfig::persist_when_idle`]).
pub const IDLE_PERSIST_FRACTION: usize = 8;

/// Where the catalog lives in the object store.
pub const CATALOG_PATH: &str = "_catalog/catalog.json";

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Local directory for the WAL.
    pub wal_dir: PathBuf,
    /// Where Parquet files and the catalog are kept.
    pub object_store: Arc<dyn ObjectStore>,
    /// Extra time the WAL writer waits to gather a larger group before each fsync.
    pub wal_flush_interval: Duration,
    /// Persist once the buffer holds this many bytes.
    pub persist_buffer_bytes: usize,
    /// Persist buffered data at the latest this long after its first write.
    pub persist_max_age: Duration,
    /// Persist once no write has come for this long and the buffer holds at least
    /// [`IDLE_PERSIST_FRACTION`] of `persist_buffer_bytes` (`Duration::ZERO`: never): a
    /// bulk load's last rows leave memory soon after it ends instead of waiting
    /// `persist_max_age`, while a trickle of writes still makes few, large files.
    pub persist_when_idle: Duration,
    /// How often files older than their database's retention period are looked for.
    pub retention_check_interval: Duration,
    /// Background merging of small files.
    pub compaction: CompactionConfig,
    /// What one line may write (series key and string sizes).
    pub write_limits: WriteLimits,
}

/// What a write did: how many lines were stored and which were refused.
#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    pub lines_written: usize,
    pub rejected: Vec<LineError>,
}

/// What a query needs of one table at one instant.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub schema: TableSchema,
    pub files: Vec<ParquetFile>,
    /// Buffered rows, oldest first, aligned to `schema`.
    pub buffered: Vec<RecordBatch>,
    /// Whether `buffered` may hold a point twice and must be merged before use.
    pub buffered_may_have_duplicates: bool,
    /// The highest WAL sequence applied to the buffer: with the files and the buffered
    /// row count, it names what the snapshot holds.
    pub buffer_sequence: u64,
    /// The time ranges of `buffered` per value of the leading tag of the files it
    /// overlaps in time (see `tag_times`); `None` when no such file's layout is at hand.
    pub buffered_tag_times: Option<Arc<TagTimes>>,
    /// The time range `buffered` lies within, from the buffer's counters (no batch read;
    /// it may be wider than the rows, never narrower). `None` when nothing is buffered.
    pub buffered_range: Option<(i64, i64)>,
    /// The database's retention cutoff (ns) when it has a retention period: files wholly
    /// older are left out and older buffered rows removed, but a file that straddles it
    /// still holds older rows, which readers must filter out.
    pub retention_cutoff: Option<i64>,
}

/// How much a table holds, from counters only (see [`Engine::table_extent`]).
#[derive(Debug, Clone)]
pub struct TableExtent {
    pub files: Vec<ParquetFile>,
    /// Buffered rows and their time range.
    pub buffered: Option<(usize, i64, i64)>,
    pub retention_cutoff: Option<i64>,
}

enum WalCommand {
    Write {
        header: Vec<u8>,
        body: Bytes,
        database: String,
        batches: Vec<TableBatch>,
        ack: oneshot::Sender<Result<()>>,
    },
    /// Close the segment and freeze the buffer in one step; answers with the last sequence
    /// of the closed segments and the frozen generation.
    Rotate {
        ack: oneshot::Sender<Result<(u64, u64, Arc<Generation>)>>,
    },
}

/// Counters of the WAL writer, for observability and tests.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records appended.
    pub records: AtomicU64,
    /// fsyncs issued; fewer than `records` when concurrent writes shared one.
    pub syncs: AtomicU64,
}

/// The storage engine of one node.
pub struct Engine {
    wal_stats: Arc<WalStats>,
    config: EngineConfig,
    catalog: Arc<Catalog>,
    buffer: Arc<RwLock<WriteBuffer>>,
    wal_tx: mpsc::Sender<WalCommand>,
    persist_lock: tokio::sync::Mutex<()>,
    /// Held by whatever replaces or removes existing files (compaction, deletes,
    /// retention, drops), so two of them never work on the same file. Taken before
    /// `persist_lock` when both are needed.
    rewrite_lock: tokio::sync::Mutex<()>,
    /// Serialises catalog saves, so an older snapshot never overwrites a newer one.
    catalog_save_lock: tokio::sync::Mutex<()>,
    /// Each Parquet file's newest row per series, for last-point queries.
    newest_rows: parking_lot::Mutex<FileCache<RecordBatch>>,
    /// Each Parquet file's series index and schema, for opening it fast.
    layouts: parking_lot::Mutex<FileCache<FileLayout>>,
    /// Row counts of tables whose chunks overlap, by what they held when counted (see
    /// [`Engine::remember_row_count`]).
    row_counts: parking_lot::Mutex<HashMap<String, u64>>,
    /// Files compaction found it could not make fewer or larger (see
    /// `compaction::merge`), left out of later merges until something overlaps them.
    settled_files: parking_lot::Mutex<std::collections::HashSet<u64>>,
    /// Files running backups still copy, kept until their lease ends.
    pins: parking_lot::Mutex<Pins>,
    persist_wakeup: Arc<Notify>,
    /// Signalled when a persisted generation leaves the buffer (memory was freed).
    buffer_released: Notify,
    shards: ShardMap,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("wal_dir", &self.config.wal_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

impl Engine {
    /// Loads the catalog, replays the WAL into the buffer, and starts the WAL writer and
    /// the persister.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let (catalog, found) = load_catalog(config.object_store.as_ref()).await?;
        if found {
            remove_unreferenced_files(&catalog, config.object_store.as_ref()).await?;
        }
        let catalog = Arc::new(catalog);
        let persisted = catalog.snapshot().persisted_wal_sequence;
        let wal_dir = config.wal_dir.clone();
        let records = tokio::task::spawn_blocking(move || replay(&wal_dir))
            .await
            .map_err(|e| StorageError::Arrow(format!("WAL replay task failed: {e}")))??;
        let mut buffer = WriteBuffer::default();
        let mut last_sequence = persisted;
        let mut replayed = 0usize;
        let dropped = catalog.snapshot();
        for record in records {
            last_sequence = last_sequence.max(record.sequence);
            if record.sequence <= persisted {
                continue;
            }
            let payload =
                WalPayload::decode(&record.payload).map_err(|reason| StorageError::WalCorrupt {
                    file: config.wal_dir.clone(),
                    offset: 0,
                    reason: format!("record {}: {reason}", record.sequence),
                })?;
            if dropped.dropped_before(&payload.database, record.sequence) {
                continue;
            }
            let mut prepared = prepare_write(
                &catalog,
                &payload.database,
                payload.body,
                payload.precision,
                payload.default_time,
                &payload.skipped_lines,
                &WriteLimits::NONE,
            )?;
            prepared.batches.retain(|b| {
                !dropped.table_dropped_before(&payload.database, &b.table, record.sequence)
            });
            buffer.apply(&payload.database, prepared.batches, record.sequence)?;
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed WAL into the write buffer");
        }
        // Replaying a dropped table's older records re-created it in the catalog (writes
        // add their columns first) though none of its rows were kept: remove it again
        // unless it was in the saved catalog (created anew after the drop) or a write
        // after the drop gave it rows.
        for (database, tables) in &dropped.dropped_tables {
            for table in tables.keys() {
                let recreated_empty = dropped.table(database, table).is_none()
                    && catalog.snapshot().table(database, table).is_some()
                    && buffer.table_extent(database, table).is_none();
                if recreated_empty {
                    catalog.apply(vec![CatalogOp::DropTable {
                        database: database.clone(),
                        table: table.clone(),
                        through_sequence: 0,
                    }])?;
                }
            }
        }
        let writer = WalWriter::open(&config.wal_dir, last_sequence + 1)?;
        let buffer = Arc::new(RwLock::new(buffer));
        let (wal_tx, wal_rx) = mpsc::channel(4096);
        let flush_interval = config.wal_flush_interval;
        let thread_buffer = buffer.clone();
        let wal_stats = Arc::new(WalStats::default());
        let thread_stats = wal_stats.clone();
        std::thread::Builder::new()
            .name("chronosdb-wal".into())
            .spawn(move || {
                wal_thread(
                    writer,
                    wal_rx,
                    thread_buffer,
                    last_sequence + 1,
                    flush_interval,
                    &thread_stats,
                )
            })
            .map_err(|e| StorageError::io(&config.wal_dir, e))?;
        let engine = Arc::new(Self {
            wal_stats,
            config,
            catalog,
            buffer,
            wal_tx,
            persist_lock: tokio::sync::Mutex::new(()),
            rewrite_lock: tokio::sync::Mutex::new(()),
            catalog_save_lock: tokio::sync::Mutex::new(()),
            newest_rows: parking_lot::Mutex::new(FileCache::new(
                NEWEST_ROWS_LIMIT,
                RecordBatch::num_rows,
            )),
            layouts: parking_lot::Mutex::new(FileCache::new(
                LAYOUT_CACHE_BYTES,
                FileLayout::memory_size,
            )),
            row_counts: parking_lot::Mutex::default(),
            settled_files: parking_lot::Mutex::default(),
            pins: parking_lot::Mutex::default(),
            persist_wakeup: Arc::new(Notify::new()),
            buffer_released: Notify::new(),
            shards: ShardMap::single_node(),
        });
        let weak = Arc::downgrade(&engine);
        let wakeup = engine.persist_wakeup.clone();
        tokio::spawn(async move { persister_loop(weak, wakeup).await });
        let weak = Arc::downgrade(&engine);
        let interval = engine.config.compaction.interval;
        tokio::spawn(async move { compactor_loop(weak, interval).await });
        Ok(engine)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub(crate) fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn pins(&self) -> &parking_lot::Mutex<Pins> {
        &self.pins
    }

    pub(crate) fn settled_files(&self) -> &parking_lot::Mutex<std::collections::HashSet<u64>> {
        &self.settled_files
    }

    pub(crate) fn rewrite_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.rewrite_lock
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.config.object_store.clone()
    }

    /// (records appended, fsyncs) since start.
    pub fn wal_counts(&self) -> (u64, u64) {
        (
            self.wal_stats.records.load(Ordering::Relaxed),
            self.wal_stats.syncs.load(Ordering::Relaxed),
        )
    }

    pub fn shard_map(&self) -> &ShardMap {
        &self.shards
    }

    /// Writes a line-protocol body to `database`; returns once the accepted lines are
    /// durable and visible. Refused lines are reported; the others are kept, unless
    /// `accept_partial` is false, in which case one refused line means nothing is written.
    pub async fn write_lp(
        &self,
        database: &str,
        body: Bytes,
        precision: Precision,
        accept_partial: bool,
    ) -> Result<WriteOutcome> {
        let default_time = precision.truncate_nanos(now_nanos());
        let prepared = prepare_write(
            &self.catalog,
            database,
            &body,
            precision,
            default_time,
            &[],
            &self.config.write_limits,
        )?;
        let mut outcome = WriteOutcome {
            lines_written: prepared.accepted_lines,
            rejected: prepared.rejected,
        };
        if !accept_partial && !outcome.rejected.is_empty() {
            outcome.lines_written = 0;
            return Ok(outcome);
        }
        if prepared.batches.is_empty() {
            return Ok(outcome);
        }
        // The shard map only has one owner today; checking costs a scan per batch, so it
        // runs in debug builds only, until routing to other nodes exists.
        if cfg!(debug_assertions) {
            for TableBatch { batch, .. } in &prepared.batches {
                if let Some((lo, hi)) = time_range(batch) {
                    self.shards.check_local(database, lo, hi);
                }
            }
        }
        self.wait_for_buffer_space().await;
        let header = WalPayload {
            database: database.to_string(),
            precision,
            default_time,
            skipped_lines: outcome.rejected.iter().map(|e| e.line as u32).collect(),
            body: &[],
        }
        .encode_header();
        let (ack, done) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Write {
                header,
                body,
                database: database.to_string(),
                batches: prepared.batches,
                ack,
            })
            .await
            .map_err(|_| StorageError::WalClosed)?;
        done.await.map_err(|_| StorageError::WalClosed)??;
        if self.buffer.read().active_bytes() >= self.config.persist_buffer_bytes {
            self.persist_wakeup.notify_one();
        }
        Ok(outcome)
    }

    /// Applies catalog changes made with SQL (`CREATE TABLE`, metadata) durably: the
    /// catalog is saved before this returns, so they outlive a crash even before any point
    /// is written.
    pub async fn apply_catalog_ops(&self, ops: Vec<CatalogOp>) -> Result<()> {
        self.catalog.apply(ops)?;
        self.save_catalog().await
    }

    /// The newest row per series of the file at `path`, if known (computed when the file
    /// was written, or remembered after a reader computed it).
    pub fn newest_rows_of(&self, path: &str) -> Option<RecordBatch> {
        self.newest_rows.lock().get(path)
    }

    /// The layout (series index, schema) of the file at `path`, if known here (remembered
    /// when the file was written, or after a reader read its footer).
    pub fn layout_of(&self, path: &str) -> Option<FileLayout> {
        self.layouts.lock().get(path)
    }

    /// Remembers a file's layout, within [`LAYOUT_CACHE_BYTES`] (a forgotten layout is
    /// read from the file's footer again).
    pub fn remember_layout(&self, path: String, layout: FileLayout) {
        self.layouts.lock().insert(path, layout);
    }

    /// The row count remembered under `key` (see [`Engine::remember_row_count`]).
    pub fn known_row_count(&self, key: &str) -> Option<u64> {
        self.row_counts.lock().get(key).copied()
    }

    /// Remembers the row count of what `key` names. The key must name data that never
    /// changes (immutable files, and the buffer at one WAL sequence); up to
    /// [`ROW_COUNTS_LIMIT`] are kept, all forgotten beyond.
    pub fn remember_row_count(&self, key: String, rows: u64) {
        let mut counts = self.row_counts.lock();
        if counts.len() >= ROW_COUNTS_LIMIT {
            counts.clear();
        }
        counts.insert(key, rows);
    }

    /// Remembers a file's newest row per series; the oldest entries are forgotten beyond
    /// [`NEWEST_ROWS_LIMIT`] rows in all (a forgotten file is read again when asked).
    pub fn remember_newest_rows(&self, path: String, rows: RecordBatch) {
        self.newest_rows.lock().insert(path, rows);
    }

    /// Writes the current catalog to the object store.
    async fn save_catalog(&self) -> Result<()> {
        let _guard = self.catalog_save_lock.lock().await;
        self.config
            .object_store
            .put(
                &ObjectPath::from(CATALOG_PATH),
                PutPayload::from(self.catalog.to_json()),
            )
            .await?;
        Ok(())
    }

    /// Back-pressure: while the buffer holds twice the persist threshold (ingest outruns
    /// persistence), new writes wait for a persisted generation to leave it. Memory stays
    /// bounded; the writes are slowed, never refused or lost.
    async fn wait_for_buffer_space(&self) {
        let limit = self.config.persist_buffer_bytes.saturating_mul(2);
        while self.buffer.read().total_bytes() >= limit {
            self.persist_wakeup.notify_one();
            let released = self.buffer_released.notified();
            // A timeout as well, so a notification sent just before we waited is not missed.
            let _ = tokio::time::timeout(Duration::from_millis(50), released).await;
        }
    }

    /// The schema, files and buffered rows of a table, consistent with each other: a
    /// generation is released from the buffer in the same critical section that adds its
    /// files to the catalog.
    pub fn table_snapshot(&self, database: &str, table: &str) -> Result<Option<TableSnapshot>> {
        self.table_snapshot_of(database, table, None)
    }

    /// [`Engine::table_snapshot`] with only the buffered rows whose tag `only.0` is one of
    /// `only.1` (a query filtered on that tag needs no others), taken through the
    /// buffer's index of that tag: the work follows the rows taken, not the rows buffered.
    pub fn table_snapshot_of(
        &self,
        database: &str,
        table: &str,
        only: Option<(&str, &[String])>,
    ) -> Result<Option<TableSnapshot>> {
        let buffer = self.buffer.read();
        let catalog = self.catalog.snapshot();
        let Some(def) = catalog.table(database, table) else {
            return Ok(None);
        };
        let (mut buffered, buffered_may_have_duplicates) =
            buffer.table_rows(database, table, &def.schema.arrow_schema(), only)?;
        let buffer_sequence = buffer.max_sequence();
        let extent = match only {
            None => buffer.table_extent(database, table),
            // The rows taken are few: their range is read from them.
            Some(_) => buffered
                .iter()
                .filter_map(time_range)
                .map(|(lo, hi)| (0, lo, hi))
                .reduce(|(_, lo1, hi1), (_, lo2, hi2)| (0, lo1.min(lo2), hi1.max(hi2))),
        };
        let buffer_min_time = extent.map(|(_, lo, _)| lo);
        // Only a file the buffer overlaps in time needs telling apart from it.
        let overlapped_tag = extent.and_then(|(_, lo, hi)| {
            def.files
                .iter()
                .filter(|f| f.min_time <= hi && f.max_time >= lo)
                .find_map(|f| Some(self.layout_of(&f.path)?.index?.tag().to_string()))
        });
        let mut buffered_tag_times = match overlapped_tag {
            Some(tag) => buffer.table_tag_times(database, table, &tag)?,
            None => None,
        };
        // Values of the tag not taken are not in the rows.
        if let (Some(times), Some((tag, values))) = (&mut buffered_tag_times, only)
            && times.tag == tag
        {
            Arc::make_mut(times)
                .times
                .retain(|value, _| value.as_ref().is_some_and(|v| values.contains(v)));
        }
        drop(buffer);
        let mut files = def.files.clone();
        let retention_cutoff = catalog
            .database(database)
            .and_then(|db| db.retention_cutoff(now_nanos()));
        if let Some(cutoff) = retention_cutoff {
            files.retain(|f| f.max_time >= cutoff);
        }
        // The buffer usually holds only recent points: it is read only when it holds older.
        if let Some(cutoff) = retention_cutoff
            && buffer_min_time.is_some_and(|lo| lo < cutoff)
        {
            let mut kept = Vec::with_capacity(buffered.len());
            for batch in &buffered {
                kept.extend(drop_older_than(batch, cutoff)?);
            }
            buffered = kept;
        }
        let buffered_range = extent
            .filter(|_| !buffered.is_empty())
            .map(|(_, lo, hi)| (retention_cutoff.map_or(lo, |cutoff| lo.max(cutoff)), hi));
        Ok(Some(TableSnapshot {
            schema: def.schema.clone(),
            files,
            buffered,
            buffered_may_have_duplicates,
            buffer_sequence,
            buffered_tag_times,
            buffered_range,
            retention_cutoff,
        }))
    }

    /// A table's persisted files (from the catalog) and its buffered row count and time
    /// range, without reading any batch: for estimates made before planning.
    pub fn table_extent(&self, database: &str, table: &str) -> Option<TableExtent> {
        self.table_extent_of(database, table, None).ok().flatten()
    }

    /// [`Engine::table_extent`] counting only the buffered rows whose tag `only.0` is one
    /// of `only.1` (see [`Engine::table_snapshot_of`]).
    pub fn table_extent_of(
        &self,
        database: &str,
        table: &str,
        only: Option<(&str, &[String])>,
    ) -> Result<Option<TableExtent>> {
        let catalog = self.catalog.snapshot();
        let Some(def) = catalog.table(database, table) else {
            return Ok(None);
        };
        let buffered = self.buffer.read().table_extent_of(database, table, only)?;
        Ok(Some(TableExtent {
            files: def.files.clone(),
            buffered,
            retention_cutoff: catalog
                .database(database)
                .and_then(|db| db.retention_cutoff(now_nanos())),
        }))
    }

    /// Bytes held by the write buffer (all generations).
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.read().total_bytes()
    }

    /// Persists everything buffered now (also used at shutdown and by tests).
    pub async fn persist(&self) -> Result<()> {
        let _guard = self.persist_lock.lock().await;
        self.persist_locked().await
    }

    /// [`Engine::persist`] for a caller that holds `persist_lock`.
    async fn persist_locked(&self) -> Result<()> {
        let (generation_id, last_sequence, generation) = self.rotate().await?;
        let result = self
            .persist_generation(generation_id, last_sequence, &generation)
            .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "persisting the write buffer failed; the data stays in the WAL and buffer");
        }
        result
    }

    /// Deletes the points of `table` between `min_time` and `max_time` (inclusive, ns)
    /// for which `matches` is true (a null counts as false), and gives their disk space
    /// back: the buffer is persisted first, then every file that holds such points is
    /// rewritten without them (or removed when nothing is left). The new files and the
    /// removal of the old ones reach the catalog in one step, saved before any old file is
    /// deleted; a crash at any point leaves the old set or the new one, never both. Writes
    /// that arrive while it runs are not deleted.
    pub async fn delete_rows(
        &self,
        database: &str,
        table: &str,
        (min_time, max_time): (i64, i64),
        matches: RowMatcher,
    ) -> Result<DeleteOutcome> {
        let _rewrite = self.rewrite_lock.lock().await;
        let _guard = self.persist_lock.lock().await;
        self.persist_locked().await?;
        let catalog = self.catalog.snapshot();
        let def = catalog
            .table(database, table)
            .ok_or_else(|| CatalogError::TableNotFound {
                database: database.to_string(),
                table: table.to_string(),
            })?
            .clone();
        let mut outcome = DeleteOutcome::default();
        let mut removed = Vec::new();
        let mut rewritten = Vec::new();
        for file in def
            .files
            .iter()
            .filter(|f| f.min_time <= max_time && f.max_time >= min_time)
        {
            let bytes = self
                .config
                .object_store
                .get(&ObjectPath::from(file.path.as_str()))
                .await?
                .bytes()
                .await?;
            let schema = def.schema.clone();
            let matches = matches.clone();
            let partition = file.partition_start;
            let kept = tokio::task::spawn_blocking(move || {
                keep_unmatched(bytes, partition, &schema, &matches)
            })
            .await
            .map_err(|e| StorageError::Arrow(format!("delete task failed: {e}")))??;
            let Some((deleted, kept)) = kept else {
                continue;
            };
            outcome.rows_deleted += deleted;
            outcome.bytes_before += file.size_bytes;
            removed.push(file.clone());
            if let Some(kept) = kept {
                // The rewrite stands where the original did in write order.
                rewritten.push((kept, Some(file.write_order())));
            }
        }
        if removed.is_empty() {
            return Ok(outcome);
        }
        let files = self.store_files(database, table, rewritten).await?;
        outcome.bytes_after = files.iter().map(|f| f.size_bytes).sum();
        outcome.files_rewritten = files.len();
        outcome.files_removed = removed.len() - files.len();
        self.apply_catalog_ops(vec![
            CatalogOp::RemoveFiles {
                database: database.to_string(),
                table: table.to_string(),
                file_ids: removed.iter().map(|f| f.id).collect(),
            },
            CatalogOp::AddFiles {
                database: database.to_string(),
                table: table.to_string(),
                files,
            },
        ])
        .await?;
        self.delete_files(removed.iter().map(|f| f.path.as_str()), "a rewritten file")
            .await;
        tracing::info!(
            database,
            table,
            rows_deleted = outcome.rows_deleted,
            files_rewritten = outcome.files_rewritten,
            files_removed = outcome.files_removed,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            "deleted points"
        );
        Ok(outcome)
    }

    /// Closes the WAL segment and freezes the buffer: (generation id, last sequence in
    /// it, the generation). The caller holds `persist_lock`.
    async fn rotate(&self) -> Result<(u64, u64, Arc<Generation>)> {
        let (ack, done) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Rotate { ack })
            .await
            .map_err(|_| StorageError::WalClosed)?;
        done.await.map_err(|_| StorageError::WalClosed)?
    }

    /// Creates an empty database, durably, with a retention period in nanoseconds
    /// (`None`: data is kept forever).
    pub async fn create_database(
        &self,
        database: &str,
        retention_nanos: Option<i64>,
    ) -> Result<()> {
        if self.catalog.snapshot().database(database).is_some() {
            return Err(CatalogError::DatabaseExists(database.to_string()).into());
        }
        let mut ops = vec![CatalogOp::CreateDatabase {
            database: database.to_string(),
        }];
        if retention_nanos.is_some() {
            ops.push(CatalogOp::SetRetention {
                database: database.to_string(),
                retention_nanos,
            });
        }
        self.apply_catalog_ops(ops).await
    }

    /// Sets or removes a database's retention period, durably. Points older than a new,
    /// shorter period disappear from queries at once; their files go at the next check.
    /// Points a longer period (or none) would bring back stay gone: the old cutoff becomes
    /// final ([`CatalogOp::HideOlderThan`]).
    pub async fn set_retention(&self, database: &str, retention_nanos: Option<i64>) -> Result<()> {
        let mut ops = Vec::with_capacity(2);
        let old = self
            .catalog
            .snapshot()
            .database(database)
            .and_then(|db| db.retention_nanos);
        if let Some(old) = old
            && retention_nanos.is_none_or(|new| new > old)
        {
            ops.push(CatalogOp::HideOlderThan {
                database: database.to_string(),
                before: now_nanos().saturating_sub(old),
            });
        }
        ops.push(CatalogOp::SetRetention {
            database: database.to_string(),
            retention_nanos,
        });
        self.apply_catalog_ops(ops).await?;
        self.persist_wakeup.notify_one();
        Ok(())
    }

    /// Deletes the files whose every point is older than their database's retention
    /// period: whole files, never rewritten. The catalog without them is saved before any
    /// is deleted, so a crash in between leaves unreferenced files, never references to
    /// missing ones. Returns the number of files deleted.
    pub async fn enforce_retention(&self) -> Result<usize> {
        // A compaction or delete at work: check again next time rather than wait.
        let Ok(_rewrite) = self.rewrite_lock.try_lock() else {
            return Ok(0);
        };
        let now = now_nanos();
        let catalog = self.catalog.snapshot();
        let mut ops = Vec::new();
        let mut expired = Vec::new();
        for (database, def) in &catalog.databases {
            let Some(cutoff) = def.retention_cutoff(now) else {
                continue;
            };
            for (table, table_def) in &def.tables {
                let old: Vec<&ParquetFile> = table_def
                    .files
                    .iter()
                    .filter(|f| f.max_time < cutoff)
                    .collect();
                if old.is_empty() {
                    continue;
                }
                ops.push(CatalogOp::RemoveFiles {
                    database: database.clone(),
                    table: table.clone(),
                    file_ids: old.iter().map(|f| f.id).collect(),
                });
                expired.extend(old.into_iter().map(|f| f.path.clone()));
            }
        }
        if ops.is_empty() {
            return Ok(0);
        }
        self.apply_catalog_ops(ops).await?;
        let deleted = self
            .delete_files(expired.iter().map(String::as_str), "an expired file")
            .await;
        tracing::info!(files_deleted = deleted, "retention: deleted expired files");
        Ok(deleted)
    }

    /// Drops a database: it disappears from queries at once, its buffered rows are
    /// discarded (and never replayed from the WAL), and its Parquet files are deleted once
    /// the catalog without it is saved. Returns the number of files deleted. Writes to the
    /// name afterwards create a new, empty database.
    pub async fn drop_database(&self, database: &str) -> Result<usize> {
        let _rewrite = self.rewrite_lock.lock().await;
        let _guard = self.persist_lock.lock().await;
        let Some(def) = self.catalog.snapshot().database(database).cloned() else {
            return Err(CatalogError::DatabaseNotFound(database.to_string()).into());
        };
        let (generation_id, last_sequence, generation) = self.rotate().await?;
        drop(generation);
        let generation = {
            // The WAL thread applies writes under this lock, so no write of the database
            // lands between the drop mark and the removal of its rows.
            let mut buffer = self.buffer.write();
            let through_sequence = last_sequence.max(buffer.max_sequence());
            self.catalog.apply(vec![CatalogOp::DropDatabase {
                database: database.to_string(),
                through_sequence,
            }])?;
            buffer.remove_database(database);
            buffer.frozen(generation_id)
        };
        if let Some(generation) = generation {
            // The other databases' rows: persisting them also saves the catalog.
            self.persist_generation(generation_id, last_sequence, &generation)
                .await?;
        } else {
            self.save_catalog().await?;
        }
        let files = def.tables.values().flat_map(|t| t.files.iter());
        let deleted = self
            .delete_files(
                files.map(|f| f.path.as_str()),
                "a file of a dropped database",
            )
            .await;
        tracing::info!(database, files_deleted = deleted, "dropped database");
        Ok(deleted)
    }

    /// Drops a table: its buffered rows are persisted first (so no WAL record of it is
    /// left to replay), then it leaves the catalog and its files are deleted. Writes to
    /// the name afterwards create a new, empty table. Returns the number of files deleted.
    pub async fn drop_table(&self, database: &str, table: &str) -> Result<usize> {
        let _rewrite = self.rewrite_lock.lock().await;
        let _guard = self.persist_lock.lock().await;
        self.persist_locked().await?;
        let Some(def) = self.catalog.snapshot().table(database, table).cloned() else {
            return Err(CatalogError::TableNotFound {
                database: database.to_string(),
                table: table.to_string(),
            }
            .into());
        };
        {
            // Rows written since the persist belong to the dropped table too, and so do
            // their WAL records: the WAL thread applies writes under this lock, so every
            // record up to the buffer's newest sequence is marked as not to be replayed
            // into the table (a write after this point creates it anew, in the buffer and
            // at replay alike).
            let mut buffer = self.buffer.write();
            self.catalog.apply(vec![CatalogOp::DropTable {
                database: database.to_string(),
                table: table.to_string(),
                through_sequence: buffer.max_sequence(),
            }])?;
            buffer.remove_table(database, table);
        }
        self.save_catalog().await?;
        let deleted = self
            .delete_files(
                def.files.iter().map(|f| f.path.as_str()),
                "a file of a dropped table",
            )
            .await;
        tracing::info!(database, table, files_deleted = deleted, "dropped table");
        Ok(deleted)
    }

    /// Writes encoded files of `table` under new ids and remembers their newest rows;
    /// returns their catalog entries, for the caller to add. Each file's write order is
    /// given when it is made from older files (a rewrite, a merge), else its id.
    pub(crate) async fn store_files(
        &self,
        database: &str,
        table: &str,
        encoded: Vec<(EncodedFile, Option<u64>)>,
    ) -> Result<Vec<ParquetFile>> {
        let first_id = self.catalog.reserve_file_ids(encoded.len() as u64);
        let mut files = Vec::with_capacity(encoded.len());
        for (i, (file, write_order)) in encoded.into_iter().enumerate() {
            let id = first_id + i as u64;
            let path = file_path(database, table, file.partition_start, id);
            let size_bytes = file.bytes.len() as u64;
            self.config
                .object_store
                .put(&path, PutPayload::from(file.bytes))
                .await?;
            self.remember_newest_rows(path.to_string(), file.newest);
            self.remember_layout(path.to_string(), file.layout);
            files.push(ParquetFile {
                id,
                path: path.to_string(),
                partition_start: file.partition_start,
                min_time: file.min_time,
                max_time: file.max_time,
                row_count: file.rows,
                size_bytes,
                write_order,
            });
        }
        Ok(files)
    }

    /// Deletes files the catalog no longer references (it must be saved first) and
    /// forgets their newest rows; returns how many are gone. Files a running backup still
    /// copies are deleted when its lease ends. A failure is logged, not returned: the file
    /// is only unreferenced garbage by then.
    pub(crate) async fn delete_files<'a>(
        &self,
        paths: impl Iterator<Item = &'a str>,
        what: &str,
    ) -> usize {
        let paths = {
            let mut pins = self.pins.lock();
            let mut now = pins.deletable(paths);
            now.extend(pins.released());
            now
        };
        let mut deleted = 0;
        for path in &paths {
            self.newest_rows.lock().forget(path);
            self.layouts.lock().forget(path);
            match self
                .config
                .object_store
                .delete(&ObjectPath::from(path.as_str()))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => tracing::warn!(file = %path, error = %e, "could not delete {what}"),
            }
        }
        deleted
    }

    async fn persist_generation(
        &self,
        generation_id: u64,
        last_sequence: u64,
        generation: &Generation,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let mut ops = Vec::new();
        let mut files_written = 0usize;
        let mut tables: Vec<_> = generation.tables.iter().collect();
        tables.sort_by(|a, b| a.0.cmp(b.0));
        for ((database, table), buffered) in tables {
            let snapshot = self.catalog.snapshot();
            let Some(def) = snapshot.table(database, table) else {
                continue;
            };
            let schema = def.schema.clone();
            let batches = buffered.batches.clone();
            let encode_schema = schema.clone();
            let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
                let mut out = Vec::new();
                for_each_partition(&batches, &encode_schema, |partition, batch, sort_key| {
                    out.push((encode_file(partition, &batch, sort_key)?, None));
                    Ok(())
                })?;
                Ok(out)
            })
            .await
            .map_err(|e| StorageError::Arrow(format!("encoding task failed: {e}")))??;
            let files = self.store_files(database, table, encoded).await?;
            files_written += files.len();
            ops.push(CatalogOp::AddFiles {
                database: database.clone(),
                table: table.clone(),
                files,
            });
        }
        ops.push(CatalogOp::SetPersistedWalSequence {
            sequence: last_sequence,
        });
        {
            // Files appear and buffered rows disappear in one step for queries.
            let mut buffer = self.buffer.write();
            self.catalog.apply(ops)?;
            buffer.release(generation_id);
        }
        self.buffer_released.notify_waiters();
        self.save_catalog().await?;
        let wal_dir = self.config.wal_dir.clone();
        let removed = tokio::task::spawn_blocking(move || {
            WalWriter::remove_segments_before(&wal_dir, last_sequence + 1)
        })
        .await
        .map_err(|e| StorageError::Arrow(format!("WAL cleanup task failed: {e}")))??;
        if files_written > 0 {
            tracing::info!(
                files = files_written,
                wal_segments_removed = removed,
                up_to_sequence = last_sequence,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "persisted write buffer to Parquet"
            );
        }
        Ok(())
    }
}

/// Decides which rows of a batch (aligned to the table's current schema) a delete removes.
pub type RowMatcher = Arc<dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync>;

/// What a delete did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub rows_deleted: u64,
    /// Files written again without the deleted rows.
    pub files_rewritten: usize,
    /// Files removed because nothing was left in them.
    pub files_removed: usize,
    /// Size of the affected files before, and of their replacements after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A file's rows without those `matches` selects: `None` if it selects none, else the
/// number deleted and, unless every row went, the rows kept (sorted again by the sort
/// key chosen for them), encoded.
type Kept = Option<(u64, Option<EncodedFile>)>;

fn keep_unmatched(
    bytes: Bytes,
    partition_start: i64,
    schema: &TableSchema,
    matches: &RowMatcher,
) -> Result<Kept> {
    let batch = decode_aligned(bytes, &schema.arrow_schema())?;
    let selected = matches(&batch)?;
    let deleted = selected.iter().filter(|m| *m == Some(true)).count() as u64;
    if deleted == 0 {
        return Ok(None);
    }
    let keep: BooleanArray = selected.iter().map(|m| Some(m != Some(true))).collect();
    let kept = filter_record_batch(&batch, &keep)?;
    if kept.num_rows() == 0 {
        return Ok(Some((deleted, None)));
    }
    let key = sort_key(&kept, schema);
    let kept = sort_and_merge_by(&kept, &key)?;
    Ok(Some((
        deleted,
        Some(encode_file(partition_start, &kept, &key)?),
    )))
}

/// `<db>/<table>/<YYYY-MM-DD>/<id>.parquet`
pub(crate) fn file_path(database: &str, table: &str, partition_start: i64, id: u64) -> ObjectPath {
    let day = partition_start.div_euclid(crate::persist::PARTITION_NANOS);
    let date = civil_date(day);
    ObjectPath::from_iter([
        database.to_string(),
        table.to_string(),
        date,
        format!("{id:012}.parquet"),
    ])
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (Howard Hinnant's civil-from-days).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The saved catalog, and whether there was one.
async fn load_catalog(store: &dyn ObjectStore) -> Result<(Catalog, bool)> {
    match store.get(&ObjectPath::from(CATALOG_PATH)).await {
        Ok(result) => {
            let bytes = result.bytes().await?;
            Ok((Catalog::from_json(&bytes)?, true))
        }
        Err(object_store::Error::NotFound { .. }) => Ok((Catalog::default(), false)),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the Parquet files the saved catalog does not reference: left by a crash
/// between writing new files and saving the catalog (a persist, compaction or delete
/// that did not finish), or between saving it and deleting the files it replaced. Run at
/// start-up, before anything writes, and only when a catalog was found (without one,
/// every file would look unreferenced).
async fn remove_unreferenced_files(catalog: &Catalog, store: &dyn ObjectStore) -> Result<()> {
    use futures::TryStreamExt;
    let snapshot = catalog.snapshot();
    let referenced: std::collections::HashSet<&str> = snapshot
        .databases
        .values()
        .flat_map(|db| db.tables.values())
        .flat_map(|t| t.files.iter().map(|f| f.path.as_str()))
        .collect();
    let objects: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await?;
    let mut removed = 0usize;
    for object in objects {
        let path = object.location.as_ref();
        if !path.ends_with(".parquet") || referenced.contains(path) {
            continue;
        }
        match store.delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
            Err(e) => {
                tracing::warn!(file = %path, error = %e, "could not delete an unreferenced file")
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            files = removed,
            "removed Parquet files the catalog does not reference (left by an interrupted persist, compaction or delete)"
        );
    }
    Ok(())
}

/// Rows kept in the newest-rows cache across all files (one per series per file).
pub const NEWEST_ROWS_LIMIT: usize = 4_000_000;
/// How many table row counts the engine remembers at most.
pub const ROW_COUNTS_LIMIT: usize = 1024;

/// The WAL thread: group commit, then apply to the buffer in log order, then acknowledge.
fn wal_thread(
    mut writer: WalWriter,
    mut rx: mpsc::Receiver<WalCommand>,
    buffer: Arc<RwLock<WriteBuffer>>,
    mut next_sequence: u64,
    flush_interval: Duration,
    stats: &WalStats,
) {
    type Pending = (u64, String, Vec<TableBatch>, oneshot::Sender<Result<()>>);
    let commit = |writer: &mut WalWriter, pending: &mut Vec<Pending>| {
        if pending.is_empty() {
            return;
        }
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats
            .records
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        match writer.sync() {
            Ok(()) => {
                let mut buffer = buffer.write();
                for (sequence, database, batches, ack) in pending.drain(..) {
                    let applied = buffer.apply(&database, batches, sequence);
                    let _ = ack.send(applied);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL fsync failed; refusing the writes of this group");
                for (_, _, _, ack) in pending.drain(..) {
                    let _ = ack.send(Err(StorageError::Arrow(format!("WAL sync failed: {e}"))));
                }
            }
        }
    };
    while let Some(first) = rx.blocking_recv() {
        if !flush_interval.is_zero() {
            std::thread::sleep(flush_interval);
        }
        let mut group = vec![first];
        while group.len() < 4096 {
            match rx.try_recv() {
                Ok(cmd) => group.push(cmd),
                Err(_) => break,
            }
        }
        let mut pending: Vec<Pending> = Vec::new();
        for cmd in group {
            match cmd {
                WalCommand::Write {
                    header,
                    body,
                    database,
                    batches,
                    ack,
                } => match writer.append_parts(next_sequence, &[&header, &body]) {
                    Ok(()) => {
                        pending.push((next_sequence, database, batches, ack));
                        next_sequence += 1;
                    }
                    Err(e) => {
                        let _ = ack.send(Err(e));
                    }
                },
                WalCommand::Rotate { ack } => {
                    commit(&mut writer, &mut pending);
                    let result = writer.rotate(next_sequence).map(|()| {
                        let (id, generation) = buffer.write().freeze();
                        (id, next_sequence - 1, generation)
                    });
                    let _ = ack.send(result);
                }
            }
        }
        commit(&mut writer, &mut pending);
    }
}

/// Persists when the buffer is large or old enough.
/// Holds the engine only while it works, so dropping the engine ends the loop.
async fn persister_loop(engine: std::sync::Weak<Engine>, wakeup: Arc<Notify>) {
    let mut retention_checked = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = wakeup.notified() => {}
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let (bytes, age, idle) = {
            let buffer = engine.buffer.read();
            (
                buffer.active_bytes(),
                buffer.active_age(),
                buffer.active_idle(),
            )
        };
        let config = &engine.config;
        let idle_enough = !config.persist_when_idle.is_zero()
            && idle.is_some_and(|i| i >= config.persist_when_idle)
            && bytes >= config.persist_buffer_bytes / IDLE_PERSIST_FRACTION;
        let due = bytes >= config.persist_buffer_bytes
            || age.is_some_and(|a| a >= config.persist_max_age)
            || idle_enough;
        if retention_checked.elapsed() >= engine.config.retention_check_interval {
            retention_checked = std::time::Instant::now();
            if let Err(e) = engine.enforce_retention().await {
                tracing::warn!(error = %e, "retention check failed; retrying at the next one");
            }
        }
        if due && engine.persist().await.is_err() {
            drop(engine);
            // Already logged; retry after a pause rather than spinning.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn config(dir: &std::path::Path, store: Arc<dyn ObjectStore>) -> EngineConfig {
        EngineConfig {
            wal_dir: dir.join("wal"),
            object_store: store,
            wal_flush_interval: Duration::ZERO,
            persist_buffer_bytes: usize::MAX,
            persist_max_age: Duration::from_secs(3600),
            persist_when_idle: Duration::ZERO,
            retention_check_interval: Duration::from_secs(3600),
            compaction: crate::CompactionConfig::default(),
            write_limits: WriteLimits::DEFAULT,
        }
    }

    fn rows(engine: &Engine, table: &str) -> usize {
        let snapshot = engine
            .table_snapshot("db", table)
            .expect("snapshot")
            .expect("table");
        assert!(snapshot.files.is_empty() || snapshot.buffered.is_empty());
        let buffered: usize = snapshot.buffered.iter().map(|b| b.num_rows()).sum();
        buffered
            + snapshot
                .files
                .iter()
                .map(|f| f.row_count as usize)
                .sum::<usize>()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_fsyncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(config(dir.path(), Arc::new(InMemory::new())))
            .await
            .expect("open");
        let mut tasks = Vec::new();
        for i in 0..200 {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("cpu,host=h{i} v=1 {i}");
                engine
                    .write_lp("db", Bytes::from(body), Precision::Nanosecond, true)
                    .await
                    .expect("write")
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").lines_written, 1);
        }
        let (records, syncs) = engine.wal_counts();
        assert_eq!(records, 200);
        assert!(
            syncs < records,
            "no group commit: {syncs} fsyncs for {records} records"
        );
        assert_eq!(rows(&engine, "cpu"), 200);
    }

    /// The state a crash leaves when a write lands between DROP TABLE's persist and its
    /// catalog change: the catalog (saved) marks the table dropped through the write's
    /// sequence while the WAL still holds the write. Replay must not bring it back.
    #[tokio::test]
    async fn a_write_racing_drop_table_is_not_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        {
            let engine = Engine::open(config(dir.path(), store.clone()))
                .await
                .expect("open");
            for body in [&b"gone v=1 1"[..], &b"kept v=1 1"[..]] {
                engine
                    .write_lp("db", Bytes::from(body), Precision::Nanosecond, true)
                    .await
                    .expect("write");
            }
            // The "gone" write is the first record, "kept" the second.
            let through_sequence = engine.buffer.read().max_sequence() - 1;
            engine.buffer.write().remove_table("db", "gone");
            engine
                .apply_catalog_ops(vec![CatalogOp::DropTable {
                    database: "db".into(),
                    table: "gone".into(),
                    through_sequence,
                }])
                .await
                .expect("drop");
        }
        let engine = Engine::open(config(dir.path(), store))
            .await
            .expect("reopen");
        assert!(engine.catalog().snapshot().table("db", "gone").is_none());
        assert_eq!(rows(&engine, "kept"), 1);
    }

    #[tokio::test]
    async fn replay_and_persist_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        {
            let engine = Engine::open(config(dir.path(), store.clone()))
                .await
                .expect("open");
            let outcome = engine
                .write_lp(
                    "db",
                    Bytes::from_static(b"cpu v=1 1\ncpu v=\"x\" 2\ncpu v=3 3"),
                    Precision::Nanosecond,
                    true,
                )
                .await
                .expect("write");
            assert_eq!(outcome.lines_written, 2);
        }
        // Reopen: the WAL is replayed, skipping the refused line.
        let engine = Engine::open(config(dir.path(), store.clone()))
            .await
            .expect("reopen");
        assert_eq!(rows(&engine, "cpu"), 2);
        engine.persist().await.expect("persist");
        let snapshot = engine
            .table_snapshot("db", "cpu")
            .expect("snap")
            .expect("table");
        assert_eq!(snapshot.files.len(), 1);
        assert!(snapshot.buffered.is_empty());
        // The file's newest row per series is known without reading it back.
        let newest = engine
            .newest_rows_of(&snapshot.files[0].path)
            .expect("newest rows remembered at persist");
        assert_eq!(newest.num_rows(), 1);
        drop(engine);
        // Reopen again: the catalog lists the file, and the WAL holds nothing to replay.
        let engine = Engine::open(config(dir.path(), store))
            .await
            .expect("reopen");
        assert_eq!(rows(&engine, "cpu"), 2);
        let wal_files = std::fs::read_dir(dir.path().join("wal"))
            .expect("wal")
            .count();
        assert!(
            wal_files <= 2,
            "old WAL segments were not removed: {wal_files}"
        );
    }

    #[test]
    fn newest_rows_cache_forgets_the_oldest_files_beyond_its_limit() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = runtime
            .block_on(Engine::open(config(dir.path(), store)))
            .expect("open");
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                "v",
                datafusion::arrow::datatypes::DataType::Int64,
                false,
            ),
        ]));
        let batch = |n: usize| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                    0;
                    n
                ]))],
            )
            .expect("batch")
        };
        engine.remember_newest_rows("a".into(), batch(NEWEST_ROWS_LIMIT - 10));
        engine.remember_newest_rows("b".into(), batch(5));
        assert!(engine.newest_rows_of("a").is_some());
        engine.remember_newest_rows("c".into(), batch(20));
        assert!(
            engine.newest_rows_of("a").is_none(),
            "the oldest entry goes first"
        );
        assert!(engine.newest_rows_of("b").is_some() && engine.newest_rows_of("c").is_some());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(16_801), "2016-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
        assert_eq!(civil_date(20_513), "2026-03-01");
    }
}
