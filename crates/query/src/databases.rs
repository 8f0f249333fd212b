//! `CREATE DATABASE … [WITH RETENTION '30d']`, `ALTER DATABASE … SET RETENTION '30d'`
//! (or `NONE`) and `DROP DATABASE`: chronosdb's databases, not DataFusion's in-memory
//! catalogs.
//!
//! Front ends recognise these statements before planning (they need no session: a
//! client may connect to any name to create its first database) and run them on the
//! storage engine, which makes them durable before they return.

use std::sync::LazyLock;

use chronosdb_catalog::{parse_retention, validate_name};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use regex::Regex;

use crate::{QueryEngine, QueryError};

/// A database statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseCommand {
    Create {
        name: String,
        if_not_exists: bool,
        /// The retention period as written (`30d`), checked when the command runs.
        retention: Option<String>,
    },
    /// `ALTER DATABASE name SET RETENTION '30d'` (or `NONE`, or `RESET RETENTION`).
    SetRetention {
        name: String,
        retention: String,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    /// `DROP TABLE [IF EXISTS] name` in the session's database: the table and its files.
    DropTable {
        name: String,
        if_exists: bool,
    },
}

impl DatabaseCommand {
    /// The command tag PostgreSQL answers with.
    pub fn tag(&self) -> &'static str {
        match self {
            DatabaseCommand::Create { .. } => "CREATE DATABASE",
            DatabaseCommand::SetRetention { .. } => "ALTER DATABASE",
            DatabaseCommand::Drop { .. } => "DROP DATABASE",
            DatabaseCommand::DropTable { .. } => "DROP TABLE",
        }
    }
}

/// `… [WITH] RETENTION '<period>'` at the end of a `CREATE DATABASE`.
static RETENTION_CLAUSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)^(.*?)\s+(?:with\s+)?retention\s+'([^']*)'\s*;?\s*$").expect("regex")
});

/// `ALTER DATABASE <name> SET RETENTION '<period>' | NONE` or `… RESET RETENTION`.
static ALTER_RETENTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)^\s*alter\s+database\s+("[^"]+"|[^\s"]+)\s+(?:set\s+retention\s+(?:'([^']*)'|(none|infinite))|(reset\s+retention))\s*;?\s*$"#,
    )
    .expect("regex")
});

/// Recognises `CREATE DATABASE [IF NOT EXISTS] name [[WITH] RETENTION '30d']`,
/// `ALTER DATABASE name SET RETENTION '30d' | NONE`, `ALTER DATABASE name RESET
/// RETENTION` and `DROP DATABASE [IF EXISTS] name`; `None` for any other statement (or one
/// that does not parse, which the regular path then reports).
pub fn parse_database_command(sql: &str) -> Option<DatabaseCommand> {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    let [verb, object] = words.as_slice() else {
        return None;
    };
    let drops_table = verb.eq_ignore_ascii_case("drop") && object.eq_ignore_ascii_case("table");
    if !object.eq_ignore_ascii_case("database") && !drops_table {
        return None;
    }
    if verb.eq_ignore_ascii_case("alter") {
        let captures = ALTER_RETENTION.captures(sql)?;
        let name = captures.get(1)?.as_str();
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => name.to_lowercase(),
        };
        let retention = match (captures.get(2), captures.get(3)) {
            (Some(period), _) => period.as_str().to_string(),
            _ => "none".to_string(),
        };
        return Some(DatabaseCommand::SetRetention { name, retention });
    }
    if !(verb.eq_ignore_ascii_case("create") || verb.eq_ignore_ascii_case("drop")) {
        return None;
    }
    let (sql, retention) = match RETENTION_CLAUSE.captures(sql) {
        Some(c) if verb.eq_ignore_ascii_case("create") => (
            c.get(1).map_or(sql, |m| m.as_str()),
            c.get(2).map(|m| m.as_str().to_string()),
        ),
        _ => (sql, None),
    };
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
            retention,
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
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } if names.len() == 1 => Some(DatabaseCommand::DropTable {
            // `public.cpu` and `cpu` name the same table.
            name: object_name(&names[0])
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string(),
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
                retention,
            } => {
                validate_name(name).map_err(storage_error)?;
                let retention = match retention {
                    Some(period) => parse_retention(period).map_err(storage_error)?,
                    None => None,
                };
                if *if_not_exists && self.has_database(name) {
                    return Ok(());
                }
                self.engine()
                    .create_database(name, retention)
                    .await
                    .map_err(QueryError::Storage)
            }
            DatabaseCommand::SetRetention { name, retention } => {
                let retention = parse_retention(retention).map_err(storage_error)?;
                self.engine()
                    .set_retention(name, retention)
                    .await
                    .map_err(QueryError::Storage)
            }
            DatabaseCommand::DropTable { name, if_exists } => {
                let Some(database) = current else {
                    return Err(QueryError::DatabaseNotFound(String::new()));
                };
                let exists = self
                    .engine()
                    .catalog()
                    .snapshot()
                    .table(database, name)
                    .is_some();
                if *if_exists && !exists {
                    return Ok(());
                }
                self.engine()
                    .drop_table(database, name)
                    .await
                    .map(|_| ())
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
                if_not_exists: true,
                retention: None,
            })
        );
        assert_eq!(
            parse_database_command("CREATE DATABASE m WITH RETENTION '30d';"),
            Some(DatabaseCommand::Create {
                name: "m".into(),
                if_not_exists: false,
                retention: Some("30d".into()),
            })
        );
        assert_eq!(
            parse_database_command("alter database \"Prod\" set retention '2w'"),
            Some(DatabaseCommand::SetRetention {
                name: "Prod".into(),
                retention: "2w".into(),
            })
        );
        assert_eq!(
            parse_database_command("ALTER DATABASE M RESET RETENTION"),
            Some(DatabaseCommand::SetRetention {
                name: "m".into(),
                retention: "none".into(),
            })
        );
        assert_eq!(parse_database_command("ALTER DATABASE m RENAME TO n"), None);
        assert_eq!(
            parse_database_command("drop database \"Prod-1\""),
            Some(DatabaseCommand::Drop {
                name: "Prod-1".into(),
                if_exists: false
            })
        );
        assert_eq!(
            parse_database_command("DROP TABLE IF EXISTS public.cpu"),
            Some(DatabaseCommand::DropTable {
                name: "cpu".into(),
                if_exists: true,
            })
        );
        assert_eq!(parse_database_command("SELECT 1"), None);
    }
}
