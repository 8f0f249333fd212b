//! SQL over chronosdb with DataFusion: a catalog per database whose tables are
//! [`table::ChronosTable`]s, and the session set-up every front end (pgwire, HTTP) shares.

pub mod catalog;
pub mod catalog_queries;
pub mod checked_arithmetic;
mod chunk_merge;
pub mod column_names;
pub mod copy;
pub mod databases;
pub mod delete;
mod expr_rewrite;
pub mod functions;
pub mod gapfill;
pub mod information_schema;
pub mod insert;
pub mod last_point;
pub mod newest_buckets;
mod parquet_reader;
mod row_count;
pub use parquet_reader::LocalFiles;
pub mod pg_catalog_overrides;
pub mod physical_reuse;
pub mod plan_cache;
pub mod postgres_text;
pub mod scan_predicates;
pub mod scan_size;
pub mod series_match;
mod series_rows;
pub mod show;
pub mod statement_depth;
mod subquery_nullability;
pub mod system;
pub mod table;
pub mod time_zone;

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};

use chronosdb_storage::Engine;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

pub use catalog::DatabaseCatalog;
pub use show::rewrite_show;

/// Wraps an engine or I/O error for DataFusion, which reports it as an external error.
pub(crate) fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "database \"{0}\" does not exist; create it with CREATE DATABASE or by writing a point to it"
    )]
    DatabaseNotFound(String),
    #[error(
        "cannot drop the currently open database \"{0}\"; connect to another database to drop it"
    )]
    DropCurrentDatabase(String),
    #[error(transparent)]
    Storage(#[from] chronosdb_storage::StorageError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    TooComplex(#[from] statement_depth::StatementTooComplex),
}

/// What kind of mistake a [`QueryError`] is, for front ends to map onto their own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    DatabaseNotFound,
    DatabaseExists,
    InvalidName,
    /// A value out of range or malformed (a retention period).
    InvalidValue,
    TableNotFound,
    /// The object is in use (the session's own database).
    InUse,
    /// The statement nests deeper than the server plans (PostgreSQL's stack-depth error).
    TooComplex,
    Other,
}

impl QueryError {
    pub fn kind(&self) -> ErrorKind {
        use chronosdb_catalog::CatalogError;
        use chronosdb_storage::StorageError;
        match self {
            QueryError::DatabaseNotFound(_)
            | QueryError::Storage(StorageError::Catalog(CatalogError::DatabaseNotFound(_))) => {
                ErrorKind::DatabaseNotFound
            }
            QueryError::Storage(StorageError::Catalog(CatalogError::DatabaseExists(_))) => {
                ErrorKind::DatabaseExists
            }
            QueryError::Storage(StorageError::Catalog(CatalogError::InvalidName { .. })) => {
                ErrorKind::InvalidName
            }
            QueryError::Storage(StorageError::Catalog(
                CatalogError::InvalidRetention | CatalogError::InvalidRetentionText(_),
            )) => ErrorKind::InvalidValue,
            QueryError::Storage(StorageError::Catalog(CatalogError::TableNotFound { .. })) => {
                ErrorKind::TableNotFound
            }
            QueryError::DropCurrentDatabase(_) => ErrorKind::InUse,
            QueryError::TooComplex(_) => ErrorKind::TooComplex,
            _ => ErrorKind::Other,
        }
    }
}

/// Builds DataFusion sessions over the storage engine.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    engine: Arc<Engine>,
    runtime: Arc<RuntimeEnv>,
    /// Where the object store keeps its files, if on local disk (see `LocalFiles`).
    local_files: Option<Arc<LocalFiles>>,
}

impl QueryEngine {
    /// Query engine over `engine`; all queries together may hold `memory_limit` bytes in
    /// sorts, joins and aggregations before they spill to disk or fail.
    pub fn new(engine: Arc<Engine>, memory_limit: usize) -> Result<Self, QueryError> {
        // Fair shares between spilling operators; the error of a query over its share
        // names the operators that hold the most.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(memory_limit),
            NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
        );
        let runtime = Arc::new(
            RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(pool))
                .build()?,
        );
        let url = Url::parse(table::STORE_URL).map_err(external)?;
        runtime.register_object_store(&url, engine.object_store());
        Ok(Self {
            engine,
            runtime,
            local_files: None,
        })
    }

    /// Tells the engine that the object store's files are under `root` on local disk,
    /// so small Parquet reads are made directly (see `parquet_reader`).
    pub fn with_local_files(mut self, root: std::path::PathBuf) -> Self {
        self.local_files = Some(Arc::new(LocalFiles { root }));
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Whether `database` exists.
    pub fn has_database(&self, database: &str) -> bool {
        self.engine
            .catalog()
            .snapshot()
            .database(database)
            .is_some()
    }

    /// A session whose default catalog is `database` (schema `public`), with
    /// `information_schema` enabled. The caller adds front-end specifics (pg_catalog).
    pub fn session_for(&self, database: &str) -> Result<SessionContext, QueryError> {
        if !self.has_database(database) {
            return Err(QueryError::DatabaseNotFound(database.to_string()));
        }
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(database, "public")
            .with_create_default_catalog_and_schema(false)
            // PostgreSQL's `information_schema` is registered below, in place of DataFusion's.
            .with_information_schema(false)
            .with_target_partitions(2);
        // Joins of series are equi-joins on time buckets and tags: sort-merge joins stream
        // them in time order with memory bounded by the sort (which can spill), where a
        // hash join would hold one whole side in memory.
        config.options_mut().optimizer.prefer_hash_join = false;
        // Filters are evaluated while Parquet is decoded: the filter columns first, the
        // others only for the rows that pass.
        config.options_mut().execution.parquet.pushdown_filters = true;
        if let Some(local) = &self.local_files {
            config = config.with_extension(local.clone());
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_analyzer_rule(Arc::new(gapfill::GapFillRule))
            .with_analyzer_rule(Arc::new(delete::DeleteGuard))
            .with_analyzer_rule(Arc::new(checked_arithmetic::CheckedIntegerArithmetic))
            .with_analyzer_rule(Arc::new(postgres_text::PostgresTextCasts))
            .with_optimizer_rule(Arc::new(last_point::LastPointRule))
            .with_physical_optimizer_rule(Arc::new(scan_predicates::DistinctScanPredicates))
            .with_physical_optimizer_rule(Arc::new(subquery_nullability::NullableScalarSubqueries))
            .with_query_planner(Arc::new(gapfill::ChronosQueryPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_catalog(
            database,
            Arc::new(DatabaseCatalog::new(self.clone(), database)),
        );
        functions::register(&ctx);
        if let Some(catalog) = ctx.catalog(database) {
            catalog.register_schema(
                information_schema::INFORMATION_SCHEMA,
                Arc::new(information_schema::PgInformationSchema::new(
                    ctx.state().catalog_list().clone(),
                )),
            )?;
        }
        ctx.register_udtf(
            "series_match",
            Arc::new(series_match::SeriesMatch::new(
                self.engine.clone(),
                database,
            )),
        );
        Ok(ctx)
    }
}
