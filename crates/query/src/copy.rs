//! `COPY`: bulk ingest from the client, and export of a table or query to it.
//!
//! - `COPY table [(columns)] FROM STDIN [WITH (FORMAT text|csv, HEADER, DELIMITER 'c',
//!   NULL 's', QUOTE 'c', ESCAPE 'c')]` decodes rows as they arrive (Arrow's CSV decoder,
//!   typed by the table's schema), and writes them through [`InsertSink`], the durable
//!   path of `INSERT` and HTTP ingest, in chunks of a few MiB. Memory stays bounded
//!   however long the stream. The table must exist, so each column's type is known.
//!   A bad row fails the COPY with its line number; chunks written before it stay
//!   written (each write is durable when acknowledged, as with HTTP ingest).
//! - `COPY table|(query) TO STDOUT [WITH (FORMAT text|csv, HEADER, DELIMITER, NULL)]` runs
//!   the query and encodes each row in PostgreSQL's text or CSV format.
//!
//! Only the statement is handled here; the pgwire front end drives the sub-protocol.

use std::sync::Arc;

use chronosdb_catalog::TIME_COLUMN;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use regex::Regex;

use crate::QueryEngine;
use crate::insert::InsertSink;

/// Rows decoded per batch of a `COPY FROM`.
const BATCH_ROWS: usize = 8192;

/// A parsed `COPY` statement.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyCommand {
    /// `COPY table [(columns)] FROM STDIN`.
    From {
        table: String,
        columns: Vec<String>,
        format: CopyFormat,
    },
    /// `COPY table|(query) TO STDOUT`; `query` is the SQL to run.
    To { query: String, format: CopyFormat },
}

/// The text or CSV format of a `COPY`, with PostgreSQL's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: u8,
    pub header: bool,
    /// The text standing for NULL: `\N` in text format, an unquoted empty value in CSV.
    pub null: String,
    pub quote: u8,
    pub escape: u8,
}

impl CopyFormat {
    fn text() -> Self {
        Self {
            csv: false,
            delimiter: b'\t',
            header: false,
            null: "\\N".into(),
            quote: b'"',
            escape: b'\\',
        }
    }

    fn csv() -> Self {
        Self {
            csv: true,
            delimiter: b',',
            header: false,
            null: String::new(),
            quote: b'"',
            escape: b'"',
        }
    }
}

fn ascii(c: char, what: &str) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        plan_err!("COPY {what} must be a single one-byte character, not {c:?}")
    }
}

/// Recognises a `COPY` statement: `None` if `sql` is not one (or does not parse, which
/// the regular path then reports), otherwise the command or why it is not supported.
pub fn parse_copy(sql: &str) -> Option<Result<CopyCommand>> {
    let trimmed = sql.trim_start();
    if !trimmed
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
    {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statements.remove(0)
    else {
        return None;
    };
    Some(copy_command(source, to, target, options, legacy_options))
}

fn copy_command(
    source: CopySource,
    to: bool,
    target: CopyTarget,
    options: Vec<CopyOption>,
    legacy_options: Vec<CopyLegacyOption>,
) -> Result<CopyCommand> {
    let is_csv = options
        .iter()
        .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv")))
        || legacy_options
            .iter()
            .any(|o| matches!(o, CopyLegacyOption::Csv(_)));
    let mut format = if is_csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    for option in options {
        match option {
            CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                "csv" | "text" => {}
                other => {
                    return plan_err!(
                        "COPY FORMAT {other} is not supported; use FORMAT text or FORMAT csv"
                    );
                }
            },
            CopyOption::Delimiter(c) => format.delimiter = ascii(c, "DELIMITER")?,
            CopyOption::Null(s) => format.null = s,
            CopyOption::Header(h) => format.header = h,
            CopyOption::Quote(c) => format.quote = ascii(c, "QUOTE")?,
            CopyOption::Escape(c) => format.escape = ascii(c, "ESCAPE")?,
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return plan_err!("COPY option {other} is not supported"),
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Delimiter(c) => format.delimiter = ascii(c, "DELIMITER")?,
            CopyLegacyOption::Null(s) => format.null = s,
            CopyLegacyOption::Csv(csv_options) => {
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => format.header = true,
                        CopyLegacyCsvOption::Quote(c) => format.quote = ascii(c, "QUOTE")?,
                        CopyLegacyCsvOption::Escape(c) => format.escape = ascii(c, "ESCAPE")?,
                        other => return plan_err!("COPY option {other} is not supported"),
                    }
                }
            }
            CopyLegacyOption::Binary => {
                return plan_err!("COPY BINARY is not supported; use FORMAT text or FORMAT csv");
            }
            other => return plan_err!("COPY option {other} is not supported"),
        }
    }
    match (to, target, source) {
        (
            false,
            CopyTarget::Stdin,
            CopySource::Table {
                table_name,
                columns,
            },
        ) => Ok(CopyCommand::From {
            table: table_name.to_string().trim_matches('"').to_string(),
            columns: columns.into_iter().map(|c| c.value).collect(),
            format,
        }),
        (false, CopyTarget::Stdin, CopySource::Query(_)) => {
            plan_err!("COPY (query) FROM is not possible: copy into a table")
        }
        (
            true,
            CopyTarget::Stdout,
            CopySource::Table {
                table_name,
                columns,
            },
        ) => {
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Ok(CopyCommand::To {
                query: format!("SELECT {columns} FROM {table_name}"),
                format,
            })
        }
        (true, CopyTarget::Stdout, CopySource::Query(query)) => Ok(CopyCommand::To {
            query: query.to_string(),
            format,
        }),
        (_, target, _) => plan_err!(
            "COPY to or from {target} is not supported: the server reads no client files; \
             use FROM STDIN or TO STDOUT (psql's \\copy does this for files)"
        ),
    }
}

/// A `COPY … FROM STDIN` in progress: bytes in, durable writes out.
pub struct CopyIn {
    sink: InsertSink,
    decoder: csv::reader::Decoder,
    /// The columns as the table stores them (decoded with tags as text).
    stored: SchemaRef,
    /// Line protocol of rows decoded and not yet written.
    body: Vec<u8>,
    /// Rows decoded, and rows durably written.
    rows: u64,
    written: u64,
    /// Bytes of an incomplete record, kept for the next chunk.
    pending: Vec<u8>,
}

impl QueryEngine {
    /// Starts a `COPY table (columns) FROM STDIN` into `database`.
    pub fn copy_in(
        &self,
        database: &str,
        table: &str,
        columns: &[String],
        format: &CopyFormat,
    ) -> Result<CopyIn> {
        let snapshot = self.engine().catalog().snapshot();
        let Some(def) = snapshot.table(database, table) else {
            return Err(DataFusionError::Plan(format!(
                "relation \"{table}\" does not exist: COPY needs the table's column types; \
                 create it with CREATE TABLE (tags as PRIMARY KEY) or write a point to it first"
            )));
        };
        let table_schema = def.schema.arrow_schema();
        let names: Vec<String> = if columns.is_empty() {
            table_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        } else {
            columns.to_vec()
        };
        let mut decoded = Vec::with_capacity(names.len());
        let mut stored = Vec::with_capacity(names.len());
        for name in &names {
            let Ok(field) = table_schema.field_with_name(name) else {
                return Err(DataFusionError::Plan(format!(
                    "column \"{name}\" of relation \"{table}\" does not exist (columns: {})",
                    table_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let as_text = match field.data_type() {
                DataType::Dictionary(..) => DataType::Utf8,
                DataType::Timestamp(unit, _) if name == TIME_COLUMN => {
                    DataType::Timestamp(*unit, Some("+00:00".into()))
                }
                other => other.clone(),
            };
            decoded.push(Field::new(name, as_text, true));
            stored.push(Field::new(name, field.data_type().clone(), true));
        }
        let decoded = Arc::new(Schema::new(decoded));
        let stored = Arc::new(Schema::new(stored));
        let null =
            Regex::new(&format!("^{}$", regex::escape(&format.null))).map_err(crate::external)?;
        let mut csv_format = csv::reader::Format::default()
            .with_header(format.header)
            .with_delimiter(format.delimiter)
            .with_null_regex(null);
        csv_format = if format.csv {
            csv_format
                .with_quote(format.quote)
                .with_escape(format.escape)
        } else {
            // The text format has no quoting; a backslash escapes the next character.
            csv_format.with_quote(0).with_escape(b'\\')
        };
        let decoder = csv::ReaderBuilder::new(decoded)
            .with_format(csv_format)
            .with_batch_size(BATCH_ROWS)
            .build_decoder();
        let sink = InsertSink::new(self.engine().clone(), database, table, stored.clone());
        Ok(CopyIn {
            sink,
            decoder,
            stored,
            body: Vec::new(),
            rows: 0,
            written: 0,
            pending: Vec::new(),
        })
    }
}

impl CopyIn {
    /// The number of columns each row carries.
    pub fn width(&self) -> usize {
        self.stored.fields().len()
    }

    /// Rows durably written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Decodes a chunk of the client's data, writing whenever a chunk of rows is ready.
    pub async fn push(&mut self, data: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(data);
        let mut offset = 0;
        loop {
            let read = self
                .decoder
                .decode(&self.pending[offset..])
                .map_err(|e| copy_error(self.written, e))?;
            offset += read;
            if self.decoder.capacity() == 0 {
                self.flush_decoded().await?;
            } else if read == 0 || offset == self.pending.len() {
                break;
            }
        }
        self.pending.drain(..offset);
        Ok(())
    }

    /// Decodes what is left, writes every remaining row, and returns how many were copied.
    pub async fn finish(mut self) -> Result<u64> {
        let rest = std::mem::take(&mut self.pending);
        let mut offset = 0;
        loop {
            let read = self
                .decoder
                .decode(&rest[offset..])
                .map_err(|e| copy_error(self.written, e))?;
            offset += read;
            if read == 0 {
                break;
            }
            if self.decoder.capacity() == 0 {
                self.flush_decoded().await?;
            }
        }
        // An empty slice tells the decoder the input has ended.
        self.decoder
            .decode(&[])
            .map_err(|e| copy_error(self.written, e))?;
        self.flush_decoded().await?;
        self.sink.write_body(&mut self.body).await?;
        Ok(self.rows)
    }

    async fn flush_decoded(&mut self) -> Result<()> {
        let Some(batch) = self
            .decoder
            .flush()
            .map_err(|e| copy_error(self.written, e))?
        else {
            return Ok(());
        };
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(self.stored.fields())
            .map(|(array, field)| cast(array, field.data_type()))
            .collect::<std::result::Result<_, _>>()?;
        let batch = RecordBatch::try_new(self.stored.clone(), columns)?;
        self.rows += batch.num_rows() as u64;
        if self.sink.buffer_batch(&batch, &mut self.body).await? {
            self.written = self.rows;
        }
        Ok(())
    }
}

fn copy_error(written: u64, e: datafusion::arrow::error::ArrowError) -> DataFusionError {
    DataFusionError::Execution(format!(
        "COPY: invalid input: {e} ({written} rows before it were written)"
    ))
}

/// Encodes `batch` as PostgreSQL `COPY … TO` text or CSV, one row per element.
pub fn encode_copy_rows(batch: &RecordBatch, format: &CopyFormat) -> Result<Vec<Vec<u8>>> {
    let options = FormatOptions::default()
        .with_null("\u{0}")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<_, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut line = Vec::new();
        for (i, (formatter, array)) in formatters.iter().zip(batch.columns()).enumerate() {
            if i > 0 {
                line.push(format.delimiter);
            }
            if array.is_null(row) {
                line.extend_from_slice(format.null.as_bytes());
                continue;
            }
            let value = formatter.value(row).to_string();
            // PostgreSQL's spellings: `t`/`f`, and floats without a trailing `.0`.
            let value = match array.data_type() {
                DataType::Boolean => if value == "true" { "t" } else { "f" }.to_string(),
                DataType::Float64 | DataType::Float32 => match value.strip_suffix(".0") {
                    Some(whole) => whole.to_string(),
                    None => value,
                },
                _ => value,
            };
            push_value(&mut line, &value, format);
        }
        line.push(b'\n');
        rows.push(line);
    }
    Ok(rows)
}

/// The header line of a `COPY … TO … HEADER`.
pub fn copy_header(schema: &Schema, format: &CopyFormat) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if i > 0 {
            line.push(format.delimiter);
        }
        push_value(&mut line, field.name(), format);
    }
    line.push(b'\n');
    line
}

fn push_value(line: &mut Vec<u8>, value: &str, format: &CopyFormat) {
    if format.csv {
        let needs_quotes = value.is_empty()
            || value == format.null
            || value
                .bytes()
                .any(|b| b == format.delimiter || b == format.quote || b == b'\n' || b == b'\r');
        if needs_quotes {
            line.push(format.quote);
            for b in value.bytes() {
                if b == format.quote || b == format.escape {
                    line.push(format.escape);
                }
                line.push(b);
            }
            line.push(format.quote);
        } else {
            line.extend_from_slice(value.as_bytes());
        }
    } else {
        for b in value.bytes() {
            match b {
                b'\\' => line.extend_from_slice(b"\\\\"),
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b'\t' => line.extend_from_slice(b"\\t"),
                b if b == format.delimiter => {
                    line.push(b'\\');
                    line.push(b);
                }
                b => line.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_copy_from_and_to() {
        let Some(Ok(CopyCommand::From {
            table,
            columns,
            format,
        })) = parse_copy("COPY cpu (time, host) FROM STDIN WITH (FORMAT csv, HEADER)")
        else {
            panic!("not parsed")
        };
        assert_eq!(table, "cpu");
        assert_eq!(columns, ["time", "host"]);
        assert!(format.csv && format.header && format.delimiter == b',');
        let Some(Ok(CopyCommand::To { query, format })) = parse_copy("copy (select 1) to stdout")
        else {
            panic!("not parsed")
        };
        assert_eq!(query, "SELECT 1");
        assert!(!format.csv && format.delimiter == b'\t' && format.null == "\\N");
        assert!(parse_copy("SELECT 1").is_none());
        assert!(matches!(
            parse_copy("COPY t FROM '/etc/passwd'"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_copy("COPY t TO STDOUT WITH (FORMAT binary)"),
            Some(Err(_))
        ));
    }

    #[test]
    fn text_and_csv_escaping() {
        let text = CopyFormat::text();
        let mut line = Vec::new();
        push_value(&mut line, "a\tb\\c", &text);
        assert_eq!(line, b"a\\tb\\\\c");
        let csv = CopyFormat::csv();
        let mut line = Vec::new();
        push_value(&mut line, "say \"hi\", ok", &csv);
        assert_eq!(line, b"\"say \"\"hi\"\", ok\"");
    }
}
