//! DataFusion catalog and schema providers backed by the chronosdb catalog.
//!
//! Tables are listed from the live catalog on every call, so a table created by a write a
//! moment ago is visible to the next statement of an already open session.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use async_trait::async_trait;
use chronosdb_storage::Engine;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};

use crate::table::ChronosTable;

/// The schema that holds a database's tables.
pub const SCHEMA_NAME: &str = "public";
/// Schemas a front end may install beside `public`.
const SYSTEM_SCHEMAS: [&str; 1] = ["pg_catalog"];

/// One chronosdb database as a DataFusion catalog with a single `public` schema.
#[derive(Debug)]
pub struct DatabaseCatalog {
    schema: Arc<DatabaseSchema>,
    /// Schemas a front end installs, such as pgwire's `pg_catalog`.
    system_schemas: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl DatabaseCatalog {
    pub fn new(engine: Arc<Engine>, database: &str) -> Self {
        Self {
            schema: Arc::new(DatabaseSchema {
                engine,
                database: database.to_string(),
            }),
            system_schemas: RwLock::default(),
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

    fn table_exist(&self, name: &str) -> bool {
        self.engine
            .catalog()
            .snapshot()
            .table(&self.database, name)
            .is_some()
    }
}
