//! `INSERT INTO … VALUES` and `INSERT INTO … SELECT`: rows from SQL written through the
//! same durable path as HTTP ingest.
//!
//! Each batch of rows is encoded as line protocol and handed to [`Engine::write_lp`]: the
//! WAL stores request bodies, so a row inserted with SQL is logged, replayed, validated and
//! persisted exactly like a point written by Telegraf. The statement returns once every row
//! is durable. Rows are sent in chunks of about [`CHUNK_BYTES`]; each chunk is written
//! completely or not at all, a large `INSERT … SELECT` is not one transaction.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chronosdb_line_protocol::{FieldValue, Precision, write_line};
use chronosdb_storage::Engine;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, SchemaRef, TimeUnit, TimestampNanosecondType, UInt64Type,
};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

/// Bytes of line protocol per write: large enough to amortise the WAL sync, small enough
/// to keep an `INSERT … SELECT` of millions of rows in bounded memory.
const CHUNK_BYTES: usize = 4 << 20;

/// Writes inserted rows into one table.
#[derive(Debug)]
pub struct InsertSink {
    engine: Arc<Engine>,
    database: String,
    table: String,
    schema: SchemaRef,
}

impl InsertSink {
    pub fn new(engine: Arc<Engine>, database: &str, table: &str, schema: SchemaRef) -> Self {
        Self {
            engine,
            database: database.to_string(),
            table: table.to_string(),
            schema,
        }
    }

    /// Encodes `batch` onto `body`, writing `body` once it is a chunk; returns whether it
    /// wrote (every row buffered so far is then durable).
    pub(crate) async fn buffer_batch(
        &self,
        batch: &RecordBatch,
        body: &mut Vec<u8>,
    ) -> Result<bool> {
        encode_batch(&self.table, batch, body)?;
        if body.len() >= CHUNK_BYTES {
            self.write_body(body).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the line protocol in `body` durably and empties it.
    pub(crate) async fn write_body(&self, body: &mut Vec<u8>) -> Result<()> {
        if body.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(std::mem::take(body));
        let outcome = self
            .engine
            .write_lp(&self.database, body, Precision::Nanosecond, false)
            .await
            .map_err(crate::external)?;
        if let Some(refused) = outcome.rejected.first() {
            return exec_err!(
                "INSERT INTO {}: {} (nothing of this chunk was written)",
                self.table,
                refused.message
            );
        }
        Ok(())
    }
}

impl DisplayAs for InsertSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InsertSink: table={}", self.table)
    }
}

#[async_trait]
impl DataSink for InsertSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut body = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            self.buffer_batch(&batch, &mut body).await?;
        }
        self.write_body(&mut body).await?;
        Ok(rows)
    }
}

/// How a column of the inserted rows is written.
enum ColumnWriter {
    Time(ArrayRef),
    Tag(String, ArrayRef),
    Field(String, ArrayRef),
}

/// Appends every row of `batch` to `out` as line protocol.
fn encode_batch(table: &str, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name().clone();
        columns.push(match field.data_type() {
            DataType::Timestamp(..) if name == chronosdb_catalog::TIME_COLUMN => {
                ColumnWriter::Time(cast(
                    array,
                    &DataType::Timestamp(TimeUnit::Nanosecond, None),
                )?)
            }
            DataType::Dictionary(..) => ColumnWriter::Tag(name, cast(array, &DataType::Utf8)?),
            DataType::Float64 | DataType::Int64 | DataType::UInt64 | DataType::Boolean => {
                ColumnWriter::Field(name, array.clone())
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                ColumnWriter::Field(name, cast(array, &DataType::Utf8)?)
            }
            other => {
                return exec_err!(
                    "INSERT INTO {table}: column \"{name}\" has unsupported type {other}"
                );
            }
        });
    }
    let mut tags: Vec<(&str, &str)> = Vec::new();
    let mut fields: Vec<(&str, FieldValue<'_>)> = Vec::new();
    for row in 0..batch.num_rows() {
        tags.clear();
        fields.clear();
        let mut time = None;
        for column in &columns {
            match column {
                ColumnWriter::Time(a) => {
                    if a.is_valid(row) {
                        time = Some(a.as_primitive::<TimestampNanosecondType>().value(row));
                    }
                }
                ColumnWriter::Tag(name, a) => {
                    if a.is_valid(row) {
                        tags.push((name, a.as_string::<i32>().value(row)));
                    }
                }
                ColumnWriter::Field(name, a) => {
                    if a.is_valid(row) {
                        fields.push((name, field_value(a, row)?));
                    }
                }
            }
        }
        write_line(out, table, &tags, &fields, time).map_err(|e| {
            DataFusionError::Execution(format!("INSERT INTO {table}: row {}: {e}", row + 1))
        })?;
    }
    Ok(())
}

fn field_value(array: &ArrayRef, row: usize) -> Result<FieldValue<'_>> {
    Ok(match array.data_type() {
        DataType::Float64 => FieldValue::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Int64 => FieldValue::Integer(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt64 => FieldValue::UInteger(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Boolean => FieldValue::Boolean(array.as_boolean().value(row)),
        DataType::Utf8 => FieldValue::String(array.as_string::<i32>().value(row).into()),
        other => return exec_err!("unsupported field type {other}"),
    })
}
