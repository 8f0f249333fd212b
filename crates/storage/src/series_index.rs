//! A Parquet file's series index: where the rows of each series are, written in the file's
//! footer so that a query for a few series over a time window reads only their rows.
//!
//! Files are sorted by their tags, the tag with the most values first, then by time (see
//! `persist::sort_key`). So the rows of one value of the leading tag (typically the host)
//! are one contiguous run, each series is a contiguous run inside it, and a series' rows
//! are in time order. The index keeps the runs of the leading tag, where each series
//! starts, and the time of every [`TIME_SAMPLE_ROWS`]-th row of the file. From these,
//! [`SeriesIndex::rows`] gives the rows a filter on the leading tag and on time can match,
//! to within [`TIME_SAMPLE_ROWS`] rows at either end of each series' window, without
//! evaluating any statistics: the reader is handed exactly those rows (a DataFusion
//! `ParquetAccessPlan`), and the query's predicate still decides row by row.
//!
//! The index is a key of the footer's key-value metadata ([`FOOTER_KEY`]), base64 of a
//! small binary layout, so a file describes itself through backups, restores and
//! restarts. Files without one (written before it existed, or with too many series to be
//! worth indexing) are read with statistics pruning as before.

use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, partition};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::file::metadata::ParquetMetaData;

use crate::error::{Result, StorageError};

/// The footer key-value metadata key holding the index.
pub const FOOTER_KEY: &str = "chronosdb.series_index";
/// One row in this many has its time in the index: a series' window is found to within
/// this many rows at each end, at 8 bytes of index per this many rows.
pub const TIME_SAMPLE_ROWS: usize = 256;
/// Files with more series than this are not indexed: the index would grow the footer (and
/// every cached copy of it) more than it saves.
pub const MAX_INDEXED_SERIES: usize = 100_000;
/// The layout's version, first byte of the encoding.
const VERSION: u8 = 1;

/// Where the series of one file are (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesIndex {
    /// The leading tag of the file's sort key.
    tag: String,
    /// Its values in file order (ascending, rows without the tag first as `None`).
    values: Vec<Option<String>>,
    /// Rows `value_starts[i]..value_starts[i + 1]` hold `values[i]`; the last entry is the
    /// file's row count.
    value_starts: Vec<u32>,
    /// The first row of each series, ascending, then the file's row count.
    series_starts: Vec<u32>,
    /// The oldest and newest time of each series.
    series_times: Vec<(i64, i64)>,
    /// The time of rows `0, TIME_SAMPLE_ROWS, 2 * TIME_SAMPLE_ROWS, …`.
    time_samples: Vec<i64>,
}

impl SeriesIndex {
    /// The index of `batch`, sorted by `sort_key` (tags) then time, as it is written; `None`
    /// when there is no tag to lead, too many series, or too many rows to number in 32 bits.
    pub fn build(batch: &RecordBatch, sort_key: &[String]) -> Result<Option<SeriesIndex>> {
        Self::build_from(batch, sort_key, 0)
    }

    /// [`SeriesIndex::build`] for rows `first_row..` of a file whose earlier rows another
    /// index describes: appended to that one with [`SeriesIndex::extend`], the two make the
    /// index of the whole file.
    pub fn build_from(
        batch: &RecordBatch,
        sort_key: &[String],
        first_row: usize,
    ) -> Result<Option<SeriesIndex>> {
        let rows = batch.num_rows();
        let Some(tag) = sort_key.first() else {
            return Ok(None);
        };
        let (Some(leading), Ok(row_count), Ok(offset)) = (
            batch.column_by_name(tag),
            u32::try_from(first_row + rows),
            u32::try_from(first_row),
        ) else {
            return Ok(None);
        };
        let tags: Vec<ArrayRef> = sort_key
            .iter()
            .filter_map(|t| batch.column_by_name(t).cloned())
            .collect();
        let series = partition(&tags)?.ranges();
        if series.len() > MAX_INDEXED_SERIES {
            return Ok(None);
        }
        let leading = cast(leading, &DataType::Utf8)?;
        let runs = partition(std::slice::from_ref(&leading))?.ranges();
        let strings = leading.as_string::<i32>();
        let mut values: Vec<Option<String>> = Vec::with_capacity(runs.len());
        let mut value_starts = Vec::with_capacity(runs.len() + 1);
        for run in &runs {
            values.push(
                strings
                    .is_valid(run.start)
                    .then(|| strings.value(run.start).to_string()),
            );
            value_starts.push(offset + run.start as u32);
        }
        // Lookups binary-search the values: an order other than the one they are searched
        // in (which the sort should make impossible) means no index rather than a wrong one.
        if !values.windows(2).all(|w| w[0] < w[1]) {
            return Ok(None);
        }
        value_starts.push(row_count);
        let mut series_starts: Vec<u32> = series.iter().map(|r| offset + r.start as u32).collect();
        series_starts.push(row_count);
        let times = crate::persist::times(batch)?;
        let series_times = series
            .iter()
            .map(|r| (times.value(r.start), times.value(r.end - 1)))
            .collect();
        // Samples fall on the file's rows 0, TIME_SAMPLE_ROWS, …, wherever this batch starts.
        let first_sample = (TIME_SAMPLE_ROWS - first_row % TIME_SAMPLE_ROWS) % TIME_SAMPLE_ROWS;
        let time_samples = (first_sample..rows)
            .step_by(TIME_SAMPLE_ROWS)
            .map(|row| times.value(row))
            .collect();
        Ok(Some(SeriesIndex {
            tag: tag.clone(),
            values,
            value_starts,
            series_starts,
            series_times,
            time_samples,
        }))
    }

    /// Appends the index of the rows that follow this one's in the file (built with
    /// [`SeriesIndex::build_from`] at this index's row count). `false`, and this index left
    /// as it was, when `next` does not continue it: another leading tag, values not after
    /// this one's, rows not right after, or too many series in all.
    pub fn extend(&mut self, next: SeriesIndex) -> bool {
        let continues = next.tag == self.tag
            && next.value_starts.first() == self.value_starts.last()
            && match (self.values.last(), next.values.first()) {
                (Some(last), Some(first)) => last < first,
                _ => true,
            }
            && self.series_times.len() + next.series_times.len() <= MAX_INDEXED_SERIES;
        if !continues {
            return false;
        }
        self.values.extend(next.values);
        self.value_starts.pop();
        self.value_starts.extend(next.value_starts);
        self.series_starts.pop();
        self.series_starts.extend(next.series_starts);
        self.series_times.extend(next.series_times);
        self.time_samples.extend(next.time_samples);
        true
    }

    /// The index a file's footer holds (`None`: it has none), checked against the file's
    /// row count.
    pub fn from_footer(metadata: &ParquetMetaData) -> Result<Option<SeriesIndex>> {
        let Some(text) = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == FOOTER_KEY))
            .and_then(|kv| kv.value.as_deref())
        else {
            return Ok(None);
        };
        let index = SeriesIndex::decode(text)?;
        if index.row_count() as i64 != metadata.file_metadata().num_rows() {
            return Err(corrupt(
                "the series index does not count the file's rows".into(),
            ));
        }
        Ok(Some(index))
    }

    /// The number of rows of each value of the leading tag, in file order.
    pub fn value_rows(&self) -> impl Iterator<Item = (Option<&str>, usize)> + '_ {
        self.values.iter().enumerate().map(|(i, v)| {
            (
                v.as_deref(),
                (self.value_starts[i + 1] - self.value_starts[i]) as usize,
            )
        })
    }

    /// The rows holding the leading tag's values in `lo..=hi` (in the values' order, `None`
    /// first): one contiguous range, as the file is sorted by that tag.
    pub fn rows_of_values(&self, lo: Option<&str>, hi: Option<&str>) -> Range<usize> {
        let first = self.values.partition_point(|v| v.as_deref() < lo);
        let end = self.values.partition_point(|v| v.as_deref() <= hi);
        if first >= end {
            let at = self.value_starts[first.min(self.values.len())] as usize;
            return at..at;
        }
        self.value_starts[first] as usize..self.value_starts[end] as usize
    }

    /// The leading tag this index locates.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The file's row count.
    pub fn row_count(&self) -> usize {
        self.series_starts.last().copied().unwrap_or(0) as usize
    }

    /// Bytes this index holds in memory, roughly (for caches).
    pub fn memory_size(&self) -> usize {
        self.values
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.len()) + 24)
            .sum::<usize>()
            + 4 * (self.value_starts.len() + self.series_starts.len())
            + 16 * self.series_times.len()
            + 8 * self.time_samples.len()
            + self.tag.len()
    }

    /// The rows, ascending and disjoint, that can hold the leading tag equal to one of
    /// `values` (any value when `None`) at a time in `min..=max`. A superset: every such
    /// row is in them, with up to [`TIME_SAMPLE_ROWS`] more at either end of each series.
    pub fn rows(&self, values: Option<&[String]>, min: i64, max: i64) -> Vec<Range<usize>> {
        let mut out: Vec<Range<usize>> = Vec::new();
        let mut push = |range: Range<usize>| {
            if range.is_empty() {
                return;
            }
            match out.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => out.push(range),
            }
        };
        let runs: Vec<Range<usize>> = match values {
            None => std::iter::once(0..self.row_count()).collect(),
            Some(wanted) => {
                let mut runs: Vec<Range<usize>> = wanted
                    .iter()
                    .filter_map(|v| {
                        let i = self
                            .values
                            .binary_search_by(|probe| probe.as_deref().cmp(&Some(v.as_str())))
                            .ok()?;
                        Some(self.value_starts[i] as usize..self.value_starts[i + 1] as usize)
                    })
                    .collect();
                runs.sort_by_key(|r| r.start);
                runs.dedup();
                runs
            }
        };
        for run in runs {
            // The series inside this run of the leading tag.
            let first = self
                .series_starts
                .partition_point(|s| (*s as usize) < run.start);
            let mut i = first;
            while i + 1 < self.series_starts.len() && (self.series_starts[i] as usize) < run.end {
                let series = self.series_starts[i] as usize..self.series_starts[i + 1] as usize;
                let (oldest, newest) = self.series_times[i];
                if oldest <= max && newest >= min {
                    push(self.window(series, min, max));
                }
                i += 1;
            }
        }
        out
    }

    /// The oldest and newest time of the rows whose leading tag is `value` (`None`: rows
    /// without it); `None` when the file has no such row.
    pub fn times_of(&self, value: Option<&str>) -> Option<(i64, i64)> {
        let i = self
            .values
            .binary_search_by(|probe| probe.as_deref().cmp(&value))
            .ok()?;
        self.value_times(i)
    }

    /// Each value of the leading tag with the oldest and newest time of its rows.
    pub fn all_value_times(&self) -> impl Iterator<Item = (Option<&str>, (i64, i64))> + '_ {
        (0..self.values.len())
            .filter_map(|i| Some((self.values[i].as_deref(), self.value_times(i)?)))
    }

    /// The time range of the series in the run of `values[i]`.
    fn value_times(&self, i: usize) -> Option<(i64, i64)> {
        let (start, end) = (self.value_starts[i], self.value_starts[i + 1]);
        let first = self.series_starts.partition_point(|s| *s < start);
        let mut range: Option<(i64, i64)> = None;
        let mut series = first;
        while series + 1 < self.series_starts.len() && self.series_starts[series] < end {
            let (oldest, newest) = self.series_times[series];
            range = Some(match range {
                Some((lo, hi)) => (lo.min(oldest), hi.max(newest)),
                None => (oldest, newest),
            });
            series += 1;
        }
        range
    }

    /// The last row of each series, ascending: its newest point (a series' rows are in
    /// time order).
    pub fn last_rows(&self) -> Vec<Range<usize>> {
        self.series_starts
            .windows(2)
            .filter(|w| w[1] > w[0])
            .map(|w| w[1] as usize - 1..w[1] as usize)
            .collect()
    }

    /// The part of `series` (rows in time order) that can hold times in `min..=max`.
    fn window(&self, series: Range<usize>, min: i64, max: i64) -> Range<usize> {
        // Samples inside the series: rows k * TIME_SAMPLE_ROWS for k in `samples`.
        let samples = series.start.div_ceil(TIME_SAMPLE_ROWS)
            ..series
                .end
                .div_ceil(TIME_SAMPLE_ROWS)
                .min(self.time_samples.len());
        let times = &self.time_samples[samples.clone()];
        // Rows up to a sample older than `min` are all older: start after the last one.
        let older = times.partition_point(|t| *t < min);
        let start = match older {
            0 => series.start,
            n => (samples.start + n - 1) * TIME_SAMPLE_ROWS + 1,
        };
        // Rows from a sample newer than `max` on are all newer: end at the first one.
        let not_newer = times.partition_point(|t| *t <= max);
        let end = match samples.start + not_newer {
            k if k < samples.end => k * TIME_SAMPLE_ROWS,
            _ => series.end,
        };
        start..end.max(start)
    }

    /// The index as the footer stores it.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(self.memory_size() + 32);
        out.push(VERSION);
        put_u32(&mut out, TIME_SAMPLE_ROWS as u32);
        put_str(&mut out, &self.tag);
        put_u32(&mut out, self.values.len() as u32);
        for (value, start) in self.values.iter().zip(&self.value_starts) {
            match value {
                Some(v) => {
                    out.push(1);
                    put_str(&mut out, v);
                }
                None => out.push(0),
            }
            put_u32(&mut out, *start);
        }
        put_u32(&mut out, self.series_starts.len() as u32);
        for start in &self.series_starts {
            put_u32(&mut out, *start);
        }
        for (oldest, newest) in &self.series_times {
            out.extend_from_slice(&oldest.to_le_bytes());
            out.extend_from_slice(&newest.to_le_bytes());
        }
        put_u32(&mut out, self.time_samples.len() as u32);
        for time in &self.time_samples {
            out.extend_from_slice(&time.to_le_bytes());
        }
        STANDARD.encode(out)
    }

    /// Reads an index written by [`SeriesIndex::encode`].
    pub fn decode(text: &str) -> Result<SeriesIndex> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|e| corrupt(format!("not base64: {e}")))?;
        let mut reader = Reader { bytes: &bytes };
        let version = reader.u8()?;
        if version != VERSION {
            return Err(corrupt(format!("unknown version {version}")));
        }
        if reader.u32()? as usize != TIME_SAMPLE_ROWS {
            return Err(corrupt("written with another sampling interval".into()));
        }
        let tag = reader.str()?;
        let n = reader.u32()? as usize;
        let mut values = Vec::with_capacity(n.min(MAX_INDEXED_SERIES));
        let mut value_starts = Vec::with_capacity(n.min(MAX_INDEXED_SERIES) + 1);
        for _ in 0..n {
            values.push(match reader.u8()? {
                0 => None,
                _ => Some(reader.str()?),
            });
            value_starts.push(reader.u32()?);
        }
        let n = reader.u32()? as usize;
        let series_starts = (0..n).map(|_| reader.u32()).collect::<Result<Vec<_>>>()?;
        let rows = *series_starts
            .last()
            .ok_or_else(|| corrupt("no series".into()))?;
        let series_times = (1..n)
            .map(|_| Ok((reader.i64()?, reader.i64()?)))
            .collect::<Result<Vec<_>>>()?;
        value_starts.push(rows);
        let n = reader.u32()? as usize;
        let time_samples = (0..n).map(|_| reader.i64()).collect::<Result<Vec<_>>>()?;
        let sorted = |v: &[u32]| v.windows(2).all(|w| w[0] <= w[1]);
        if !reader.bytes.is_empty()
            || !values.windows(2).all(|w| w[0] < w[1])
            || !sorted(&value_starts)
            || !sorted(&series_starts)
            || value_starts.first() != Some(&0)
            || series_starts.first() != Some(&0)
            || time_samples.len() != (rows as usize).div_ceil(TIME_SAMPLE_ROWS)
        {
            return Err(corrupt("inconsistent layout".into()));
        }
        let index = SeriesIndex {
            tag,
            values,
            value_starts,
            series_starts,
            series_times,
            time_samples,
        };
        // Lookups rely on each series' samples being in time order between its oldest and
        // newest time: an index that says otherwise is not used.
        let in_order = index.series_starts.windows(2).zip(&index.series_times).all(
            |(rows, &(oldest, newest))| {
                let samples = (rows[0] as usize).div_ceil(TIME_SAMPLE_ROWS)
                    ..(rows[1] as usize).div_ceil(TIME_SAMPLE_ROWS);
                let times = &index.time_samples[samples];
                oldest <= newest
                    && times.windows(2).all(|w| w[0] <= w[1])
                    && times.iter().all(|t| (oldest..=newest).contains(t))
            },
        );
        if !in_order {
            return Err(corrupt("times out of order".into()));
        }
        Ok(index)
    }
}

fn corrupt(why: String) -> StorageError {
    StorageError::Arrow(format!("a file's series index is unreadable: {why}"))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// Reads the encoding front to back; every read checks the length left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.bytes.len() < n {
            return Err(corrupt("truncated".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn i64(&mut self) -> Result<i64> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }

    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| corrupt("a value is not UTF-8".into()))
    }
}

/// Bytes of layouts the engine keeps before it forgets the oldest.
pub const LAYOUT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What a reader needs to know of a Parquet file before opening it: its series index (if
/// it has one) and the Arrow schema its footer describes. With the schema at hand the
/// reader skips decoding the schema embedded in the footer, which DataFusion does on every
/// open of a file otherwise.
#[derive(Debug, Clone)]
pub struct FileLayout {
    pub index: Option<Arc<SeriesIndex>>,
    /// The file's columns as the Parquet reader reads them (without schema metadata).
    pub schema: SchemaRef,
}

impl FileLayout {
    /// The layout of a file from its footer: `index` as found there, and the schema
    /// exactly as the reader derives it from `metadata`.
    pub fn from_footer(
        index: Option<Arc<SeriesIndex>>,
        metadata: Arc<ParquetMetaData>,
    ) -> Result<FileLayout> {
        let reader = ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new())?;
        Ok(FileLayout {
            index,
            schema: Arc::new(Schema::new(reader.schema().fields().clone())),
        })
    }

    /// Bytes it holds in memory, roughly (for the engine's cache).
    pub fn memory_size(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.memory_size()) + 128 * self.schema.fields().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::sort_and_merge_by;
    use datafusion::arrow::array::{DictionaryArray, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::{Field, Int32Type, TimeUnit};

    /// A small deterministic generator (no dependency for a test's randomness).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// `rows` points of hosts h0..h9 (some without a host) and cpus c0..c2 at random
    /// times, sorted as a file is: by host, cpu, time.
    fn sorted_batch(rows: usize, seed: u64) -> RecordBatch {
        let mut rng = Lcg(seed);
        let mut times = Vec::new();
        let mut hosts = Vec::new();
        let mut cpus = Vec::new();
        for _ in 0..rows {
            times.push(rng.next(1_000_000) as i64);
            hosts.push(match rng.next(11) {
                10 => None,
                h => Some(format!("h{h}")),
            });
            cpus.push(Some(format!("c{}", rng.next(3))));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new(
                "host",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new(
                "cpu",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]));
        let dict = |v: Vec<Option<String>>| -> ArrayRef {
            Arc::new(
                v.iter()
                    .map(|s| s.as_deref())
                    .collect::<DictionaryArray<Int32Type>>(),
            )
        };
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(times)),
                dict(hosts),
                dict(cpus),
            ],
        )
        .expect("batch");
        sort_and_merge_by(&batch, &key()).expect("sorted")
    }

    fn key() -> Vec<String> {
        vec!["host".to_string(), "cpu".to_string()]
    }

    #[test]
    fn every_matching_row_is_selected_and_little_else() {
        let batch = sorted_batch(20_000, 7);
        let index = SeriesIndex::build(&batch, &key())
            .expect("built")
            .expect("indexed");
        let times = crate::persist::times(&batch).expect("times");
        let hosts = cast(batch.column(1), &DataType::Utf8).expect("cast");
        let hosts = hosts.as_string::<i32>();
        let mut rng = Lcg(11);
        for _ in 0..300 {
            let values: Option<Vec<String>> = match rng.next(4) {
                0 => None,
                n => Some((0..n).map(|_| format!("h{}", rng.next(12))).collect()),
            };
            let a = rng.next(1_100_000) as i64 - 50_000;
            let b = a + rng.next(400_000) as i64;
            let ranges = index.rows(values.as_deref(), a, b);
            assert!(
                ranges.windows(2).all(|w| w[0].end < w[1].start),
                "{ranges:?}"
            );
            let selected = |row: usize| ranges.iter().any(|r| r.contains(&row));
            let mut matching = 0;
            for row in 0..batch.num_rows() {
                let host_ok = match &values {
                    None => true,
                    Some(v) => hosts.is_valid(row) && v.iter().any(|h| h == hosts.value(row)),
                };
                let t = times.value(row);
                if host_ok && t >= a && t <= b {
                    matching += 1;
                    assert!(selected(row), "row {row} matches {values:?} {a}..={b}");
                }
            }
            // At most one sampling interval more at each end of each of the 33 series.
            let total: usize = ranges.iter().map(|r| r.len()).sum();
            assert!(
                total <= matching + 33 * 2 * TIME_SAMPLE_ROWS,
                "{total} for {matching}"
            );
        }
        // An unknown value selects nothing; a window before every row, nothing.
        assert!(
            index
                .rows(Some(&["zz".to_string()]), 0, i64::MAX)
                .is_empty()
        );
        assert!(index.rows(None, -10, -1).is_empty());
    }

    #[test]
    fn time_ranges_per_leading_value_agree_with_the_rows() {
        let batch = sorted_batch(5_000, 13);
        let index = SeriesIndex::build(&batch, &key())
            .expect("built")
            .expect("indexed");
        let expected = crate::tag_times::TagTimes::of_batch(&batch, "host").expect("times");
        let listed: Vec<_> = index.all_value_times().collect();
        assert_eq!(listed.len(), expected.times.len());
        for (value, range) in listed {
            assert_eq!(
                expected.times[&value.map(str::to_string)],
                range,
                "{value:?}"
            );
            assert_eq!(index.times_of(value), Some(range));
        }
        assert_eq!(index.times_of(Some("zz")), None);
    }

    #[test]
    fn the_index_reads_back_as_written_and_damage_is_an_error() {
        let batch = sorted_batch(3_000, 3);
        let index = SeriesIndex::build(&batch, &key())
            .expect("built")
            .expect("indexed");
        assert_eq!(index.tag(), "host");
        let text = index.encode();
        assert_eq!(SeriesIndex::decode(&text).expect("decoded"), index);
        let mut bytes = STANDARD.decode(&text).expect("base64");
        bytes.truncate(bytes.len() - 3);
        let err = SeriesIndex::decode(&STANDARD.encode(&bytes)).expect_err("truncated");
        assert!(err.to_string().contains("series index"), "{err}");
        assert!(SeriesIndex::decode("not base64!").is_err());
        // Well-formed but out of time order: refused rather than trusted.
        let mut shuffled = index.clone();
        shuffled.time_samples[1] = i64::MIN;
        let err = SeriesIndex::decode(&shuffled.encode()).expect_err("out of order");
        assert!(err.to_string().contains("out of order"), "{err}");
        // A file without tags has nothing to index.
        assert_eq!(SeriesIndex::build(&batch, &[]).expect("built"), None);
    }

    #[test]
    fn a_written_file_carries_its_index_and_the_schema_a_reader_derives() {
        let batch = sorted_batch(2_000, 5);
        let file = crate::persist::encode_file(0, &batch, &key()).expect("encoded");
        let bytes = bytes::Bytes::from(file.bytes);
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes,
            )
            .expect("readable");
        let derived = Schema::new(reader.schema().fields().clone());
        assert_eq!(file.layout.schema.as_ref(), &derived);
        let footer = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == FOOTER_KEY))
            .and_then(|kv| kv.value.clone())
            .expect("index in the footer");
        let index = file.layout.index.expect("indexed");
        assert_eq!(SeriesIndex::decode(&footer).expect("decoded"), *index);
        assert_eq!(index.row_count(), batch.num_rows());
    }
}
