//! Databases created, listed and dropped from SQL, HTTP and the CLI; a dropped database's
//! files are deleted and its unpersisted writes are not brought back by WAL replay.

use std::process::Command;

use crate::common::{TestServer, files_under};

fn cli(server: &TestServer, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chronosdb"))
        .arg("database")
        .args(args)
        .args(["--url", &server.http])
        .output()
        .expect("run chronosdb database");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn sql_error_code(client: &tokio_postgres::Client, sql: &str) -> String {
    let e = client.simple_query(sql).await.expect_err(sql);
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn databases_from_sql_http_and_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let http = reqwest::Client::new();
    let endpoint = format!("{}/api/v3/configure/database", server.http);

    // SQL, from a connection to a database that does not exist yet.
    let admin = server.pg("postgres").await;
    admin
        .simple_query("CREATE DATABASE sqldb")
        .await
        .expect("create");
    assert_eq!(
        sql_error_code(&admin, "CREATE DATABASE sqldb").await,
        "42P04"
    );
    admin
        .simple_query("CREATE DATABASE IF NOT EXISTS sqldb")
        .await
        .expect("if not exists");
    assert_eq!(sql_error_code(&admin, "DROP DATABASE nope").await, "3D000");
    admin
        .simple_query("DROP DATABASE IF EXISTS nope")
        .await
        .expect("if exists");

    // HTTP.
    let created = http
        .post(&endpoint)
        .body(r#"{"db": "httpdb"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201);
    let again = http
        .post(&endpoint)
        .body(r#"{"db": "httpdb"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 409);
    let bad = http
        .post(&endpoint)
        .body("httpdb")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("JSON"));

    // CLI.
    let (ok, text) = cli(&server, &["create", "clidb"]);
    assert!(ok, "{text}");
    let (ok, text) = cli(&server, &["list"]);
    assert!(ok, "{text}");
    for db in ["sqldb", "httpdb", "clidb"] {
        assert!(text.contains(db), "{db} missing from: {text}");
    }
    let (ok, text) = cli(&server, &["drop", "nope"]);
    assert!(!ok && text.contains("does not exist"), "{text}");

    // A database seen from SQL.
    let listed = admin
        .query("SELECT name FROM system.databases ORDER BY name", &[])
        .await;
    // `postgres` does not exist: system tables need a database session.
    assert!(listed.is_err());
    let client = server.pg("sqldb").await;
    let rows = client
        .query("SELECT database_name FROM system.databases ORDER BY 1", &[])
        .await
        .expect("system.databases");
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["clidb", "httpdb", "sqldb"]);
    assert_eq!(
        sql_error_code(&client, "DROP DATABASE sqldb").await,
        "55006"
    );
}

#[tokio::test]
async fn dropping_a_database_deletes_its_files_and_its_unpersisted_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = dir.path().join("objects");
    let server = TestServer::start(dir.path());
    server
        .write(
            "doomed",
            "cpu,host=a v=1 1000000000\nmem,host=a v=2 1000000000",
        )
        .await;
    server.write("kept", "cpu,host=a v=1 1000000000").await;
    // A clean stop persists the buffer to Parquet.
    server.stop();
    let server = TestServer::start(dir.path());
    assert_eq!(files_under(&objects.join("doomed")).len(), 2);
    // Written after the restart: only in the WAL and the buffer.
    server.write("doomed", "cpu,host=b v=3 2000000000").await;
    let session = server.pg("doomed").await;
    let (ok, text) = cli(&server, &["drop", "doomed"]);
    assert!(ok, "{text}");
    assert!(text.contains("2 file(s) deleted"), "{text}");
    assert!(files_under(&objects.join("doomed")).is_empty());
    // An open session of the dropped database is told so.
    let e = session
        .query("SELECT count(*) FROM cpu", &[])
        .await
        .expect_err("dropped");
    let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
    assert!(message.contains("does not exist"), "{e:?}");

    // A crash now must not bring the dropped writes back from the WAL.
    server.kill9();
    let server = TestServer::start(dir.path());
    let kept = server.pg("kept").await;
    let rows = kept
        .query("SELECT database_name FROM system.databases", &[])
        .await
        .expect("databases");
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["kept"]);
    // The name can be used again, and starts empty.
    server.write("doomed", "cpu,host=c v=4 3000000000").await;
    let again = server.pg("doomed").await;
    let count: i64 = again
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1);
    // Over HTTP: 404 for a database that does not exist.
    let response = reqwest::Client::new()
        .delete(format!("{}/api/v3/configure/database?db=nope", server.http))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 404);
}
