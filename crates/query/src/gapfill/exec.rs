//! `GapFillExec`: adds the missing buckets to an aggregate's output and fills them.
//!
//! The input is already aggregated (one row per series and bucket), so it is small: the
//! node gathers it, sorts it by (series, bucket), and for each series walks the buckets
//! from `start` to `finish`, taking the aggregated row where there is one and a gap row
//! where there is not. Every output column is then made with one `take` over the sorted
//! input: gap rows take NULL, `locf` columns take the previous row's value, and
//! `interpolate` columns are computed from their neighbours.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray,
    UInt32Array,
};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, partition, take,
};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, exec_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use super::Fill;
use crate::functions::time_bucket::{bucket_start, next_bucket};

/// At most this many rows are made, so a tiny width over a long range fails clearly
/// instead of exhausting memory.
const MAX_OUTPUT_ROWS: usize = 10_000_000;

/// What to fill, and over which range.
#[derive(Debug, Clone)]
pub struct GapFillParams {
    pub time_column: usize,
    pub group_columns: Vec<usize>,
    /// Filled copies of aggregate columns, appended to the output.
    pub fills: Vec<(usize, Fill, String)>,
    pub width: IntervalMonthDayNano,
    pub start: i64,
    /// Exclusive.
    pub finish: i64,
}

#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    params: GapFillParams,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        params: GapFillParams,
    ) -> Result<Self> {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            input,
            schema,
            params,
            properties,
        })
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GapFillExec: bucket=#{}, series={:?}, fills={:?}, range=[{}, {})",
            self.params.time_column,
            self.params.group_columns,
            self.params.fills,
            self.params.start,
            self.params.finish
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return exec_err!("GapFillExec has one input");
        };
        Ok(Arc::new(Self::try_new(
            input,
            self.schema.clone(),
            self.params.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("GapFillExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, context)?;
        let input_schema = self.input.schema();
        let schema = self.schema.clone();
        let params = self.params.clone();
        let output = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            fill(&schema, &params, &input_schema, &batches)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            output.boxed(),
        )))
    }
}

/// Which input row (if any) each output row shows, per series.
struct Layout {
    /// Bucket start of every output row.
    times: Vec<i64>,
    /// The input row of the bucket, `None` for a gap.
    rows: Vec<Option<u32>>,
    /// Output row ranges of each series.
    series: Vec<(usize, usize)>,
    /// An input row of each output row's series (for the group columns).
    series_row: Vec<u32>,
}

fn fill(
    schema: &SchemaRef,
    params: &GapFillParams,
    input_schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    // Without any data there is no series, but a query without series still gets buckets.
    let input = concat_batches(input_schema, batches)?;
    // Sort by (series, bucket).
    let mut keys: Vec<SortColumn> = params
        .group_columns
        .iter()
        .map(|&i| SortColumn {
            values: input.column(i).clone(),
            options: None,
        })
        .collect();
    let time = cast(
        input.column(params.time_column),
        &DataType::Timestamp(TimeUnit::Nanosecond, None),
    )?;
    // A row without a bucket (NULL time) sorts after its series' buckets and is kept as is.
    keys.push(SortColumn {
        values: time.clone(),
        options: Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
    });
    let order = lexsort_to_indices(&keys, None)?;
    let sorted: Vec<ArrayRef> = input
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &order, None))
        .collect::<std::result::Result<_, _>>()?;
    let times = take(time.as_ref(), &order, None)?;
    let times = times.as_primitive::<TimestampNanosecondType>();

    let series_ranges = if params.group_columns.is_empty() {
        std::iter::once(0..input.num_rows()).collect()
    } else {
        let group: Vec<ArrayRef> = params
            .group_columns
            .iter()
            .map(|&i| sorted[i].clone())
            .collect();
        partition(&group)?.ranges()
    };
    let first = bucket_start(params.width, params.start)?;
    let mut layout = Layout {
        times: Vec::new(),
        rows: Vec::new(),
        series: Vec::new(),
        series_row: Vec::new(),
    };
    for range in series_ranges {
        let begin = layout.rows.len();
        let mut row = range.start;
        let mut bucket = first;
        loop {
            let existing = (row < range.end && !times.is_null(row)).then(|| times.value(row));
            let gap = (bucket < params.finish).then_some(bucket);
            match (existing, gap) {
                (None, None) => {
                    if row < range.end {
                        row += 1; // a NULL bucket: shown as is
                        layout.times.push(i64::MIN);
                        layout.rows.push(Some(row as u32 - 1));
                        continue;
                    }
                    break;
                }
                (Some(t), Some(g)) if t == g => {
                    layout.times.push(t);
                    layout.rows.push(Some(row as u32));
                    row += 1;
                    bucket = next_bucket(params.width, bucket)?;
                }
                (Some(t), Some(g)) if t < g => {
                    layout.times.push(t);
                    layout.rows.push(Some(row as u32));
                    row += 1;
                }
                (Some(t), None) => {
                    layout.times.push(t);
                    layout.rows.push(Some(row as u32));
                    row += 1;
                }
                (_, Some(g)) => {
                    layout.times.push(g);
                    layout.rows.push(None);
                    bucket = next_bucket(params.width, bucket)?;
                }
            }
            if layout.rows.len() > MAX_OUTPUT_ROWS {
                return exec_err!(
                    "time_bucket_gapfill would make more than {MAX_OUTPUT_ROWS} rows: use a wider bucket or a shorter range"
                );
            }
        }
        let end = layout.rows.len();
        layout.series.push((begin, end));
        layout
            .series_row
            .extend(std::iter::repeat_n(range.start as u32, end - begin));
    }

    let mut columns: Vec<ArrayRef> = Vec::with_capacity(sorted.len());
    for (i, column) in sorted.iter().enumerate() {
        let array: ArrayRef = if i == params.time_column {
            let values = TimestampNanosecondArray::from(
                layout
                    .times
                    .iter()
                    .map(|t| (*t != i64::MIN).then_some(*t))
                    .collect::<Vec<_>>(),
            );
            cast(&values, column.data_type())?
        } else if params.group_columns.contains(&i) {
            take(
                column.as_ref(),
                &UInt32Array::from(layout.series_row.clone()),
                None,
            )?
        } else {
            take(
                column.as_ref(),
                &UInt32Array::from(layout.rows.clone()),
                None,
            )?
        };
        columns.push(array);
    }
    for (source, fill, _) in &params.fills {
        let column = &sorted[*source];
        columns.push(match fill {
            Fill::Locf => take(column.as_ref(), &locf_rows(&layout), None)?,
            Fill::Interpolate => interpolate(column, &layout)?,
        });
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// For every output row, its own input row or, in a gap, the previous row of its series.
fn locf_rows(layout: &Layout) -> UInt32Array {
    let mut rows = Vec::with_capacity(layout.rows.len());
    for &(begin, end) in &layout.series {
        let mut last = None;
        for row in &layout.rows[begin..end] {
            if row.is_some() {
                last = *row;
            }
            rows.push(last);
        }
    }
    UInt32Array::from(rows)
}

/// Linear interpolation over time for gap rows between two rows with values.
fn interpolate(column: &ArrayRef, layout: &Layout) -> Result<ArrayRef> {
    let values = cast(column, &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    let value_at = |row: Option<u32>| {
        row.filter(|r| values.is_valid(*r as usize))
            .map(|r| values.value(r as usize))
    };
    let mut out: Vec<Option<f64>> = layout.rows.iter().map(|r| value_at(*r)).collect();
    for &(begin, end) in &layout.series {
        let mut previous: Option<usize> = None;
        for k in begin..end {
            if out[k].is_none() && layout.rows[k].is_some() {
                continue; // an aggregate that is NULL: not a gap
            }
            if out[k].is_some() {
                if let Some(p) = previous {
                    let (t0, v0) = (layout.times[p] as f64, out[p].unwrap_or_default());
                    let (t1, v1) = (layout.times[k] as f64, out[k].unwrap_or_default());
                    for g in (p + 1..k).filter(|g| layout.rows[*g].is_none()) {
                        let t = layout.times[g] as f64;
                        out[g] = Some(v0 + (v1 - v0) * (t - t0) / (t1 - t0));
                    }
                }
                previous = Some(k);
            }
        }
    }
    let filled = Float64Array::from(out);
    Ok(match column.data_type() {
        DataType::Float64 => Arc::new(filled),
        DataType::Int64 => Arc::new(Int64Array::from(
            filled
                .iter()
                .map(|v| v.map(|v| v.round() as i64))
                .collect::<Vec<_>>(),
        )) as ArrayRef,
        other => cast(&filled, other)?,
    })
}
