//! The clients people already use, driven against a live server: psycopg 3, asyncpg,
//! SQLAlchemy, pgjdbc, psqlODBC (through unixODBC and pyodbc) and psql. Each client's
//! script lives in `tests/clients/` and asserts what it reads. `.ci/run` installs the
//! clients and sets `CHRONOSDB_REQUIRE_CLIENTS=1`, which turns a missing client into a
//! failure; elsewhere a missing client is reported and its test passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestServer;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether `program args…` runs; when it does not and clients are required, panics.
pub(crate) fn available(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CHRONOSDB_REQUIRE_CLIENTS").is_none(),
            "{what} is required (CHRONOSDB_REQUIRE_CLIENTS is set) but not installed"
        );
        eprintln!("SKIPPED: {what} is not installed (.ci/run installs it)");
    }
    ok
}

/// A server with `tests/clients/fixture.lp` written to database `clients`.
async fn server_with_fixture(dir: &Path) -> TestServer {
    let server = TestServer::start(dir);
    let fixture = std::fs::read_to_string(clients_dir().join("fixture.lp")).expect("fixture");
    server.write("clients", &fixture).await;
    server
}

/// Runs a client program with the server's port and database; asserts it succeeds.
fn run_client(program: &str, args: &[&str], server: &TestServer) {
    let out = Command::new(program)
        .current_dir(clients_dir())
        .args(args)
        .args([&server.pg_port.to_string(), "clients"])
        .output()
        .expect("run the client");
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn python_client(module: &str, script: &str) {
    if !available(module, "python3", &["-c", &format!("import {module}")]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    run_client("python3", &[script], &server);
}

#[tokio::test]
async fn psycopg() {
    python_client("psycopg", "psycopg_check.py").await;
}

#[tokio::test]
async fn asyncpg() {
    python_client("asyncpg", "asyncpg_check.py").await;
}

#[tokio::test]
async fn sqlalchemy() {
    python_client("sqlalchemy", "sqlalchemy_check.py").await;
}

#[tokio::test]
async fn odbc() {
    python_client("pyodbc", "odbc_check.py").await;
}

#[tokio::test]
async fn jdbc() {
    let jar = "/usr/share/java/postgresql.jar";
    if !available("java", "java", &["-version"]) || !available("pgjdbc", "test", &["-f", jar]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    run_client("java", &["-cp", jar, "JdbcCheck.java"], &server);
}

#[tokio::test]
async fn psql() {
    if !available("psql", "psql", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    let port = server.pg_port.to_string();
    let psql = |commands: &[&str]| {
        let mut cmd = Command::new("psql");
        cmd.current_dir(dir.path())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "check",
                "-d",
                "clients",
            ])
            .args(["-X", "-v", "ON_ERROR_STOP=1"]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().expect("run psql");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "psql {commands:?} failed: {text}");
        text
    };
    let databases = psql(&["\\l"]);
    assert!(databases.contains("clients"), "{databases}");
    let tables = psql(&["\\dt"]);
    assert!(tables.contains("weather"), "{tables}");
    let table = psql(&["\\d weather"]);
    assert!(
        table.contains("city") && table.contains("double precision") && table.contains("time"),
        "{table}"
    );
    let expanded = psql(&[
        "\\x",
        "SELECT city, temperature FROM weather WHERE city = 'rome'",
    ]);
    assert!(
        expanded.contains("-[ RECORD 1 ]") && expanded.contains("city        | rome"),
        "{expanded}"
    );
    let timed = psql(&["\\timing on", "SELECT count(*) FROM weather"]);
    assert!(timed.contains("Time: "), "{timed}");
    // \copy out to a client file, into a new table, and back out again.
    psql(&[
        "\\copy (SELECT time, city, temperature FROM weather ORDER BY city, time) TO 'out.csv' WITH (FORMAT csv, HEADER)",
    ]);
    let exported = std::fs::read_to_string(dir.path().join("out.csv")).expect("out.csv");
    assert_eq!(
        exported.lines().take(2).collect::<Vec<_>>(),
        ["time,city,temperature", "2023-11-14 22:13:20,oslo,3.5"],
        "{exported}"
    );
    psql(&[
        "CREATE TABLE copied (time TIMESTAMP NOT NULL, city TEXT, temperature DOUBLE PRECISION, PRIMARY KEY (city))",
        "\\copy copied FROM 'out.csv' WITH (FORMAT csv, HEADER)",
    ]);
    let copied = psql(&["SELECT count(*) AS n, sum(temperature) AS total FROM copied"]);
    assert!(
        copied.contains(" 5 ") && copied.contains("69.25"),
        "{copied}"
    );
    // A bad row is refused with its line, and the client is told.
    std::fs::write(
        dir.path().join("bad.csv"),
        "2023-11-14 22:13:20,lima,warm\n",
    )
    .expect("write");
    let mut cmd = Command::new("psql");
    let out = cmd
        .current_dir(dir.path())
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "check",
            "-d",
            "clients",
            "-X",
        ])
        .args(["-c", "\\copy copied FROM 'bad.csv' WITH (FORMAT csv)"])
        .output()
        .expect("run psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warm") && err.contains("line"), "{err}");
}

/// tokio-postgres drives COPY through the extended protocol: 100,000 rows in, counted and
/// summed by SQL, and streamed back out.
#[tokio::test]
async fn tokio_postgres_copy_in_and_out() {
    use futures::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    let client = server.pg("clients").await;
    client
        .batch_execute(
            "CREATE TABLE bulk (time TIMESTAMP NOT NULL, host TEXT, v BIGINT, PRIMARY KEY (host))",
        )
        .await
        .expect("create table");
    let sink = client
        .copy_in("COPY bulk (time, host, v) FROM STDIN")
        .await
        .expect("copy in");
    futures::pin_mut!(sink);
    let rows = 100_000i64;
    let mut chunk = String::new();
    for i in 0..rows {
        // Text format: tab-separated, times without an offset are UTC.
        chunk.push_str(&format!(
            "2024-01-01 00:00:{:02}.{:06}\thost_{}\t{i}\n",
            i % 60,
            i,
            i % 10
        ));
        if chunk.len() > 64 * 1024 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                .await
                .expect("send");
        }
    }
    sink.send(bytes::Bytes::from(chunk)).await.expect("send");
    let copied = sink.finish().await.expect("finish");
    assert_eq!(copied, rows as u64);
    let row = client
        .query_one(
            "SELECT count(*), CAST(sum(v) AS bigint), count(DISTINCT host) FROM bulk",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), rows);
    assert_eq!(row.get::<_, i64>(1), rows * (rows - 1) / 2);
    assert_eq!(row.get::<_, i64>(2), 10);
    let out = client
        .copy_out(
            "COPY (SELECT host, v FROM bulk WHERE v < 3 ORDER BY v) TO STDOUT WITH (FORMAT csv)",
        )
        .await
        .expect("copy out");
    let chunks: Vec<bytes::Bytes> = out.map(|c| c.expect("chunk")).collect().await;
    let text: String = chunks.iter().map(|c| String::from_utf8_lossy(c)).collect();
    assert_eq!(text, "host_0,0\nhost_1,1\nhost_2,2\n");
}

/// Result columns are named as PostgreSQL names them: after the function, `?column?` for
/// other expressions; aliases and table columns keep their names.
#[tokio::test]
async fn result_columns_have_postgres_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    let client = server.pg("clients").await;
    for simple in [false, true] {
        let sql = "SELECT 1, count(*), max(temperature), city, temperature * 2, \
                   CAST(humidity AS INT), time_bucket('1 minute', time), min(humidity) AS low \
                   FROM weather GROUP BY city, temperature, humidity, time ORDER BY city LIMIT 1";
        let names: Vec<String> = if simple {
            match &client.simple_query(sql).await.expect("simple query")[0] {
                tokio_postgres::SimpleQueryMessage::RowDescription(columns) => {
                    columns.iter().map(|c| c.name().to_string()).collect()
                }
                other => panic!("expected a row description, got {other:?}"),
            }
        } else {
            let statement = client.prepare(sql).await.expect("prepare");
            statement
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect()
        };
        assert_eq!(
            names,
            [
                "?column?",
                "count",
                "max",
                "city",
                "?column?",
                "humidity",
                "time_bucket",
                "low"
            ],
            "simple protocol: {simple}"
        );
    }
}

/// Several statements in one Query message run in order, each with its own result, and
/// transaction statements among them are accepted.
#[tokio::test]
async fn several_statements_in_one_query_message() {
    use tokio_postgres::SimpleQueryMessage;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    let client = server.pg("clients").await;
    let messages = client
        .simple_query("BEGIN; SELECT 1 AS a; SELECT city FROM weather WHERE city = 'rome'; COMMIT")
        .await
        .expect("multi-statement query");
    let values: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["1", "rome"]);
    let completions = messages
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(completions, 4);
    // Statements apply in order: a SET changes how the next one prints.
    let messages = client
        .simple_query(
            "SET TIME ZONE 'Asia/Tokyo'; SELECT time FROM weather WHERE city = 'rome'; SET TIME ZONE 'UTC'",
        )
        .await
        .expect("SET then SELECT");
    let shown: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(shown, ["2023-11-15 07:13:20+09"]);
    // An error in the middle stops the rest, as in PostgreSQL.
    let err = client
        .simple_query("SELECT 1; SELECT nope FROM weather; SELECT 2")
        .await
        .expect_err("the second statement fails");
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("42703"));
}

/// Prepared statements run on the streaming path with their parameters decoded by position,
/// also when one sits in a subquery.
#[tokio::test]
async fn parameters_in_subqueries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_fixture(dir.path()).await;
    let client = server.pg("clients").await;
    let rows = client
        .query(
            "SELECT city, humidity FROM weather WHERE city IN (SELECT city FROM weather WHERE country = $1::TEXT) AND humidity > $2 ORDER BY time",
            &[&"no", &79i64],
        )
        .await
        .expect("query with a parameter in a subquery");
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("oslo".to_string(), 80)]);
    // A parameterized query is cancelled by statement_timeout while it streams.
    client
        .batch_execute("SET statement_timeout = 300")
        .await
        .expect("set statement_timeout");
    let err = client
        .query(
            "SELECT sum(value) FROM generate_series(1, 100000000000) AS t(value) WHERE value > $1",
            &[&0i64],
        )
        .await
        .expect_err("timed out");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("57014"),
        "{err}"
    );
}
