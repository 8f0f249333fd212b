//! Per value of one tag, the oldest and newest time of a chunk's rows: what tells a query
//! that two chunks whose time ranges overlap still cannot hold the same point.
//!
//! A point is a (series, time) key, and a series has exactly one value of each tag. So
//! if, for every value of some tag, two chunks' time ranges of that value are disjoint,
//! no point is in both: the usual case after a bulk load, where the write buffer's rows of
//! each host follow that host's rows in the newest file although the two chunks' time
//! ranges meet. Files carry these ranges in their series index (for its leading tag); the
//! buffer computes them once per batch, for the tag the files lead with.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type};

use crate::error::Result;

/// The time range of each value of `tag` (`None` for rows without it) in some rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagTimes {
    pub tag: String,
    pub times: HashMap<Option<String>, (i64, i64)>,
}

impl TagTimes {
    /// The ranges of `batch` (time in column 0, as buffered batches are), by `tag`; rows
    /// of a batch without that column have no value.
    pub fn of_batch(batch: &RecordBatch, tag: &str) -> Result<TagTimes> {
        let mut out = TagTimes {
            tag: tag.to_string(),
            times: HashMap::new(),
        };
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        let times = crate::persist::times(batch)?;
        let Some(column) = batch.column_by_name(tag) else {
            let (lo, hi) = min_max(times.values().iter().copied());
            out.times.insert(None, (lo, hi));
            return Ok(out);
        };
        // Buffered tags are dictionaries: ranges per key first, then per value.
        if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let values = cast(dictionary.values(), &DataType::Utf8)?;
            let values = values.as_string::<i32>();
            let mut by_key: Vec<Option<(i64, i64)>> = vec![None; values.len()];
            let mut missing: Option<(i64, i64)> = None;
            for (row, time) in times.values().iter().enumerate() {
                let slot = match dictionary.is_valid(row) {
                    true => by_key
                        .get_mut(dictionary.keys().value(row) as usize)
                        .unwrap_or(&mut missing),
                    false => &mut missing,
                };
                widen(slot, *time);
            }
            for (key, range) in by_key.into_iter().enumerate() {
                if let Some(range) = range {
                    let value = values.is_valid(key).then(|| values.value(key).to_string());
                    out.add(value, range);
                }
            }
            if let Some(range) = missing {
                out.add(None, range);
            }
            return Ok(out);
        }
        let strings = cast(column, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        let mut by_value: HashMap<Option<&str>, (i64, i64)> = HashMap::new();
        for (row, time) in times.values().iter().enumerate() {
            let value = strings.is_valid(row).then(|| strings.value(row));
            let range = by_value.entry(value).or_insert((*time, *time));
            *range = (range.0.min(*time), range.1.max(*time));
        }
        for (value, range) in by_value {
            out.add(value.map(str::to_string), range);
        }
        Ok(out)
    }

    /// Widens the range of `value` to take in `range`.
    pub fn add(&mut self, value: Option<String>, (lo, hi): (i64, i64)) {
        let entry = self.times.entry(value).or_insert((lo, hi));
        *entry = (entry.0.min(lo), entry.1.max(hi));
    }

    /// Takes in every range of `other` (of the same tag).
    pub fn extend(&mut self, other: &TagTimes) {
        for (value, range) in &other.times {
            self.add(value.clone(), *range);
        }
    }
}

/// The [`TagTimes`] of one table's buffered batches in one generation, computed when a
/// query first asks (for the tag it asks for) and then extended by the rows written since:
/// batches only grow at the end (merging small batches keeps the rows in order), so the
/// rows already folded in are always the first ones.
#[derive(Debug, Default)]
pub struct TagTimesCache(parking_lot::Mutex<Option<(Arc<TagTimes>, usize)>>);

impl Clone for TagTimesCache {
    /// A copy starts empty: it may be given other batches.
    fn clone(&self) -> Self {
        TagTimesCache::default()
    }
}

impl TagTimesCache {
    /// The ranges of `batches` by `tag`.
    pub fn get(&self, batches: &[RecordBatch], tag: &str) -> Result<Arc<TagTimes>> {
        let mut cached = self.0.lock();
        let (mut times, folded) = match cached.take() {
            Some((times, folded)) if times.tag == tag => (times, folded),
            _ => (
                Arc::new(TagTimes {
                    tag: tag.to_string(),
                    times: HashMap::new(),
                }),
                0,
            ),
        };
        let mut start = 0;
        for batch in batches {
            let end = start + batch.num_rows();
            if end > folded {
                let skip = folded.saturating_sub(start);
                let new_rows = batch.slice(skip, batch.num_rows() - skip);
                Arc::make_mut(&mut times).extend(&TagTimes::of_batch(&new_rows, tag)?);
            }
            start = end;
        }
        *cached = Some((times.clone(), start.max(folded)));
        Ok(times)
    }
}

fn widen(slot: &mut Option<(i64, i64)>, time: i64) {
    *slot = Some(match *slot {
        Some((lo, hi)) => (lo.min(time), hi.max(time)),
        None => (time, time),
    });
}

fn min_max(times: impl Iterator<Item = i64>) -> (i64, i64) {
    times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, StringArray, StringDictionaryBuilder, TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};

    /// A batch of `time` and a `host` tag (of any string type), as buffered.
    pub(crate) fn batch(hosts: ArrayRef, times: &[i64]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("host", hosts.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(times.to_vec())),
                hosts,
            ],
        )
        .expect("batch")
    }

    #[test]
    fn ranges_per_value_of_dictionaries_and_strings() {
        let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
        for host in [Some("a"), Some("b"), None, Some("a")] {
            dictionary.append_option(host);
        }
        let strings = StringArray::from(vec![Some("a"), Some("b"), None, Some("a")]);
        let times = [5, 3, 9, 1];
        for hosts in [
            Arc::new(dictionary.finish()) as ArrayRef,
            Arc::new(strings) as ArrayRef,
        ] {
            let got = TagTimes::of_batch(&batch(hosts, &times), "host").expect("times");
            assert_eq!(got.times.len(), 3);
            assert_eq!(got.times[&Some("a".to_string())], (1, 5));
            assert_eq!(got.times[&Some("b".to_string())], (3, 3));
            assert_eq!(got.times[&None], (9, 9));
        }
        // The cache folds in only the rows written since it was last asked.
        let cache = TagTimesCache::default();
        let hosts = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
        let first = batch(hosts(vec!["a", "b"]), &[10, 20]);
        let got = cache
            .get(std::slice::from_ref(&first), "host")
            .expect("times");
        assert_eq!(got.times[&Some("a".to_string())], (10, 10));
        let merged = batch(hosts(vec!["a", "b", "a"]), &[10, 20, 30]);
        let got = cache
            .get(&[merged, batch(hosts(vec!["b"]), &[5])], "host")
            .expect("times");
        assert_eq!(got.times[&Some("a".to_string())], (10, 30));
        assert_eq!(got.times[&Some("b".to_string())], (5, 20));
        let strings = Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef;
        let without = TagTimes::of_batch(&batch(strings, &[4, 2]), "region").expect("times");
        assert_eq!(without.times[&None], (2, 4));
    }
}
