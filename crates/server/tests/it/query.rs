//! SQL over pgwire: types, NULLs, parameters, SQLSTATEs, persistence across restarts,
//! merging of rewritten points.

use std::time::SystemTime;

use crate::common::TestServer;

#[tokio::test]
async fn types_nulls_and_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write(
            "db",
            "m,host=a f=1.5,i=-3i,u=18446744073709551615u,s=\"hi\",b=true 1000000000\nm,host=b f=2.5 2000000000",
        )
        .await;
    let client = server.pg("db").await;
    let rows = client
        .query("SELECT time, host, f, i, u, s, b FROM m ORDER BY time", &[])
        .await
        .expect("query");
    assert_eq!(rows.len(), 2);
    let columns = rows[0].columns();
    let types: Vec<&str> = columns.iter().map(|c| c.type_().name()).collect();
    assert_eq!(
        types,
        vec![
            "timestamp",
            "text",
            "float8",
            "int8",
            "numeric",
            "text",
            "bool"
        ]
    );
    let t: SystemTime = rows[0].get(0);
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .expect("epoch")
            .as_secs(),
        1
    );
    assert_eq!(rows[0].get::<_, &str>(1), "a");
    assert_eq!(rows[0].get::<_, f64>(2), 1.5);
    assert_eq!(rows[0].get::<_, i64>(3), -3);
    assert_eq!(rows[0].get::<_, &str>(5), "hi");
    assert!(rows[0].get::<_, bool>(6));
    // A field the row lacks is NULL.
    assert_eq!(rows[1].get::<_, Option<i64>>(3), None);
    assert_eq!(rows[1].get::<_, Option<&str>>(5), None);
    // Unsigned values keep all their digits (NUMERIC), shown here as text.
    let text = client
        .simple_query("SELECT u FROM m WHERE host = 'a'")
        .await
        .expect("simple");
    let value = text.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("18446744073709551615"));

    // Extended protocol with bound parameters.
    let rows = client
        .query(
            "SELECT host, f FROM m WHERE f > $1 AND host = $2",
            &[&2.0f64, &"b"],
        )
        .await
        .expect("params");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, f64>(1), 2.5);
}

#[tokio::test]
async fn errors_carry_sqlstate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu v=1 1").await;
    let client = server.pg("db").await;
    let err = client
        .query("SELECT * FROM nope", &[])
        .await
        .expect_err("no table");
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
    let err = client
        .query("SELECT nope FROM cpu", &[])
        .await
        .expect_err("no column");
    assert_eq!(err.code().map(|c| c.code()), Some("42703"), "{err:?}");
    let err = client.query("SELEC 1", &[]).await.expect_err("syntax");
    assert_eq!(err.code().map(|c| c.code()), Some("42601"), "{err:?}");
    // The connection still works after errors.
    let row = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("ok");
    assert_eq!(row.get::<_, i64>(0), 1);

    let other = server.pg("missing").await;
    let err = other.query("SELECT 1", &[]).await.expect_err("no database");
    assert_eq!(err.code().map(|c| c.code()), Some("3D000"), "{err:?}");
    assert!(err.to_string().contains("db") || format!("{err:?}").contains("existing databases"));
}

#[tokio::test]
async fn points_survive_restart_and_rewrites_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write("db", "cpu,host=a user=1,sys=2 10\ncpu,host=b user=3 10")
        .await;
    // Rewrite host=a at the same time: fields merge, last write wins.
    server.write("db", "cpu,host=a user=9 10").await;
    let client = server.pg("db").await;
    let rows = client
        .query("SELECT host, user, sys FROM cpu ORDER BY host", &[])
        .await
        .expect("query");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, f64>(1), 9.0);
    assert_eq!(rows[0].get::<_, f64>(2), 2.0);
    // A clean stop persists the buffer to Parquet.
    server.stop();
    let parquet_files = walk(&dir.path().join("objects"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(parquet_files >= 1, "no Parquet file was written");

    let server = TestServer::start(dir.path());
    // Rewrite again after persistence: the buffer and the file overlap and still merge.
    server
        .write("db", "cpu,host=a sys=7 10\ncpu,host=c user=5 20")
        .await;
    let client = server.pg("db").await;
    let rows = client
        .query("SELECT host, user, sys FROM cpu ORDER BY host", &[])
        .await
        .expect("query");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].get::<_, f64>(1), rows[0].get::<_, f64>(2)),
        (9.0, 7.0)
    );
    // Time filters prune and still answer correctly.
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM cpu WHERE time >= '1970-01-01T00:00:00.000000015Z'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn time_filters_skip_files_and_push_predicates_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    // Two days: two partitions, two Parquet files once persisted.
    server
        .write(
            "db",
            "cpu,host=a v=1 1704067200000000000\ncpu,host=b v=2 1704153600000000000",
        )
        .await;
    server.stop();
    let server = TestServer::start(dir.path());
    let client = server.pg("db").await;
    let plan = |sql: &'static str| crate::common::explain(&client, sql);
    let both = plan("SELECT v FROM cpu").await;
    assert!(
        both.contains("2024-01-01") && both.contains("2024-01-02"),
        "{both}"
    );
    let one = plan("SELECT v FROM cpu WHERE time >= '2024-01-02T00:00:00Z'").await;
    assert!(
        one.contains("2024-01-02") && !one.contains("2024-01-01"),
        "{one}"
    );
    // The tag predicate reaches the Parquet reader (row-group and page pruning).
    let pushed = plan("SELECT v FROM cpu WHERE host = 'b'").await;
    assert!(pushed.contains("predicate="), "{pushed}");
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM cpu WHERE time >= '2024-01-02T00:00:00Z'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    // A tag and a field that the files predate: NULL in the old rows, values in the new.
    server
        .write("db", "cpu,host=c,dc=x v=3,w=9i 1704240000000000000")
        .await;
    let rows = client
        .query("SELECT host, dc, w FROM cpu ORDER BY time", &[])
        .await
        .expect("query");
    let got: Vec<(String, Option<String>, Option<i64>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), None, None),
            ("b".into(), None, None),
            ("c".into(), Some("x".into()), Some(9)),
        ]
    );
}

#[tokio::test]
async fn joins_stream_as_sort_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sql-tests/joins.lp"
    ))
    .expect("fixture");
    server.write("joins", &fixture).await;
    let client = server.pg("joins").await;
    for sql in [
        "SELECT r.minute, CAST(e.n AS DOUBLE) / r.n FROM (SELECT time_bucket('1 minute', time) AS minute, host, sum(count) AS n FROM requests GROUP BY 1, 2) r JOIN (SELECT time_bucket('1 minute', time) AS minute, host, sum(count) AS n FROM errors GROUP BY 1, 2) e ON r.minute = e.minute AND r.host = e.host",
        "SELECT a.time, a.count - b.count FROM requests a JOIN requests b ON a.time = b.time WHERE a.host = 'a' AND b.host = 'b'",
    ] {
        let plan = crate::common::explain(&client, sql).await;
        assert!(plan.contains("SortMergeJoinExec"), "{plan}");
        for bad in ["CrossJoinExec", "NestedLoopJoinExec", "HashJoinExec"] {
            assert!(!plan.contains(bad), "{bad} in {plan}");
        }
    }
}

/// Last-point queries read each file's newest row per series instead of the file, and
/// still merge a point rewritten in the buffer: the answers equal those of the full scan.
#[tokio::test]
async fn last_points_skip_reading_files_and_agree_with_a_full_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write(
            "lp",
            "cpu,host=a,dc=x u=1,v=10 1704067200000000000\n\
             cpu,host=a,dc=x u=2 1704153600000000000\n\
             cpu,host=b,dc=x u=3,v=30 1704067300000000000\n\
             cpu,host=c,dc=y u=4 1704067100000000000",
        )
        .await;
    server.stop();
    let server = TestServer::start(dir.path());
    // b's newest point rewritten in the buffer (v only); an older point of c.
    server
        .write(
            "lp",
            "cpu,host=b,dc=x v=31 1704067300000000000\ncpu,host=c,dc=y u=5 1704067000000000000",
        )
        .await;
    // A series only in the buffer, its newest point written twice (u, then v).
    server
        .write(
            "lp",
            "cpu,host=d,dc=y u=6 1704067400000000000\ncpu,host=d,dc=y u=1 1704067000000000000",
        )
        .await;
    server
        .write("lp", "cpu,host=d,dc=y v=60 1704067400000000000")
        .await;
    let client = server.pg("lp").await;
    let rows = |sql: &'static str| text_rows(&client, sql);
    let fast = "SELECT DISTINCT ON (host) * FROM cpu ORDER BY host, time DESC";
    // A filter on a field disables the shortcut: the same question, answered by a full scan.
    let full =
        "SELECT DISTINCT ON (host) * FROM cpu WHERE u > -100 OR u IS NULL ORDER BY host, time DESC";
    assert_eq!(
        rows(fast).await,
        [
            "2024-01-02 00:00:00 a x 2 NULL",
            "2024-01-01 00:01:40 b x 3 31",
            "2023-12-31 23:58:20 c y 4 NULL",
            "2024-01-01 00:03:20 d y 6 60",
        ]
    );
    assert_eq!(rows(fast).await, rows(full).await);
    let grouped = rows("SELECT host, last(u, time), last(v, time), max(time) FROM cpu WHERE dc = 'x' GROUP BY host ORDER BY host").await;
    assert_eq!(
        grouped,
        ["a 2 NULL 2024-01-02 00:00:00", "b 3 31 2024-01-01 00:01:40",]
    );
    // Grouped by fewer tags than a series has, with a tag filter that drops the newest
    // series: the filter applies before the newest row of each group is chosen.
    let by_dc = rows(
        "SELECT DISTINCT ON (dc) dc, host, time FROM cpu WHERE host != 'a' ORDER BY dc, time DESC",
    )
    .await;
    assert_eq!(
        by_dc,
        ["x b 2024-01-01 00:01:40", "y d 2024-01-01 00:03:20",]
    );
    assert_eq!(
        by_dc,
        rows("SELECT DISTINCT ON (dc) dc, host, time FROM cpu WHERE host != 'a' AND (u > -100 OR u IS NULL) ORDER BY dc, time DESC").await
    );
    // The buffer and the file overlap: the point written twice is counted once.
    assert_eq!(rows("SELECT count(*) FROM cpu").await, ["7"]);
    let plan = crate::common::explain(&client, fast).await;
    assert!(!plan.contains("file_type=parquet"), "{plan}");
    assert!(
        plan.contains("LastRowsExec: table=cpu, group=[host]"),
        "{plan}"
    );
    // The newest rows are found when the statement runs: a prepared one sees later writes.
    let prepared = client.prepare(fast).await.expect("prepare");
    let hosts = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, Option<String>>("host").unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let before = hosts(client.query(&prepared, &[]).await.expect("query"));
    assert_eq!(before, ["a", "b", "c", "d"]);
    server
        .write("lp", "cpu,host=e,dc=y u=7 1704067500000000000")
        .await;
    let after = hosts(client.query(&prepared, &[]).await.expect("query"));
    assert_eq!(after, ["a", "b", "c", "d", "e"]);
    let plan = crate::common::explain(&client, full).await;
    assert!(plan.contains("file_type=parquet"), "{plan}");
}

/// In the extended protocol too, a session time zone turns result times into `timestamptz`
/// (so `Describe` and the rows agree) holding the same instants.
#[tokio::test]
async fn session_time_zone_in_the_extended_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("tz", "m v=1 1704067200000000000").await;
    let client = server.pg("tz").await;
    let instant = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_200);
    let row = client
        .query_one("SELECT time FROM m WHERE v = $1", &[&1.0f64])
        .await
        .expect("query");
    assert_eq!(
        row.columns()[0].type_(),
        &tokio_postgres::types::Type::TIMESTAMP
    );
    assert_eq!(row.get::<_, std::time::SystemTime>(0), instant);
    client
        .batch_execute("SET TIME ZONE 'Asia/Tokyo'")
        .await
        .expect("set");
    let row = client
        .query_one("SELECT time FROM m WHERE v = $1", &[&1.0f64])
        .await
        .expect("query in zone");
    assert_eq!(
        row.columns()[0].type_(),
        &tokio_postgres::types::Type::TIMESTAMPTZ
    );
    assert_eq!(row.get::<_, std::time::SystemTime>(0), instant);
    let text = client
        .simple_query("SELECT time FROM m")
        .await
        .expect("simple");
    let shown = text.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("2024-01-01 09:00:00+09"));
}

/// Queries that differ only in their WHERE literals share a cached plan; a column added
/// to the table since is still seen, and the extended protocol describes the same
/// columns (PostgreSQL's names) as the literal statement.
#[tokio::test]
async fn repeated_queries_follow_schema_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write(
            "pc",
            "m,host=a v=1 1704067200000000000\nm,host=b v=2 1704067200000000000",
        )
        .await;
    let client = server.pg("pc").await;
    let columns = |rows: &[tokio_postgres::Row]| -> Vec<String> {
        rows.first()
            .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
            .unwrap_or_default()
    };
    for host in ["a", "b", "a"] {
        let sql = format!("SELECT * FROM m WHERE host = '{host}'");
        let rows = client.query(sql.as_str(), &[]).await.expect("query");
        assert_eq!(columns(&rows), ["time", "host", "v"]);
        assert_eq!(rows.len(), 1);
        let rows = client
            .query(
                format!("SELECT max(v), count(*) FROM m WHERE host = '{host}'").as_str(),
                &[],
            )
            .await
            .expect("query");
        assert_eq!(columns(&rows), ["max", "count"]);
        let expected = if host == "a" { 1.0 } else { 2.0 };
        assert_eq!(rows[0].get::<_, f64>(0), expected);
    }
    // A new field: the cached plan of `SELECT *` no longer matches the table.
    server
        .write("pc", "m,host=a v=3,w=7i 1704067260000000000")
        .await;
    let rows = client
        .query("SELECT * FROM m WHERE host = 'a' ORDER BY time", &[])
        .await
        .expect("query");
    assert_eq!(columns(&rows), ["time", "host", "v", "w"]);
    assert_eq!(rows.len(), 2);
    let rows = client
        .query("SELECT * FROM m WHERE host = 'a'", &[])
        .await
        .expect("query");
    assert_eq!(columns(&rows), ["time", "host", "v", "w"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter()
            .filter_map(|r| r.get::<_, Option<i64>>(3))
            .collect::<Vec<_>>(),
        [7]
    );
}

/// The rows of a simple-protocol query, each as its values joined by spaces.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

/// A count in an `EXPLAIN ANALYZE` metric (`name=1234` or `name=1.23 K`).
fn metric(plan: &str, name: &str) -> f64 {
    let at = plan
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {plan}"));
    let text: String = plan[at + name.len() + 1..]
        .chars()
        .take_while(|c| *c != ',' && *c != ']')
        .collect();
    let mut parts = text.split_whitespace();
    let value: f64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    match parts.next() {
        Some("K") => value * 1e3,
        Some("M") => value * 1e6,
        _ => value,
    }
}

/// Files carry a series index (rows per host, sampled times): one-series queries read only
/// that series' rows, and every filter shape answers as it did from the write buffer, after
/// a restart (the index then comes from the file's footer) and with reused plans.
#[tokio::test]
async fn series_index_narrows_reads_and_answers_as_the_buffer_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    // 20 hosts × 2 cpus, a point a minute for 10 hours on day one; half the hosts on day
    // two too; a few points without a host.
    const DAY: i64 = 1_704_067_200;
    let mut lines = String::new();
    for h in 0..20 {
        for cpu in 0..2 {
            for m in 0..600i64 {
                let v = h * 1000 + m + cpu * 100_000;
                lines.push_str(&format!(
                    "cpu,host=h{h:02},cpu=c{cpu} v={v} {}\n",
                    (DAY + m * 60) * 1_000_000_000
                ));
                if h % 2 == 0 {
                    lines.push_str(&format!(
                        "cpu,host=h{h:02},cpu=c{cpu} v={v} {}\n",
                        (DAY + 86_400 + m * 60) * 1_000_000_000
                    ));
                }
            }
        }
    }
    for m in 0..5i64 {
        lines.push_str(&format!(
            "cpu,cpu=c0 v={m} {}\n",
            (DAY + m * 7_000) * 1_000_000_000
        ));
    }
    server.write("si", &lines).await;

    let stats = "count(*), sum(v), min(time), max(time) FROM cpu";
    let mut queries: Vec<String> = Vec::new();
    for host in ["h03", "h04", "h05", "h06", "h07"] {
        queries.push(format!(
            "SELECT {stats} WHERE host = '{host}' AND time >= '2024-01-01T02:00:00Z' AND time < '2024-01-01T03:00:00Z'"
        ));
    }
    queries.extend([
        format!("SELECT {stats} WHERE host IN ('h01', 'h16', 'zz') AND time BETWEEN '2024-01-01T09:30:00Z' AND '2024-01-02T00:30:00Z'"),
        format!("SELECT {stats} WHERE host = 'zz'"),
        format!("SELECT {stats} WHERE time >= '2024-01-01T04:59:30Z' AND time <= '2024-01-01T05:10:00Z'"),
        format!("SELECT {stats} WHERE host = 'h05' AND cpu = 'c1' AND time < '2024-01-01T01:00:00Z'"),
        format!("SELECT {stats} WHERE (host = 'h02' OR host = 'h04') AND time > '2024-01-02T08:00:00Z'"),
        format!("SELECT {stats} WHERE host = 'h11' AND v > 11100"),
        format!("SELECT {stats} WHERE host IS NULL"),
        format!("SELECT {stats} WHERE host = 'h08' AND time >= '2024-01-02T00:00:00Z'"),
        "SELECT time_bucket('10 minutes', time) AS b, max(v) FROM cpu WHERE host = 'h07' AND time >= '2024-01-01T01:05:00Z' AND time < '2024-01-01T02:00:00Z' GROUP BY 1 ORDER BY 1".to_string(),
        "SELECT host, cpu, time, v FROM cpu WHERE host = 'h19' AND time >= '2024-01-01T09:58:00Z' ORDER BY cpu, time".to_string(),
    ]);
    let client = server.pg("si").await;
    let mut from_buffer = Vec::new();
    for sql in &queries {
        from_buffer.push(text_rows(&client, sql).await);
    }
    assert_eq!(
        from_buffer[0],
        ["120 6377940 2024-01-01 02:00:00 2024-01-01 02:59:00"]
    );
    assert_eq!(from_buffer[6], ["0 NULL NULL NULL"]);
    assert_eq!(from_buffer[11][0].split(' ').next(), Some("5"));
    drop(client);
    server.stop();

    let server = TestServer::start(dir.path());
    let client = server.pg("si").await;
    for (sql, expected) in queries.iter().zip(&from_buffer) {
        assert_eq!(&text_rows(&client, sql).await, expected, "{sql}");
    }
    // Again in the extended protocol, twice: later runs reuse the first runs' plans.
    for _ in 0..2 {
        for (sql, expected) in queries.iter().zip(&from_buffer) {
            let rows = client.query(sql.as_str(), &[]).await.expect("query");
            assert_eq!(rows.len(), expected.len(), "{sql}");
        }
    }
    for (sql, expected) in queries.iter().zip(&from_buffer) {
        assert_eq!(&text_rows(&client, sql).await, expected, "{sql}");
    }

    // One host's hour: the reader decodes that host's rows of the window (to within the
    // index's sampling), not the pages of the whole file it shares with other hosts.
    let plan = text_rows(&client, &format!("EXPLAIN ANALYZE {}", queries[0]))
        .await
        .join("\n");
    assert_eq!(metric(&plan, "pushdown_rows_matched"), 120.0, "{plan}");
    assert!(metric(&plan, "pushdown_rows_pruned") < 1100.0, "{plan}");
    // Statistics and the page index are not consulted: they could not narrow it further.
    assert!(plan.contains("page_index_pages_pruned=0 total"), "{plan}");
    // A filter on another column keeps them on beside the index.
    let plan = text_rows(&client, &format!("EXPLAIN ANALYZE {}", queries[8]))
        .await
        .join("\n");
    assert!(!plan.contains("page_index_pages_pruned=0 total"), "{plan}");
}

/// Files and the buffer that overlap in time are merged only where they meet, when the
/// query runs: a field filter sees the later write, a field given only by the earlier
/// write survives, and nothing is read while planning.
#[tokio::test]
async fn overlapping_chunks_merge_only_where_they_meet() {
    // Compaction would merge the two files before the queries run.
    const NO_COMPACTION: &[&str] = &["--compaction-interval", "0"];
    let dir = tempfile::tempdir().expect("tempdir");
    let second = |t: i64| t * 1_000_000_000;
    let lines = |range: std::ops::RangeInclusive<i64>, value: &dyn Fn(i64) -> String| {
        range
            .flat_map(|t| ["a", "b"].map(|h| format!("cpu,host={h} {} {}", value(t), second(t))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // File 1: t = 1..10 with user = t and sys = 1.
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    server
        .write("ov", &lines(1..=10, &|t| format!("user={t},sys=1")))
        .await;
    server.stop();
    // File 2: t = 10..20 with user = 100 + t, so t = 10 is written twice (no sys).
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    server
        .write("ov", &lines(10..=20, &|t| format!("user={}", 100 + t)))
        .await;
    server.stop();
    let files = walk(&dir.path().join("objects"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert_eq!(files, 2, "two overlapping files");
    // Plans are reused for new literals where the two files are read as they are (away
    // from t = 10), and never for a window that reaches t = 10, which must merge.
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    let client = server.pg("ov").await;
    let user = |t: i64| if t < 10 { t } else { 100 + t };
    for round in 0..3 {
        for (lo, hi) in [
            (1, 5),
            (12, 18),
            (2, 6),
            (14, 20),
            (3, 7),
            (8, 12),
            (11, 15),
            (9, 11),
        ] {
            let sql = format!(
                "SELECT count(*), sum(user) FROM cpu WHERE time >= '1970-01-01 00:00:{lo:02}' AND time < '1970-01-01 00:00:{hi:02}'"
            );
            // Hosts a and b hold the same points.
            let expected = format!("{} {}", 2 * (hi - lo), 2 * (lo..hi).map(user).sum::<i64>());
            let rows = match round {
                0 => text_rows(&client, &sql).await,
                _ => client
                    .query(sql.as_str(), &[])
                    .await
                    .expect("query")
                    .iter()
                    .map(|r| format!("{} {}", r.get::<_, i64>(0), r.get::<_, f64>(1)))
                    .collect(),
            };
            assert_eq!(rows, [expected], "{sql}");
        }
    }
    drop(client);
    server.stop();
    // The buffer: a at 20 again, a at 21..25, and b at 5, deep inside file 1.
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    let mut buffered = vec![format!("cpu,host=a user=999 {}", second(20))];
    buffered.extend((21..=25).map(|t| format!("cpu,host=a user={} {}", 100 + t, second(t))));
    buffered.push(format!("cpu,host=b user=555 {}", second(5)));
    server.write("ov", &buffered.join("\n")).await;
    let client = server.pg("ov").await;
    let one = |sql: &'static str| {
        let client = &client;
        async move { text_rows(client, sql).await }
    };
    // a: 1..25, b: 1..20.
    assert_eq!(one("SELECT count(*) FROM cpu").await, ["45"]);
    assert_eq!(
        one("SELECT host, count(*) FROM cpu GROUP BY host ORDER BY host").await,
        ["a 25", "b 20"]
    );
    assert_eq!(
        one("SELECT user, sys FROM cpu WHERE host = 'a' AND time = '1970-01-01 00:00:10'").await,
        ["110 1"]
    );
    // b at 5 is 555 now: a filter that the older value passes must not see it.
    assert_eq!(
        one("SELECT count(*) FROM cpu WHERE user < 50").await,
        ["17"]
    );
    assert_eq!(
        one("SELECT host, time, user FROM cpu WHERE user > 500 ORDER BY host").await,
        ["a 1970-01-01 00:00:20 999", "b 1970-01-01 00:00:05 555"]
    );
    // sys came only with the first write of each point, and survives the rewrites.
    assert_eq!(one("SELECT sum(sys), count(sys) FROM cpu").await, ["20 20"]);
    assert_eq!(
        one("SELECT count(*) FROM cpu WHERE host = 'b' AND time BETWEEN '1970-01-01 00:00:04' AND '1970-01-01 00:00:11'").await,
        ["8"]
    );
    assert_eq!(
        one("SELECT max(user) FROM cpu WHERE host = 'b'").await,
        ["555"]
    );
    let plan = crate::common::explain(&client, "SELECT sys FROM cpu WHERE host = 'a'").await;
    assert!(plan.contains("MergeChunksExec"), "{plan}");
    // Before t = 5 only file 1 holds points: nothing to merge there.
    let early = "SELECT count(*), sum(user) FROM cpu WHERE time < '1970-01-01 00:00:05'";
    assert_eq!(one(early).await, ["8 20"]);
    let plan = crate::common::explain(&client, early).await;
    assert!(!plan.contains("MergeChunksExec"), "{plan}");
}

/// After a bulk load, the buffer's rows of each host follow that host's rows in the
/// newest file though the two time ranges meet: nothing can be a duplicate, so nothing is
/// merged and `count(*)` comes from row counts. A point written again still merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_that_share_no_series_time_are_read_as_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let second = |t: i64| t * 1_000_000_000;
    let lines = |host: &str, range: std::ops::RangeInclusive<i64>| {
        range
            .map(|t| format!("cpu,host={host} user={t} {}", second(t)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The file: a at 1..10, b at 1..5.
    let server = TestServer::start_with(dir.path(), &["--compaction-interval", "0"]);
    server
        .write(
            "ld",
            &format!("{}\n{}", lines("a", 1..=10), lines("b", 1..=5)),
        )
        .await;
    server.stop();
    // The buffer: a at 11..20, b at 6..20, so its time range starts inside the file's.
    let server = TestServer::start_with(dir.path(), &["--compaction-interval", "0"]);
    server
        .write(
            "ld",
            &format!("{}\n{}", lines("a", 11..=20), lines("b", 6..=20)),
        )
        .await;
    let client = server.pg("ld").await;
    let count = "SELECT count(*) FROM cpu";
    assert_eq!(text_rows(&client, count).await, ["40"]);
    let plan = crate::common::explain(&client, count).await;
    assert!(!plan.contains("MergeChunksExec"), "{plan}");
    assert!(
        !plan.contains("DataSourceExec"),
        "answered from row counts: {plan}"
    );
    let window = "SELECT count(*), sum(user) FROM cpu WHERE time BETWEEN '1970-01-01 00:00:04' AND '1970-01-01 00:00:12'";
    assert_eq!(text_rows(&client, window).await, ["18 144"]);
    // b at 3 again, inside the file's range of b: those times merge, and only those.
    server
        .write("ld", &format!("cpu,host=b user=333 {}", second(3)))
        .await;
    let plan = crate::common::explain(&client, count).await;
    assert!(plan.contains("MergeChunksExec"), "{plan}");
    assert_eq!(text_rows(&client, count).await, ["40"]);
    // Counted once, the same snapshot's count is known: answered without reading.
    let plan = crate::common::explain(&client, count).await;
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    assert_eq!(text_rows(&client, count).await, ["40"]);
    // A LIMIT stops the scan early: what it read is no count of the table.
    server
        .write("ld", &format!("cpu,host=c user=1 {}", second(3)))
        .await;
    let limited = text_rows(&client, "SELECT user FROM cpu LIMIT 1").await;
    assert_eq!(limited.len(), 1);
    let plan = crate::common::explain(&client, count).await;
    assert!(plan.contains("MergeChunksExec"), "{plan}");
    // A top-k query reads every row (no filter reaches a counted scan): its count holds.
    let newest = "SELECT host, user FROM cpu ORDER BY time DESC, host LIMIT 1";
    assert_eq!(text_rows(&client, newest).await, ["a 20"]);
    let plan = crate::common::explain(&client, count).await;
    assert!(plan.contains("41 as count(*)"), "{plan}");
    assert_eq!(text_rows(&client, count).await, ["41"]);
    assert_eq!(
        text_rows(&client, "SELECT sum(user) FROM cpu WHERE host = 'b'").await,
        [format!("{}", (1..=20).sum::<i64>() - 3 + 333)]
    );
    assert_eq!(text_rows(&client, window).await, ["18 144"]);
    let early = "SELECT count(*), sum(user) FROM cpu WHERE time < '1970-01-01 00:00:03'";
    assert_eq!(text_rows(&client, early).await, ["4 6"]);
    let plan = crate::common::explain(&client, early).await;
    assert!(!plan.contains("MergeChunksExec"), "{plan}");
}
