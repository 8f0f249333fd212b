//! `CREATE DATABASE` and `DROP DATABASE`: chronosdb's databases, not DataFusion's
//! in-memory catalogs.
//!
//! Front ends recognise these statements before planning (they need no session: a
//! client may connect to any name to create its first database) and run them on the
//! storage engine, which makes them durable before they return.

use chronosdb_catalog::validate_name;
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::{QueryEngine, QueryError};

/// A database statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseCommand {
    Create { name: String, if_not_exists: bool },
    Drop { name: String, if_exists: bool },
}

impl DatabaseCommand {
    /// The command tag PostgreSQL answers with.
    pub fn tag(&self) -> &'static str {
        match self {
            DatabaseCommand::Create { .. } => "CREATE DATABASE",
            DatabaseCommand::Drop { .. } => "DROP DATABASE",
        }
    }
}

/// Recognises `CREATE DATABASE [IF NOT EXISTS] name` and `DROP DATABASE [IF EXISTS] name`;
/// `None` for any other statement (or one that does not parse, which the regular path
/// then reports).
pub fn parse_database_command(sql: &str) -> Option<DatabaseCommand> {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    let [verb, object] = words.as_slice() else {
        return None;
    };
    if !(verb.eq_ignore_ascii_case("create") || verb.eq_ignore_ascii_case("drop"))
        || !object.eq_ignore_ascii_case("database")
    {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    match statements.remove(0) {
        Statement::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => Some(DatabaseCommand::Create {
            name: object_name(&db_name),
            if_not_exists,
        }),
        Statement::Drop {
            object_type: ObjectType::Database,
            if_exists,
            names,
            ..
        } if names.len() == 1 => Some(DatabaseCommand::Drop {
            name: object_name(&names[0]),
            if_exists,
        }),
        _ => None,
    }
}

/// A database name as written: quoted parts keep their case, unquoted ones are folded to
/// lower case, as PostgreSQL does.
fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(|ident| match ident.quote_style {
            Some(_) => ident.value.clone(),
            None => ident.value.to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl QueryEngine {
    /// Runs a database statement; `current` is the database of the session it came from
    /// (which cannot be dropped, as in PostgreSQL).
    pub async fn run_database_command(
        &self,
        command: &DatabaseCommand,
        current: Option<&str>,
    ) -> Result<(), QueryError> {
        match command {
            DatabaseCommand::Create {
                name,
                if_not_exists,
            } => {
                validate_name(name).map_err(storage_error)?;
                if *if_not_exists && self.has_database(name) {
                    return Ok(());
                }
                self.engine()
                    .create_database(name)
                    .await
                    .map_err(QueryError::Storage)
            }
            DatabaseCommand::Drop { name, if_exists } => {
                if current == Some(name.as_str()) {
                    return Err(QueryError::DropCurrentDatabase(name.clone()));
                }
                if *if_exists && !self.has_database(name) {
                    return Ok(());
                }
                self.engine()
                    .drop_database(name)
                    .await
                    .map(|_| ())
                    .map_err(QueryError::Storage)
            }
        }
    }
}

fn storage_error(e: chronosdb_catalog::CatalogError) -> QueryError {
    QueryError::Storage(e.into())
}

#[cfg(test)]
mod tests {
    use super::{DatabaseCommand, parse_database_command};

    #[test]
    fn database_statements_are_recognised() {
        assert_eq!(
            parse_database_command("CREATE DATABASE IF NOT EXISTS Metrics"),
            Some(DatabaseCommand::Create {
                name: "metrics".into(),
                if_not_exists: true
            })
        );
        assert_eq!(
            parse_database_command("drop database \"Prod-1\""),
            Some(DatabaseCommand::Drop {
                name: "Prod-1".into(),
                if_exists: false
            })
        );
        assert_eq!(parse_database_command("DROP TABLE cpu"), None);
        assert_eq!(parse_database_command("SELECT 1"), None);
    }
}
