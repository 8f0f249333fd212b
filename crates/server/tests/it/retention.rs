//! Retention: a database's retention period, set at creation or altered later from SQL,
//! HTTP and the CLI, hides older points from queries at once and deletes the files that
//! hold only such points, by whole partitions, without rewriting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{TestServer, parquet_files};

const HOUR: i64 = 3_600_000_000_000;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

async fn hosts(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn retention_hides_old_points_and_deletes_whole_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let admin = server.pg("postgres").await;
    admin
        .simple_query("CREATE DATABASE r")
        .await
        .expect("create");
    let now = now();
    let lines = [
        ("a", now - 72 * HOUR),
        ("b", now - 48 * HOUR),
        ("c", now - 2 * HOUR),
        ("d", now - 60_000_000_000),
    ]
    .iter()
    .map(|(host, t)| format!("cpu,host={host} usage=1 {t}"))
    .collect::<Vec<_>>()
    .join("\n");
    server.write("r", &lines).await;
    // Stopping persists the buffer: one file per day partition.
    server.stop();
    let objects = dir.path().join("objects").join("r");
    let before = parquet_files(&objects);
    assert!(before.len() >= 3, "{before:?}");

    let server = TestServer::start_with(dir.path(), &["--retention-check-interval", "100ms"]);
    let client = server.pg("r").await;
    assert_eq!(count(&client).await, 4);
    client
        .simple_query("ALTER DATABASE r SET RETENTION '1d'")
        .await
        .expect("alter");
    // At once: the points of two and three days ago are gone from every kind of query.
    assert_eq!(count(&client).await, 2);
    assert_eq!(
        hosts(&client, "SELECT host FROM cpu ORDER BY host").await,
        ["c", "d"]
    );
    assert_eq!(
        hosts(
            &client,
            "SELECT DISTINCT ON (host) host FROM cpu ORDER BY host, time DESC"
        )
        .await,
        ["c", "d"]
    );
    // Soon after: their files are deleted; today's (and maybe yesterday's) stay.
    let mut after = parquet_files(&objects);
    for _ in 0..100 {
        if after.len() <= before.len() - 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = parquet_files(&objects);
    }
    assert_eq!(after.len(), before.len() - 2, "{before:?} → {after:?}");

    // A shorter period cuts through a file: its older rows are filtered out, the file
    // stays (it still holds newer points).
    client
        .simple_query("ALTER DATABASE r SET RETENTION '1h'")
        .await
        .expect("alter");
    assert_eq!(count(&client).await, 1);
    assert_eq!(hosts(&client, "SELECT host FROM cpu").await, ["d"]);
    let c_count: i64 = client
        .query_one("SELECT count(*) FROM cpu WHERE host = 'c'", &[])
        .await
        .expect("count c")
        .get(0);
    assert_eq!(c_count, 0);
    assert_eq!(
        hosts(
            &client,
            "SELECT DISTINCT ON (host) host FROM cpu ORDER BY host, time DESC"
        )
        .await,
        ["d"]
    );
    let rows = client
        .query(
            "SELECT database_name, retention_period FROM system.databases WHERE database_name = 'r'",
            &[],
        )
        .await
        .expect("system.databases");
    assert_eq!(rows[0].get::<_, Option<String>>(1).as_deref(), Some("1h"));

    // A write of a point older than the period is refused for that line; the rest lands.
    let (status, text) = server
        .post(
            "/api/v3/write_lp?db=r",
            format!(
                "cpu,host=old usage=1 {}\ncpu,host=new usage=1 {}",
                now - 2 * HOUR,
                now
            ),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("retention period (1h)"), "{text}");
    assert_eq!(
        hosts(&client, "SELECT host FROM cpu ORDER BY host").await,
        ["d", "new"]
    );

    // Bad periods are refused with a clear error.
    let e = client
        .simple_query("ALTER DATABASE r SET RETENTION 'soon'")
        .await
        .expect_err("bad period");
    assert_eq!(e.code().map(|c| c.code()), Some("22023"), "{e}");

    // Creation with a period, kept across a restart.
    client
        .simple_query("CREATE DATABASE weekly WITH RETENTION '2w'")
        .await
        .expect("create with retention");
    server.stop();
    let server = TestServer::start(dir.path());
    let client = server.pg("r").await;
    let rows = client
        .query(
            "SELECT database_name, retention_period FROM system.databases ORDER BY 1",
            &[],
        )
        .await
        .expect("system.databases");
    let periods: Vec<(String, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        periods,
        [
            ("r".to_string(), Some("1h".to_string())),
            ("weekly".to_string(), Some("2w".to_string()))
        ]
    );
}

#[tokio::test]
async fn retention_over_http_and_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let http = reqwest::Client::new();
    let endpoint = format!("{}/api/v3/configure/database", server.http);
    let create = http
        .post(&endpoint)
        .body(r#"{"db": "h", "retention_period": "7d"}"#)
        .send()
        .await
        .expect("create");
    assert_eq!(create.status().as_u16(), 201);
    let bad = http
        .put(&endpoint)
        .body(r#"{"db": "h", "retention_period": "forever-ish"}"#)
        .send()
        .await
        .expect("bad update");
    assert_eq!(bad.status().as_u16(), 400);
    let text = bad.text().await.unwrap_or_default();
    assert!(text.contains("invalid retention period"), "{text}");
    let missing = http
        .put(&endpoint)
        .body(r#"{"db": "nope", "retention_period": "1d"}"#)
        .send()
        .await
        .expect("missing db");
    assert_eq!(missing.status().as_u16(), 404);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronosdb"))
        .args([
            "database",
            "set-retention",
            "h",
            "12h",
            "--url",
            &server.http,
        ])
        .output()
        .expect("cli");
    assert!(output.status.success(), "{output:?}");
    let list = http.get(&endpoint).send().await.expect("list");
    let body: serde_json::Value =
        serde_json::from_str(&list.text().await.expect("body")).expect("JSON");
    assert_eq!(body["databases"][0]["retention_period"], "12h", "{body}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronosdb"))
        .args([
            "database",
            "set-retention",
            "h",
            "none",
            "--url",
            &server.http,
        ])
        .output()
        .expect("cli");
    assert!(output.status.success(), "{output:?}");
    let list = http.get(&endpoint).send().await.expect("list");
    let body: serde_json::Value =
        serde_json::from_str(&list.text().await.expect("body")).expect("JSON");
    assert!(body["databases"][0]["retention_period"].is_null(), "{body}");
}

#[tokio::test]
async fn points_a_retention_period_hid_stay_gone_when_it_is_lengthened_or_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let admin = server.pg("postgres").await;
    admin
        .simple_query("CREATE DATABASE r")
        .await
        .expect("create");
    let now = now();
    server
        .write(
            "r",
            &format!(
                "cpu,host=old usage=1 {}\ncpu,host=new usage=2 {}",
                now - 3 * HOUR,
                now - 60_000_000_000
            ),
        )
        .await;
    let client = server.pg("r").await;
    client
        .simple_query("ALTER DATABASE r SET RETENTION '1h'")
        .await
        .expect("set 1h");
    assert_eq!(count(&client).await, 1);
    client
        .simple_query("ALTER DATABASE r SET RETENTION '7d'")
        .await
        .expect("lengthen");
    assert_eq!(
        count(&client).await,
        1,
        "a longer period brought a hidden point back"
    );
    client
        .simple_query("ALTER DATABASE r SET RETENTION NONE")
        .await
        .expect("remove");
    assert_eq!(
        count(&client).await,
        1,
        "removing the period brought a hidden point back"
    );
    // A point older than the final cutoff would never be seen: refused, not swallowed.
    let (status, text) = server
        .post(
            "/write?db=r",
            format!("cpu,host=late usage=3 {}", now - 2 * HOUR),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("retention"), "{text}");
    // Newer points are written as before, and the cutoff survives a restart.
    server
        .write(
            "r",
            &format!("cpu,host=c usage=4 {}", now - 30 * 60_000_000_000),
        )
        .await;
    server.kill9();
    let server = TestServer::start(dir.path());
    let client = server.pg("r").await;
    assert_eq!(
        hosts(&client, "SELECT host FROM cpu ORDER BY host").await,
        vec!["c".to_string(), "new".to_string()]
    );
}
