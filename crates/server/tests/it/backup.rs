//! `chronosdb backup` and `chronosdb restore`, run as a user runs them: a backup of a
//! running server that keeps taking writes (buffered points included), interrupted and
//! resumed, then repeated to copy only new files; a restore into an empty data directory
//! whose server answers every query as the original did and keeps taking writes.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{TestServer, parquet_files};

const SECOND: i64 = 1_000_000_000;
/// 2024-03-01T00:00:00Z
const DAY0: i64 = 1_709_251_200 * SECOND;

fn chronosdb(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronosdb"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run chronosdb")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Points of `hosts` hosts every 10 s for `n` steps from `start`.
fn points(table: &str, hosts: usize, start: i64, n: i64) -> String {
    let mut lines = Vec::new();
    for h in 0..hosts {
        for i in 0..n {
            lines.push(format!(
                "{table},host=h{h} usage={},count={}i {}",
                (i * 37 + h as i64) as f64 / 3.0,
                i,
                start + i * 10 * SECOND
            ));
        }
    }
    lines.join("\n")
}

async fn pg(server: &TestServer, token: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(server.pg_port)
        .user("admin")
        .password(token)
        .dbname("metrics")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn rows(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            &format!("SELECT host, time, usage, count FROM {table} ORDER BY host, time"),
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {:?} {:?}",
                r.get::<_, String>(0),
                r.get::<_, std::time::SystemTime>(1),
                r.get::<_, Option<f64>>(2),
                r.get::<_, Option<i64>>(3)
            )
        })
        .collect()
}

async fn write(server: &TestServer, token: &str, body: String) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v3/write_lp?db=metrics", server.http))
        .header("Authorization", format!("Token {token}"))
        .body(body)
        .send()
        .await
        .expect("write");
    assert_eq!(response.status().as_u16(), 204);
}

#[tokio::test]
async fn backup_of_a_running_server_restores_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup_dir = tempfile::tempdir().expect("backup dir");
    let backup_to = backup_dir.path().to_str().expect("utf-8 path");
    let server = TestServer::start_secure(dir.path(), &[]);
    let admin = server.admin_token.clone().expect("admin token");

    // Three days in files (one restart each persists them), one more still buffered.
    for day in 0..3 {
        write(
            &server,
            &admin,
            points("cpu", 3, DAY0 + day * 86_400 * SECOND, 500),
        )
        .await;
    }
    server.stop();
    let server = TestServer::start_secure(dir.path(), &[]);
    write(
        &server,
        &admin,
        points("cpu", 3, DAY0 + 3 * 86_400 * SECOND, 500),
    )
    .await;
    let client = pg(&server, &admin).await;
    let original = rows(&client, "cpu").await;
    assert_eq!(original.len(), 4 * 3 * 500);

    // Writes keep coming while the backups run.
    let writer = {
        let (http, token) = (server.http.clone(), admin.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..200i64 {
                let line = format!("live,host=w usage={i},count={i}i {}", DAY0 + i * SECOND);
                let _ = client
                    .post(format!("{http}/api/v3/write_lp?db=metrics"))
                    .header("Authorization", format!("Token {token}"))
                    .body(line)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let url = server.http.as_str();
    let args = [
        "backup",
        "--to",
        backup_to,
        "--url",
        url,
        "--token",
        admin.as_str(),
    ];

    // Interrupted after its first file (the process aborts, as a crash would)...
    let first = chronosdb(&args, &[("CHRONOSDB_CRASH_AT", "backup-file-copied")]);
    assert!(!first.status.success(), "{}", text(&first));
    assert!(!backup_dir.path().join("backup.json").exists());
    // ...and resumed: the file already copied is not copied again.
    let second = chronosdb(&args, &[]);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert!(out.contains("1 already there"), "{out}");
    assert!(backup_dir.path().join("backup.json").exists());

    // A second backup copies only what is new since (the buffer, persisted for it).
    write(
        &server,
        &admin,
        points("cpu", 1, DAY0 + 4 * 86_400 * SECOND, 10),
    )
    .await;
    writer.await.expect("writer");
    let third = chronosdb(&args, &[]);
    let out = text(&third);
    assert!(third.status.success(), "{out}");
    let copied: usize = out
        .split("copied ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("copied count");
    let total: usize = out
        .split("complete: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("file count");
    assert!(copied >= 1 && copied < total, "incremental: {out}");
    let at_backup = rows(&client, "cpu").await;
    let live_at_backup = rows(&client, "live").await;
    server.stop();

    // Restore into a new data directory; an unknown source and a used directory are refused.
    let restored = tempfile::tempdir().expect("restore dir");
    let target = restored.path().join("data");
    let target = target.to_str().expect("utf-8 path");
    let missing = chronosdb(
        &[
            "restore",
            "--from",
            "/nonexistent/backup",
            "--data-dir",
            target,
        ],
        &[],
    );
    assert!(
        text(&missing).contains("holds no backup"),
        "{}",
        text(&missing)
    );
    let used = chronosdb(
        &[
            "restore",
            "--from",
            backup_to,
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(!used.status.success());
    assert!(
        text(&used).contains("empty data directory"),
        "{}",
        text(&used)
    );
    let restore = chronosdb(&["restore", "--from", backup_to, "--data-dir", target], &[]);
    assert!(restore.status.success(), "{}", text(&restore));
    assert!(text(&restore).contains("1 databases"), "{}", text(&restore));

    // The restored server knows the same tokens and answers with the same rows.
    let server = TestServer::start_secure(std::path::Path::new(target), &[]);
    assert!(server.admin_token.is_none(), "tokens were restored");
    let client = pg(&server, &admin).await;
    assert_eq!(rows(&client, "cpu").await, at_backup);
    assert_eq!(rows(&client, "live").await, live_at_backup);
    // And it keeps taking writes.
    write(
        &server,
        &admin,
        "cpu,host=new usage=1,count=1i 1709251200000000000".into(),
    )
    .await;
    let after = rows(&client, "cpu").await;
    assert_eq!(after.len(), at_backup.len() + 1);
    server.stop();
    let parquet = parquet_files(&std::path::Path::new(target).join("objects")).len();
    assert!(
        parquet >= total,
        "{parquet} files after restore and a write"
    );
    let _ = original;
}
