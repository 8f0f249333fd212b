//! `pg_catalog` tables chronosdb serves itself, in front of `datafusion-pg-catalog`'s.
//!
//! `pg_index` comes from `datafusion-pg-catalog` as a copy of PostgreSQL's own system
//! indexes: its vector columns (`indkey`, `indclass`, …) are text, and its relation ids
//! match nothing in chronosdb's `pg_class`. chronosdb has no indexes, so `pg_index` is
//! served empty, with the vector columns as arrays: `unnest(indkey)` and
//! `generate_subscripts(indkey, 1)` (SQLAlchemy's key and index reflection) then plan and
//! find no rows, as they would on a PostgreSQL table without indexes.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result;

/// `pg_catalog` with chronosdb's tables in place of some of `inner`'s.
#[derive(Debug)]
pub struct PgCatalogOverrides {
    inner: Arc<dyn SchemaProvider>,
}

impl PgCatalogOverrides {
    pub fn new(inner: Arc<dyn SchemaProvider>) -> Self {
        Self { inner }
    }
}

/// `pg_index`'s vector columns and the type of their elements (`int2vector` or
/// `oidvector`).
fn vector_element(column: &str) -> Option<DataType> {
    match column {
        "indkey" | "indoption" => Some(DataType::Int16),
        "indclass" | "indcollation" => Some(DataType::Int32),
        _ => None,
    }
}

/// An empty `pg_index` with the columns of `original`, vectors as arrays.
fn empty_pg_index(original: &dyn TableProvider) -> Result<Arc<dyn TableProvider>> {
    let fields: Vec<Field> = original
        .schema()
        .fields()
        .iter()
        .map(|f| match vector_element(f.name()) {
            Some(element) => Field::new(f.name(), DataType::new_list(element, true), true),
            None => f.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

#[async_trait]
impl SchemaProvider for PgCatalogOverrides {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self.inner.table(name).await?;
        match table {
            Some(original) if name == "pg_index" => Ok(Some(empty_pg_index(original.as_ref())?)),
            other => Ok(other),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
