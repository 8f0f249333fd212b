//! Text-format result columns as PostgreSQL writes them.
//!
//! `arrow-pg` encodes text-format columns with Rust's formatting (`20.0`, `inf`,
//! timestamps with six fraction digits always). [`postgres_text`] turns the float and
//! timestamp columns a client receives in text format into the strings PostgreSQL would
//! send (`chronosdb_query::postgres_text`), before `arrow-pg` encodes the batch;
//! binary-format columns and other types are left as they are.

use std::sync::Arc;

use chronosdb_query::postgres_text::{has_postgres_text, postgres_text_array};
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};

/// `batch` with each text-format float and timestamp column replaced by
/// the text PostgreSQL writes for it.
pub fn postgres_text(batch: RecordBatch, fields: &[FieldInfo]) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let needs = |i: usize, column: &ArrayRef| {
        fields
            .get(i)
            .is_some_and(|field| field.format() == FieldFormat::Text)
            && has_postgres_text(column.data_type())
    };
    if !batch.columns().iter().enumerate().any(|(i, c)| needs(i, c)) {
        return Ok(batch);
    }
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut schema_fields = Vec::with_capacity(batch.num_columns());
    for (i, column) in batch.columns().iter().enumerate() {
        let field = schema.field(i);
        if needs(i, column) {
            columns.push(postgres_text_array(column));
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
