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
fn available(what: &str, program: &str, args: &[&str]) -> bool {
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
