//! Turns buffered batches into Parquet files: split by time partition (UTC day), sort by
//! tags then time, merge rows of the same series and time, encode.
//!
//! Merging follows line-protocol semantics: writing a point again merges its fields and
//! the last write wins per field, so for each (tags, time) the merged row takes, for every
//! field, the last non-null value in write order.

use chronosdb_catalog::{TIME_COLUMN, TableSchema};
use datafusion::arrow::array::{
    Array, ArrayRef, RecordBatch, TimestampNanosecondArray, UInt32Array,
};
use std::collections::HashSet;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::{cast, concat_batches, partition, take};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter, RowSelection,
};
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::metadata::{KeyValue, ParquetMetaData, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::buffer::align_batch;
use crate::error::{Result, StorageError};
use crate::series_index::{FileLayout, SeriesIndex};
use std::sync::Arc;

/// Nanoseconds in a day: the width of a time partition.
pub const PARTITION_NANOS: i64 = 86_400_000_000_000;
/// Rows per Parquet row group: small enough to prune, large enough to scan fast.
const ROW_GROUP_ROWS: usize = 256 * 1024;
/// Rows per data page. Page statistics let a query skip pages, so a page should not hold
/// much more than one series' stretch of time: 4Ki rows is 11 hours of one series at
/// 10-second resolution. It costs about 12 % in file size over the default of 20Ki (more
/// page headers and statistics) for several times fewer rows read by a one-series query.
const PAGE_ROWS: usize = 4 * 1024;

/// Start of the partition holding `time`.
pub fn partition_start(time: i64) -> i64 {
    time.div_euclid(PARTITION_NANOS) * PARTITION_NANOS
}

/// Concatenates `batches` (oldest first) and hands `emit` one sorted, merged batch per
/// partition, in partition order, with the sort key it is sorted by. Partitions are made one at a time and each is dropped
/// before the next is built, so persisting needs little memory beyond the data itself.
pub fn for_each_partition(
    batches: &[RecordBatch],
    schema: &TableSchema,
    mut emit: impl FnMut(i64, RecordBatch, &[String]) -> Result<()>,
) -> Result<()> {
    let arrow_schema = schema.arrow_schema();
    let aligned = batches
        .iter()
        .map(|b| align_batch(b, &arrow_schema))
        .collect::<Result<Vec<_>>>()?;
    let all = concat_batches(&arrow_schema, &aligned)?;
    drop(aligned);
    if all.num_rows() == 0 {
        return Ok(());
    }
    for (start, rows) in partition_rows(&all)? {
        let partition = match rows {
            None => all.clone(),
            Some(rows) => take_rows(&all, &UInt32Array::from(rows))?,
        };
        let key = sort_key(&partition, schema);
        let sorted = sort_and_merge_by(&partition, &key)?;
        drop(partition);
        emit(start, sorted, &key)?;
    }
    Ok(())
}

pub(crate) fn times(batch: &RecordBatch) -> Result<&TimestampNanosecondArray> {
    // Column 0 is `time` in every table schema (TableSchema puts it first).
    batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| {
            StorageError::Arrow("column 0 of a table batch is not the time column".into())
        })
}

/// The rows of each partition in `batch`; `None` when every row is in one partition.
fn partition_rows(batch: &RecordBatch) -> Result<Vec<(i64, Option<Vec<u32>>)>> {
    let times = times(batch)?;
    let first = partition_start(times.value(0));
    if times.values().iter().all(|t| partition_start(*t) == first) {
        return Ok(vec![(first, None)]);
    }
    let mut groups: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, t) in times.values().iter().enumerate() {
        groups
            .entry(partition_start(*t))
            .or_default()
            .push(i as u32);
    }
    Ok(groups
        .into_iter()
        .map(|(start, rows)| (start, Some(rows)))
        .collect())
}

fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Rows sampled to estimate a tag's cardinality.
const CARDINALITY_SAMPLE_ROWS: usize = 64 * 1024;

/// The tags a file is sorted by (then `time`): the most distinct first, ties by name.
///
/// Leading with the tag that has the most values (typically the host or device id) keeps
/// each of its values in one contiguous run, so a data page's min/max statistics for that
/// tag span one or two values and a query for one series skips almost every page. Every
/// series stays contiguous whatever the order, so the other tags compress the same. The
/// cardinality is estimated on the first rows, which is cheap and good enough for order.
pub fn sort_key(batch: &RecordBatch, schema: &TableSchema) -> Vec<String> {
    let sample = batch.slice(0, batch.num_rows().min(CARDINALITY_SAMPLE_ROWS));
    let mut tags: Vec<(usize, &str)> = schema
        .sorted_tag_names()
        .into_iter()
        .map(|tag| {
            let distinct = sample
                .column_by_name(tag)
                .and_then(|c| cast(c, &DataType::Utf8).ok())
                .map(|c| {
                    let values = c.as_string::<i32>();
                    values.iter().collect::<HashSet<_>>().len()
                })
                .unwrap_or(0);
            (distinct, tag)
        })
        .collect();
    tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    tags.into_iter().map(|(_, tag)| tag.to_string()).collect()
}

/// Sorts by (tags, time) and merges duplicate (tags, time) rows.
pub fn sort_and_merge(batch: &RecordBatch, schema: &TableSchema) -> Result<RecordBatch> {
    sort_and_merge_by(batch, &sort_key(batch, schema))
}

/// Sorts by (the tags of `key`, time) and merges duplicate (tags, time) rows: each field
/// keeps its last non-NULL value in write order.
pub fn sort_and_merge_by(batch: &RecordBatch, key: &[String]) -> Result<RecordBatch> {
    let arrow_schema = batch.schema();
    let mut key_columns: Vec<ArrayRef> = Vec::new();
    let mut key_fields = Vec::new();
    for tag in key {
        let i = arrow_schema.index_of(tag)?;
        key_columns.push(batch.column(i).clone());
        key_fields.push(SortField::new(batch.column(i).data_type().clone()));
    }
    key_columns.push(batch.column(0).clone());
    key_fields.push(SortField::new(batch.column(0).data_type().clone()));
    let converter = RowConverter::new(key_fields)?;
    let rows = converter.convert_columns(&key_columns)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    // Stable: rows with equal keys stay in write order, which the merge relies on.
    order.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));

    // Runs of equal keys, as [start, end) ranges into `order`.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut has_duplicates = false;
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || rows.row(order[i] as usize) != rows.row(order[start] as usize) {
            has_duplicates |= i - start > 1;
            runs.push((start, i));
            start = i;
        }
    }
    if !has_duplicates {
        return take_rows(batch, &UInt32Array::from(order));
    }
    let tag_or_time: Vec<bool> = arrow_schema
        .fields()
        .iter()
        .map(|f| {
            f.name() == chronosdb_catalog::TIME_COLUMN
                || matches!(f.data_type(), DataType::Dictionary(_, _))
        })
        .collect();
    let first_of_run = UInt32Array::from(runs.iter().map(|(s, _)| order[*s]).collect::<Vec<_>>());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (ci, column) in batch.columns().iter().enumerate() {
        let indices = if tag_or_time[ci] {
            first_of_run.clone()
        } else {
            UInt32Array::from(
                runs.iter()
                    .map(|(s, e)| {
                        (*s..*e)
                            .rev()
                            .map(|k| order[k])
                            .find(|row| column.is_valid(*row as usize))
                            .unwrap_or(order[*e - 1])
                    })
                    .collect::<Vec<_>>(),
            )
        };
        columns.push(take(column.as_ref(), &indices, None)?);
    }
    Ok(RecordBatch::try_new(arrow_schema, columns)?)
}

/// Writer settings: LZ4, byte-stream-split floats, delta-encoded time, small pages with
/// statistics, and the sort order recorded so readers can rely on it.
///
/// LZ4 rather than zstd: the encodings do most of the compressing (zstd level 3 made the
/// TSBS files only 4 % smaller, full-precision floats 6 %), while reading a zstd column
/// chunk makes a zstd compression and decompression context, which cost a one-series
/// query about a tenth of its server time (see `docs/benchmarks.md`). Files written with
/// zstd before stay readable: the codec is recorded per column chunk.
fn writer_properties(
    schema: &SchemaRef,
    sort_key: &[String],
    index: Option<&SeriesIndex>,
) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_key_value_metadata(index.map(|index| {
            vec![KeyValue::new(
                crate::series_index::FOOTER_KEY.to_string(),
                index.encode(),
            )]
        }))
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page);
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        builder = match field.data_type() {
            DataType::Float64 => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT),
            DataType::Timestamp(_, _) | DataType::Int64 | DataType::UInt64 => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
            _ => builder,
        };
    }
    let mut sorting = Vec::new();
    for tag in sort_key {
        if let Ok(i) = schema.index_of(tag) {
            sorting.push(SortingColumn {
                column_idx: i as i32,
                descending: false,
                nulls_first: true,
            });
        }
    }
    sorting.push(SortingColumn {
        column_idx: 0,
        descending: false,
        nulls_first: true,
    });
    builder.set_sorting_columns(Some(sorting)).build()
}

/// The newest row of each series of a batch sorted by series then time: the last row of
/// each run of equal `tags` (in any order: a series is contiguous whatever the sort key).
pub fn newest_per_series(batch: &RecordBatch, tags: &[String]) -> Result<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = tags
        .iter()
        .filter_map(|t| batch.column_by_name(t).cloned())
        .collect();
    if columns.is_empty() {
        return Ok(batch.slice(batch.num_rows() - 1, 1));
    }
    let ends: Vec<u32> = partition(&columns)?
        .ranges()
        .into_iter()
        .map(|r| r.end.saturating_sub(1) as u32)
        .collect();
    take_rows(batch, &UInt32Array::from(ends))
}

/// Encodes one batch sorted by `sort_key` (then time) as a Parquet file in memory.
/// A batch of one partition encoded as Parquet, with what the catalog and the last-point
/// cache need to know of it: what persisting, deletes and compaction hand the engine to
/// store (`Engine::store_files`).
pub struct EncodedFile {
    pub partition_start: i64,
    pub bytes: Vec<u8>,
    /// The newest row of each series.
    pub newest: RecordBatch,
    /// Where each series is in the file (also in its footer) and its schema.
    pub layout: FileLayout,
    pub min_time: i64,
    pub max_time: i64,
    pub rows: u64,
}

/// Encodes `batch` (sorted by `sort_key`, of the partition starting at `partition_start`).
pub fn encode_file(
    partition_start: i64,
    batch: &RecordBatch,
    sort_key: &[String],
) -> Result<EncodedFile> {
    let (min_time, max_time) = crate::buffer::time_range(batch)
        .ok_or_else(|| StorageError::Arrow("a batch to persist has no time values".into()))?;
    let index = SeriesIndex::build(batch, sort_key)?;
    let (bytes, metadata) = write_parquet(batch, sort_key, index.as_ref())?;
    Ok(EncodedFile {
        partition_start,
        bytes,
        newest: newest_per_series(batch, sort_key)?,
        layout: FileLayout::from_footer(index.map(Arc::new), Arc::new(metadata))?,
        min_time,
        max_time,
        rows: batch.num_rows() as u64,
    })
}

/// Writes batches that follow one another in one sort key's order (each sorted by it, the
/// leading tag's values of each after those of the one before) as one Parquet file with its
/// series index: how a merge in key slices writes its output without holding it decoded
/// whole. A batch that does not continue the index leaves the file without one.
pub struct FileWriter {
    partition_start: i64,
    schema: SchemaRef,
    sort_key: Vec<String>,
    writer: ArrowWriter<Vec<u8>>,
    index: Option<SeriesIndex>,
    indexed: bool,
    newest: Vec<RecordBatch>,
    times: Option<(i64, i64)>,
    rows: u64,
}

impl FileWriter {
    /// A file of the partition starting at `partition_start`, of batches of `schema`.
    pub fn new(partition_start: i64, schema: &SchemaRef, sort_key: &[String]) -> Result<Self> {
        let props = writer_properties(schema, sort_key, None);
        Ok(FileWriter {
            partition_start,
            schema: schema.clone(),
            sort_key: sort_key.to_vec(),
            writer: ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?,
            index: None,
            indexed: true,
            newest: Vec::new(),
            times: None,
            rows: 0,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends `batch`, sorted by the sort key and after everything written before.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some((lo, hi)) = crate::buffer::time_range(batch) else {
            return Ok(());
        };
        if self.indexed {
            let next = SeriesIndex::build_from(batch, &self.sort_key, self.rows as usize)?;
            self.indexed = match (self.index.as_mut(), next) {
                (None, Some(next)) if self.rows == 0 => {
                    self.index = Some(next);
                    true
                }
                (Some(index), Some(next)) => index.extend(next),
                _ => false,
            };
            if !self.indexed {
                self.index = None;
            }
        }
        self.newest.push(newest_per_series(batch, &self.sort_key)?);
        self.writer.write(batch)?;
        self.times = Some(match self.times {
            Some((min, max)) => (min.min(lo), max.max(hi)),
            None => (lo, hi),
        });
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer; `None` when no row was written.
    pub fn finish(mut self) -> Result<Option<EncodedFile>> {
        let Some((min_time, max_time)) = self.times else {
            return Ok(None);
        };
        if let Some(index) = &self.index {
            self.writer.append_key_value_metadata(KeyValue::new(
                crate::series_index::FOOTER_KEY.to_string(),
                index.encode(),
            ));
        }
        let metadata = self.writer.finish()?;
        let bytes = std::mem::take(self.writer.inner_mut());
        let newest = concat_batches(&self.schema, &self.newest)?;
        Ok(Some(EncodedFile {
            partition_start: self.partition_start,
            bytes,
            newest,
            layout: FileLayout::from_footer(self.index.map(Arc::new), Arc::new(metadata))?,
            min_time,
            max_time,
            rows: self.rows,
        }))
    }
}

/// Rows `rows` of a Parquet file, aligned to `schema` as [`decode_aligned`] does; only the
/// pages holding them are decoded.
pub fn decode_aligned_rows(
    bytes: bytes::Bytes,
    schema: &SchemaRef,
    rows: std::ops::Range<usize>,
) -> Result<RecordBatch> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let total = builder.metadata().file_metadata().num_rows() as usize;
    let selection = RowSelection::from_consecutive_ranges(std::iter::once(rows), total);
    let mut batches = Vec::new();
    for batch in builder.with_row_selection(selection).build()? {
        batches.push(align_batch(&batch?, schema)?);
    }
    Ok(concat_batches(schema, &batches)?)
}

/// The rows of a Parquet file, aligned to `schema` (the table's current schema: columns
/// added since the file was written read as nulls), as one batch.
pub fn decode_aligned(bytes: bytes::Bytes, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
        batches.push(align_batch(&batch?, schema)?);
    }
    Ok(concat_batches(schema, &batches)?)
}

/// The rows of a Parquet file with a time in `lo..hi` (`lo..` when `hi` is `i64::MAX`),
/// aligned to `schema` as [`decode_aligned`] does. Only the `time` column is decoded for
/// the rows outside.
pub fn decode_aligned_between(
    bytes: bytes::Bytes,
    schema: &SchemaRef,
    lo: i64,
    hi: i64,
) -> Result<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let time_only = ProjectionMask::columns(builder.parquet_schema(), [TIME_COLUMN]);
    let in_range = ArrowPredicateFn::new(time_only, move |batch: RecordBatch| {
        let times = batch
            .column(0)
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| ArrowError::SchemaError("time is not a nanosecond timestamp".into()))?;
        Ok(times
            .values()
            .iter()
            .map(|t| Some(*t >= lo && (*t < hi || hi == i64::MAX)))
            .collect())
    });
    let reader = builder
        .with_row_filter(RowFilter::new(vec![Box::new(in_range)]))
        .build()?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(align_batch(&batch?, schema)?);
    }
    Ok(concat_batches(schema, &batches)?)
}

/// The `time` values of a Parquet file, batch by batch, without decoding other columns
/// (`time` alone is column 0 then, as [`times`] expects).
pub fn for_each_time_batch(bytes: bytes::Bytes, mut f: impl FnMut(&[i64])) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let time_only = ProjectionMask::columns(builder.parquet_schema(), [TIME_COLUMN]);
    for batch in builder.with_projection(time_only).build()? {
        f(times(&batch?)?.values());
    }
    Ok(())
}

/// Encodes `batch` (sorted by `sort_key`, then time) with its series index in the footer.
pub fn encode_parquet(
    batch: &RecordBatch,
    sort_key: &[String],
    index: Option<&SeriesIndex>,
) -> Result<Vec<u8>> {
    Ok(write_parquet(batch, sort_key, index)?.0)
}

/// [`encode_parquet`], and the footer written.
fn write_parquet(
    batch: &RecordBatch,
    sort_key: &[String],
    index: Option<&SeriesIndex>,
) -> Result<(Vec<u8>, ParquetMetaData)> {
    let schema = batch.schema();
    let props = writer_properties(&schema, sort_key, index);
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(batch)?;
    let metadata = writer.close()?;
    Ok((out, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronosdb_catalog::{Catalog, Column, FieldType};
    use chronosdb_line_protocol::Precision;
    use datafusion::arrow::array::Float64Array;

    #[test]
    fn sorts_merges_and_partitions() {
        let catalog = Catalog::default();
        let day = PARTITION_NANOS;
        let body = format!(
            "cpu,host=b a=1 {t1}\ncpu,host=a a=2 {t1}\ncpu,host=a b=3 {t1}\ncpu,host=a a=4 {t1}\ncpu,host=a a=5 {t2}",
            t1 = 10,
            t2 = day + 10
        );
        let w = crate::write_batch::prepare_write(
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
        assert_eq!(
            schema.columns().len(),
            TableSchema::from(vec![
                Column::tag("host"),
                Column::field("a", FieldType::Float),
                Column::field("b", FieldType::Float)
            ])
            .columns()
            .len()
        );
        let batches: Vec<_> = w.batches.into_iter().map(|b| b.batch).collect();
        let mut parts = Vec::new();
        for_each_partition(&batches, &schema, |start, batch, key| {
            assert_eq!(key, ["host"]);
            parts.push((start, batch));
            Ok(())
        })
        .expect("partitions");
        assert_eq!(parts.len(), 2);
        let (start, first) = &parts[0];
        assert_eq!(*start, 0);
        // host=a merged into one row (a=4 wins, b=3 kept), then host=b.
        assert_eq!(first.num_rows(), 2);
        let a = first
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("a");
        let b = first
            .column(3)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("b");
        assert_eq!((a.value(0), b.value(0)), (4.0, 3.0));
        assert_eq!(a.value(1), 1.0);
        assert!(b.is_null(1));
        let bytes = encode_parquet(first, &["host".to_string()], None).expect("parquet");
        assert!(bytes.starts_with(b"PAR1"));
    }

    #[test]
    fn the_tag_with_most_values_leads_the_sort_key() {
        let catalog = Catalog::default();
        let body = "m,a_region=eu,z_host=h1 v=1 1\nm,a_region=eu,z_host=h2 v=1 1\nm,a_region=us,z_host=h3 v=1 1";
        let w = crate::write_batch::prepare_write(
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
            .table("db", "m")
            .expect("table")
            .schema
            .clone();
        assert_eq!(
            sort_key(&w.batches[0].batch, &schema),
            ["z_host", "a_region"]
        );
    }
}
