//! A zero-copy parser for the InfluxDB line protocol.
//!
//! `measurement[,tag=value…] field=value[,field=value…] [timestamp]`, one point per line.
//! Names and values borrow from the request body; only a token that contains an escape
//! sequence is copied (a `Cow::Owned`). Every line is parsed independently so that one bad
//! line never hides the good ones around it: [`parse_lines`] yields a `Result` per line,
//! carrying the 1-based line number that an HTTP client needs to find its mistake.
//!
//! Escaping follows the InfluxDB reference: in measurements, commas and spaces; in tag keys,
//! tag values and field keys, commas, equals signs and spaces; in string field values,
//! double quotes and backslashes. A backslash before any other character is literal.

mod precision;
mod writer;

use std::borrow::Cow;

pub use precision::{Precision, PrecisionError};
pub use writer::{EncodeError, write_line};

/// One parsed point. Names borrow from the input unless they contained escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// 1-based line number within the request body.
    pub line: usize,
    pub measurement: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp as written, in the request's precision; `None` means "server time".
    pub timestamp: Option<i64>,
}

/// A field value with the type its literal spelled.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Integer(i64),
    UInteger(u64),
    String(Cow<'a, str>),
    Boolean(bool),
}

impl FieldValue<'_> {
    /// The line-protocol name of the value's type, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Float(_) => "float",
            FieldValue::Integer(_) => "integer",
            FieldValue::UInteger(_) => "unsigned integer",
            FieldValue::String(_) => "string",
            FieldValue::Boolean(_) => "boolean",
        }
    }
}

/// Why one line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    /// 1-based line number within the request body.
    pub line: usize,
    pub message: String,
}

/// Parses a request body into one `Result` per non-blank, non-comment line.
///
/// A body that is not valid UTF-8 is still parsed: each line is checked on its own and only
/// the lines with invalid bytes are reported.
pub fn parse_lines(body: &[u8]) -> Vec<Result<ParsedLine<'_>, LineError>> {
    let mut out = Vec::new();
    match std::str::from_utf8(body) {
        Ok(text) => parse_text(text, 1, &mut out),
        Err(_) => {
            for (idx, raw) in body.split(|b| *b == b'\n').enumerate() {
                match std::str::from_utf8(raw) {
                    Ok(text) => parse_text(text, idx + 1, &mut out),
                    Err(e) => out.push(Err(LineError {
                        line: idx + 1,
                        message: format!(
                            "invalid UTF-8 at byte {} of the line",
                            e.valid_up_to() + 1
                        ),
                    })),
                }
            }
        }
    }
    out
}

/// Parses every line of `text`, numbering lines from `first_line`.
fn parse_text<'a>(
    text: &'a str,
    first_line: usize,
    out: &mut Vec<Result<ParsedLine<'a>, LineError>>,
) {
    let mut cursor = Cursor {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: first_line,
    };
    while cursor.pos < cursor.bytes.len() {
        cursor.skip_inline_space();
        match cursor.peek() {
            None => break,
            Some(b'\n') => {
                cursor.pos += 1;
                cursor.line += 1;
                continue;
            }
            Some(b'\r') if cursor.bytes.get(cursor.pos + 1) == Some(&b'\n') => {
                cursor.pos += 2;
                cursor.line += 1;
                continue;
            }
            Some(b'#') => {
                cursor.skip_to_next_line();
                continue;
            }
            _ => {}
        }
        let line = cursor.line;
        match cursor.parse_line() {
            Ok(parsed) => out.push(Ok(parsed)),
            Err(message) => {
                out.push(Err(LineError { line, message }));
                cursor.skip_to_next_line();
            }
        }
    }
}

/// Where a token ends.
#[derive(Clone, Copy)]
enum Delims {
    /// Measurement: ends at `,` or space.
    Measurement,
    /// Tag key or field key: ends at `=` (a `,` or space there is an error).
    Key,
    /// Tag value: ends at `,` or space.
    TagValue,
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

type ParseResult<T> = Result<T, String>;

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_line_end(&self) -> bool {
        match self.peek() {
            None | Some(b'\n') => true,
            Some(b'\r') => matches!(self.bytes.get(self.pos + 1), None | Some(b'\n')),
            _ => false,
        }
    }

    /// Advances to the next byte marked in `table` (or the end of the input).
    fn skip_to_stop(&mut self, table: &[bool; 256]) {
        let rest = &self.bytes[self.pos..];
        self.pos += rest
            .iter()
            .position(|b| table[*b as usize])
            .unwrap_or(rest.len());
    }

    fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_to_next_line(&mut self) {
        match self.bytes[self.pos..].iter().position(|b| *b == b'\n') {
            Some(off) => {
                self.pos += off + 1;
                self.line += 1;
            }
            None => self.pos = self.bytes.len(),
        }
    }

    fn parse_line(&mut self) -> ParseResult<ParsedLine<'a>> {
        let first_line_of_point = self.line;
        let measurement = self.token(Delims::Measurement)?;
        if measurement.is_empty() {
            return Err("missing measurement name".into());
        }
        let mut tags = Vec::with_capacity(if self.peek() == Some(b',') { 12 } else { 0 });
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key = self.token(Delims::Key)?;
            if key.is_empty() {
                return Err("empty tag key".into());
            }
            self.expect_equals(&key, "tag")?;
            let value = self.token(Delims::TagValue)?;
            if value.is_empty() {
                return Err(format!("tag \"{key}\" has an empty value"));
            }
            tags.push((key, value));
        }
        if self.peek() != Some(b' ') {
            return Err("expected a space and a field set after the measurement and tags".into());
        }
        self.skip_inline_space();
        if self.at_line_end() {
            return Err("missing field set: a point needs at least one field".into());
        }
        let mut fields = Vec::with_capacity(12);
        loop {
            let key = self.token(Delims::Key)?;
            if key.is_empty() {
                return Err("empty field key".into());
            }
            self.expect_equals(&key, "field")?;
            let value = self.field_value(&key)?;
            fields.push((key, value));
            if self.peek() == Some(b',') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let timestamp = if self.peek() == Some(b' ') {
            self.skip_inline_space();
            if self.at_line_end() {
                None
            } else {
                Some(self.timestamp()?)
            }
        } else {
            None
        };
        self.skip_inline_space();
        if !self.at_line_end() {
            return Err(format!(
                "unexpected text after the point: {:?}",
                self.rest_of_line()
            ));
        }
        Ok(ParsedLine {
            line: first_line_of_point,
            measurement,
            tags,
            fields,
            timestamp,
        })
    }

    fn rest_of_line(&self) -> &'a str {
        let rest = &self.text[self.pos..];
        let end = rest.find('\n').unwrap_or(rest.len()).min(64);
        let mut end = end;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        rest[..end].trim_end_matches('\r')
    }

    fn expect_equals(&mut self, key: &str, what: &str) -> ParseResult<()> {
        if self.peek() == Some(b'=') {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("{what} key \"{key}\" is missing '=' and a value"))
        }
    }

    /// Reads a measurement, key or tag value up to its unescaped delimiter.
    ///
    /// Ordinary bytes are skipped with a table lookup per byte; only the few bytes that can
    /// end a token or start an escape take the slow path.
    fn token(&mut self, delims: Delims) -> ParseResult<Cow<'a, str>> {
        let table = match delims {
            Delims::Measurement | Delims::TagValue => &NAME_STOP,
            Delims::Key => &KEY_STOP,
        };
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.skip_to_stop(table);
            let Some(b) = self.peek() else {
                break;
            };
            match b {
                b'\\' => {
                    if let Some(next) = self.bytes.get(self.pos + 1)
                        && is_escapable(delims, *next)
                    {
                        escaped = true;
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                    }
                }
                b'\r' if !self.at_line_end() => self.pos += 1,
                b',' | b' ' if matches!(delims, Delims::Key) => {
                    let (found, escaped) = if b == b',' {
                        ("a comma", "\\,")
                    } else {
                        ("a space", "\\ ")
                    };
                    return Err(format!(
                        "expected '=' after key \"{}\" but found {found} (write {escaped} to put one in a key)",
                        &self.text[start..self.pos]
                    ));
                }
                _ => break,
            }
        }
        let raw = &self.text[start..self.pos];
        if matches!(delims, Delims::Key) && self.at_line_end() && !raw.is_empty() {
            return Err(format!("key \"{raw}\" is missing '=' and a value"));
        }
        Ok(if escaped {
            Cow::Owned(unescape(raw, delims))
        } else {
            Cow::Borrowed(raw)
        })
    }

    fn field_value(&mut self, key: &str) -> ParseResult<FieldValue<'a>> {
        if self.peek() == Some(b'"') {
            return self.string_value(key).map(FieldValue::String);
        }
        let start = self.pos;
        loop {
            self.skip_to_stop(&VALUE_STOP);
            match self.peek() {
                Some(b'\r') if !self.at_line_end() => self.pos += 1,
                _ => break,
            }
        }
        let raw = &self.text[start..self.pos];
        parse_scalar(raw).map_err(|why| format!("field \"{key}\": {why}"))
    }

    /// A double-quoted string; `\"` and `\\` are escapes, and it may span lines.
    fn string_value(&mut self, key: &str) -> ParseResult<Cow<'a, str>> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "field \"{key}\": string value has no closing double quote"
                    ));
                }
                Some(b'\\') if matches!(self.bytes.get(self.pos + 1), Some(b'"' | b'\\')) => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(b'"') => break,
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = &self.text[start..self.pos];
        self.pos += 1; // closing quote
        Ok(if escaped {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\\'
                    && let Some(&next) = chars.peek()
                    && (next == '"' || next == '\\')
                {
                    out.push(next);
                    chars.next();
                    continue;
                }
                out.push(c);
            }
            Cow::Owned(out)
        } else {
            Cow::Borrowed(raw)
        })
    }

    fn timestamp(&mut self) -> ParseResult<i64> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\t' | b'\n') || (b == b'\r' && self.at_line_end()) {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.text[start..self.pos];
        raw.parse::<i64>().map_err(|_| {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                format!("timestamp {raw} is out of range (it must fit a signed 64-bit integer)")
            } else {
                format!("invalid timestamp {raw:?}: expected an integer")
            }
        })
    }
}

/// A 256-entry table that is true for the bytes in `stops`.
const fn stop_table(stops: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < stops.len() {
        table[stops[i] as usize] = true;
        i += 1;
    }
    table
}

/// Bytes that end (or escape within) a measurement or tag value.
static NAME_STOP: [bool; 256] = stop_table(b"\\, \n\r");
/// Bytes that end (or escape within) a tag or field key.
static KEY_STOP: [bool; 256] = stop_table(b"\\, =\n\r");
/// Bytes that end an unquoted field value.
static VALUE_STOP: [bool; 256] = stop_table(b", \n\r");

fn is_escapable(delims: Delims, b: u8) -> bool {
    match delims {
        Delims::Measurement => matches!(b, b',' | b' '),
        Delims::Key | Delims::TagValue => matches!(b, b',' | b' ' | b'='),
    }
}

fn unescape(raw: &str, delims: Delims) -> String {
    let mut out = String::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut run_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() && is_escapable(delims, bytes[i + 1]) {
            out.push_str(&raw[run_start..i]);
            run_start = i + 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[run_start..]);
    out
}

/// Parses an unquoted field value: integer (`i`), unsigned (`u`), float or boolean.
fn parse_scalar(raw: &str) -> Result<FieldValue<'static>, String> {
    let Some(&last) = raw.as_bytes().last() else {
        return Err("missing value".into());
    };
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Boolean(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Boolean(false)),
        _ => {}
    }
    let first = raw.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Err(format!(
            "invalid value {raw:?}: strings must be double-quoted"
        ));
    }
    match last {
        b'i' => raw[..raw.len() - 1]
            .parse::<i64>()
            .map(FieldValue::Integer)
            .map_err(|_| format!("invalid or out-of-range integer {raw:?}")),
        b'u' => raw[..raw.len() - 1]
            .parse::<u64>()
            .map(FieldValue::UInteger)
            .map_err(|_| format!("invalid or out-of-range unsigned integer {raw:?}")),
        _ => match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(FieldValue::Float(v)),
            _ => Err(format!("invalid number {raw:?}")),
        },
    }
}

#[cfg(test)]
mod tests;
