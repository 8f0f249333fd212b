//! Session control over pgwire: cancel requests and `statement_timeout` stop a query while
//! its rows stream, idle connections are closed after `--pg-idle-timeout`, and a query
//! over the memory limit fails alone while other sessions keep working.

use std::time::{Duration, Instant};

use crate::common::TestServer;

/// Runs for minutes unless stopped: DataFusion pulls the series batch by batch.
const ENDLESS: &str = "SELECT sum(value) FROM generate_series(1, 100000000000) AS t(value)";

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a v=1 1").await;
    let client = server.pg("db").await;
    let token = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel request");
    });
    let err = client.query(ENDLESS, &[]).await.expect_err("canceled");
    canceller.await.expect("canceller");
    let code = err.as_db_error().map(|e| e.code().code().to_string());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancel took {:?}",
        started.elapsed()
    );
    // The connection goes on working.
    let n: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("after cancel")
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn statement_timeout_stops_a_streaming_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a v=1 1").await;
    let client = server.pg("db").await;
    client
        .batch_execute("SET statement_timeout = 300")
        .await
        .expect("set statement_timeout");
    for simple in [false, true] {
        let err = if simple {
            client
                .simple_query(ENDLESS)
                .await
                .map(|_| ())
                .expect_err("timed out")
        } else {
            client
                .query(ENDLESS, &[])
                .await
                .map(|_| ())
                .expect_err("timed out")
        };
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "57014", "{err}");
        assert!(db.message().contains("statement timeout"), "{err}");
    }
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(dir.path(), &["--pg-idle-timeout", "1s"]);
    server.write("db", "cpu,host=a v=1 1").await;
    let idle = server.pg("db").await;
    let busy = server.pg("db").await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.query_one("SELECT 1", &[])
            .await
            .expect("busy connection stays open");
    }
    assert!(
        idle.query_one("SELECT 1", &[]).await.is_err(),
        "an idle connection outlived --pg-idle-timeout"
    );
    assert!(idle.is_closed());
}

#[tokio::test]
async fn queries_over_the_memory_limit_spill_or_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(dir.path(), &["--query-memory", "16MiB"]);
    server.write("db", "cpu,host=a v=1 1").await;
    let hungry = server.pg("db").await;
    let other = server.pg("db").await;
    // Four million groups and a join of three million rows a side need far more than
    // 16 MiB; both spill to disk and finish with the right answer. (The aggregation's
    // top-k cannot spill: when both partitions still hold their fair share as they emit,
    // it is refused memory, a 53200 that names it. Rare, and still the query's alone.)
    match hungry
        .query_one(
            "SELECT value % 4000000 AS k, count(*) AS n FROM generate_series(1, 8000000) AS t(value) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
            &[],
        )
        .await
    {
        Ok(row) => assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 2)),
        Err(err) => {
            let db = err.as_db_error().expect("a database error");
            assert_eq!(db.code().code(), "53200", "{err}");
            assert!(db.message().contains("TopK"), "{err}");
        }
    }
    let joined: i64 = hungry
        .query_one(
            "SELECT count(*) FROM generate_series(1, 3000000) AS a(value) JOIN generate_series(1, 3000000) AS b(value) ON a.value = b.value",
            &[],
        )
        .await
        .expect("a spilling join")
        .get(0);
    assert_eq!(joined, 3_000_000);
    // One array of ten million values cannot spill: the query fails with 53200 and says
    // which operator held the memory.
    let err = hungry
        .query(
            "SELECT cardinality(array_agg(value)) FROM generate_series(1, 10000000) AS t(value)",
            &[],
        )
        .await
        .map(|rows| rows.len())
        .expect_err("over the memory limit");
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "53200", "{err}");
    assert!(db.message().contains("Failed to allocate"), "{err}");
    // The failure is that query's alone.
    for client in [&other, &hungry] {
        let n: i64 = client
            .query_one("SELECT count(*) FROM cpu", &[])
            .await
            .expect("sessions keep working")
            .get(0);
        assert_eq!(n, 1);
    }
}

/// Twenty million rows stream through with the server's memory nearly flat: rows are
/// encoded batch by batch as the client reads them.
#[tokio::test]
async fn a_large_result_streams_in_bounded_memory() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a v=1 1").await;
    let client = server.pg("db").await;
    client.query_one("SELECT 1", &[]).await.expect("warm up");
    let before = server.peak_rss();
    let rows = client
        .query_raw(
            "SELECT value, value * 2 AS twice FROM generate_series(1, 20000000) AS t(value)",
            std::iter::empty::<i64>(),
        )
        .await
        .expect("query");
    futures::pin_mut!(rows);
    let (mut n, mut sum) = (0i64, 0i64);
    while let Some(row) = rows.next().await {
        let row = row.expect("row");
        n += 1;
        sum += row.get::<_, i64>(1);
    }
    assert_eq!(n, 20_000_000);
    assert_eq!(sum, 20_000_000 * 20_000_001);
    // The result is 20 M rows × 2 bigints, 320 MB as Arrow and more on the wire; holding
    // it would show. Allow for allocator slack and the batches in flight.
    let grown = server.peak_rss().saturating_sub(before);
    assert!(grown < 150 << 20, "peak RSS grew by {} MiB", grown >> 20);
}
