//! The in-memory write buffer: Arrow batches per table, queryable the moment a write is
//! acknowledged, until the persister has moved them into Parquet.
//!
//! Data lives in generations. New writes go to the active generation; the persister
//! freezes it (at the same instant the WAL rotates to a new segment) and writes the frozen
//! generation to Parquet while new writes fill a fresh one. A frozen generation stays
//! visible to queries until the catalog lists its files, so no point is ever invisible.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, BooleanArray, StringArray, TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::kernels::boolean::and_kleene;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::tag_rows::TagRowsCache;
use crate::tag_times::{TagTimes, TagTimesCache};
use crate::write_batch::TableBatch;

/// Small batches are merged once a table has this many of them.
const MAX_SMALL_BATCHES: usize = 32;
/// Batches with fewer rows than this count as small.
const SMALL_BATCH_ROWS: usize = 8192;

/// (database, table)
pub type TableKey = (String, String);

/// Passes already-mixed 64-bit hashes through unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The buffered batches of one table in one generation.
#[derive(Debug, Default, Clone)]
pub struct TableBuffer {
    pub batches: Vec<RecordBatch>,
    /// The batches' time ranges per tag value, once a query asked (see `tag_times`).
    tag_times: TagTimesCache,
    /// Where the rows of each tag value are, once a query filtered on it (see `tag_rows`).
    tag_rows: TagRowsCache,
    /// Hashes of every buffered (series, time) key, to notice a point written twice.
    keys: HashSet<u64, BuildHasherDefault<KeyHasher>>,
    /// True once some key was seen twice (or two keys collided): queries must then merge
    /// the buffer; otherwise its rows are unique and are scanned as they are.
    pub may_have_duplicates: bool,
    pub rows: usize,
    pub bytes: usize,
    pub min_time: i64,
    pub max_time: i64,
}

impl TableBuffer {
    fn push(&mut self, batch: RecordBatch, row_keys: &[u64]) -> Result<()> {
        self.keys.reserve(row_keys.len());
        for key in row_keys {
            if !self.keys.insert(*key) {
                self.may_have_duplicates = true;
            }
        }
        if let Some((lo, hi)) = time_range(&batch) {
            if self.rows == 0 {
                (self.min_time, self.max_time) = (lo, hi);
            } else {
                self.min_time = self.min_time.min(lo);
                self.max_time = self.max_time.max(hi);
            }
        }
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        self.merge_small_batches()
    }

    /// Keeps the batch count low for tables fed by many small writes.
    fn merge_small_batches(&mut self) -> Result<()> {
        let first_small = self
            .batches
            .iter()
            .rposition(|b| b.num_rows() >= SMALL_BATCH_ROWS)
            .map_or(0, |i| i + 1);
        if self.batches.len() - first_small < MAX_SMALL_BATCHES {
            return Ok(());
        }
        let small: Vec<RecordBatch> = self.batches.drain(first_small..).collect();
        let schema = small
            .last()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        let aligned = small
            .iter()
            .map(|b| align_batch(b, &schema))
            .collect::<Result<Vec<_>>>()?;
        let merged = concat_batches(&schema, &aligned)?;
        self.bytes = self.bytes.saturating_sub(
            small
                .iter()
                .map(|b| b.get_array_memory_size())
                .sum::<usize>(),
        ) + merged.get_array_memory_size();
        self.batches.push(merged);
        Ok(())
    }
}

/// A set of buffered writes that is persisted as a unit.
#[derive(Debug, Default)]
pub struct Generation {
    pub tables: HashMap<TableKey, TableBuffer>,
    pub bytes: usize,
    /// Highest WAL sequence applied to this generation.
    pub max_sequence: u64,
    /// When the first write entered this generation.
    pub first_write: Option<std::time::Instant>,
    /// When the latest write entered it.
    pub last_write: Option<std::time::Instant>,
}

impl Generation {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    fn remove_database(&mut self, database: &str) {
        self.tables.retain(|(db, _), _| db != database);
        self.bytes = self.tables.values().map(|t| t.bytes).sum();
    }

    fn remove_table(&mut self, database: &str, table: &str) {
        self.tables
            .retain(|(db, t), _| db != database || t != table);
        self.bytes = self.tables.values().map(|t| t.bytes).sum();
    }
}

/// The buffer: one active generation and the frozen ones being persisted.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    active: Generation,
    persisting: Vec<(u64, Arc<Generation>)>,
    next_generation_id: u64,
}

impl WriteBuffer {
    /// Applies the batches of one WAL record.
    pub fn apply(&mut self, database: &str, batches: Vec<TableBatch>, sequence: u64) -> Result<()> {
        let generation = &mut self.active;
        let now = std::time::Instant::now();
        generation.first_write.get_or_insert(now);
        generation.last_write = Some(now);
        generation.max_sequence = generation.max_sequence.max(sequence);
        for TableBatch {
            table,
            batch,
            row_keys,
        } in batches
        {
            let entry = generation
                .tables
                .entry((database.to_string(), table))
                .or_default();
            let before = entry.bytes;
            entry.push(batch, &row_keys)?;
            generation.bytes = generation.bytes + entry.bytes - before;
        }
        Ok(())
    }

    pub fn active_bytes(&self) -> usize {
        self.active.bytes
    }

    pub fn total_bytes(&self) -> usize {
        self.active.bytes + self.persisting.iter().map(|(_, g)| g.bytes).sum::<usize>()
    }

    pub fn active_age(&self) -> Option<std::time::Duration> {
        self.active.first_write.map(|t| t.elapsed())
    }

    /// How long the active generation has gone without a write (`None` when empty).
    pub fn active_idle(&self) -> Option<std::time::Duration> {
        self.active.last_write.map(|t| t.elapsed())
    }

    /// Freezes the active generation for persisting; returns its id and contents.
    pub fn freeze(&mut self) -> (u64, Arc<Generation>) {
        let generation = Arc::new(std::mem::take(&mut self.active));
        let id = self.next_generation_id;
        self.next_generation_id += 1;
        self.persisting.push((id, generation.clone()));
        (id, generation)
    }

    /// Highest WAL sequence applied to the buffer.
    pub fn max_sequence(&self) -> u64 {
        self.persisting
            .iter()
            .map(|(_, g)| g.max_sequence)
            .fold(self.active.max_sequence, u64::max)
    }

    /// Forgets every buffered row of `database` (it was dropped). A frozen generation
    /// someone else still holds keeps its rows; the persister skips tables the catalog
    /// no longer has.
    pub fn remove_database(&mut self, database: &str) {
        self.active.remove_database(database);
        for (_, generation) in &mut self.persisting {
            if let Some(generation) = Arc::get_mut(generation) {
                generation.remove_database(database);
            }
        }
    }

    /// Discards the buffered rows of one table (it was dropped).
    pub fn remove_table(&mut self, database: &str, table: &str) {
        self.active.remove_table(database, table);
        for (_, generation) in &mut self.persisting {
            if let Some(generation) = Arc::get_mut(generation) {
                generation.remove_table(database, table);
            }
        }
    }

    /// A frozen generation by id.
    pub fn frozen(&self, id: u64) -> Option<Arc<Generation>> {
        self.persisting
            .iter()
            .find(|(g, _)| *g == id)
            .map(|(_, generation)| generation.clone())
    }

    /// Drops a frozen generation once its data is in the catalog's files.
    pub fn release(&mut self, id: u64) {
        self.persisting.retain(|(g, _)| *g != id);
    }

    /// Every generation, oldest first: those being persisted, then the active one.
    fn generations(&self) -> impl Iterator<Item = &Generation> {
        self.persisting
            .iter()
            .map(|(_, g)| g.as_ref())
            .chain(std::iter::once(&self.active))
    }

    /// The buffered batches of a table, oldest first, aligned to `schema`, and whether
    /// they may hold a point twice (always assumed while a generation is being persisted,
    /// since key sets are per generation).
    pub fn table_batches(
        &self,
        database: &str,
        table: &str,
        schema: &SchemaRef,
    ) -> Result<(Vec<RecordBatch>, bool)> {
        self.table_rows(database, table, schema, None)
    }

    /// [`WriteBuffer::table_batches`], narrowed to the rows whose tag is one of some
    /// values when `only` names the tag and the values: through each table buffer's
    /// index of that tag, so the work follows the rows taken.
    pub fn table_rows(
        &self,
        database: &str,
        table: &str,
        schema: &SchemaRef,
        only: Option<(&str, &[String])>,
    ) -> Result<(Vec<RecordBatch>, bool)> {
        let key = (database.to_string(), table.to_string());
        let mut out = Vec::new();
        let mut generations_with_rows = 0;
        let mut may_have_duplicates = false;
        for generation in self.generations() {
            if let Some(buffer) = generation.tables.get(&key) {
                generations_with_rows += 1;
                may_have_duplicates |= buffer.may_have_duplicates;
                let narrowed;
                let batches = match only {
                    Some((tag, values)) => {
                        narrowed = buffer.tag_rows.select(&buffer.batches, tag, values)?;
                        &narrowed
                    }
                    None => &buffer.batches,
                };
                for batch in batches {
                    out.push(align_batch(batch, schema)?);
                }
            }
        }
        Ok((out, may_have_duplicates || generations_with_rows > 1))
    }

    /// The time ranges per value of `tag` of a table's buffered rows (`None` when there
    /// are none), each row's folded in once while it is buffered.
    pub fn table_tag_times(
        &self,
        database: &str,
        table: &str,
        tag: &str,
    ) -> Result<Option<Arc<TagTimes>>> {
        let key = (database.to_string(), table.to_string());
        let mut out: Option<Arc<TagTimes>> = None;
        for buffer in self.generations().filter_map(|g| g.tables.get(&key)) {
            let times = buffer.tag_times.get(&buffer.batches, tag)?;
            match &mut out {
                Some(out) => Arc::make_mut(out).extend(&times),
                None => out = Some(times),
            }
        }
        Ok(out)
    }

    /// Rows buffered for a table and their time range (`None` when there are none),
    /// from counters: no batch is read.
    pub fn table_extent(&self, database: &str, table: &str) -> Option<(usize, i64, i64)> {
        let key = (database.to_string(), table.to_string());
        self.generations()
            .filter_map(|g| g.tables.get(&key))
            .map(|b| (b.rows, b.min_time, b.max_time))
            .reduce(|(r1, lo1, hi1), (r2, lo2, hi2)| (r1 + r2, lo1.min(lo2), hi1.max(hi2)))
    }

    /// [`WriteBuffer::table_extent`] counting only the rows whose tag `only.0` is one of
    /// `only.1`, through the index of that tag (the time range stays the whole buffer's).
    pub fn table_extent_of(
        &self,
        database: &str,
        table: &str,
        only: Option<(&str, &[String])>,
    ) -> Result<Option<(usize, i64, i64)>> {
        let Some((tag, values)) = only else {
            return Ok(self.table_extent(database, table));
        };
        let key = (database.to_string(), table.to_string());
        let mut extent: Option<(usize, i64, i64)> = None;
        for buffer in self.generations().filter_map(|g| g.tables.get(&key)) {
            let rows = buffer.tag_rows.count(&buffer.batches, tag, values)?;
            let (lo, hi) = (buffer.min_time, buffer.max_time);
            extent = Some(match extent {
                Some((r, l, h)) => (r + rows, l.min(lo), h.max(hi)),
                None => (rows, lo, hi),
            });
        }
        Ok(extent)
    }

    /// Names of the tables with buffered data in `database`.
    pub fn table_names(&self, database: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .generations()
            .flat_map(|g| g.tables.keys())
            .filter(|(db, _)| db == database)
            .map(|(_, t)| t.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Min and max of a batch's `time` column (column 0).
pub fn time_range(batch: &RecordBatch) -> Option<(i64, i64)> {
    let times = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()?;
    let lo = datafusion::arrow::compute::min(times)?;
    let hi = datafusion::arrow::compute::max(times)?;
    Some((lo, hi))
}

/// The rows of `batch` at or after `cutoff` (ns); `None` if there are none.
pub fn drop_older_than(batch: &RecordBatch, cutoff: i64) -> Result<Option<RecordBatch>> {
    let Some((lo, hi)) = time_range(batch) else {
        return Ok(None);
    };
    if lo >= cutoff {
        return Ok(Some(batch.clone()));
    }
    if hi < cutoff {
        return Ok(None);
    }
    let Some(times) = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
    else {
        return Ok(Some(batch.clone()));
    };
    let keep: BooleanArray = times
        .iter()
        .map(|t| Some(t.is_some_and(|t| t >= cutoff)))
        .collect();
    let kept = filter_record_batch(batch, &keep)?;
    Ok((kept.num_rows() > 0).then_some(kept))
}

/// Which rows of `batch` (aligned to its table's schema) have a time within `[start,
/// stop]` and every tag of `tags` equal to its value.
pub fn matching_tags(
    batch: &RecordBatch,
    (start, stop): (i64, i64),
    tags: &[(String, String)],
) -> Result<BooleanArray> {
    let mut selected: BooleanArray = match batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
    {
        Some(times) => times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= start && t <= stop)))
            .collect(),
        None => BooleanArray::from(vec![false; batch.num_rows()]),
    };
    for (key, value) in tags {
        let Some(column) = batch.column_by_name(key) else {
            return Ok(BooleanArray::from(vec![false; batch.num_rows()]));
        };
        let text = cast(column, &DataType::Utf8)?;
        let equal = eq(&text, &StringArray::new_scalar(value.as_str()))?;
        selected = and_kleene(&selected, &equal)?;
    }
    Ok(selected)
}

/// Reshapes `batch` to `schema`: columns by name, nulls for the ones it lacks.
///
/// Schemas only grow, so a batch built earlier has a subset of today's columns.
pub fn align_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let source = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match source.index_of(field.name()) {
            Ok(i) => batch.column(i).clone(),
            Err(_) => new_null_array(field.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronosdb_catalog::{Column, FieldType, TableSchema};
    use datafusion::arrow::array::{ArrayRef, Float64Array};

    /// Row keys here are just the times: the tests' rows differ only in time.
    fn table_batch(batch: RecordBatch) -> TableBatch {
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .expect("time")
            .values()
            .iter()
            .map(|t| *t as u64)
            .collect();
        TableBatch {
            table: "t".into(),
            batch,
            row_keys: times,
        }
    }

    fn batch(schema: &TableSchema, times: &[i64]) -> RecordBatch {
        let arrow = schema.arrow_schema();
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(TimestampNanosecondArray::from(times.to_vec()))];
        for f in arrow.fields().iter().skip(1) {
            cols.push(new_null_array(f.data_type(), times.len()));
        }
        RecordBatch::try_new(arrow, cols).expect("batch")
    }

    #[test]
    fn generations_and_alignment() {
        let old = TableSchema::from(vec![Column::field("a", FieldType::Float)]);
        let new = TableSchema::from(vec![
            Column::field("a", FieldType::Float),
            Column::tag("host"),
        ]);
        let mut buffer = WriteBuffer::default();
        buffer
            .apply("db", vec![table_batch(batch(&old, &[5, 1]))], 1)
            .expect("apply");
        let (id, frozen) = buffer.freeze();
        assert_eq!(frozen.max_sequence, 1);
        buffer
            .apply("db", vec![table_batch(batch(&new, &[9]))], 2)
            .expect("apply");
        let (batches, may_have_duplicates) = buffer
            .table_batches("db", "t", &new.arrow_schema())
            .expect("batches");
        assert_eq!(batches.len(), 2);
        assert!(may_have_duplicates, "two generations are always merged");
        assert_eq!(batches[0].num_columns(), 3);
        buffer.release(id);
        assert_eq!(
            buffer
                .table_batches("db", "t", &new.arrow_schema())
                .expect("batches")
                .0
                .len(),
            1
        );
        let a = Float64Array::from(vec![1.0]);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn a_point_written_twice_is_noticed() {
        let schema = TableSchema::from(vec![Column::field("a", FieldType::Float)]);
        let mut buffer = WriteBuffer::default();
        buffer
            .apply("db", vec![table_batch(batch(&schema, &[1, 2]))], 1)
            .expect("apply");
        let arrow = schema.arrow_schema();
        assert!(!buffer.table_batches("db", "t", &arrow).expect("batches").1);
        buffer
            .apply("db", vec![table_batch(batch(&schema, &[2]))], 2)
            .expect("apply");
        assert!(buffer.table_batches("db", "t", &arrow).expect("batches").1);
    }

    #[test]
    fn small_batches_are_merged() {
        let schema = TableSchema::from(vec![Column::field("a", FieldType::Float)]);
        let mut buffer = WriteBuffer::default();
        for i in 0..100 {
            buffer
                .apply("db", vec![table_batch(batch(&schema, &[i]))], i as u64)
                .expect("apply");
        }
        let (batches, may_have_duplicates) = buffer
            .table_batches("db", "t", &schema.arrow_schema())
            .expect("batches");
        assert!(!may_have_duplicates);
        assert!(batches.len() < MAX_SMALL_BATCHES, "{}", batches.len());
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    }
}
