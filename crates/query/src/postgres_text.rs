//! Values as PostgreSQL's output functions write them, and casts to text that agree.
//!
//! DataFusion (and Arrow) write floats, timestamps and intervals in Rust's style: `20.0`,
//! `1e20`, `inf`, `2023-11-14T22:10:00`, `00:00:01.500000`, `2 days 3 hours`. PostgreSQL
//! writes `20`, `1e+20`, `Infinity`, `2023-11-14 22:10:00`, `00:00:01.5` and
//! `2 days 03:00:00`, and clients parse what PostgreSQL writes (Java's
//! `Double.parseDouble` cannot read `inf`). The functions here write PostgreSQL's text;
//! pgwire's text output uses them for result columns, and [`PostgresTextCasts`], an
//! analyzer rule, makes `CAST(x AS text)` of a float or timestamp call them too.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::arrow::temporal_conversions::{
    timestamp_ms_to_datetime, timestamp_ns_to_datetime, timestamp_s_to_datetime,
    timestamp_us_to_datetime,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::expr_rewrite::rewrite_node_expressions;

/// Whether values of `data_type` have a PostgreSQL text form that differs from Arrow's
/// (and that [`postgres_text_array`] writes).
pub fn has_postgres_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(..)
            | DataType::Interval(IntervalUnit::MonthDayNano)
    )
}

/// `column` (of a type [`has_postgres_text`] accepts) as PostgreSQL's text; other
/// columns are returned as they are.
pub fn postgres_text_array(column: &ArrayRef) -> ArrayRef {
    let mut text = StringBuilder::with_capacity(column.len(), column.len() * 12);
    let mut push = |value: Option<String>| text.append_option(value);
    match column.data_type() {
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .iter()
            .for_each(|v| push(v.map(float8_text))),
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .iter()
            .for_each(|v| push(v.map(float4_text))),
        DataType::Timestamp(unit, zone) => {
            let zone: Option<Tz> = zone.as_deref().and_then(|z| z.parse().ok());
            let to_datetime: fn(i64) -> Option<NaiveDateTime> = match unit {
                TimeUnit::Second => timestamp_s_to_datetime,
                TimeUnit::Millisecond => timestamp_ms_to_datetime,
                TimeUnit::Microsecond => timestamp_us_to_datetime,
                TimeUnit::Nanosecond => timestamp_ns_to_datetime,
            };
            let values: Box<dyn Iterator<Item = Option<i64>>> = match unit {
                TimeUnit::Second => Box::new(column.as_primitive::<TimestampSecondType>().iter()),
                TimeUnit::Millisecond => {
                    Box::new(column.as_primitive::<TimestampMillisecondType>().iter())
                }
                TimeUnit::Microsecond => {
                    Box::new(column.as_primitive::<TimestampMicrosecondType>().iter())
                }
                TimeUnit::Nanosecond => {
                    Box::new(column.as_primitive::<TimestampNanosecondType>().iter())
                }
            };
            values.for_each(|v| {
                push(v.and_then(to_datetime).map(|t| match &zone {
                    None => timestamp_text(&t),
                    Some(zone) => timestamptz_text(&t, zone),
                }))
            });
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => column
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .for_each(|v| push(v.map(|v| interval_text(v.months, v.days, v.nanoseconds)))),
        _ => return column.clone(),
    }
    Arc::new(text.finish())
}

/// Rewrites `CAST(x AS text)` of a float or timestamp into `postgres_text(x)`.
#[derive(Debug, Default)]
pub struct PostgresTextCasts;

impl AnalyzerRule for PostgresTextCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node)
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "chronosdb_postgres_text_casts"
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn rewrite_node(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    rewrite_node_expressions(
        plan,
        |e| matches!(e, Expr::Cast(Cast { field, .. }) if is_text(field.data_type())),
        rewrite_expr,
    )
}

fn rewrite_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = expr else {
        return Ok(Transformed::no(expr));
    };
    if !is_text(field.data_type()) || !has_postgres_text(&inner.get_type(schema)?) {
        return Ok(Transformed::no(Expr::Cast(Cast { expr: inner, field })));
    }
    let udf = ScalarUDF::new_from_impl(PostgresText::new());
    let text = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![*inner]));
    Ok(Transformed::yes(if field.data_type() == &DataType::Utf8 {
        text
    } else {
        Expr::Cast(Cast {
            expr: Box::new(text),
            field,
        })
    }))
}

/// `postgres_text(x)`: a float or timestamp as PostgreSQL's text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PostgresText {
    signature: Signature,
}

impl PostgresText {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PostgresText {
    fn name(&self) -> &str {
        "postgres_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("postgres_text takes one argument");
        };
        match value {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(postgres_text_array(array))),
            ColumnarValue::Scalar(scalar) => {
                let array = postgres_text_array(&scalar.to_array()?);
                Ok(ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::try_from_array(&array, 0)?,
                ))
            }
        }
    }
}

/// A `float8` as PostgreSQL writes it: the shortest digits that read back to the same
/// value, in positional notation for decimal exponents from -4 to 14 and as `1.5e+20` /
/// `1e-07` beyond; `Infinity`, `-Infinity`, `NaN`.
pub fn float8_text(value: f64) -> String {
    float_text(value, format!("{value:e}"), 15)
}

/// A `float4` as PostgreSQL writes it (as [`float8_text`], positional up to exponent 5).
pub fn float4_text(value: f32) -> String {
    float_text(f64::from(value), format!("{value:e}"), 6)
}

fn float_text(value: f64, shortest: String, positional_below: i32) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // `shortest` is Rust's shortest round-trip form, `-1.5e-7`.
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if value == 0.0 {
        return mantissa.into();
    }
    if !(-4..positional_below).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    let (negative, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = unsigned.chars().filter(|c| *c != '.').collect();
    let mut text = String::with_capacity(digits.len() + 8);
    if negative {
        text.push('-');
    }
    if exponent < 0 {
        text.push_str("0.");
        text.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        text.push_str(&digits);
    } else {
        let whole = exponent as usize + 1;
        if digits.len() <= whole {
            text.push_str(&digits);
            text.extend(std::iter::repeat_n('0', whole - digits.len()));
        } else {
            text.push_str(&digits[..whole]);
            text.push('.');
            text.push_str(&digits[whole..]);
        }
    }
    text
}

/// A `timestamptz` (the UTC instant `utc`) as PostgreSQL writes it in the session's
/// `zone`: local time, then the offset in hours (`+01`), with minutes when it has them
/// (`+05:30`).
pub fn timestamptz_text(utc: &NaiveDateTime, zone: &Tz) -> String {
    let offset = zone.offset_from_utc_datetime(utc).fix().local_minus_utc();
    let local = *utc + chrono::TimeDelta::seconds(i64::from(offset));
    let mut text = timestamp_text(&local);
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    text.push(sign);
    text.push_str(&format!("{:02}", offset / 3600));
    if !offset.is_multiple_of(3600) {
        text.push_str(&format!(":{:02}", offset % 3600 / 60));
    }
    text
}

/// An `interval` as PostgreSQL writes it (`IntervalStyle` `postgres`): years, months and
/// days as words (`1 year 2 mons`, `-1 days`), then the time as `[-]HH:MM:SS[.fraction]`
/// when there is one or nothing else (`1 day 02:03:04`, `00:00:00`); a field after a
/// negative one gets an explicit `+`.
pub fn interval_text(months: i32, days: i32, nanoseconds: i64) -> String {
    let mut text = String::new();
    let mut is_before = false;
    let mut part = |value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        if is_before && value > 0 {
            text.push('+');
        }
        text.push_str(&format!(
            "{value} {unit}{}",
            if value == 1 { "" } else { "s" }
        ));
        is_before = value < 0;
    };
    part(i64::from(months / 12), "year");
    part(i64::from(months % 12), "mon");
    part(i64::from(days), "day");
    if text.is_empty() || nanoseconds != 0 {
        let minus = nanoseconds < 0;
        let total = nanoseconds.unsigned_abs();
        let (seconds, fraction) = (total / 1_000_000_000, total % 1_000_000_000);
        if !text.is_empty() {
            text.push(' ');
        }
        if minus {
            text.push('-');
        } else if is_before {
            text.push('+');
        }
        text.push_str(&format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ));
        if fraction != 0 {
            text.push('.');
            text.push_str(format!("{fraction:09}").trim_end_matches('0'));
        }
    }
    text
}

/// A `timestamp` as PostgreSQL writes it: `2023-11-14 22:10:00`, the fraction only when
/// there is one, its trailing zeros trimmed (`…:00.5`).
pub fn timestamp_text(time: &NaiveDateTime) -> String {
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let nanos = time.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        for (value, text) in [
            (20.0, "20"),
            (3.0, "3"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.30000000000000004, "0.30000000000000004"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(float8_text(value), text, "{value:?}");
        }
        assert_eq!(float4_text(1234567.0), "1.234567e+06");
        assert_eq!(float4_text(123456.7), "123456.7");
        assert_eq!(float4_text(0.1), "0.1");
    }

    #[test]
    fn intervals_print_as_postgresql_prints_them() {
        const HOUR: i64 = 3_600_000_000_000;
        assert_eq!(interval_text(0, 1, 0), "1 day");
        assert_eq!(interval_text(0, 0, 2 * HOUR), "02:00:00");
        assert_eq!(interval_text(0, 0, 1_500_000_000), "00:00:01.5");
        assert_eq!(interval_text(0, 2, 3 * HOUR), "2 days 03:00:00");
        assert_eq!(interval_text(14, 0, 0), "1 year 2 mons");
        assert_eq!(interval_text(0, -1, 0), "-1 days");
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(0, 0, 25 * HOUR), "25:00:00");
        assert_eq!(interval_text(0, -1, HOUR), "-1 days +01:00:00");
        assert_eq!(interval_text(0, 1, -HOUR), "1 day -01:00:00");
    }

    #[test]
    fn timestamps_trim_their_fraction() {
        let at = |nanos: i64| timestamp_ns_to_datetime(1_700_000_000_000_000_000 + nanos).unwrap();
        assert_eq!(timestamp_text(&at(0)), "2023-11-14 22:13:20");
        assert_eq!(timestamp_text(&at(500_000_000)), "2023-11-14 22:13:20.5");
        assert_eq!(
            timestamp_text(&at(123_456_000)),
            "2023-11-14 22:13:20.123456"
        );
        assert_eq!(timestamp_text(&at(1)), "2023-11-14 22:13:20.000000001");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(timestamptz_text(&at(0), &berlin), "2023-11-14 23:13:20+01");
        let kolkata: Tz = "+05:30".parse().unwrap();
        assert_eq!(
            timestamptz_text(&at(0), &kolkata),
            "2023-11-15 03:43:20+05:30"
        );
        let utc: Tz = "UTC".parse().unwrap();
        assert_eq!(
            timestamptz_text(&at(500_000_000), &utc),
            "2023-11-14 22:13:20.5+00"
        );
    }
}
