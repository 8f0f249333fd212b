//! Turns a line-protocol body into validated Arrow batches, one per table.
//!
//! Validation is per line: a line whose tag or field clashes with the catalog (a field
//! written with another type, a tag named like a field, the reserved `time` name, a
//! timestamp out of range) is refused with a message, and the other lines go on. New
//! tables and columns are added to the catalog here, before the WAL append, so that two
//! concurrent requests that race to create the same column with different types are
//! serialized by the catalog and exactly one of them wins.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chronosdb_catalog::{
    Catalog, CatalogError, CatalogOp, CatalogState, Column, ColumnKind, FieldType, TIME_COLUMN,
    TableSchema, validate_name,
};
use chronosdb_line_protocol::{FieldValue, LineError, ParsedLine, Precision, parse_lines};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::error::Result;

/// How many times to re-validate after losing a schema race before giving up.
const SCHEMA_RETRIES: usize = 16;

/// Validated rows of one table, with a hash of each row's (series, time) key.
#[derive(Debug, Clone)]
pub struct TableBatch {
    pub table: String,
    pub batch: RecordBatch,
    /// One hash per row over `time` and the non-null tags, in schema order: equal for two
    /// writes of the same point (a missing tag column hashes like a null tag).
    pub row_keys: Vec<u64>,
}

/// The outcome of validating a write: batches ready to log and buffer, and refused lines.
#[derive(Debug, Default)]
pub struct PreparedWrite {
    pub batches: Vec<TableBatch>,
    pub rejected: Vec<LineError>,
    pub accepted_lines: usize,
}

/// Bounds on what one line may write; a line over any of them is refused on its own, with
/// a message naming the limit, and the other lines of the request go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// The series key: the measurement and its tags as written (`cpu,host=a,region=eu`),
    /// which bounds the measurement name, every tag key and value; field keys too.
    pub max_series_key_bytes: usize,
    /// A string field value.
    pub max_string_field_bytes: usize,
}

impl WriteLimits {
    /// InfluxDB's bound on a series key (64 KiB) and 1 MiB strings.
    pub const DEFAULT: WriteLimits = WriteLimits {
        max_series_key_bytes: 64 * 1024,
        max_string_field_bytes: 1024 * 1024,
    };

    /// No bounds: WAL replay rebuilds every line the live write accepted, whatever the
    /// limits are now (the lines refused then are skipped by number).
    pub const NONE: WriteLimits = WriteLimits {
        max_series_key_bytes: usize::MAX,
        max_string_field_bytes: usize::MAX,
    };

    /// Why `line` is over a limit, if it is.
    fn check(&self, line: &ParsedLine<'_>) -> std::result::Result<(), String> {
        let key_bytes = line.measurement.len()
            + line
                .tags
                .iter()
                .map(|(k, v)| 2 + k.len() + v.len())
                .sum::<usize>();
        if key_bytes > self.max_series_key_bytes {
            return Err(format!(
                "the series key (measurement and tags) is {key_bytes} bytes, over the limit of {} \
                 (--max-series-key-size)",
                self.max_series_key_bytes
            ));
        }
        for (key, value) in &line.fields {
            if key.len() > self.max_series_key_bytes {
                return Err(format!(
                    "field key \"{}…\" is {} bytes, over the limit of {} (--max-series-key-size)",
                    prefix(key, 32),
                    key.len(),
                    self.max_series_key_bytes
                ));
            }
            if let FieldValue::String(text) = value
                && text.len() > self.max_string_field_bytes
            {
                return Err(format!(
                    "string field \"{}\" is {} bytes, over the limit of {} (--max-string-field-size)",
                    prefix(key, 64),
                    text.len(),
                    self.max_string_field_bytes
                ));
            }
        }
        Ok(())
    }
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// At most the first `chars` characters of `text`.
fn prefix(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(end, _)| &text[..end])
}

/// Parses and validates `body`, extending the catalog with new tables and columns.
///
/// `default_time` (ns) is used for lines without a timestamp. Replaying a WAL record runs
/// this same function with the record's `default_time`, so replay rebuilds exactly the
/// batches the live write built.
pub fn prepare_write(
    catalog: &Catalog,
    database: &str,
    body: &[u8],
    precision: Precision,
    default_time: i64,
    skip_lines: &[u32],
    limits: &WriteLimits,
) -> Result<PreparedWrite> {
    let mut parsed = parse_lines(body);
    if !skip_lines.is_empty() {
        parsed.retain(|r| {
            let line = match r {
                Ok(l) => l.line,
                Err(e) => e.line,
            };
            !skip_lines.contains(&(line as u32))
        });
    }
    let mut rejected = Vec::new();
    // Points older than the database's retention period would never be seen: refused,
    // as InfluxDB refuses points beyond its retention policy.
    let retention = catalog.snapshot().database(database).and_then(|db| {
        db.retention_cutoff(default_time)
            .map(|cutoff| (cutoff, db.retention_nanos))
    });
    let mut lines: Vec<(usize, ParsedLine<'_>, i64)> = Vec::with_capacity(parsed.len());
    for result in parsed {
        match result {
            Ok(line) => {
                if let Err(message) = limits.check(&line) {
                    rejected.push(LineError {
                        line: line.line,
                        message,
                    });
                    continue;
                }
                let time = match line.timestamp {
                    Some(ts) => match precision.to_nanos(ts) {
                        Some(ns) => ns,
                        None => {
                            rejected.push(LineError {
                                line: line.line,
                                message: format!(
                                    "timestamp {ts} is out of range for precision {precision:?}"
                                ),
                            });
                            continue;
                        }
                    },
                    None => default_time,
                };
                if let Some((cutoff, period)) = retention
                    && time < cutoff
                {
                    rejected.push(LineError {
                        line: line.line,
                        message: match period {
                            Some(period) if cutoff == default_time.saturating_sub(period) => {
                                format!(
                                    "the point is older than the database's retention period ({}): it would never be visible",
                                    chronosdb_catalog::format_retention(period)
                                )
                            }
                            _ => format!(
                                "the point is older than {cutoff} (ns since the epoch), before which an earlier retention period deleted the database's points: it would never be visible"
                            ),
                        },
                    });
                    continue;
                }
                lines.push((line.line, line, time));
            }
            Err(e) => rejected.push(e),
        }
    }
    let mut snapshot = catalog.snapshot();
    let mut attempt = 0;
    let verdicts = loop {
        let (verdicts, ops) = validate(&snapshot, database, &lines);
        if ops.is_empty() {
            break verdicts;
        }
        match catalog.apply(ops) {
            Ok(next) => {
                snapshot = next;
                break verdicts;
            }
            Err(CatalogError::TypeConflict { .. }) if attempt < SCHEMA_RETRIES => {
                attempt += 1;
                snapshot = catalog.snapshot();
            }
            Err(e) => return Err(e.into()),
        }
    };

    let mut by_table: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, verdict) in verdicts.into_iter().enumerate() {
        match verdict {
            None => by_table
                .entry(lines[i].1.measurement.as_ref())
                .or_default()
                .push(i),
            Some(message) => rejected.push(LineError {
                line: lines[i].0,
                message,
            }),
        }
    }
    rejected.sort_by_key(|e| e.line);

    let mut batches = Vec::with_capacity(by_table.len());
    let mut accepted_lines = 0;
    for (table, indices) in by_table {
        let Some(def) = snapshot.table(database, table) else {
            continue;
        };
        accepted_lines += indices.len();
        let batch = build_batch(&def.schema, indices.iter().map(|i| &lines[*i]))?;
        let row_keys = row_keys(&def.schema, &batch)?;
        batches.push(TableBatch {
            table: table.to_string(),
            batch,
            row_keys,
        });
    }
    Ok(PreparedWrite {
        batches,
        rejected,
        accepted_lines,
    })
}

/// Checks each line against the snapshot; returns per-line refusals and the catalog ops
/// that the accepted lines need.
fn validate(
    snapshot: &CatalogState,
    database: &str,
    lines: &[(usize, ParsedLine<'_>, i64)],
) -> (Vec<Option<String>>, Vec<CatalogOp>) {
    let mut pending: BTreeMap<&str, Vec<Column>> = BTreeMap::new();
    let mut verdicts = Vec::with_capacity(lines.len());
    // Agents send runs of lines with identical keys; a line shaped exactly like the last
    // accepted one (same table, same keys and types in the same order) is accepted too.
    let mut last_accepted: Option<&ParsedLine<'_>> = None;
    for (_, line, _) in lines {
        if last_accepted.is_some_and(|prev| same_shape(prev, line)) {
            verdicts.push(None);
            continue;
        }
        let table = line.measurement.as_ref();
        let existing = snapshot.table(database, table).map(|t| &t.schema);
        let verdict = check_line(table, existing, pending.get(table), line);
        match verdict {
            Ok(new_columns) => {
                if existing.is_none() || !new_columns.is_empty() {
                    let entry = pending.entry(table).or_default();
                    for c in new_columns {
                        if !entry.iter().any(|e| e.name == c.name) {
                            entry.push(c);
                        }
                    }
                }
                verdicts.push(None);
                last_accepted = Some(line);
            }
            Err(message) => verdicts.push(Some(message)),
        }
    }
    let mut ops = Vec::new();
    if !pending.is_empty() {
        if snapshot.database(database).is_none() {
            ops.push(CatalogOp::CreateDatabase {
                database: database.to_string(),
            });
        }
        for (table, columns) in pending {
            ops.push(CatalogOp::AddColumns {
                database: database.to_string(),
                table: table.to_string(),
                columns,
            });
        }
    }
    (verdicts, ops)
}

/// Hashes each row's `time` and tags (nulls skipped), so equal points hash equal.
fn row_keys(schema: &TableSchema, batch: &RecordBatch) -> Result<Vec<u64>> {
    let state = RandomState::with_seed(0x6368_726f_6e6f_7364);
    let mut columns = vec![batch.column(0).clone()];
    for (i, column) in schema.columns().iter().enumerate() {
        if column.kind == ColumnKind::Tag {
            columns.push(batch.column(i).clone());
        }
    }
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&columns, &state, &mut hashes)
        .map_err(|e| crate::error::StorageError::Arrow(e.to_string()))?;
    Ok(hashes)
}

/// Whether two lines have the same table, keys and value types, in the same order.
fn same_shape(a: &ParsedLine<'_>, b: &ParsedLine<'_>) -> bool {
    a.measurement == b.measurement
        && same_keys(a, b)
        && a.fields
            .iter()
            .zip(&b.fields)
            .all(|(x, y)| std::mem::discriminant(&x.1) == std::mem::discriminant(&y.1))
}

/// Same keys in the same order (types are already known to match the schema).
fn same_keys(a: &ParsedLine<'_>, b: &ParsedLine<'_>) -> bool {
    a.tags.len() == b.tags.len()
        && a.fields.len() == b.fields.len()
        && a.tags.iter().zip(&b.tags).all(|(x, y)| x.0 == y.0)
        && a.fields.iter().zip(&b.fields).all(|(x, y)| x.0 == y.0)
}

/// Returns the columns this line adds, or why it is refused.
fn check_line(
    table: &str,
    existing: Option<&TableSchema>,
    pending: Option<&Vec<Column>>,
    line: &ParsedLine<'_>,
) -> std::result::Result<Vec<Column>, String> {
    validate_name(table).map_err(|e| format!("measurement: {e}"))?;
    let mut new_columns = Vec::new();
    // Lines have few columns: a linear scan beats hashing and allocates once.
    let mut seen: Vec<(&str, ColumnKind)> = Vec::with_capacity(line.tags.len() + line.fields.len());
    let tags = line.tags.iter().map(|(k, _)| (k.as_ref(), ColumnKind::Tag));
    let fields = line
        .fields
        .iter()
        .map(|(k, v)| (k.as_ref(), ColumnKind::Field(field_type(v))));
    for (name, kind) in tags.chain(fields) {
        if name == TIME_COLUMN {
            return Err(format!(
                "\"{TIME_COLUMN}\" is reserved for the timestamp and cannot be a tag or field name"
            ));
        }
        validate_name(name).map_err(|e| e.to_string())?;
        let previous = seen.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
        if previous.is_none() {
            seen.push((name, kind));
        }
        match previous {
            Some(prev) if prev != kind => {
                return Err(format!(
                    "\"{name}\" is used both as {} and as {} in the same line",
                    prev.describe(),
                    kind.describe()
                ));
            }
            Some(_) => continue,
            None => {}
        }
        let known = existing
            .and_then(|s| s.column(name))
            .or_else(|| pending.and_then(|p| p.iter().find(|c| c.name == name)));
        match known {
            Some(col) if col.kind != kind => {
                return Err(CatalogError::TypeConflict {
                    table: table.to_string(),
                    column: name.to_string(),
                    existing: col.kind.describe(),
                    attempted: kind.describe(),
                }
                .to_string());
            }
            Some(_) => {}
            None => new_columns.push(Column {
                name: name.to_string(),
                kind,
            }),
        }
    }
    Ok(new_columns)
}

fn field_type(value: &FieldValue<'_>) -> FieldType {
    match value {
        FieldValue::Float(_) => FieldType::Float,
        FieldValue::Integer(_) => FieldType::Integer,
        FieldValue::UInteger(_) => FieldType::UInteger,
        FieldValue::String(_) => FieldType::String,
        FieldValue::Boolean(_) => FieldType::Boolean,
    }
}

/// One Arrow builder per column of the table schema.
enum ColumnBuilder {
    Time(TimestampNanosecondBuilder),
    Tag(StringDictionaryBuilder<Int32Type>),
    Float(Float64Builder),
    Integer(Int64Builder),
    UInteger(UInt64Builder),
    String(StringBuilder),
    Boolean(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind, capacity: usize) -> Self {
        match kind {
            ColumnKind::Time => Self::Time(TimestampNanosecondBuilder::with_capacity(capacity)),
            ColumnKind::Tag => Self::Tag(StringDictionaryBuilder::new()),
            ColumnKind::Field(FieldType::Float) => {
                Self::Float(Float64Builder::with_capacity(capacity))
            }
            ColumnKind::Field(FieldType::Integer) => {
                Self::Integer(Int64Builder::with_capacity(capacity))
            }
            ColumnKind::Field(FieldType::UInteger) => {
                Self::UInteger(UInt64Builder::with_capacity(capacity))
            }
            ColumnKind::Field(FieldType::String) => Self::String(StringBuilder::new()),
            ColumnKind::Field(FieldType::Boolean) => {
                Self::Boolean(BooleanBuilder::with_capacity(capacity))
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Time(b) => b.append_null(),
            Self::Tag(b) => b.append_null(),
            Self::Float(b) => b.append_null(),
            Self::Integer(b) => b.append_null(),
            Self::UInteger(b) => b.append_null(),
            Self::String(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
        }
    }

    fn append_field(&mut self, value: &FieldValue<'_>) {
        match (self, value) {
            (Self::Float(b), FieldValue::Float(v)) => b.append_value(*v),
            (Self::Integer(b), FieldValue::Integer(v)) => b.append_value(*v),
            (Self::UInteger(b), FieldValue::UInteger(v)) => b.append_value(*v),
            (Self::String(b), FieldValue::String(v)) => b.append_value(v),
            (Self::Boolean(b), FieldValue::Boolean(v)) => b.append_value(*v),
            // Validation guarantees matching types; a mismatch would be a bug, kept null.
            (other, _) => other.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Time(mut b) => Arc::new(b.finish()),
            Self::Tag(mut b) => Arc::new(b.finish()),
            Self::Float(mut b) => Arc::new(b.finish()),
            Self::Integer(mut b) => Arc::new(b.finish()),
            Self::UInteger(mut b) => Arc::new(b.finish()),
            Self::String(mut b) => Arc::new(b.finish()),
            Self::Boolean(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Builds a batch with every column of `schema` from validated lines.
fn build_batch<'l, 'a: 'l>(
    schema: &TableSchema,
    lines: impl ExactSizeIterator<Item = &'l (usize, ParsedLine<'a>, i64)>,
) -> Result<RecordBatch> {
    let rows = lines.len();
    let columns = schema.columns();
    let mut builders: Vec<ColumnBuilder> = columns
        .iter()
        .map(|c| ColumnBuilder::new(c.kind, rows))
        .collect();
    // Row index at which each column was last written, to fill the gaps with nulls.
    let mut written = vec![usize::MAX; columns.len()];
    let index: HashMap<&str, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    // Column positions of the previous line's tags then fields, reused while lines keep
    // the same keys (usize::MAX: not in the schema).
    let mut previous: Option<&ParsedLine<'_>> = None;
    let mut positions: Vec<usize> = Vec::new();
    for (row, (_, line, time)) in lines.enumerate() {
        if !previous.is_some_and(|p| same_keys(p, line)) {
            positions.clear();
            let keys = line
                .tags
                .iter()
                .map(|(k, _)| k)
                .chain(line.fields.iter().map(|(k, _)| k));
            positions.extend(keys.map(|k| index.get(k.as_ref()).copied().unwrap_or(usize::MAX)));
        }
        previous = Some(line);
        if let ColumnBuilder::Time(b) = &mut builders[0] {
            b.append_value(*time);
        }
        written[0] = row;
        for ((_, value), &i) in line.tags.iter().zip(&positions) {
            if i != usize::MAX
                && written[i] != row
                && let ColumnBuilder::Tag(b) = &mut builders[i]
            {
                b.append_value(value);
                written[i] = row;
            }
        }
        // A field written twice in one line keeps its last value, as in InfluxDB.
        for ((_, value), &i) in line.fields.iter().zip(&positions[line.tags.len()..]).rev() {
            if i != usize::MAX && written[i] != row {
                builders[i].append_field(value);
                written[i] = row;
            }
        }
        for (i, b) in builders.iter_mut().enumerate() {
            if written[i] != row {
                b.append_null();
            }
        }
    }
    let arrays: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
    Ok(RecordBatch::try_new(schema.arrow_schema(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Float64Array};

    #[test]
    fn builds_batches_and_refuses_bad_lines() {
        let catalog = Catalog::default();
        let body = b"cpu,host=a usage=1.5 10\ncpu,host=b usage=\"x\" 20\nmem free=3i 30\ncpu,host=c idle=2 40\nbad line";
        let w = prepare_write(
            &catalog,
            "db",
            body,
            Precision::Nanosecond,
            0,
            &[],
            &WriteLimits::DEFAULT,
        )
        .expect("ok");
        assert_eq!(w.accepted_lines, 3);
        let lines: Vec<usize> = w.rejected.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 5]);
        assert!(w.rejected[0].message.contains("usage"), "{:?}", w.rejected);
        assert!(w.rejected[0].message.contains("float"), "{:?}", w.rejected);
        let (name, cpu) = (&w.batches[0].table, &w.batches[0].batch);
        assert_eq!(name, "cpu");
        assert_eq!(cpu.num_rows(), 2);
        assert_eq!(cpu.num_columns(), 4); // time, host, usage, idle
        let usage = cpu
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        assert_eq!(usage.value(0), 1.5);
        assert!(usage.is_null(1));
    }

    #[test]
    fn reserved_and_clashing_names() {
        let catalog = Catalog::default();
        let body = b"cpu,time=x v=1\ncpu,a=x a=1\ncpu time=1\ncpu v=1 9223372036854775807";
        let w = prepare_write(
            &catalog,
            "db",
            body,
            Precision::Second,
            0,
            &[],
            &WriteLimits::DEFAULT,
        )
        .expect("ok");
        assert_eq!(w.accepted_lines, 0);
        assert_eq!(w.rejected.len(), 4, "{:?}", w.rejected);
        assert!(w.rejected[3].message.contains("out of range"));
    }
}
