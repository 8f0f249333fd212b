//! A `chronosdb serve` process for tests, and clients to talk to it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server; killed when dropped.
pub struct TestServer {
    child: Child,
    pub http: String,
    pub pg_port: u16,
    /// The admin token printed at a first start with authentication on.
    pub admin_token: Option<String>,
}

impl TestServer {
    /// Starts a server on `data_dir` with extra flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> TestServer {
        Self::start_env(data_dir, extra, &[])
    }

    /// Starts a server with extra flags and environment variables, authentication off.
    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut flags = vec!["--without-auth"];
        flags.extend_from_slice(extra);
        Self::spawn(data_dir, &flags, env)
    }

    /// Starts a server with authentication on; `admin_token` is set on its first start.
    pub fn start_secure(data_dir: &Path, extra: &[&str]) -> TestServer {
        Self::spawn(data_dir, extra, &[])
    }

    fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chronosdb"))
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http-bind", "127.0.0.1:0", "--pg-bind", "127.0.0.1:0"])
            .args(["--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chronosdb");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let mut admin_token = None;
        loop {
            line.clear();
            stdout
                .read_line(&mut line)
                .expect("read the listening line");
            match line.strip_prefix("chronosdb admin token: ") {
                Some(token) => admin_token = Some(token.trim().to_string()),
                None => break,
            }
        }
        assert!(
            line.starts_with("chronosdb listening:"),
            "server did not start: {line:?}"
        );
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .expect("address in the listening line")
                .to_string()
        };
        let pg = field("pg");
        let pg_port = pg.rsplit(':').next().expect("port").parse().expect("port");
        TestServer {
            child,
            http: format!("http://{}", field("http")),
            pg_port,
            admin_token,
        }
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    pub fn start(data_dir: &Path) -> TestServer {
        Self::start_with(data_dir, &[])
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to end by itself; true if it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// POSTs a body to a path; returns status and response text.
    pub async fn post(
        &self,
        path_and_query: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        self.post_with(path_and_query, body, &[]).await
    }

    pub async fn post_with(
        &self,
        path_and_query: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path_and_query}", self.http))
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Writes line protocol with the v1 API and asserts 204.
    pub async fn write(&self, db: &str, body: &str) {
        let (status, text) = self
            .post(&format!("/write?db={db}"), body.to_string())
            .await;
        assert_eq!(status, 204, "write failed: {text}");
    }

    /// A tokio-postgres connection to `db`.
    pub async fn pg(&self, db: &str) -> tokio_postgres::Client {
        connect(self.pg_port, db).await.expect("pgwire connect")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tokio-postgres connection to `db` on a local port; the connection task is spawned.
pub async fn connect(port: u16, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("test")
        .dbname(db)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files directly in `dir` whose extension is `ext`, sorted by name.
/// The Parquet files under `dir`, at any depth.
pub fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// The plan text of `EXPLAIN sql`, logical and physical.
pub async fn explain(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .simple_query(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain")
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get(1).unwrap_or_default().to_string())
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
