//! Compaction: merges the small Parquet files of a time partition into large, sorted,
//! deduplicated ones, in the background, so that a long ingest (one file per table and
//! day at every persist) does not leave thousands of small files behind.
//!
//! Policy (size-tiered, so a byte is rewritten a few times, not once per persist): files
//! under half the target size are *small*; they fall into tiers by size (below 1 MiB, then
//! ×`min_files` per tier). A partition still receiving data is compacted when one tier
//! holds `min_files` files, which are merged into one file of the next tier. A partition
//! whose day ended more than an hour ago merges all its small files at once. One merge
//! reads at most the target size (and [`MAX_MERGE_ROWS`] rows) of input, and holds at most
//! about [`MERGE_SLICE_ROWS`] of them decoded at a time.
//!
//! Slices: a merge of more rows than that goes slice by slice. When every input has a
//! series index on the same leading tag (the host, typically), a slice is a run of that
//! tag's values: the rows of each input for those values are one contiguous range, and the
//! merged slices follow one another in sort order, so they are written into *one* file,
//! sorted as a whole. A query for a few series then reads one stretch of one file, however
//! many files the partition was written as. Otherwise (no index, or one value holding more
//! than a slice) a slice is a time range and each makes its own file; when such a merge
//! would only rewrite files that are already a slice each and do not overlap, it is not
//! done, and those files are left out of later merges ([`Engine::settled_files`]).
//!
//! Correctness: a point written again replaces the older one field by field, and files
//! are merged in write order, so the merged file holds what the inputs said together. It
//! takes the newest write order of its inputs; any other file that overlaps them in time
//! and sits between them in write order is pulled into the merge, so no newer value can
//! end up behind an older one. Outputs are cut at time boundaries: they never overlap one
//! another, and queries scan them without merging.
//!
//! Crash safety: new files are written first, then the catalog swaps the old set for the
//! new one in one saved step, and only then are the old files deleted (after a grace
//! period, for queries still reading them). A crash before the catalog is saved leaves the
//! old set and unreferenced new files; after it, the new set and unreferenced old files.
//! Unreferenced files are removed when the server next starts ([`Engine::open`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chronosdb_catalog::{CatalogOp, ParquetFile, TableSchema};
use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use crate::crash_point;
use crate::engine::{Engine, now_nanos};
use crate::error::{Result, StorageError};
use crate::persist::{
    EncodedFile, FileWriter, PARTITION_NANOS, decode_aligned_between, decode_aligned_rows,
    encode_file, for_each_time_batch, sort_and_merge_by, sort_key, times,
};
use crate::series_index::SeriesIndex;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Most rows one merge reads (it decodes them [`MERGE_SLICE_ROWS`] at a time).
pub const MAX_MERGE_ROWS: u64 = 32_000_000;
/// Files below this size are in the lowest tier.
const TIER_BASE_BYTES: u64 = 1 << 20;
/// A partition is cold, and merged whole, this long after its day ended.
const COLD_AFTER_NANOS: i64 = 3_600_000_000_000;
/// Replaced files are deleted this long after the catalog stops referencing them, so a
/// query that planned against the old set can finish reading it.
const REPLACED_FILE_GRACE: Duration = Duration::from_secs(30);

/// Compaction settings.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// How often partitions are checked; zero turns compaction off.
    pub interval: Duration,
    /// The size merged files aim for (bytes of Parquet).
    pub target_bytes: u64,
    /// Small files of one tier that trigger a merge in a partition still being written.
    pub min_files: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            target_bytes: 64 << 20,
            min_files: 8,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub merges: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The tier of a file of `size` bytes: 0 below 1 MiB, then one more per factor `fanout`.
fn tier(size: u64, fanout: u64) -> u32 {
    let mut tier = 0;
    let mut limit = TIER_BASE_BYTES;
    while size >= limit {
        tier += 1;
        limit = limit.saturating_mul(fanout);
    }
    tier
}

/// Chooses the files of one partition to merge, in write order, or `None`. `cold`: the
/// partition no longer receives data in the normal course, so every small file is merged.
/// `settled`: files a merge would not make bigger (see [`merge`]), left alone unless
/// another file overlaps them.
pub(crate) fn pick(
    files: &[ParquetFile],
    config: &CompactionConfig,
    cold: bool,
    settled: &std::collections::HashSet<u64>,
) -> Option<Vec<ParquetFile>> {
    let min_files = config.min_files.max(2);
    let overlaps_another = |f: &ParquetFile| {
        files
            .iter()
            .any(|g| g.id != f.id && g.min_time <= f.max_time && g.max_time >= f.min_time)
    };
    let mut small: Vec<&ParquetFile> = files
        .iter()
        .filter(|f| {
            (f.size_bytes < config.target_bytes / 2 && !settled.contains(&f.id))
                || overlaps_another(f)
        })
        .collect();
    small.sort_by_key(|f| f.write_position());
    let candidates: Vec<&ParquetFile> = if cold {
        small
    } else {
        let fanout = min_files as u64;
        let mut tiers: std::collections::BTreeMap<u32, Vec<&ParquetFile>> = Default::default();
        for f in small {
            tiers.entry(tier(f.size_bytes, fanout)).or_default().push(f);
        }
        tiers.into_values().find(|t| t.len() >= min_files)?
    };
    // Oldest first, within the byte and row budget of one merge.
    let mut chosen: Vec<ParquetFile> = Vec::new();
    let (mut bytes, mut rows) = (0u64, 0u64);
    for f in candidates {
        if chosen.len() >= 2
            && (bytes + f.size_bytes > config.target_bytes || rows + f.row_count > MAX_MERGE_ROWS)
        {
            break;
        }
        bytes += f.size_bytes;
        rows += f.row_count;
        chosen.push(f.clone());
    }
    // Pull in every file that overlaps the chosen ones in time and lies between them in
    // write order: the merged file takes the newest write order of its inputs, and must
    // not jump ahead of a newer value it does not contain.
    loop {
        let lo_order = chosen.iter().map(ParquetFile::write_order).min()?;
        let hi_order = chosen.iter().map(ParquetFile::write_order).max()?;
        let lo_time = chosen.iter().map(|f| f.min_time).min()?;
        let hi_time = chosen.iter().map(|f| f.max_time).max()?;
        let before = chosen.len();
        for f in files {
            let between = (lo_order..=hi_order).contains(&f.write_order());
            let overlaps = f.min_time <= hi_time && f.max_time >= lo_time;
            if between && overlaps && !chosen.iter().any(|c| c.id == f.id) {
                chosen.push(f.clone());
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    chosen.sort_by_key(ParquetFile::write_position);
    (chosen.len() >= 2).then_some(chosen)
}

/// Rows one merge decodes at a time: a merge larger than this is done one time slice
/// after another (see [`slice_cuts`]), so its memory does not grow with the partition.
pub const MERGE_SLICE_ROWS: u64 = 1_000_000;
/// Bins of the time histogram that places the slices' cuts.
const SLICE_BINS: i64 = 4096;

/// Merges the contents of files given oldest first: sorted by (tags, time) with points
/// written twice merged, then cut into time slices of at most `rows_per_file` rows. More
/// than [`MERGE_SLICE_ROWS`] rows in all are merged slice by slice: the rows of every input
/// within one time range, then the next range (a point's writes share its time, so each
/// lands in one slice); outputs never overlap in time.
///
/// More than [`MERGE_SLICE_ROWS`] rows whose inputs all have a series index on the same
/// leading tag are merged in runs of that tag's values instead, into one file (see the
/// module documentation). `None`: the merge would only rewrite `inputs` as they are (time
/// slices that are already a slice each and do not overlap).
fn merge(
    inputs: Vec<Bytes>,
    inputs_meta: &[ParquetFile],
    partition_start: i64,
    schema: &TableSchema,
    rows_per_file: usize,
    rows_in: u64,
) -> Result<Option<Vec<EncodedFile>>> {
    if rows_in <= MERGE_SLICE_ROWS {
        return merge_in_slices(inputs, partition_start, schema, rows_per_file, None).map(Some);
    }
    if let Some(slices) = value_slices(&inputs, MERGE_SLICE_ROWS)? {
        return merge_in_value_slices(inputs, partition_start, schema, slices).map(Some);
    }
    let disjoint = inputs_meta.iter().all(|f| {
        inputs_meta
            .iter()
            .all(|g| g.id == f.id || g.max_time < f.min_time || g.min_time > f.max_time)
    });
    if disjoint
        && inputs_meta
            .iter()
            .all(|f| f.row_count >= MERGE_SLICE_ROWS / 2)
    {
        return Ok(None);
    }
    merge_in_slices(
        inputs,
        partition_start,
        schema,
        rows_per_file,
        Some(MERGE_SLICE_ROWS),
    )
    .map(Some)
}

/// How a merge in runs of the leading tag's values goes: the inputs' indexes, and the
/// slices as ranges of values (`lo..=hi`, `None` sorting first).
struct ValueSlices {
    tag: String,
    indexes: Vec<SeriesIndex>,
    slices: Vec<(Option<String>, Option<String>)>,
}

/// Cuts the inputs' leading-tag values into runs of at most `rows_per_slice` rows in all;
/// `None` when an input has no usable series index, the inputs lead with different tags,
/// or one value alone holds more rows than a slice.
fn value_slices(inputs: &[Bytes], rows_per_slice: u64) -> Result<Option<ValueSlices>> {
    let mut indexes = Vec::with_capacity(inputs.len());
    for bytes in inputs {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
        match SeriesIndex::from_footer(builder.metadata()) {
            Ok(Some(index)) => indexes.push(index),
            Ok(None) | Err(_) => return Ok(None),
        }
    }
    let Some(tag) = indexes.first().map(|i| i.tag().to_string()) else {
        return Ok(None);
    };
    if indexes.iter().any(|i| i.tag() != tag) {
        return Ok(None);
    }
    let mut rows_of: std::collections::BTreeMap<Option<&str>, u64> = Default::default();
    for index in &indexes {
        for (value, rows) in index.value_rows() {
            *rows_of.entry(value).or_default() += rows as u64;
        }
    }
    if rows_of.values().any(|rows| *rows > rows_per_slice) {
        return Ok(None);
    }
    let mut slices = Vec::new();
    let mut current: Option<(Option<&str>, Option<&str>, u64)> = None;
    for (value, rows) in rows_of {
        current = match current {
            Some((lo, hi, in_slice)) if in_slice + rows > rows_per_slice => {
                slices.push((lo.map(str::to_string), hi.map(str::to_string)));
                Some((value, value, rows))
            }
            Some((lo, _, in_slice)) => Some((lo, value, in_slice + rows)),
            None => Some((value, value, rows)),
        };
    }
    if let Some((lo, hi, _)) = current {
        slices.push((lo.map(str::to_string), hi.map(str::to_string)));
    }
    Ok(Some(ValueSlices {
        tag,
        indexes,
        slices,
    }))
}

/// [`merge`] in runs of the leading tag's values, into one file sorted as a whole.
fn merge_in_value_slices(
    inputs: Vec<Bytes>,
    partition_start: i64,
    schema: &TableSchema,
    plan: ValueSlices,
) -> Result<Vec<EncodedFile>> {
    let arrow_schema = schema.arrow_schema();
    let mut key: Option<Vec<String>> = None;
    let mut writer: Option<FileWriter> = None;
    for (lo, hi) in &plan.slices {
        let parts = inputs
            .iter()
            .zip(&plan.indexes)
            .map(|(bytes, index)| {
                let rows = index.rows_of_values(lo.as_deref(), hi.as_deref());
                decode_aligned_rows(bytes.clone(), &arrow_schema, rows)
            })
            .collect::<Result<Vec<_>>>()?;
        let all = concat_batches(&arrow_schema, &parts)?;
        drop(parts);
        if all.num_rows() == 0 {
            continue;
        }
        // One key for the whole file: the indexed tag first, the others as the first
        // slice's cardinalities order them.
        let key = key.get_or_insert_with(|| {
            let mut key = sort_key(&all, schema);
            key.retain(|t| *t != plan.tag);
            key.insert(0, plan.tag.clone());
            key
        });
        let merged = sort_and_merge_by(&all, key)?;
        drop(all);
        let writer = match writer.as_mut() {
            Some(writer) => writer,
            None => writer.insert(FileWriter::new(partition_start, &arrow_schema, key)?),
        };
        writer.write(&merged)?;
    }
    Ok(match writer {
        Some(writer) => writer.finish()?.into_iter().collect(),
        None => Vec::new(),
    })
}

/// [`merge`], in time slices of about `slice_rows` rows (`None`: all at once).
fn merge_in_slices(
    inputs: Vec<Bytes>,
    partition_start: i64,
    schema: &TableSchema,
    rows_per_file: usize,
    slice_rows: Option<u64>,
) -> Result<Vec<EncodedFile>> {
    let arrow_schema = schema.arrow_schema();
    let cuts = match slice_rows {
        Some(rows) => slice_cuts(&inputs, rows)?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    let mut lo = i64::MIN;
    for hi in cuts.into_iter().chain(std::iter::once(i64::MAX)) {
        let parts = inputs
            .iter()
            .map(|bytes| decode_aligned_between(bytes.clone(), &arrow_schema, lo, hi))
            .collect::<Result<Vec<_>>>()?;
        let all = concat_batches(&arrow_schema, &parts)?;
        drop(parts);
        lo = hi;
        if all.num_rows() == 0 {
            continue;
        }
        let key = sort_key(&all, schema);
        let merged = sort_and_merge_by(&all, &key)?;
        drop(all);
        for slice in time_slices(&merged, rows_per_file)? {
            out.push(encode_file(partition_start, &slice, &key)?);
        }
    }
    Ok(out)
}

/// Times that cut the rows of `inputs` into ranges of about `rows_per_slice` rows each
/// (`[.., c0)`, `[c0, c1)`, …, `[cn, ..]`), from a histogram of their `time` columns.
fn slice_cuts(inputs: &[Bytes], rows_per_slice: u64) -> Result<Vec<i64>> {
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for bytes in inputs {
        for_each_time_batch(bytes.clone(), |times| {
            for t in times {
                min = min.min(*t);
                max = max.max(*t);
            }
        })?;
    }
    if min >= max {
        return Ok(Vec::new());
    }
    let width = ((max as i128 - min as i128) / SLICE_BINS as i128 + 1) as i64;
    let mut bins = vec![0u64; SLICE_BINS as usize + 1];
    for bytes in inputs {
        for_each_time_batch(bytes.clone(), |times| {
            for t in times {
                bins[((*t as i128 - min as i128) / width as i128) as usize] += 1;
            }
        })?;
    }
    let mut cuts = Vec::new();
    let mut in_slice = 0;
    for (i, rows) in bins.iter().enumerate() {
        if in_slice > 0 && in_slice + rows > rows_per_slice {
            cuts.push(min + i as i64 * width);
            in_slice = 0;
        }
        in_slice += rows;
    }
    Ok(cuts)
}

/// Cuts `batch` (sorted by tags, then time) into pieces of disjoint time ranges holding
/// about `rows_per_file` rows each; every piece keeps the batch's order.
fn time_slices(batch: &RecordBatch, rows_per_file: usize) -> Result<Vec<RecordBatch>> {
    let rows_per_file = rows_per_file.max(1);
    if batch.num_rows() <= rows_per_file {
        return Ok(vec![batch.clone()]);
    }
    let time = times(batch)?;
    let mut sorted: Vec<i64> = time.values().to_vec();
    sorted.sort_unstable();
    // Cut points: every rows_per_file-th time, so equal times stay in one slice.
    let mut cuts: Vec<i64> = sorted
        .iter()
        .skip(rows_per_file)
        .step_by(rows_per_file)
        .copied()
        .collect();
    cuts.dedup();
    let mut slices = Vec::with_capacity(cuts.len() + 1);
    let mut lo = i64::MIN;
    for hi in cuts.into_iter().chain(std::iter::once(i64::MAX)) {
        let keep: BooleanArray = time
            .values()
            .iter()
            .map(|t| Some(*t >= lo && (*t < hi || hi == i64::MAX)))
            .collect();
        let slice = filter_record_batch(batch, &keep)?;
        if slice.num_rows() > 0 {
            slices.push(slice);
        }
        lo = hi;
    }
    Ok(slices)
}

impl Engine {
    /// One compaction pass over every partition of every table: merges what the policy
    /// picks (see the module documentation), one partition at a time.
    pub async fn compact(self: &Arc<Self>) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::default();
        let catalog = self.catalog().snapshot();
        let now = now_nanos();
        for (database, db) in &catalog.databases {
            for (table, def) in &db.tables {
                let mut partitions: Vec<i64> =
                    def.files.iter().map(|f| f.partition_start).collect();
                partitions.sort_unstable();
                partitions.dedup();
                for partition in partitions {
                    let files: Vec<ParquetFile> = def
                        .files
                        .iter()
                        .filter(|f| f.partition_start == partition)
                        .cloned()
                        .collect();
                    let cold = partition.saturating_add(PARTITION_NANOS + COLD_AFTER_NANOS) < now;
                    let settled = self.settled_files().lock().clone();
                    let Some(inputs) = pick(&files, &self.config().compaction, cold, &settled)
                    else {
                        continue;
                    };
                    self.merge_files(database, table, partition, inputs, &mut outcome)
                        .await?;
                }
            }
        }
        Ok(outcome)
    }

    async fn merge_files(
        self: &Arc<Self>,
        database: &str,
        table: &str,
        partition: i64,
        inputs: Vec<ParquetFile>,
        outcome: &mut CompactionOutcome,
    ) -> Result<()> {
        let _guard = self.rewrite_lock().lock().await;
        // Deletes, retention and drops change files under the same lock: check that the
        // inputs are all still there.
        let catalog = self.catalog().snapshot();
        let Some(def) = catalog.table(database, table) else {
            return Ok(());
        };
        if !inputs
            .iter()
            .all(|i| def.files.iter().any(|f| f.id == i.id))
        {
            return Ok(());
        }
        let schema = def.schema.clone();
        let started = std::time::Instant::now();
        let store = self.object_store();
        let mut contents = Vec::with_capacity(inputs.len());
        for file in &inputs {
            let path = ObjectPath::from(file.path.as_str());
            contents.push(store.get(&path).await?.bytes().await?);
        }
        let bytes_in: u64 = inputs.iter().map(|f| f.size_bytes).sum();
        let rows_in: u64 = inputs.iter().map(|f| f.row_count).sum::<u64>().max(1);
        let bytes_per_row = (bytes_in as f64 / rows_in as f64).max(1.0);
        let target = self.config().compaction.target_bytes as f64;
        let rows_per_file = ((target / bytes_per_row) as u64).clamp(1, MAX_MERGE_ROWS) as usize;
        let inputs_meta = inputs.clone();
        let merged = tokio::task::spawn_blocking(move || {
            merge(
                contents,
                &inputs_meta,
                partition,
                &schema,
                rows_per_file,
                rows_in,
            )
        })
        .await
        .map_err(|e| StorageError::Arrow(format!("compaction task failed: {e}")))??;
        let Some(merged) = merged else {
            self.settled_files()
                .lock()
                .extend(inputs.iter().map(|f| f.id));
            return Ok(());
        };
        // The merged files stand where the newest of their inputs did in write order.
        let write_order = inputs.iter().map(ParquetFile::write_order).max();
        let merged = merged.into_iter().map(|f| (f, write_order)).collect();
        let files = self.store_files(database, table, merged).await?;
        crash_point("compaction-files-written");
        let bytes_out: u64 = files.iter().map(|f| f.size_bytes).sum();
        let files_out = files.len();
        self.apply_catalog_ops(vec![
            CatalogOp::RemoveFiles {
                database: database.to_string(),
                table: table.to_string(),
                file_ids: inputs.iter().map(|f| f.id).collect(),
            },
            CatalogOp::AddFiles {
                database: database.to_string(),
                table: table.to_string(),
                files,
            },
        ])
        .await?;
        crash_point("compaction-catalog-saved");
        tracing::info!(
            database,
            table,
            partition = crate::engine::civil_date(partition.div_euclid(PARTITION_NANOS)),
            files_in = inputs.len(),
            files_out,
            bytes_in,
            bytes_out,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted files"
        );
        outcome.merges += 1;
        outcome.files_in += inputs.len();
        outcome.files_out += files_out;
        outcome.bytes_in += bytes_in;
        outcome.bytes_out += bytes_out;
        let engine = Arc::downgrade(self);
        let paths: Vec<String> = inputs.into_iter().map(|f| f.path).collect();
        tokio::spawn(async move {
            tokio::time::sleep(REPLACED_FILE_GRACE).await;
            if let Some(engine) = engine.upgrade() {
                engine
                    .delete_files(paths.iter().map(String::as_str), "a compacted file")
                    .await;
            }
        });
        Ok(())
    }
}

/// Runs compaction passes every `interval` while the engine lives.
pub(crate) async fn compactor_loop(engine: std::sync::Weak<Engine>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::time::sleep(interval).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if let Err(e) = engine.compact().await {
            tracing::warn!(error = %e, "compaction failed; the files stay as they were and it is retried at the next pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, size: u64, min_time: i64, max_time: i64) -> ParquetFile {
        ParquetFile {
            id,
            path: format!("db/t/1970-01-01/{id:012}.parquet"),
            partition_start: 0,
            min_time,
            max_time,
            row_count: 10,
            size_bytes: size,
            write_order: None,
        }
    }

    fn config() -> CompactionConfig {
        CompactionConfig {
            interval: Duration::from_secs(1),
            target_bytes: 64 << 20,
            min_files: 4,
        }
    }

    fn ids(files: Option<Vec<ParquetFile>>) -> Vec<u64> {
        files.unwrap_or_default().iter().map(|f| f.id).collect()
    }

    #[test]
    fn a_hot_partition_waits_for_a_full_tier() {
        let files: Vec<_> = (1..=3)
            .map(|i| file(i, 1000, i as i64 * 10, i as i64 * 10 + 5))
            .collect();
        assert!(pick(&files, &config(), false, &Default::default()).is_none());
        assert_eq!(
            ids(pick(&files, &config(), true, &Default::default())),
            vec![1, 2, 3]
        );
        let mut files = files;
        files.push(file(4, 1000, 40, 45));
        files.push(file(5, 40 << 20, 0, 100)); // large: not merged again
        assert_eq!(
            ids(pick(&files, &config(), false, &Default::default())),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn tiers_keep_big_files_out_of_small_merges() {
        // Four 2 MiB files (tier 1) and three small ones (tier 0): only tier 1 is full.
        let mut files: Vec<_> = (1..=4)
            .map(|i| file(i, 2 << 20, i as i64 * 10, i as i64 * 10 + 5))
            .collect();
        files.extend((5..=7).map(|i| file(i, 1000, i as i64 * 10, i as i64 * 10 + 5)));
        assert_eq!(
            ids(pick(&files, &config(), false, &Default::default())),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn an_overlapping_file_between_the_inputs_in_write_order_is_pulled_in() {
        // 1, 2, 4 and 5 are small; 3 is large but overlaps them and was written between.
        let files = vec![
            file(1, 1000, 0, 10),
            file(2, 1000, 10, 20),
            file(3, 40 << 20, 5, 15),
            file(4, 1000, 20, 30),
            file(5, 1000, 30, 40),
            file(6, 40 << 20, 100, 200), // no overlap: stays out
        ];
        assert_eq!(
            ids(pick(&files, &config(), false, &Default::default())),
            vec![1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn a_merge_reads_at_most_the_target_size() {
        let config = CompactionConfig {
            target_bytes: 10_000,
            ..config()
        };
        let files: Vec<_> = (1..=6)
            .map(|i| file(i, 3000, i as i64 * 10, i as i64 * 10 + 5))
            .collect();
        assert_eq!(
            ids(pick(&files, &config, true, &Default::default())),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn a_merge_in_time_slices_holds_what_one_in_memory_does() {
        use crate::persist::{decode_aligned, sort_and_merge};
        use chronosdb_line_protocol::Precision;
        let catalog = chronosdb_catalog::Catalog::default();
        let encode = |body: String| {
            let write = crate::write_batch::prepare_write(
                &catalog,
                "db",
                body.as_bytes(),
                Precision::Nanosecond,
                0,
                &[],
                &crate::write_batch::WriteLimits::DEFAULT,
            )
            .expect("prepare");
            let schema = catalog
                .snapshot()
                .table("db", "cpu")
                .expect("table")
                .schema
                .clone();
            let batches: Vec<_> = write.batches.into_iter().map(|b| b.batch).collect();
            let all = concat_batches(&batches[0].schema(), &batches).expect("concat");
            let key = sort_key(&all, &schema);
            let sorted = sort_and_merge(&all, &schema).expect("sort");
            Bytes::from(encode_file(0, &sorted, &key).expect("encode").bytes)
        };
        // File 1: hosts a and b at t = 1..=20 (x); file 2: a at t = 10..=30 (y), which
        // writes the points at 10..=20 again.
        let first = encode(
            (1..=20)
                .flat_map(|t| ["a", "b"].map(|h| format!("cpu,host={h} x={t} {t}\n")))
                .collect(),
        );
        let second = encode(
            (10..=30)
                .map(|t| format!("cpu,host=a y={t} {t}\n"))
                .collect(),
        );
        let schema = catalog
            .snapshot()
            .table("db", "cpu")
            .expect("table")
            .schema
            .clone();
        let arrow_schema = schema.arrow_schema();
        let rows = |files: &[EncodedFile]| {
            let mut rows: Vec<String> = Vec::new();
            for file in files {
                let batch =
                    decode_aligned(Bytes::from(file.bytes.clone()), &arrow_schema).expect("decode");
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
                    .expect("format")
                    .to_string();
                let cells =
                    |line: &str| line.split('|').map(str::trim).collect::<Vec<_>>().join(" ");
                rows.extend(
                    text.lines()
                        .skip(3)
                        .filter(|l| !l.starts_with('+'))
                        .map(cells),
                );
            }
            rows.sort();
            rows
        };
        let inputs = vec![first, second];
        let whole = merge_in_slices(inputs.clone(), 0, &schema, usize::MAX, None).expect("merge");
        let sliced = merge_in_slices(inputs, 0, &schema, usize::MAX, Some(7)).expect("merge");
        assert_eq!(whole.len(), 1);
        assert!(sliced.len() >= 5, "{} slices", sliced.len());
        // a at 1..=30 and b at 1..=20, each point once.
        assert_eq!(rows(&whole).len(), 50);
        assert_eq!(rows(&sliced), rows(&whole));
        for pair in sliced.windows(2) {
            assert!(pair[0].max_time < pair[1].min_time, "slices overlap");
        }
    }

    #[test]
    fn a_merge_in_runs_of_hosts_writes_one_sorted_indexed_file() {
        use crate::persist::{decode_aligned, sort_and_merge};
        use chronosdb_line_protocol::Precision;
        let catalog = chronosdb_catalog::Catalog::default();
        let encode = |body: String| {
            let write = crate::write_batch::prepare_write(
                &catalog,
                "db",
                body.as_bytes(),
                Precision::Nanosecond,
                0,
                &[],
                &crate::write_batch::WriteLimits::DEFAULT,
            )
            .expect("prepare");
            let schema = catalog
                .snapshot()
                .table("db", "cpu")
                .expect("table")
                .schema
                .clone();
            let batches: Vec<_> = write.batches.into_iter().map(|b| b.batch).collect();
            let all = concat_batches(&batches[0].schema(), &batches).expect("concat");
            let key = sort_key(&all, &schema);
            let sorted = sort_and_merge(&all, &schema).expect("sort");
            Bytes::from(encode_file(0, &sorted, &key).expect("encode").bytes)
        };
        // Ten hosts, two regions. File 1: t = 1..=40 (x); file 2: t = 30..=60 (y), which
        // writes the points at 30..=40 again; file 3: t = 61..=70 (x), hosts h5..h9 only.
        let lines = |hosts: std::ops::Range<u32>, times: std::ops::RangeInclusive<u32>, f: &str| {
            let mut body = String::new();
            for t in times {
                for h in hosts.clone() {
                    body.push_str(&format!("cpu,host=h{h},region=r{} {f}={t} {t}\n", h % 2));
                }
            }
            body
        };
        let inputs = vec![
            encode(lines(0..10, 1..=40, "x")),
            encode(lines(0..10, 30..=60, "y")),
            encode(lines(5..10, 61..=70, "x")),
        ];
        let schema = catalog
            .snapshot()
            .table("db", "cpu")
            .expect("table")
            .schema
            .clone();
        let arrow_schema = schema.arrow_schema();
        let plan = value_slices(&inputs, 150)
            .expect("slices")
            .expect("indexed");
        assert_eq!(plan.tag, "host");
        assert!(plan.slices.len() >= 4, "{} slices", plan.slices.len());
        let whole = merge_in_slices(inputs.clone(), 0, &schema, usize::MAX, None).expect("merge");
        let sliced = merge_in_value_slices(inputs, 0, &schema, plan).expect("merge");
        assert_eq!(sliced.len(), 1);
        let file = &sliced[0];
        // Hosts h0..h4 at 1..=60, h5..h9 at 1..=70, each point once.
        assert_eq!(file.rows, 5 * 60 + 5 * 70);
        assert_eq!((file.min_time, file.max_time), (1, 70));
        let read = |file: &EncodedFile| {
            decode_aligned(Bytes::from(file.bytes.clone()), &arrow_schema).expect("decode")
        };
        // Sorted as a whole, by host first, as one merge in memory sorts it.
        let (got, want) = (read(file), read(&whole[0]));
        let host = |b: &RecordBatch| {
            let c = datafusion::arrow::compute::cast(
                b.column_by_name("host").expect("host"),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .expect("strings")
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        let hosts = host(&got);
        assert!(hosts.windows(2).all(|w| w[0] <= w[1]), "not sorted by host");
        assert_eq!(hosts, host(&want));
        assert_eq!(times(&got).expect("times"), times(&want).expect("times"));
        // Its index, built slice by slice, finds each host's rows as one built whole does.
        let index = file.layout.index.as_ref().expect("indexed");
        let whole_index = whole[0].layout.index.as_ref().expect("indexed");
        assert_eq!(**index, **whole_index);
        for h in 0..10 {
            let wanted = [format!("h{h}")];
            assert_eq!(
                index.rows(Some(&wanted), 35, 65),
                whole_index.rows(Some(&wanted), 35, 65)
            );
        }
        assert_eq!(file.newest.num_rows(), 10);
    }

    #[test]
    fn files_of_a_slice_each_are_merged_again_only_where_they_overlap() {
        let big = |id: u64, lo: i64, hi: i64| ParquetFile {
            row_count: MERGE_SLICE_ROWS,
            ..file(id, 5 << 20, lo, hi)
        };
        // What a sliced merge of a cold day leaves, once found settled: nothing to do.
        let merged: Vec<_> = (1..=9)
            .map(|i| big(i, i as i64 * 10, i as i64 * 10 + 9))
            .collect();
        let settled: std::collections::HashSet<u64> = (1..=9).collect();
        assert_eq!(pick(&merged, &config(), true, &settled), None);
        // Until then they are small files of a cold day, merged whole.
        assert_eq!(
            pick(&merged, &config(), true, &Default::default()).map(|f| f.len()),
            Some(9)
        );
        // Two such files that overlap (concurrent persists) are merged.
        let mut overlapping = merged.clone();
        overlapping.push(big(10, 95, 120));
        assert_eq!(
            ids(pick(&overlapping, &config(), true, &settled)),
            vec![9, 10]
        );
        // A merge that would only rewrite them as they are is not done.
        let inputs: Vec<Bytes> = Vec::new();
        let schema = TableSchema::default();
        let rows = 9 * MERGE_SLICE_ROWS;
        assert!(
            merge(inputs, &merged, 0, &schema, 1, rows)
                .expect("merge")
                .is_none()
        );
    }

    #[test]
    fn tiers_grow_by_the_fanout() {
        assert_eq!(tier(0, 8), 0);
        assert_eq!(tier((1 << 20) - 1, 8), 0);
        assert_eq!(tier(1 << 20, 8), 1);
        assert_eq!(tier(8 << 20, 8), 2);
    }
}
