//! DataFusion catalog and schema providers backed by the chronosdb catalog.
//!
//! Tables are listed from the live catalog on every call, so a table created by a write a
//! moment ago is visible to the next statement of an already open session.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use async_trait::async_trait;
use chronosdb_catalog::{CatalogOp, Column, FieldType, TIME_COLUMN};
use chronosdb_storage::Engine;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{Constraint, not_impl_err, plan_err};
use datafusion::datasource::MemTable;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};

use crate::QueryEngine;
use crate::pg_catalog_overrides::PgCatalogOverrides;
use crate::system::{SYSTEM_SCHEMA, SystemSchema};
use crate::table::ChronosTable;

/// The chronosdb columns a `CREATE TABLE` declares.
fn declared_columns(name: &str, table: &Arc<dyn TableProvider>) -> Result<Vec<Column>> {
    let schema = table.schema();
    let primary_key: Option<Vec<usize>> = table.constraints().and_then(|constraints| {
        constraints.iter().find_map(|c| match c {
            Constraint::PrimaryKey(indices) => Some(indices.clone()),
            _ => None,
        })
    });
    let mut has_time = false;
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let column = field.name();
        let text = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)
        );
        if column == TIME_COLUMN {
            if !matches!(field.data_type(), DataType::Timestamp(..)) {
                return plan_err!("{name}.time must be a TIMESTAMP, not {}", field.data_type());
            }
            has_time = true;
            continue;
        }
        let is_tag = match &primary_key {
            Some(key) => key.contains(&i),
            None => text,
        };
        if is_tag {
            if !text {
                return plan_err!(
                    "{name}.{column} is in the primary key, so it is a tag, and tags are text; it is declared {}",
                    field.data_type()
                );
            }
            columns.push(Column::tag(column));
            continue;
        }
        let field_type = match field.data_type() {
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..) => FieldType::Float,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                FieldType::Integer
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                FieldType::UInteger
            }
            DataType::Boolean => FieldType::Boolean,
            t if text && !matches!(t, DataType::Dictionary(..)) => FieldType::String,
            other => {
                return plan_err!(
                    "{name}.{column}: type {other} cannot be stored; use DOUBLE, BIGINT, BIGINT UNSIGNED, BOOLEAN or TEXT"
                );
            }
        };
        columns.push(Column::field(column, field_type));
    }
    if !has_time {
        return plan_err!(
            "a chronosdb table needs a time column: add `time TIMESTAMP` to CREATE TABLE {name}"
        );
    }
    Ok(columns)
}

/// The schema that holds a database's tables.
pub const SCHEMA_NAME: &str = "public";
/// Schemas a front end may install beside `public`.
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", crate::information_schema::INFORMATION_SCHEMA];

/// One chronosdb database as a DataFusion catalog: its tables in `public`, what it holds in
/// `system`, and the schemas a front end adds.
#[derive(Debug)]
pub struct DatabaseCatalog {
    schema: Arc<DatabaseSchema>,
    /// Schemas a front end installs, such as pgwire's `pg_catalog`.
    system_schemas: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl DatabaseCatalog {
    pub fn new(query: QueryEngine, database: &str) -> Self {
        let mut system: HashMap<String, Arc<dyn SchemaProvider>> = HashMap::new();
        system.insert(
            SYSTEM_SCHEMA.to_string(),
            Arc::new(SystemSchema::new(query.clone(), database)),
        );
        Self {
            schema: Arc::new(DatabaseSchema {
                engine: query.engine().clone(),
                database: database.to_string(),
            }),
            system_schemas: RwLock::new(system),
        }
    }
}

impl CatalogProvider for DatabaseCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![SCHEMA_NAME.to_string()];
        names.extend(self.system_schemas.read().keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SCHEMA_NAME {
            return Some(self.schema.clone());
        }
        self.system_schemas.read().get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if SYSTEM_SCHEMAS.contains(&name) {
            let schema = if name == "pg_catalog" {
                Arc::new(PgCatalogOverrides::new(schema))
            } else {
                schema
            };
            return Ok(self.system_schemas.write().insert(name.to_string(), schema));
        }
        Err(DataFusionError::Plan(format!(
            "schemas cannot be created in chronosdb (only \"{SCHEMA_NAME}\" exists): {name}"
        )))
    }
}

/// The tables of one database.
#[derive(Debug)]
pub struct DatabaseSchema {
    engine: Arc<Engine>,
    database: String,
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        self.engine
            .catalog()
            .snapshot()
            .database(&self.database)
            .map(|db| db.tables.keys().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let snapshot = self.engine.catalog().snapshot();
        Ok(snapshot.table(&self.database, name).map(|def| {
            Arc::new(ChronosTable::new(
                self.engine.clone(),
                &self.database,
                name,
                &def.schema,
            )) as Arc<dyn TableProvider>
        }))
    }

    /// `CREATE TABLE`: declares a table (its columns are added to the catalog durably).
    /// Columns of the `PRIMARY KEY` other than `time` are tags; without a primary key every
    /// text column is a tag. The schema stays dynamic: later writes may add columns.
    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(mem) = table.downcast_ref::<MemTable>() {
            let has_rows = mem.batches.iter().any(|partition| {
                partition
                    .try_read()
                    .map(|batches| batches.iter().any(|b| b.num_rows() > 0))
                    .unwrap_or(true)
            });
            if has_rows {
                return not_impl_err!(
                    "CREATE TABLE ... AS SELECT is not supported; use CREATE TABLE, then INSERT INTO {name} SELECT ..."
                );
            }
        }
        let columns = declared_columns(&name, &table)?;
        let engine = self.engine.clone();
        let database = self.database.clone();
        let table_name = name.clone();
        let create = async move {
            let op = CatalogOp::AddColumns {
                database,
                table: table_name,
                columns,
            };
            engine.apply_catalog_ops(vec![op]).await
        };
        // The catalog API is synchronous; the catalog is saved before the statement returns.
        let handle = tokio::runtime::Handle::current();
        let created = match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => {
                return not_impl_err!("CREATE TABLE needs the multi-threaded runtime");
            }
            _ => tokio::task::block_in_place(|| handle.block_on(create)),
        };
        created.map_err(crate::external)?;
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.engine
            .catalog()
            .snapshot()
            .table(&self.database, name)
            .is_some()
    }
}
