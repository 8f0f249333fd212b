//! `DELETE FROM … WHERE …`: deleted points disappear from queries, the files that held
//! them are rewritten so the disk space comes back, buffered points are deleted too, and
//! nothing comes back after a crash.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::SimpleQueryMessage;

use crate::common::{TestServer, files_under};

const SECOND: i64 = 1_000_000_000;

/// Points per host in the delete test.
const N: i64 = 20_000;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// Points every 10 s for `count` steps back from `end`, for each host.
fn points(hosts: &[&str], end: i64, count: i64) -> String {
    let mut lines = Vec::new();
    for host in hosts {
        for i in 0..count {
            // Values that do not compress to nothing, so file sizes follow row counts.
            let noise = (i * 7_919 + host.len() as i64 * 104_729) % 1_000_003;
            lines.push(format!(
                "cpu,host={host} usage={},idle={noise}i {}",
                noise as f64 / 7.0,
                end - i * 10 * SECOND
            ));
        }
    }
    lines.join("\n")
}

fn parquet_bytes(dir: &std::path::Path) -> u64 {
    files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn counts(client: &tokio_postgres::Client) -> Vec<(String, i64)> {
    client
        .query(
            "SELECT host, count(*) FROM cpu GROUP BY host ORDER BY host",
            &[],
        )
        .await
        .expect("counts")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn delete_removes_points_and_gives_disk_space_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let end = now() - 60 * SECOND;
    server
        .write("d", &points(&["a", "b", "c", "d"], end, N))
        .await;
    // Stopping persists the buffer, so the points are in Parquet files.
    server.stop();
    let objects = dir.path().join("objects");
    let before = parquet_bytes(&objects);
    assert!(before > 0);

    let server = TestServer::start(dir.path());
    let client = server.pg("d").await;
    // EXPLAIN plans the delete without running it.
    client
        .simple_query("EXPLAIN DELETE FROM cpu WHERE host = 'a'")
        .await
        .expect("explain");
    assert_eq!(counts(&client).await.len(), 4);

    // Half of the data set, over the extended protocol: the update count is the points.
    let deleted = client
        .execute("DELETE FROM cpu WHERE host IN ('a', 'b')", &[])
        .await
        .expect("delete half");
    assert_eq!(deleted, 2 * N as u64);
    assert_eq!(
        counts(&client).await,
        [("c".to_string(), N), ("d".to_string(), N)]
    );
    let total: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, 2 * N);
    let after = parquet_bytes(&objects);
    assert!(
        after * 10 < before * 7,
        "deleting half the points should give back about half the bytes: {before} → {after}"
    );

    // Buffered points are deleted too; a time range with a regex over the simple protocol.
    server.write("d", &points(&["c"], now(), 30)).await;
    let messages = client
        .simple_query(&format!(
            "DELETE FROM cpu WHERE host ~ '^c' AND time >= to_timestamp_nanos({}) ",
            end - 3_599 * SECOND
        ))
        .await
        .expect("delete a range");
    let deleted = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .expect("command complete");
    // 360 persisted points of the last hour before `end`, and the 30 buffered ones.
    assert_eq!(deleted, 390);
    let expected = [("c".to_string(), N - 360), ("d".to_string(), N)];
    assert_eq!(counts(&client).await, expected);
    // A statement over nothing deletes nothing.
    assert_eq!(
        client
            .execute("DELETE FROM cpu WHERE host = 'nobody'", &[])
            .await
            .expect("delete nothing"),
        0
    );

    // A crash does not bring anything back.
    server.kill9();
    let server = TestServer::start(dir.path());
    let client = server.pg("d").await;
    assert_eq!(counts(&client).await, expected);
    // And the table still takes writes and deletes everything on request.
    server.write("d", &points(&["e"], now(), 10)).await;
    assert_eq!(
        client
            .execute("DELETE FROM cpu", &[])
            .await
            .expect("delete all"),
        (2 * N - 360 + 10) as u64
    );
    assert!(counts(&client).await.is_empty());
    assert_eq!(parquet_bytes(&objects), 0);
}

#[tokio::test]
async fn delete_across_tables_by_regex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = now();
    server
        .write(
            "r",
            &format!(
                "cpu_a,host=a v=1 {t}\ncpu_a,host=b v=2 {t}\ncpu_b,host=a v=3 {t}\nmem,host=a v=4 {t}\ndisk,dev=x v=5 {t}"
            ),
        )
        .await;
    let client = server.pg("r").await;
    let messages = client
        .simple_query("DELETE FROM /^cpu_/ WHERE host = 'a'")
        .await
        .expect("regex delete");
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(2))),
        "two points deleted"
    );
    // Extended protocol too; `disk` has no host column, so nothing of it can match.
    assert_eq!(
        client
            .execute("DELETE FROM /^(mem|disk)$/ WHERE host = 'a'", &[])
            .await
            .expect("regex delete, extended"),
        1
    );
    let left: Vec<(String, i64)> = client
        .query(
            "SELECT _table, count(*) FROM series_match('.*') GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("left")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(left, [("cpu_a".to_string(), 1), ("disk".to_string(), 1)]);
    let e = client
        .simple_query("DELETE FROM /(/ WHERE host = 'a'")
        .await
        .expect_err("bad regex");
    assert_eq!(e.code().map(|c| c.code()), Some("42601"), "{e}");
    // A condition DataFusion would only partly hand to the table is refused, not widened.
    let e = client
        .execute(
            "DELETE FROM cpu_a WHERE host IN (SELECT host FROM disk WHERE v > 100)",
            &[],
        )
        .await
        .expect_err("subquery");
    let message = e
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("subqueries"), "{e:?}");
    let left: i64 = client
        .query_one("SELECT count(*) FROM cpu_a", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 1);
}

#[tokio::test]
async fn delete_over_http_v2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    // 2024-01-01T00:00:00Z and one hour later.
    let (t0, t1) = (1_704_067_200 * SECOND, 1_704_070_800 * SECOND);
    server
        .write(
            "h",
            &format!(
                "cpu,host=a v=1 {t0}\ncpu,host=a v=2 {t1}\ncpu,host=b v=3 {t0}\nmem,host=a v=4 {t0}\nmem,host=b v=5 {t1}"
            ),
        )
        .await;
    let delete = |body: &'static str| {
        let url = format!("{}/api/v2/delete?org=any&bucket=h", server.http);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .expect("delete request");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, text) = delete(
        r#"{"start": "2024-01-01T00:00:00Z", "stop": "2024-01-01T00:30:00Z", "predicate": "_measurement=\"cpu\" AND host=\"a\""}"#,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let client = server.pg("h").await;
    let rows = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .expect(sql)
                .iter()
                .map(|r| r.get::<_, f64>(0))
                .collect::<Vec<f64>>()
        }
    };
    assert_eq!(rows("SELECT v FROM cpu ORDER BY v").await, [2.0, 3.0]);
    // Without _measurement: every table; the whole day.
    let (status, text) = delete(
        r#"{"start": "2024-01-01T00:00:00Z", "stop": "2024-01-02T00:00:00Z", "predicate": "host = \"b\""}"#,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(rows("SELECT v FROM cpu ORDER BY v").await, [2.0]);
    assert_eq!(rows("SELECT v FROM mem ORDER BY v").await, [4.0]);
    // Refused with a reason: OR, a field, a bad time.
    for (body, reason) in [
        (
            r#"{"start": "2024-01-01T00:00:00Z", "stop": "2024-01-02T00:00:00Z", "predicate": "host=\"a\" OR host=\"b\""}"#,
            "invalid delete predicate",
        ),
        (
            r#"{"start": "2024-01-01T00:00:00Z", "stop": "2024-01-02T00:00:00Z", "predicate": "v=\"1\""}"#,
            "compare tags only",
        ),
        (
            r#"{"start": "yesterday", "stop": "2024-01-02T00:00:00Z"}"#,
            "invalid start time",
        ),
    ] {
        let (status, text) = delete(body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(reason), "{body}: {text}");
    }
    assert_eq!(rows("SELECT v FROM cpu ORDER BY v").await, [2.0]);
}

#[tokio::test]
async fn drop_table_frees_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = now();
    server
        .write("t", &format!("cpu,host=a v=1 {t}\nmem,host=a v=2 {t}"))
        .await;
    server.stop();
    let server = TestServer::start(dir.path());
    // One more point of cpu, still in the buffer and the WAL.
    server
        .write("t", &format!("cpu,host=b v=3 {}", t + SECOND))
        .await;
    let cpu_files = dir.path().join("objects").join("t").join("cpu");
    assert!(parquet_bytes(&cpu_files) > 0);
    let client = server.pg("t").await;
    client.simple_query("DROP TABLE cpu").await.expect("drop");
    assert_eq!(parquet_bytes(&cpu_files), 0);
    let e = client
        .query("SELECT * FROM cpu", &[])
        .await
        .expect_err("gone");
    assert!(e.as_db_error().is_some(), "{e:?}");
    let e = client
        .simple_query("DROP TABLE cpu")
        .await
        .expect_err("no such table");
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"), "{e:?}");
    client
        .simple_query("DROP TABLE IF EXISTS cpu")
        .await
        .expect("if exists");
    // A crash brings back neither the files nor the buffered point.
    server.kill9();
    let server = TestServer::start(dir.path());
    let client = server.pg("t").await;
    let tables: Vec<String> = client
        .query("SELECT table_name FROM system.tables ORDER BY 1", &[])
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["mem"]);
    // A later write makes a new, empty table of the name.
    server.write("t", &format!("cpu,host=c v=4 {t}")).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}
