//! One `datafusion-postgres` session service per database, made on first use.
//!
//! A service wraps a DataFusion `SessionContext` whose default catalog is the database,
//! with `pg_catalog` installed; connections to the same database share it (their own
//! settings, such as `TimeZone`, live in the connection's metadata).

use std::collections::HashMap;
use std::sync::Arc;

use chronosdb_query::plan_cache::PlanCache;
use chronosdb_query::{QueryEngine, QueryError};
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use parking_lot::Mutex;

use crate::savepoints::SavepointHook;
use crate::time_zone::SessionTimeZoneHook;
use pgwire::api::{ClientInfo, METADATA_DATABASE};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// One database's session: `datafusion-postgres`' service (hooks, parsing, the default
/// paths) and the DataFusion context it wraps, which chronosdb's own paths run on.
pub struct Database {
    pub service: DfSessionService,
    pub context: Arc<SessionContext>,
    /// Plans of this database's repeated queries (see `chronosdb_query::plan_cache`).
    pub plans: PlanCache,
}

pub struct Sessions {
    query: QueryEngine,
    databases: Mutex<HashMap<String, Arc<Database>>>,
    describer: Arc<DfSessionService>,
}

impl Sessions {
    pub fn new(query: QueryEngine) -> Self {
        Self {
            query,
            databases: Mutex::new(HashMap::new()),
            describer: Arc::new(DfSessionService::new(Arc::new(SessionContext::new()))),
        }
    }

    /// The query engine the sessions are made from.
    pub fn query(&self) -> &QueryEngine {
        &self.query
    }

    /// A service for describing planned statements (it needs no database).
    pub fn describer(&self) -> &Arc<DfSessionService> {
        &self.describer
    }

    /// Forgets the session of a dropped database (a database created again under the
    /// name gets a new one).
    pub fn forget(&self, database: &str) {
        self.databases.lock().remove(database);
    }

    /// The session of the client's database, or 3D000 if it does not exist.
    pub fn for_client<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<Database>> {
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_default();
        if let Some(session) = self.databases.lock().get(&database) {
            return Ok(session.clone());
        }
        let ctx = match self.query.session_for(&database) {
            Ok(ctx) => ctx,
            Err(QueryError::DatabaseNotFound(db)) => {
                let existing: Vec<String> = self
                    .query
                    .engine()
                    .catalog()
                    .snapshot()
                    .databases
                    .keys()
                    .cloned()
                    .collect();
                let hint = if existing.is_empty() {
                    "no database exists yet: write a point over HTTP to create one".to_string()
                } else {
                    format!("existing databases: {}", existing.join(", "))
                };
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "3D000".into(),
                    format!(
                        "database \"{db}\" does not exist; connect with -d <database> ({hint})"
                    ),
                ))));
            }
            Err(e) => return Err(PgWireError::ApiError(Box::new(e))),
        };
        setup_pg_catalog(&ctx, &database, EmptyContextProvider)
            .map_err(|e| PgWireError::ApiError(e))?;
        let context = Arc::new(ctx);
        let service = DfSessionService::new_with_hooks(
            context.clone(),
            // Ours first: it takes over SET TIME ZONE (validated) and, in sessions with a
            // zone, queries; everything else falls through to datafusion-postgres' own.
            vec![
                Arc::new(SessionTimeZoneHook),
                Arc::new(SavepointHook),
                Arc::new(CursorStatementHook),
                Arc::new(SetShowHook),
                Arc::new(TransactionStatementHook),
            ],
        );
        let plans = PlanCache::new(self.query.engine().clone(), &database);
        let session = Arc::new(Database {
            service,
            context,
            plans,
        });
        Ok(self
            .databases
            .lock()
            .entry(database)
            .or_insert(session)
            .clone())
    }
}
