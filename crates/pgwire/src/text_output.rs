//! Text-format values as PostgreSQL's output functions write them.
//!
//! `arrow-pg` encodes text-format columns with Rust's formatting: `20.0`, `1e20`, `inf`,
//! timestamps with six fraction digits always. PostgreSQL writes `20`, `1e+20`,
//! `Infinity` and `2023-11-14 22:10:00` / `…:00.5`, and clients parse what PostgreSQL
//! writes (Java's `Double.parseDouble` cannot read `inf`). [`postgres_text`] turns the
//! float and timestamp columns a client receives in text format into the strings
//! PostgreSQL would send, before `arrow-pg` encodes the batch; binary-format columns and
//! other types are left as they are.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::temporal_conversions::{
    timestamp_ms_to_datetime, timestamp_ns_to_datetime, timestamp_s_to_datetime,
    timestamp_us_to_datetime,
};
use pgwire::api::results::{FieldFormat, FieldInfo};

/// `batch` with each text-format float and time-zone-less timestamp column replaced by
/// the text PostgreSQL writes for it.
pub fn postgres_text(batch: RecordBatch, fields: &[FieldInfo]) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let needs = |i: usize, column: &ArrayRef| {
        fields
            .get(i)
            .is_some_and(|field| field.format() == FieldFormat::Text)
            && rewritten(column.data_type())
    };
    if !batch.columns().iter().enumerate().any(|(i, c)| needs(i, c)) {
        return Ok(batch);
    }
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut schema_fields = Vec::with_capacity(batch.num_columns());
    for (i, column) in batch.columns().iter().enumerate() {
        let field = schema.field(i);
        if needs(i, column) {
            columns.push(as_text(column));
            schema_fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
        } else {
            columns.push(column.clone());
            schema_fields.push(field.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)
}

/// Whether a column of `data_type` is written differently from `arrow-pg`'s text.
fn rewritten(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float32 | DataType::Float64 | DataType::Timestamp(_, None)
    )
}

/// `column` (a type [`rewritten`] accepts) as PostgreSQL's text.
fn as_text(column: &ArrayRef) -> ArrayRef {
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
        DataType::Timestamp(unit, None) => {
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
            values.for_each(|v| push(v.and_then(to_datetime).map(|t| timestamp_text(&t))));
        }
        _ => return column.clone(),
    }
    Arc::new(text.finish())
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
    fn timestamps_trim_their_fraction() {
        let at = |nanos: i64| timestamp_ns_to_datetime(1_700_000_000_000_000_000 + nanos).unwrap();
        assert_eq!(timestamp_text(&at(0)), "2023-11-14 22:13:20");
        assert_eq!(timestamp_text(&at(500_000_000)), "2023-11-14 22:13:20.5");
        assert_eq!(
            timestamp_text(&at(123_456_000)),
            "2023-11-14 22:13:20.123456"
        );
        assert_eq!(timestamp_text(&at(1)), "2023-11-14 22:13:20.000000001");
    }
}
