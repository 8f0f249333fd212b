//! Scans of chunks whose time ranges overlap: only the rows that can collide are merged.
//!
//! A point written twice may sit in two chunks (two Parquet files, or a file and the write
//! buffer) whose time ranges overlap; the later write wins field by field (see
//! `chronosdb_storage::persist::sort_and_merge_by`). Two rows collide only when their
//! times are equal, so only times inside the *overlap windows* of a group of chunks (the
//! times two of its chunks both cover, plus the whole range of a buffer that may repeat a
//! point itself) need the merge. After a bulk load from concurrent clients, consecutive
//! files overlap by seconds at their edges while each covers hours: the rows outside the
//! windows are scanned as if nothing overlapped (every predicate pushed into the Parquet
//! reader, every core reading), and the rows inside them are read, merged and handed on
//! by [`MergeChunksExec`] when the query runs, never while it is planned.
//!
//! What the merge reads is narrowed by the query's conjuncts that name only tags and
//! `time`: such a conjunct is true or false for all writes of one point alike, so applying
//! it before the merge changes nothing. Conjuncts on fields are applied after the merge,
//! by the filter DataFusion keeps above every scan (the later write decides a field).

use std::fmt;
use std::sync::Arc;

use chronosdb_catalog::{ColumnKind, TIME_COLUMN, TableSchema};
use chronosdb_storage::persist::{sort_and_merge_by, sort_key};
use chronosdb_storage::series_index::SeriesIndex;
use chronosdb_storage::tag_times::TagTimes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, ScalarValue, exec_datafusion_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::{col, lit};

/// Beyond this many windows from one pair of chunks, their span is merged instead: a
/// longer disjunction costs more to evaluate than the rows it spares.
const MAX_PAIR_WINDOWS: usize = 64;

/// What overlap detection knows of one chunk: its time range, whether it may hold a point
/// twice itself, and (when known) the time range of each value of a tag.
pub(crate) struct ChunkTimes {
    pub lo: i64,
    pub hi: i64,
    pub repeats: bool,
    pub values: Option<ValueTimes>,
}

/// A chunk's time ranges per value of one tag: a file's series index (its leading tag) or
/// the buffer's [`TagTimes`].
#[derive(Clone)]
pub(crate) enum ValueTimes {
    Index(Arc<SeriesIndex>),
    Buffer(Arc<TagTimes>),
}

impl ValueTimes {
    fn tag(&self) -> &str {
        match self {
            ValueTimes::Index(index) => index.tag(),
            ValueTimes::Buffer(times) => &times.tag,
        }
    }

    fn len(&self) -> usize {
        match self {
            ValueTimes::Index(index) => index.all_value_times().count(),
            ValueTimes::Buffer(times) => times.times.len(),
        }
    }

    fn get(&self, value: Option<&str>) -> Option<(i64, i64)> {
        match self {
            ValueTimes::Index(index) => index.times_of(value),
            ValueTimes::Buffer(times) => times.times.get(&value.map(str::to_string)).copied(),
        }
    }

    fn each(&self, mut f: impl FnMut(Option<&str>, (i64, i64))) {
        match self {
            ValueTimes::Index(index) => index.all_value_times().for_each(|(v, r)| f(v, r)),
            ValueTimes::Buffer(times) => times.times.iter().for_each(|(v, r)| f(v.as_deref(), *r)),
        }
    }
}

/// The disjoint, sorted, inclusive time windows in which rows of `chunks` may collide:
/// where two chunks' ranges intersect, and the whole range of a chunk that may hold a point
/// twice itself. Where both chunks know their ranges per value of the same tag, only the
/// times at which one value's ranges intersect: a point has one value of each tag, so
/// chunks whose ranges of every value are disjoint share no point although their time
/// ranges overlap.
pub(crate) fn overlap_windows(chunks: &[ChunkTimes]) -> Vec<(i64, i64)> {
    let mut windows: Vec<(i64, i64)> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk.repeats {
            windows.push((chunk.lo, chunk.hi));
        }
        for other in &chunks[i + 1..] {
            let (start, end) = (chunk.lo.max(other.lo), chunk.hi.min(other.hi));
            if start > end {
                continue;
            }
            match (&chunk.values, &other.values) {
                (Some(a), Some(b)) if a.tag() == b.tag() => {
                    windows.extend(value_windows(a, b));
                }
                _ => windows.push((start, end)),
            }
        }
    }
    windows.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(windows.len());
    for (lo, hi) in windows {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The times at which the ranges of one value meet in `a` and `b`: their span when there
/// are more than [`MAX_PAIR_WINDOWS`].
fn value_windows(a: &ValueTimes, b: &ValueTimes) -> Vec<(i64, i64)> {
    let (small, large) = match a.len() <= b.len() {
        true => (a, b),
        false => (b, a),
    };
    let mut windows = Vec::new();
    small.each(|value, (lo, hi)| {
        if let Some((other_lo, other_hi)) = large.get(value) {
            let (start, end) = (lo.max(other_lo), hi.min(other_hi));
            if start <= end {
                windows.push((start, end));
            }
        }
    });
    if windows.len() > MAX_PAIR_WINDOWS {
        let start = windows.iter().map(|w| w.0).min().unwrap_or(i64::MIN);
        let end = windows.iter().map(|w| w.1).max().unwrap_or(i64::MAX);
        return vec![(start, end)];
    }
    windows
}

/// `time` inside one of `windows` (false for none), as a filter on a table whose `time`
/// column has type `time_type`: `time BETWEEN first AND last AND (time BETWEEN … OR …)`, so
/// that the span, a top-level conjunct, narrows reads by time (`TimeBounds`) too.
pub(crate) fn in_windows(windows: &[(i64, i64)], time_type: &DataType) -> Expr {
    let tz = match time_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let at = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), tz.clone()));
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return lit(false);
    };
    let span = col(TIME_COLUMN).between(at(first.0), at(last.1));
    let any = windows
        .iter()
        .map(|&(lo, hi)| col(TIME_COLUMN).between(at(lo), at(hi)))
        .reduce(Expr::or);
    match (windows.len(), any) {
        (2.., Some(any)) => span.and(any),
        _ => span,
    }
}

/// Whether a column of this kind is the same for every write of one point: a tag or `time`.
pub(crate) fn is_series_or_time(kind: &ColumnKind) -> bool {
    matches!(kind, ColumnKind::Tag | ColumnKind::Time)
}

/// Whether `expr` names only tags and `time` of `schema` (or no column): true or false for
/// every write of one point alike, so it may be applied before a merge.
pub(crate) fn is_series_and_time_only(expr: &Expr, schema: &TableSchema) -> bool {
    expr.column_refs().iter().all(|c| {
        schema
            .column(&c.name)
            .is_some_and(|column| is_series_or_time(&column.kind))
    })
}

/// The rows of `batches` for which `predicate` is true.
pub(crate) fn filter_batches(
    batches: Vec<RecordBatch>,
    predicate: &Arc<dyn PhysicalExpr>,
) -> Result<Vec<RecordBatch>> {
    let mut kept = Vec::with_capacity(batches.len());
    for batch in batches {
        let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BooleanArray>()
            .ok_or_else(|| exec_datafusion_err!("a time-window filter did not give booleans"))?;
        let batch = filter_record_batch(&batch, mask)?;
        if batch.num_rows() > 0 {
            kept.push(batch);
        }
    }
    Ok(kept)
}

/// Reads the colliding rows of a group of chunks and merges them, when executed.
///
/// `files` are plans each reading one Parquet file (in write order, oldest first) with the
/// columns of `read_schema`; `buffered` are the buffer's rows with those columns, newer
/// than every file, of which `keep` picks those in the windows when the plan runs. The merged rows are given with the columns `output` picks of `read_schema`.
#[derive(Debug)]
pub(crate) struct MergeChunksExec {
    files: Vec<Arc<dyn ExecutionPlan>>,
    buffered: Vec<RecordBatch>,
    read_schema: SchemaRef,
    /// The window and series-and-time filter over `read_schema`, applied exactly here
    /// whatever the Parquet reader pushed down.
    keep: Option<Arc<dyn PhysicalExpr>>,
    /// The sort key of the merge: the table's tags, most distinct first (then `time`).
    table_schema: TableSchema,
    output: Vec<usize>,
    windows: Vec<(i64, i64)>,
    properties: Arc<PlanProperties>,
}

impl MergeChunksExec {
    pub(crate) fn new(
        files: Vec<Arc<dyn ExecutionPlan>>,
        buffered: Vec<RecordBatch>,
        read_schema: SchemaRef,
        keep: Option<Arc<dyn PhysicalExpr>>,
        table_schema: TableSchema,
        output: Vec<usize>,
        windows: Vec<(i64, i64)>,
    ) -> Result<Self> {
        let output_schema = Arc::new(read_schema.project(&output)?);
        Ok(Self {
            files,
            buffered,
            read_schema,
            keep,
            table_schema,
            output,
            windows,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(output_schema),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
        })
    }
}

impl DisplayAs for MergeChunksExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "MergeChunksExec: files={}, buffered_rows={}, windows={}",
            self.files.len(),
            self.buffered.iter().map(|b| b.num_rows()).sum::<usize>(),
            self.windows.len()
        )
    }
}

impl ExecutionPlan for MergeChunksExec {
    fn name(&self) -> &str {
        "MergeChunksExec"
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.keep {
            Some(keep) => f(keep),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// The file reads are not children: DataFusion must not reorder, repartition or
    /// filter them, since which write is later decides the merge.
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self.files.clone();
        let buffered = self.buffered.clone();
        let read_schema = self.read_schema.clone();
        let keep = self.keep.clone();
        let table_schema = self.table_schema.clone();
        let output = self.output.clone();
        let schema = self.properties.equivalence_properties().schema().clone();
        let merged = futures::stream::once(async move {
            // Oldest first: the merge lets the later of two equal points win.
            let mut batches = Vec::new();
            for file in files {
                batches.extend(datafusion::physical_plan::collect(file, context.clone()).await?);
            }
            batches.extend(buffered);
            if let Some(keep) = &keep {
                batches = filter_batches(batches, keep)?;
            }
            let all = concat_batches(&read_schema, &batches)?;
            let merged = match all.num_rows() {
                0 => all,
                _ => sort_and_merge_by(&all, &sort_key(&all, &table_schema))
                    .map_err(crate::external)?,
            };
            Ok(merged.project(&output)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, merged)))
    }
}

#[cfg(test)]
mod tests {
    use super::{ChunkTimes, TagTimes, ValueTimes, overlap_windows};
    use std::sync::Arc;

    fn plain(ranges: &[(i64, i64, bool)]) -> Vec<ChunkTimes> {
        ranges
            .iter()
            .map(|&(lo, hi, repeats)| ChunkTimes {
                lo,
                hi,
                repeats,
                values: None,
            })
            .collect()
    }

    #[test]
    fn windows_are_where_two_chunks_meet() {
        // Three files touching at their edges, and a buffer overlapping the last one.
        let chunks = plain(&[
            (0, 100, false),
            (95, 200, false),
            (198, 300, false),
            (290, 400, false),
        ]);
        assert_eq!(
            overlap_windows(&chunks),
            vec![(95, 100), (198, 200), (290, 300)]
        );
        // Nested ranges: the inner one is all window.
        assert_eq!(
            overlap_windows(&plain(&[(0, 100, false), (10, 20, false)])),
            vec![(10, 20)]
        );
        // A chunk that may repeat a point is window throughout, merged with neighbours.
        assert_eq!(
            overlap_windows(&plain(&[(0, 100, false), (90, 150, true)])),
            vec![(90, 150)]
        );
        assert!(overlap_windows(&plain(&[(0, 10, false)])).is_empty());
    }

    fn by_host(tag: &str, ranges: &[(&str, i64, i64)]) -> Option<ValueTimes> {
        let mut times = TagTimes {
            tag: tag.to_string(),
            ..TagTimes::default()
        };
        for (host, lo, hi) in ranges {
            times.add(Some(host.to_string()), (*lo, *hi));
        }
        Some(ValueTimes::Buffer(Arc::new(times)))
    }

    #[test]
    fn chunks_whose_ranges_per_value_are_disjoint_need_no_window() {
        // Each host's newer rows follow its older ones, though the chunks' ranges meet.
        let older = ChunkTimes {
            lo: 0,
            hi: 100,
            repeats: false,
            values: by_host("host", &[("a", 0, 100), ("b", 0, 90)]),
        };
        let newer = ChunkTimes {
            lo: 95,
            hi: 200,
            repeats: false,
            values: by_host("host", &[("a", 101, 200), ("b", 95, 200)]),
        };
        let windows = |a: &ChunkTimes, b: &ChunkTimes| {
            overlap_windows(&[
                ChunkTimes {
                    values: a.values.clone(),
                    ..*a
                },
                ChunkTimes {
                    values: b.values.clone(),
                    ..*b
                },
            ])
        };
        assert!(windows(&older, &newer).is_empty());
        // One host written again inside the older chunk's range: only its times merge.
        let rewritten = ChunkTimes {
            values: by_host("host", &[("a", 60, 200), ("b", 95, 200)]),
            lo: 60,
            ..newer
        };
        assert_eq!(windows(&older, &rewritten), vec![(60, 100)]);
        // Ranges by different tags (or unknown) say nothing: the whole overlap merges.
        let by_region = ChunkTimes {
            values: by_host("region", &[("a", 101, 200)]),
            ..newer
        };
        assert_eq!(windows(&older, &by_region), vec![(95, 100)]);
        let unknown = ChunkTimes {
            values: None,
            ..newer
        };
        assert_eq!(windows(&older, &unknown), vec![(95, 100)]);
        // A chunk that repeats a point itself still merges throughout.
        let repeating = ChunkTimes {
            repeats: true,
            values: newer.values.clone(),
            ..newer
        };
        assert_eq!(windows(&older, &repeating), vec![(95, 200)]);
    }
}
