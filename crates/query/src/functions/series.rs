//! Series window functions: `difference`, `derivative`, `non_negative_derivative`, `rate`
//! and `moving_average`, used as `f(...) OVER (PARTITION BY <tags> ORDER BY time)`.
//!
//! They are window functions rather than aggregates because each output row belongs to an
//! input row: DataFusion sorts and partitions the series (by tags) once, then each
//! evaluator walks one partition in time order. Every function compares a point with the
//! previous point that has a value (NULL values are skipped, as InfluxQL does), and the
//! first point of a series has no predecessor, so its result is NULL.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit,
    TimestampNanosecondType,
};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{PartitionEvaluator, Signature, Volatility, WindowUDFImpl};
use datafusion::physical_expr::expressions::Literal;

/// The series functions chronosdb defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesKind {
    /// `difference(value)`: value minus the previous value.
    Difference,
    /// `derivative(value, time [, unit])`: change per `unit` (default 1 second).
    Derivative,
    /// `non_negative_derivative(value, time [, unit])`: as `derivative`, NULL when negative.
    NonNegativeDerivative,
    /// `rate(value, time)`: per-second increase of a counter; a drop is a counter reset, after
    /// which the counter counted up from zero.
    Rate,
    /// `moving_average(value, n)`: mean of the last `n` values; NULL until `n` are seen.
    MovingAverage,
}

impl SeriesKind {
    pub const ALL: [SeriesKind; 5] = [
        SeriesKind::Difference,
        SeriesKind::Derivative,
        SeriesKind::NonNegativeDerivative,
        SeriesKind::Rate,
        SeriesKind::MovingAverage,
    ];

    fn name(self) -> &'static str {
        match self {
            SeriesKind::Difference => "difference",
            SeriesKind::Derivative => "derivative",
            SeriesKind::NonNegativeDerivative => "non_negative_derivative",
            SeriesKind::Rate => "rate",
            SeriesKind::MovingAverage => "moving_average",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            SeriesKind::Difference => "difference(value)",
            SeriesKind::Derivative => "derivative(value, time [, unit interval])",
            SeriesKind::NonNegativeDerivative => {
                "non_negative_derivative(value, time [, unit interval])"
            }
            SeriesKind::Rate => "rate(value, time)",
            SeriesKind::MovingAverage => "moving_average(value, n)",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SeriesFunction {
    kind: SeriesKind,
    signature: Signature,
}

impl SeriesFunction {
    pub fn new(kind: SeriesKind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const NANOS_PER_SECOND: f64 = 1e9;

impl WindowUDFImpl for SeriesFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let usage = self.kind.usage();
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        let time = |t: &DataType| matches!(t, DataType::Timestamp(..));
        let ok = match self.kind {
            SeriesKind::Difference => args.len() == 1 && numeric(&args[0]),
            SeriesKind::Derivative | SeriesKind::NonNegativeDerivative => {
                (args.len() == 2 || args.len() == 3)
                    && numeric(&args[0])
                    && time(&args[1])
                    && args
                        .get(2)
                        .is_none_or(|t| matches!(t, DataType::Interval(_) | DataType::Utf8))
            }
            SeriesKind::Rate => args.len() == 2 && numeric(&args[0]) && time(&args[1]),
            SeriesKind::MovingAverage => {
                args.len() == 2 && numeric(&args[0]) && args[1].is_integer()
            }
        };
        if !ok {
            let given: Vec<String> = args.iter().map(ToString::to_string).collect();
            return plan_err!("usage: {usage}, called with ({})", given.join(", "));
        }
        let mut coerced = vec![DataType::Float64];
        match self.kind {
            SeriesKind::Difference => {}
            SeriesKind::MovingAverage => coerced.push(DataType::Int64),
            _ => {
                coerced.push(DataType::Timestamp(TimeUnit::Nanosecond, None));
                if args.len() == 3 {
                    coerced.push(DataType::Interval(IntervalUnit::MonthDayNano));
                }
            }
        }
        Ok(coerced)
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let constant = |i: usize| -> Option<ScalarValue> {
            args.input_exprs()
                .get(i)?
                .downcast_ref::<Literal>()
                .map(|l| l.value().clone())
        };
        let parameter = match self.kind {
            SeriesKind::MovingAverage => match constant(1) {
                Some(ScalarValue::Int64(Some(n))) if n > 0 => n as f64,
                _ => {
                    return plan_err!(
                        "moving_average(value, n): n must be a positive integer constant"
                    );
                }
            },
            SeriesKind::Derivative | SeriesKind::NonNegativeDerivative => match constant(2) {
                None if args.input_exprs().len() < 3 => NANOS_PER_SECOND,
                Some(ScalarValue::IntervalMonthDayNano(Some(unit))) => unit_nanos(unit)?,
                _ => {
                    return plan_err!(
                        "{}: the unit must be a constant interval such as '1 minute'",
                        self.kind.name()
                    );
                }
            },
            _ => NANOS_PER_SECOND,
        };
        Ok(Box::new(SeriesEvaluator {
            kind: self.kind,
            parameter,
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }
}

fn unit_nanos(unit: IntervalMonthDayNano) -> Result<f64> {
    if unit.months != 0 {
        return plan_err!("derivative: the unit cannot be in months or years");
    }
    let nanos = unit.days as f64 * 86_400.0 * NANOS_PER_SECOND + unit.nanoseconds as f64;
    if nanos <= 0.0 {
        return plan_err!("derivative: the unit must be positive");
    }
    Ok(nanos)
}

#[derive(Debug)]
struct SeriesEvaluator {
    kind: SeriesKind,
    /// The derivative unit in nanoseconds, or the moving-average window length.
    parameter: f64,
}

impl PartitionEvaluator for SeriesEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let value_array = cast(&values[0], &DataType::Float64)?;
        let value = value_array.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let mut out = Float64Builder::with_capacity(num_rows);
        match self.kind {
            SeriesKind::Difference => {
                let mut previous: Option<f64> = None;
                for i in 0..num_rows {
                    if value.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let v = value.value(i);
                    out.append_option(previous.map(|p| v - p));
                    previous = Some(v);
                }
            }
            SeriesKind::MovingAverage => {
                let n = self.parameter as usize;
                let mut window: VecDeque<f64> = VecDeque::with_capacity(n);
                let mut sum = 0.0;
                for i in 0..num_rows {
                    if value.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let v = value.value(i);
                    window.push_back(v);
                    sum += v;
                    if window.len() > n {
                        sum -= window.pop_front().unwrap_or(0.0);
                    }
                    if window.len() == n {
                        out.append_value(sum / n as f64);
                    } else {
                        out.append_null();
                    }
                }
            }
            SeriesKind::Derivative | SeriesKind::NonNegativeDerivative | SeriesKind::Rate => {
                let Some(times) = values.get(1) else {
                    return exec_err!("{}: missing the time argument", self.kind.name());
                };
                let times = match times.data_type() {
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => times
                        .as_primitive::<TimestampNanosecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    other => {
                        return exec_err!(
                            "{}: time must be a timestamp, got {other}",
                            self.kind.name()
                        );
                    }
                };
                let mut previous: Option<(i64, f64)> = None;
                for i in 0..num_rows {
                    if value.is_null(i) || times.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let (t, v) = (times.value(i), value.value(i));
                    let result = previous.and_then(|(pt, pv)| {
                        let elapsed = (t - pt) as f64;
                        if elapsed <= 0.0 {
                            return None;
                        }
                        let change = match self.kind {
                            SeriesKind::Rate if v < pv => v,
                            _ => v - pv,
                        };
                        let per_unit = change / (elapsed / self.parameter);
                        match self.kind {
                            SeriesKind::NonNegativeDerivative if per_unit < 0.0 => None,
                            _ => Some(per_unit),
                        }
                    });
                    out.append_option(result);
                    previous = Some((t, v));
                }
            }
        }
        let result: Float64Array = out.finish();
        Ok(Arc::new(result))
    }
}
