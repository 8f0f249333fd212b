//! Side by side with PostgreSQL: every case of `sql-tests/postgres/corpus.sql` runs
//! through psql against a real PostgreSQL (Debian's `postgresql` package, started here as
//! an unprivileged user on a free loopback port) and against chronosdb, and psql's output
//! (`-A`, headers, row counts, `VERBOSITY=sqlstate` errors) must be the same byte for byte.
//!
//! The corpus format: a case is a block of lines up to a blank line. Lines starting with
//! `--` are comments, except `-- postgres: <sql>` (PostgreSQL runs this instead: the same
//! question in PostgreSQL's words, such as `date_bin` for `time_bucket`) and
//! `-- differs: <reason>` (run on both, printed, not compared: a difference on purpose)
//! and `-- gap: <reason>` (the same, for a difference still to be closed). Both sides hold the same
//! rows: `fixture.lp` written to chronosdb, `fixture.sql` loaded into PostgreSQL.
//! `.ci/run` installs PostgreSQL; without it (and without `CHRONOSDB_REQUIRE_CLIENTS`)
//! the test says so and passes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clients::available;
use crate::common::TestServer;

const DATABASE: &str = "pgcompat";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql-tests/postgres")
}

/// The directory of PostgreSQL's server programs (Debian keeps them out of PATH).
fn postgres_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A throwaway PostgreSQL cluster; stopped and removed when dropped.
struct Postgres {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn start(bindir: &Path) -> Postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        // PostgreSQL refuses to run as root: run it as `nobody` then.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_root {
            let uid: u32 = String::from_utf8_lossy(
                &Command::new("id")
                    .args(["-u", "nobody"])
                    .output()
                    .expect("id -u nobody")
                    .stdout,
            )
            .trim()
            .parse()
            .expect("uid of nobody");
            std::os::unix::fs::chown(dir.path(), Some(uid), None).expect("chown to nobody");
        }
        let command = |program: &str| {
            let mut cmd = if as_root {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                    .arg(bindir.join(program));
                c
            } else {
                Command::new(bindir.join(program))
            };
            cmd.current_dir(dir.path());
            cmd
        };
        let data = dir.path().join("data");
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.path().join("postgres.log");
        let child = command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "TimeZone=UTC", "-c", "DateStyle=ISO, MDY"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create postgres.log"))
            .spawn()
            .expect("start postgres");
        let postgres = Postgres {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !psql(port, "postgres", "postgres", "SELECT 1").contains("(1 row)") {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; the end of its log:\n{}",
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        postgres
    }
}

/// The last lines of PostgreSQL's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM would be a smart shutdown; the cluster is thrown away, so kill it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// psql's output for `input` (stdout, then stderr), as a user would see it.
fn psql(port: u16, user: &str, db: &str, input: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
        ])
        .args(["-X", "-A", "-q", "-v", "VERBOSITY=sqlstate", "-f", "-"])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGTZ")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to psql");
    let out = child.wait_with_output().expect("psql output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One block of the corpus.
struct Case {
    line: usize,
    sql: String,
    postgres_sql: Option<String>,
    differs: Option<String>,
}

fn parse_corpus(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            cases.extend(current.take().filter(|c| !c.sql.is_empty()));
            continue;
        }
        let case = current.get_or_insert_with(|| Case {
            line: i + 1,
            sql: String::new(),
            postgres_sql: None,
            differs: None,
        });
        if let Some(sql) = line.strip_prefix("-- postgres:") {
            case.postgres_sql = Some(format!("{}\n", sql.trim()));
        } else if let Some(reason) = line.strip_prefix("-- differs:") {
            case.differs = Some(format!("differs on purpose: {}", reason.trim()));
        } else if let Some(reason) = line.strip_prefix("-- gap:") {
            case.differs = Some(format!("known gap: {}", reason.trim()));
        } else if !line.starts_with("--") {
            case.sql.push_str(line);
            case.sql.push('\n');
        }
    }
    cases.extend(current.filter(|c| !c.sql.is_empty()));
    cases
}

#[tokio::test]
async fn psql_output_matches_postgresql() {
    if !available("psql", "psql", &["--version"]) {
        return;
    }
    let Some(bindir) = postgres_bindir() else {
        assert!(
            std::env::var_os("CHRONOSDB_REQUIRE_CLIENTS").is_none(),
            "PostgreSQL (Debian package postgresql) is required but not installed"
        );
        eprintln!("SKIPPED: PostgreSQL is not installed (.ci/run installs it)");
        return;
    };
    let dir = corpus_dir();
    let corpus = std::fs::read_to_string(dir.join("corpus.sql")).expect("corpus.sql");
    let cases = parse_corpus(&corpus);

    let postgres = tokio::task::spawn_blocking(move || Postgres::start(&bindir))
        .await
        .expect("start PostgreSQL");
    let created = psql(
        postgres.port,
        "postgres",
        "postgres",
        &format!("CREATE DATABASE {DATABASE};\n"),
    );
    assert!(created.is_empty(), "create database: {created}");
    let fixture_sql = std::fs::read_to_string(dir.join("fixture.sql")).expect("fixture.sql");
    let loaded = psql(postgres.port, "postgres", DATABASE, &fixture_sql);
    assert!(loaded.is_empty(), "load fixture.sql: {loaded}");

    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let fixture_lp = std::fs::read_to_string(dir.join("fixture.lp")).expect("fixture.lp");
    server.write(DATABASE, &fixture_lp).await;
    let chronosdb_port = server.pg_port;
    let postgres_port = postgres.port;

    let report = tokio::task::spawn_blocking(move || {
        let mut mismatches = Vec::new();
        let mut differing = Vec::new();
        let (mut compared, mut errors_compared) = (0, 0);
        for case in &cases {
            let ours = psql(chronosdb_port, "chronosdb", DATABASE, &case.sql);
            let theirs = psql(
                postgres_port,
                "postgres",
                DATABASE,
                case.postgres_sql.as_deref().unwrap_or(&case.sql),
            );
            if let Some(reason) = &case.differs {
                differing.push(format!(
                    "line {} ({reason}):\n{}chronosdb:\n{ours}postgresql:\n{theirs}",
                    case.line, case.sql
                ));
                continue;
            }
            compared += 1;
            if theirs.contains("ERROR:") {
                errors_compared += 1;
            }
            if ours != theirs {
                mismatches.push(format!(
                    "line {}:\n{}--- chronosdb\n{ours}--- postgresql\n{theirs}",
                    case.line, case.sql
                ));
            }
        }
        (mismatches, differing, compared, errors_compared)
    })
    .await
    .expect("run the corpus");
    let (mismatches, differing, compared, errors_compared) = report;
    for d in &differing {
        eprintln!("{d}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} cases differ from PostgreSQL:\n\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared >= 150, "only {compared} cases compared");
    assert!(
        errors_compared >= 30,
        "only {errors_compared} failing statements compared"
    );
    eprintln!(
        "{compared} cases matched PostgreSQL ({errors_compared} of them errors); {} not compared (listed above)",
        differing.len()
    );
}
