//! `time_bucket`: TimescaleDB's bucketing function, with its signatures and semantics.
//!
//! DataFusion's `date_bin` bins from the Unix epoch (a Thursday) and knows no time zones;
//! TimescaleDB users expect weeks to start on Monday (origin 2000-01-03), month and year
//! buckets to start on the first of a month (origin 2000-01-01), and a variant that buckets
//! by the wall clock of a named time zone. All arithmetic is on 64-bit nanoseconds, so the
//! common case (a fixed width over a timestamp column) is one division per row.
//!
//! Signatures (the third argument's type chooses the variant):
//! - `time_bucket(width, ts)`
//! - `time_bucket(width, ts, offset INTERVAL)`
//! - `time_bucket(width, ts, origin TIMESTAMP)`
//! - `time_bucket(width, ts, timezone TEXT [, origin TIMESTAMP [, offset INTERVAL]])`
//! - `time_bucket(width BIGINT, ts BIGINT [, offset BIGINT])`

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{
    DataType, Int64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampNanosecondType,
};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use chrono::{DateTime, Datelike, Months, NaiveDateTime, Offset, TimeZone};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;
/// 2000-01-03 00:00:00 UTC, a Monday: TimescaleDB's origin for widths without months.
const DEFAULT_ORIGIN_NANOS: i64 = 946_857_600_000_000_000;
/// 2000-01-01 00:00:00 UTC: TimescaleDB's origin for month and year widths.
const DEFAULT_MONTH_ORIGIN_NANOS: i64 = 946_684_800_000_000_000;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeBucket {
    signature: Signature,
}

impl TimeBucket {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for TimeBucket {
    fn default() -> Self {
        Self::new()
    }
}

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// The nanosecond timestamp type `t` coerces to; text literals parse as timestamps.
fn timestamp_ns(t: &DataType) -> Option<DataType> {
    match t {
        t if is_text(t) => Some(DataType::Timestamp(TimeUnit::Nanosecond, None)),
        DataType::Timestamp(_, tz) => Some(DataType::Timestamp(TimeUnit::Nanosecond, tz.clone())),
        DataType::Date32 | DataType::Date64 => {
            Some(DataType::Timestamp(TimeUnit::Nanosecond, None))
        }
        _ => None,
    }
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=5).contains(&args.len()) {
            return plan_err!(
                "time_bucket takes 2 to 5 arguments (width, time [, offset | origin | timezone [, origin [, offset]]]), got {}",
                args.len()
            );
        }
        if args[0].is_integer() && args[1].is_integer() {
            if args.len() > 3 || args.get(2).is_some_and(|t| !t.is_integer()) {
                return plan_err!(
                    "integer time_bucket takes (width, value [, offset]), all integers"
                );
            }
            return Ok(vec![DataType::Int64; args.len()]);
        }
        if !(matches!(args[0], DataType::Interval(_)) || is_text(&args[0])) {
            return plan_err!(
                "time_bucket's width must be an interval such as '5 minutes', not {}",
                args[0]
            );
        }
        let Some(ts) = timestamp_ns(&args[1]) else {
            return plan_err!(
                "time_bucket's second argument must be a timestamp, not {}",
                args[1]
            );
        };
        let mut coerced = vec![INTERVAL, ts];
        if let Some(third) = args.get(2) {
            if matches!(third, DataType::Interval(_)) {
                if args.len() > 3 {
                    return plan_err!(
                        "time_bucket(width, time, offset) takes no further arguments"
                    );
                }
                coerced.push(INTERVAL);
            } else if is_text(third) {
                // Text in third place is a time zone (as in TimescaleDB).
                coerced.push(DataType::Utf8);
                if let Some(origin) = args.get(3) {
                    let Some(origin) = timestamp_ns(origin) else {
                        return plan_err!("time_bucket's origin must be a timestamp, not {origin}");
                    };
                    coerced.push(origin);
                }
                if let Some(offset) = args.get(4) {
                    if !(matches!(offset, DataType::Interval(_)) || is_text(offset)) {
                        return plan_err!("time_bucket's offset must be an interval, not {offset}");
                    }
                    coerced.push(INTERVAL);
                }
            } else if let Some(origin) = timestamp_ns(third) {
                if args.len() > 3 {
                    return plan_err!(
                        "time_bucket(width, time, origin) takes no further arguments"
                    );
                }
                coerced.push(origin);
            } else {
                return plan_err!(
                    "time_bucket's third argument must be an offset (interval), an origin (timestamp) or a time zone (text), not {third}"
                );
            }
        }
        Ok(coerced)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = args.args;
        if matches!(args[1].data_type(), DataType::Int64) {
            return bucket_integers(&args);
        }
        let width = Width::from_interval(interval_arg(&args[0], "width")?)?;
        let mut spec = BucketSpec {
            width,
            origin: None,
            offset: IntervalMonthDayNano::ZERO,
            tz: None,
        };
        if let Some(third) = args.get(2) {
            match third.data_type() {
                DataType::Interval(_) => spec.offset = interval_arg(third, "offset")?,
                DataType::Timestamp(..) => spec.origin = timestamp_arg(third, "origin")?,
                _ => {
                    let name = text_arg(third, "timezone")?;
                    let tz: Tz = name.parse().map_err(|e| {
                        datafusion::error::DataFusionError::Execution(format!(
                            "time_bucket: unknown time zone \"{name}\": {e}"
                        ))
                    })?;
                    spec.tz = Some(tz);
                    if let Some(origin) = args.get(3) {
                        spec.origin = timestamp_arg(origin, "origin")?;
                    }
                    if let Some(offset) = args.get(4) {
                        spec.offset = interval_arg(offset, "offset")?;
                    }
                }
            }
        }
        let tz_type = args[1].data_type();
        match &args[1] {
            ColumnarValue::Scalar(value) => {
                let ScalarValue::TimestampNanosecond(ts, tz) = value else {
                    return exec_err!("time_bucket: expected a timestamp, got {tz_type}");
                };
                let bucket = ts.map(|t| spec.bucket(t)).transpose()?;
                Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
                    bucket,
                    tz.clone(),
                )))
            }
            ColumnarValue::Array(array) => {
                let times = array.as_primitive::<TimestampNanosecondType>();
                let buckets: TimestampNanosecondArray = times.try_unary(|t| {
                    spec.bucket(t).map_err(|e| {
                        datafusion::arrow::error::ArrowError::ComputeError(e.to_string())
                    })
                })?;
                let buckets = buckets.with_timezone_opt(times.timezone().map(Arc::<str>::from));
                Ok(ColumnarValue::Array(Arc::new(buckets) as ArrayRef))
            }
        }
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        // Bucketing is monotonic in the time argument when the other arguments are constant.
        let others_constant = input
            .iter()
            .enumerate()
            .all(|(i, p)| i == 1 || p.sort_properties == SortProperties::Singleton);
        Ok(if others_constant {
            input[1].sort_properties
        } else {
            SortProperties::Unordered
        })
    }
}

/// The start of the default-origin bucket of `width` holding `t` (UTC nanoseconds).
pub(crate) fn bucket_start(width: IntervalMonthDayNano, t: i64) -> Result<i64> {
    BucketSpec {
        width: Width::from_interval(width)?,
        origin: None,
        offset: IntervalMonthDayNano::ZERO,
        tz: None,
    }
    .bucket(t)
}

/// The start of the bucket after the one starting at `start`.
pub(crate) fn next_bucket(width: IntervalMonthDayNano, start: i64) -> Result<i64> {
    match Width::from_interval(width)? {
        Width::Nanos(w) => start
            .checked_add(w)
            .map_or_else(|| exec_err!("time_bucket: result out of range"), Ok),
        Width::Months(m) => to_nanos(add_months(
            DateTime::from_timestamp_nanos(start).naive_utc(),
            i64::from(m),
        )?),
    }
}

/// A bucket width: fixed nanoseconds, or calendar months.
#[derive(Debug, Clone, Copy)]
enum Width {
    Nanos(i64),
    Months(i32),
}

impl Width {
    fn from_interval(i: IntervalMonthDayNano) -> Result<Self> {
        if i.months != 0 && (i.days != 0 || i.nanoseconds != 0) {
            return exec_err!(
                "time_bucket: a width cannot mix months or years with days or smaller units"
            );
        }
        if i.months != 0 {
            if i.months < 0 {
                return exec_err!("time_bucket: the width must be positive");
            }
            return Ok(Width::Months(i.months));
        }
        let nanos = i128::from(i.days) * i128::from(NANOS_PER_DAY) + i128::from(i.nanoseconds);
        match i64::try_from(nanos) {
            Ok(n) if n > 0 => Ok(Width::Nanos(n)),
            _ => exec_err!("time_bucket: the width must be positive"),
        }
    }
}

struct BucketSpec {
    width: Width,
    /// An explicit origin, as a UTC instant.
    origin: Option<i64>,
    offset: IntervalMonthDayNano,
    tz: Option<Tz>,
}

impl BucketSpec {
    /// The start of the bucket holding `t` (UTC nanoseconds), as UTC nanoseconds.
    fn bucket(&self, t: i64) -> Result<i64> {
        // Bucket on the wall clock of the time zone (UTC when none is given): shift by the
        // offset first and back afterwards, as TimescaleDB does.
        let local = self.to_local(t);
        let shifted = shift(local, self.offset, -1)?;
        let origin = match self.origin {
            Some(o) => self.to_local(o),
            None => match self.width {
                Width::Nanos(_) => DEFAULT_ORIGIN_NANOS,
                Width::Months(_) => DEFAULT_MONTH_ORIGIN_NANOS,
            },
        };
        let start = match self.width {
            Width::Nanos(w) => {
                let diff = i128::from(shifted) - i128::from(origin);
                let start = i128::from(origin) + diff.div_euclid(i128::from(w)) * i128::from(w);
                i64::try_from(start).or_else(|_| exec_err!("time_bucket: result out of range"))?
            }
            Width::Months(w) => bucket_months(shifted, origin, w)?,
        };
        let local_start = shift(start, self.offset, 1)?;
        self.to_utc(local_start)
    }

    fn to_local(&self, utc: i64) -> i64 {
        match &self.tz {
            None => utc,
            Some(tz) => {
                let instant = DateTime::from_timestamp_nanos(utc);
                let offset = tz.offset_from_utc_datetime(&instant.naive_utc()).fix();
                utc.saturating_add(i64::from(offset.local_minus_utc()) * 1_000_000_000)
            }
        }
    }

    fn to_utc(&self, local: i64) -> Result<i64> {
        let Some(tz) = &self.tz else {
            return Ok(local);
        };
        let naive = DateTime::from_timestamp_nanos(local).naive_utc();
        // In a DST gap the wall-clock time does not exist: use the offset before the gap.
        let offset = match tz.offset_from_local_datetime(&naive).earliest() {
            Some(o) => o.fix(),
            None => tz
                .offset_from_utc_datetime(&(naive - chrono::Duration::hours(3)))
                .fix(),
        };
        Ok(local - i64::from(offset.local_minus_utc()) * 1_000_000_000)
    }
}

/// The start of the `width`-month bucket (counted from `origin`) that holds `t`.
fn bucket_months(t: i64, origin: i64, width: i32) -> Result<i64> {
    let t_dt = DateTime::from_timestamp_nanos(t).naive_utc();
    let o_dt = DateTime::from_timestamp_nanos(origin).naive_utc();
    let months = |d: &NaiveDateTime| i64::from(d.year()) * 12 + i64::from(d.month0());
    let mut k = (months(&t_dt) - months(&o_dt)).div_euclid(i64::from(width));
    loop {
        let start = add_months(o_dt, k * i64::from(width))?;
        if start <= t_dt {
            return to_nanos(start);
        }
        k -= 1;
    }
}

fn add_months(d: NaiveDateTime, months: i64) -> Result<NaiveDateTime> {
    let shifted = if months >= 0 {
        u32::try_from(months)
            .ok()
            .and_then(|m| d.checked_add_months(Months::new(m)))
    } else {
        u32::try_from(-months)
            .ok()
            .and_then(|m| d.checked_sub_months(Months::new(m)))
    };
    shifted.map_or_else(|| exec_err!("time_bucket: result out of range"), Ok)
}

fn to_nanos(d: NaiveDateTime) -> Result<i64> {
    d.and_utc()
        .timestamp_nanos_opt()
        .map_or_else(|| exec_err!("time_bucket: result out of range"), Ok)
}

/// `t` moved by `sign` × `interval` (months on the calendar, the rest as fixed time).
fn shift(t: i64, interval: IntervalMonthDayNano, sign: i64) -> Result<i64> {
    if interval == IntervalMonthDayNano::ZERO {
        return Ok(t);
    }
    let mut t = t;
    if interval.months != 0 {
        let d = DateTime::from_timestamp_nanos(t).naive_utc();
        t = to_nanos(add_months(d, sign * i64::from(interval.months))?)?;
    }
    let fixed = i64::from(interval.days) * NANOS_PER_DAY + interval.nanoseconds;
    t.checked_add(sign * fixed)
        .map_or_else(|| exec_err!("time_bucket: result out of range"), Ok)
}

fn interval_arg(value: &ColumnarValue, what: &str) -> Result<IntervalMonthDayNano> {
    match value {
        ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(i))) => Ok(*i),
        ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(None)) => {
            exec_err!("time_bucket: the {what} is NULL")
        }
        _ => exec_err!("time_bucket: the {what} must be a constant interval"),
    }
}

fn timestamp_arg(value: &ColumnarValue, what: &str) -> Result<Option<i64>> {
    match value {
        ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(v, _)) => Ok(*v),
        _ => exec_err!("time_bucket: the {what} must be a constant timestamp"),
    }
}

fn text_arg(value: &ColumnarValue, what: &str) -> Result<String> {
    match value {
        ColumnarValue::Scalar(s) => match s.try_as_str() {
            Some(Some(text)) => Ok(text.to_string()),
            _ => exec_err!("time_bucket: the {what} must be a constant text"),
        },
        ColumnarValue::Array(_) => exec_err!("time_bucket: the {what} must be a constant text"),
    }
}

/// `time_bucket(width, value [, offset])` over integers.
fn bucket_integers(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let int = |v: &ColumnarValue, what: &str| match v {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(i))) => Ok(*i),
        _ => exec_err!("time_bucket: the {what} must be a constant integer"),
    };
    let width = int(&args[0], "width")?;
    if width <= 0 {
        return exec_err!("time_bucket: the width must be positive");
    }
    let offset = args
        .get(2)
        .map(|o| int(o, "offset"))
        .transpose()?
        .unwrap_or(0);
    let bucket = |v: i64| {
        let shifted = i128::from(v) - i128::from(offset);
        let start = shifted.div_euclid(i128::from(width)) * i128::from(width) + i128::from(offset);
        i64::try_from(start).unwrap_or(if start < 0 { i64::MIN } else { i64::MAX })
    };
    Ok(match &args[1] {
        ColumnarValue::Scalar(ScalarValue::Int64(v)) => {
            ColumnarValue::Scalar(ScalarValue::Int64(v.map(bucket)))
        }
        ColumnarValue::Array(a) => {
            let values: Int64Array = a.as_primitive::<Int64Type>().unary(bucket);
            ColumnarValue::Array(Arc::new(values))
        }
        other => return exec_err!("time_bucket: unexpected value {other:?}"),
    })
}
