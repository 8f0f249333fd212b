//! Per value of a tag, where a table buffer's rows of that value are: what lets a query
//! filtered on the tag (`host = 'a'`, `host IN (…)`) take just those rows from the buffer
//! instead of filtering every buffered row, so its cost follows the rows it reads however
//! many series the buffer holds.
//!
//! Positions count rows across the buffer's batches in order. Batches only grow at the
//! end (merging small batches keeps the rows in order), so the positions already folded
//! in stay right and only the rows written since a query last asked are read; the index is
//! built for a tag the first time a query filters on it.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Int32Type};

use crate::error::Result;

/// Tags indexed per table buffer at most; asking for another forgets the oldest.
const MAX_INDEXED_TAGS: usize = 4;

/// The positions of the rows of each value of one tag (rows without it are not kept:
/// no equality selects them).
#[derive(Debug)]
struct TagRows {
    tag: String,
    slots: HashMap<String, usize>,
    rows: Vec<Vec<u32>>,
    /// Rows folded in so far.
    folded: usize,
}

impl TagRows {
    fn new(tag: &str) -> Self {
        TagRows {
            tag: tag.to_string(),
            slots: HashMap::new(),
            rows: Vec::new(),
            folded: 0,
        }
    }

    fn slot(&mut self, value: &str) -> usize {
        if let Some(slot) = self.slots.get(value) {
            return *slot;
        }
        self.rows.push(Vec::new());
        self.slots.insert(value.to_string(), self.rows.len() - 1);
        self.rows.len() - 1
    }

    /// Folds in the rows of `batch`, whose first row is at `start`.
    fn fold(&mut self, batch: &RecordBatch, start: usize) -> Result<()> {
        let Some(column) = batch.column_by_name(&self.tag) else {
            return Ok(());
        };
        let position = |row: usize| (start + row) as u32;
        // Buffered tags are dictionaries: each key is looked up once per batch.
        if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let values = cast(dictionary.values(), &DataType::Utf8)?;
            let values = values.as_string::<i32>();
            let slots: Vec<Option<usize>> = (0..values.len())
                .map(|key| values.is_valid(key).then(|| self.slot(values.value(key))))
                .collect();
            for (row, key) in dictionary.keys().values().iter().enumerate() {
                if dictionary.is_valid(row)
                    && let Some(Some(slot)) = slots.get(*key as usize)
                {
                    self.rows[*slot].push(position(row));
                }
            }
            return Ok(());
        }
        let strings = cast(column, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        for row in 0..strings.len() {
            if strings.is_valid(row) {
                let slot = self.slot(strings.value(row));
                self.rows[slot].push(position(row));
            }
        }
        Ok(())
    }
}

/// The [`TagRows`] of one table's buffered batches in one generation.
#[derive(Debug, Default)]
pub struct TagRowsCache(parking_lot::Mutex<Vec<TagRows>>);

impl Clone for TagRowsCache {
    /// A copy starts empty: it may be given other batches.
    fn clone(&self) -> Self {
        TagRowsCache::default()
    }
}

impl TagRowsCache {
    /// The rows of `batches` whose `tag` is one of `values`, in their order.
    pub fn select(
        &self,
        batches: &[RecordBatch],
        tag: &str,
        values: &[String],
    ) -> Result<Vec<RecordBatch>> {
        let mut positions = Vec::new();
        let several = self.with_rows(batches, tag, values, |lists| {
            positions = lists.concat();
            lists.len() > 1
        })?;
        if several {
            positions.sort_unstable();
        }
        take_rows(batches, &positions)
    }

    /// How many rows of `batches` have `tag` equal to one of `values`.
    pub fn count(&self, batches: &[RecordBatch], tag: &str, values: &[String]) -> Result<usize> {
        self.with_rows(batches, tag, values, |lists| {
            lists.iter().map(|rows| rows.len()).sum()
        })
    }

    /// Calls `f` with the row positions of each of `values` (those any row has), once
    /// the rows of `batches` not yet in the index of `tag` are folded in.
    fn with_rows<T>(
        &self,
        batches: &[RecordBatch],
        tag: &str,
        values: &[String],
        f: impl FnOnce(&[&[u32]]) -> T,
    ) -> Result<T> {
        let mut indexes = self.0.lock();
        let at = match indexes.iter().position(|t| t.tag == tag) {
            Some(at) => at,
            None => {
                if indexes.len() >= MAX_INDEXED_TAGS {
                    indexes.remove(0);
                }
                indexes.push(TagRows::new(tag));
                indexes.len() - 1
            }
        };
        let index = &mut indexes[at];
        let mut start = 0;
        for batch in batches {
            let end = start + batch.num_rows();
            if end > index.folded {
                let skip = index.folded.saturating_sub(start);
                index.fold(&batch.slice(skip, batch.num_rows() - skip), start + skip)?;
            }
            start = end;
        }
        index.folded = index.folded.max(start);
        let mut wanted: Vec<usize> = values
            .iter()
            .filter_map(|v| index.slots.get(v).copied())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let lists: Vec<&[u32]> = wanted
            .iter()
            .map(|slot| index.rows[*slot].as_slice())
            .collect();
        Ok(f(&lists))
    }
}

/// The rows at `positions` (ascending, counted across `batches`), a batch per batch.
fn take_rows(batches: &[RecordBatch], positions: &[u32]) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut rest = positions;
    let mut start = 0u32;
    for batch in batches {
        let end = start + batch.num_rows() as u32;
        let count = rest.partition_point(|p| *p < end);
        let (here, after) = rest.split_at(count);
        rest = after;
        if !here.is_empty() {
            let local = UInt32Array::from_iter_values(here.iter().map(|p| p - start));
            out.push(take_record_batch(batch, &local)?);
        }
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag_times::tests::batch;
    use datafusion::arrow::array::{StringArray, StringDictionaryBuilder};
    use std::sync::Arc;

    fn times(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn selects_the_rows_of_the_values_asked_for() {
        let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
        for host in [Some("a"), Some("b"), None, Some("a")] {
            dictionary.append_option(host);
        }
        let first = batch(Arc::new(dictionary.finish()), &[1, 2, 3, 4]);
        let second = batch(
            Arc::new(StringArray::from(vec![Some("b"), Some("c"), Some("a")])),
            &[5, 6, 7],
        );
        let cache = TagRowsCache::default();
        let a = vec!["a".to_string()];
        let got = cache
            .select(std::slice::from_ref(&first), "host", &a)
            .expect("rows");
        assert_eq!(times(&got), vec![1, 4]);
        // Rows written since are folded in; several values keep the rows' order.
        let batches = [first.clone(), second.clone()];
        let got = cache.select(&batches, "host", &a).expect("rows");
        assert_eq!(times(&got), vec![1, 4, 7]);
        let ab = vec!["b".to_string(), "a".to_string(), "zz".to_string()];
        let got = cache.select(&batches, "host", &ab).expect("rows");
        assert_eq!(times(&got), vec![1, 2, 4, 5, 7]);
        // The same rows merged into one batch keep their positions.
        let merged = datafusion::arrow::compute::concat_batches(
            &second.schema(),
            &[
                datafusion::arrow::compute::cast(first.column(1), &DataType::Utf8)
                    .map(|hosts| batch(hosts, &[1, 2, 3, 4]))
                    .expect("cast"),
                second,
            ],
        )
        .expect("concat");
        let got = cache
            .select(std::slice::from_ref(&merged), "host", &ab)
            .expect("rows");
        assert_eq!(times(&got), vec![1, 2, 4, 5, 7]);
        assert_eq!(cache.count(&[merged], "host", &ab).expect("count"), 5);
        // A tag the rows lack selects nothing.
        let got = cache.select(&batches, "region", &a).expect("rows");
        assert!(got.is_empty());
    }
}
