//! Runs every `sql-tests/*.slt` file over pgwire with the `sqllogictest` crate.
//!
//! Each file runs in its own database named after the file; if `<name>.lp` stands beside
//! it, that line-protocol fixture is written over HTTP first. Results travel in the simple
//! query protocol's text format, exactly as psql would print them; NULL is `NULL` and an
//! empty string `(empty)`. Errors read `<SQLSTATE>: <message>`, so a test can expect a code.

use std::path::PathBuf;

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::common::TestServer;

#[derive(Debug)]
pub struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

struct PgDb {
    client: tokio_postgres::Client,
}

#[async_trait]
impl AsyncDB for PgDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => SqlError(format!("{}: {}", db.code().code(), db.message())),
                None => SqlError(e.to_string()),
            })?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = None;
        for message in messages {
            match message {
                tokio_postgres::SimpleQueryMessage::RowDescription(desc) => {
                    columns = Some(desc.len());
                }
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => affected = Some(n),
                _ => {}
            }
        }
        match columns {
            Some(n) => Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            }),
            None => Ok(DBOutput::StatementComplete(affected.unwrap_or(0))),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "chronosdb"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sql-tests");
    crate::common::files_with_extension(&dir, "slt")
}

#[tokio::test]
async fn sql_logic_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let fixture = file.with_extension("lp");
        if fixture.exists() {
            let body = std::fs::read(&fixture).expect("read fixture");
            let (status, text) = server.post(&format!("/write?db={name}"), body).await;
            assert_eq!(status, 204, "fixture {} refused: {text}", fixture.display());
        }
        let port = server.pg_port;
        let db = name.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let db = db.clone();
            async move {
                let client = crate::common::connect(port, &db)
                    .await
                    .map_err(|e| SqlError(e.to_string()))?;
                Ok::<_, SqlError>(PgDb { client })
            }
        });
        // `CHRONOSDB_SLT_COMPLETE=1` rewrites each file's expected results with what the
        // server answers (review the diff before committing it).
        if std::env::var_os("CHRONOSDB_SLT_COMPLETE").is_some() {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("completing {}: {e}", file.display()));
            continue;
        }
        match runner.run_file_async(file).await {
            Ok(()) => eprintln!("ok   {}", file.display()),
            Err(e) => {
                eprintln!("FAIL {}: {e}", file.display());
                failures.push(format!("{}: {e}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} slt file(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
