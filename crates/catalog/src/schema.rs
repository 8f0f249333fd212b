//! Table schemas: the `time` column, tag columns and typed field columns, and their
//! Arrow form.
//!
//! Columns are only ever appended, and a column never changes type: that is what makes a
//! schema check against an old snapshot still valid after another writer extended it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{CatalogError, Result};

/// The name of every table's timestamp column.
pub const TIME_COLUMN: &str = "time";

/// The type of a field column, as written in line protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    String,
    Boolean,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::UInteger => "unsigned integer",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
        }
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::Float => DataType::Float64,
            FieldType::Integer => DataType::Int64,
            FieldType::UInteger => DataType::UInt64,
            FieldType::String => DataType::Utf8,
            FieldType::Boolean => DataType::Boolean,
        }
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnKind {
    Time,
    Tag,
    Field(FieldType),
}

impl ColumnKind {
    pub fn describe(self) -> String {
        match self {
            ColumnKind::Time => "the time column".into(),
            ColumnKind::Tag => "a tag".into(),
            ColumnKind::Field(t) => format!("a {} field", t.name()),
        }
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnKind::Time => time_type(),
            ColumnKind::Tag => tag_type(),
            ColumnKind::Field(t) => t.arrow_type(),
        }
    }
}

/// Arrow type of the `time` column: nanoseconds, no zone (always UTC).
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

/// Arrow type of tag columns: dictionary-encoded strings.
pub fn tag_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

impl Column {
    pub fn tag(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: ColumnKind::Tag,
        }
    }

    pub fn field(name: impl Into<String>, t: FieldType) -> Self {
        Self {
            name: name.into(),
            kind: ColumnKind::Field(t),
        }
    }
}

/// The columns of one table, `time` first, then in the order they were first written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Column>", into = "Vec<Column>")]
pub struct TableSchema {
    columns: Vec<Column>,
    index: HashMap<String, usize>,
}

impl Default for TableSchema {
    fn default() -> Self {
        Self::from(Vec::new())
    }
}

impl From<Vec<Column>> for TableSchema {
    fn from(columns: Vec<Column>) -> Self {
        let mut schema = TableSchema {
            columns: vec![Column {
                name: TIME_COLUMN.into(),
                kind: ColumnKind::Time,
            }],
            index: HashMap::from([(TIME_COLUMN.to_string(), 0)]),
        };
        for c in columns {
            schema.add_column(c);
        }
        schema
    }
}

impl From<TableSchema> for Vec<Column> {
    fn from(schema: TableSchema) -> Self {
        schema.columns
    }
}

impl TableSchema {
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|i| &self.columns[*i])
    }

    /// The tag columns' names, sorted: the sort key of persisted files (then `time`).
    pub fn sorted_tag_names(&self) -> Vec<&str> {
        let mut tags: Vec<&str> = self
            .columns
            .iter()
            .filter(|c| c.kind == ColumnKind::Tag)
            .map(|c| c.name.as_str())
            .collect();
        tags.sort_unstable();
        tags
    }

    /// Fails if `column` exists with another kind or type.
    pub fn check_compatible(&self, table: &str, column: &Column) -> Result<()> {
        match self.column(&column.name) {
            Some(existing) if existing.kind != column.kind => Err(CatalogError::TypeConflict {
                table: table.to_string(),
                column: column.name.clone(),
                existing: existing.kind.describe(),
                attempted: column.kind.describe(),
            }),
            _ => Ok(()),
        }
    }

    /// Appends a column unless one of that name exists (callers check compatibility first).
    pub(crate) fn add_column(&mut self, column: Column) {
        if self.index.contains_key(&column.name) {
            return;
        }
        self.index.insert(column.name.clone(), self.columns.len());
        self.columns.push(column);
    }

    /// The table's Arrow schema; every column but `time` is nullable.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.kind.arrow_type(), c.kind != ColumnKind::Time))
                .collect::<Vec<_>>(),
        ))
    }
}
