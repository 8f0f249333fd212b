//! Writing line protocol: the inverse of the parser.
//!
//! Points that arrive some other way than HTTP (SQL `INSERT`, `COPY`) are encoded as line
//! protocol so they travel the one durable write path: the WAL stores request bodies, and
//! replay re-parses them. The escaping here is exactly what the parser undoes.

use crate::FieldValue;

/// Why a point cannot be written as line protocol.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} {name:?} contains a line break, which line protocol cannot carry")]
    LineBreak { what: &'static str, name: String },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("field {field:?} is {value}; only finite numbers can be stored")]
    NonFinite { field: String, value: f64 },
    #[error("a point needs at least one non-NULL field")]
    NoFields,
}

/// Appends one point, terminated by a newline, to `out`. Tags with empty values are left
/// out (line protocol has no empty tag); `timestamp` is in nanoseconds, `None` meaning
/// "the server's time".
pub fn write_line(
    out: &mut Vec<u8>,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, FieldValue<'_>)],
    timestamp: Option<i64>,
) -> Result<(), EncodeError> {
    if fields.is_empty() {
        return Err(EncodeError::NoFields);
    }
    let start = out.len();
    let result = write_point(out, measurement, tags, fields, timestamp);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_point(
    out: &mut Vec<u8>,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, FieldValue<'_>)],
    timestamp: Option<i64>,
) -> Result<(), EncodeError> {
    escape_name(out, "measurement", measurement, b", ")?;
    for (key, value) in tags {
        if value.is_empty() {
            continue;
        }
        out.push(b',');
        escape_name(out, "tag key", key, b", =")?;
        out.push(b'=');
        escape_name(out, "tag value", value, b", =")?;
    }
    for (i, (key, value)) in fields.iter().enumerate() {
        out.push(if i == 0 { b' ' } else { b',' });
        escape_name(out, "field key", key, b", =")?;
        out.push(b'=');
        match value {
            FieldValue::Float(v) => {
                if !v.is_finite() {
                    return Err(EncodeError::NonFinite {
                        field: key.to_string(),
                        value: *v,
                    });
                }
                // Rust prints the shortest text that parses back to the same f64.
                out.extend_from_slice(format!("{v:?}").as_bytes());
            }
            FieldValue::Integer(v) => out.extend_from_slice(format!("{v}i").as_bytes()),
            FieldValue::UInteger(v) => out.extend_from_slice(format!("{v}u").as_bytes()),
            FieldValue::Boolean(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
            FieldValue::String(s) => {
                out.push(b'"');
                for b in s.bytes() {
                    if matches!(b, b'"' | b'\\') {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
        }
    }
    if let Some(ts) = timestamp {
        out.extend_from_slice(format!(" {ts}").as_bytes());
    }
    out.push(b'\n');
    Ok(())
}

/// Writes a name with a backslash before each of `special`.
fn escape_name(
    out: &mut Vec<u8>,
    what: &'static str,
    name: &str,
    special: &[u8],
) -> Result<(), EncodeError> {
    if name.is_empty() {
        return Err(EncodeError::Empty { what });
    }
    if name.contains(['\n', '\r']) {
        return Err(EncodeError::LineBreak {
            what,
            name: name.to_string(),
        });
    }
    for b in name.bytes() {
        if special.contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    }
    Ok(())
}
