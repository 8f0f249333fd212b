//! What a statement needs of the connection's token, checked before it runs.
//!
//! Planned statements are classified by their logical plan: scanning a table of the
//! database (or a table function over it) reads, `INSERT`/`DELETE`/DDL write, and what
//! touches the server's own files (`COPY … TO 'file'`, `CREATE EXTERNAL TABLE`) or lists
//! every database (`system.databases`) needs an admin token. `pg_catalog` and
//! `information_schema` only describe the connection's own database, so any token may read
//! them: a write-only client can still be a normal PostgreSQL client. Admin sessions are
//! not checked at all, so this costs nothing where there is nothing to refuse.

use chronosdb_catalog::auth::{AuthError, Authenticator};
use chronosdb_catalog::tokens::{Access, TokenRecord};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use pgwire::api::{ClientInfo, METADATA_DATABASE};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// What a statement does, for permission checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
}

impl Needs {
    pub const READ: Needs = Needs {
        read: true,
        write: false,
        admin: false,
    };
    pub const WRITE: Needs = Needs {
        read: false,
        write: true,
        admin: false,
    };
    pub const ADMIN: Needs = Needs {
        read: false,
        write: false,
        admin: true,
    };
}

/// Schemas that describe only the connection's own database.
fn is_description(schema: Option<&str>, table: &str) -> bool {
    match schema {
        Some(schema) => matches!(schema, "pg_catalog" | "information_schema"),
        None => table.starts_with("pg_"),
    }
}

/// What running `plan` needs.
pub fn plan_needs(plan: &LogicalPlan) -> Needs {
    if let Some(optimized) = chronosdb_query::plan_cache::optimized_inner(plan) {
        return plan_needs(&optimized.plan);
    }
    let mut needs = Needs::default();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let name = &scan.table_name;
                if name.schema() == Some("system") && name.table() == "databases" {
                    needs.admin = true;
                } else if !is_description(name.schema(), name.table()) {
                    needs.read = true;
                }
            }
            LogicalPlan::Dml(_) => needs.write = true,
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(_)) | LogicalPlan::Copy(_) => {
                needs.admin = true
            }
            LogicalPlan::Ddl(_) => needs.write = true,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    needs
}

/// The token of the connection (every authenticated connection has one).
fn record_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<std::sync::Arc<TokenRecord>> {
    client
        .session_extensions()
        .get::<TokenRecord>()
        .ok_or_else(|| {
            denied(AuthError::Forbidden(
                "the connection is not authenticated".into(),
            ))
        })
}

/// Whether the connection's token is an admin's (admin sessions skip the checks).
pub fn is_admin<C: ClientInfo + ?Sized>(client: &C) -> bool {
    record_of(client).is_ok_and(|r| r.is_admin())
}

/// Refuses with 42501 unless the connection's token grants `needs` in its database.
pub fn check<C: ClientInfo + ?Sized>(client: &C, needs: Needs) -> PgWireResult<()> {
    let record = record_of(client)?;
    if record.is_admin() {
        return Ok(());
    }
    let database = client.metadata().get(METADATA_DATABASE).cloned();
    let database = database.as_deref();
    let checks = [
        (needs.admin, None, Access::Admin),
        (needs.write, database, Access::Write),
        (needs.read, database, Access::Read),
    ];
    for (needed, database, access) in checks {
        if needed {
            Authenticator::authorize(&record, database, access).map_err(denied)?;
        }
    }
    Ok(())
}

/// Refuses `plan` unless the connection's token may run it.
pub fn check_plan<C: ClientInfo + ?Sized>(client: &C, plan: &LogicalPlan) -> PgWireResult<()> {
    if is_admin(client) {
        return Ok(());
    }
    check(client, plan_needs(plan))
}

/// SQLSTATE 42501 (insufficient privilege) with the reason.
fn denied(error: AuthError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "42501".to_string(),
        error.to_string(),
    )))
}
