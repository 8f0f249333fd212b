//! Compaction: the small files of a partition are merged in the background into sorted,
//! deduplicated files without changing any answer (points written twice keep the last
//! value of each field, even across a delete's rewrite), and a crash at any step leaves
//! the old set of files or the new one, never both or neither.

use std::time::Duration;

use crate::common::TestServer;

const SECOND: i64 = 1_000_000_000;
/// 2024-03-01T00:00:00Z: partitions this old are cold, so any two small files merge.
const DAY0: i64 = 1_709_251_200 * SECOND;
const DAY: i64 = 86_400 * SECOND;

fn parquet_files(dir: &std::path::Path) -> usize {
    crate::common::parquet_files(&dir.join("objects")).len()
}

/// One batch of points: 3 hosts × `n` points, 10 s apart from `start`, in two days.
fn batch(start: i64, n: i64, value: f64) -> String {
    let mut lines = Vec::new();
    for host in ["a", "b", "c"] {
        for i in 0..n {
            for day in [0, DAY] {
                lines.push(format!(
                    "cpu,host={host} usage={},idle={}i {}",
                    value + i as f64,
                    i * 3,
                    start + day + i * 10 * SECOND
                ));
            }
        }
    }
    lines.join("\n")
}

/// Every row, as text, in a fixed order.
async fn all_rows(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT host, CAST(time AS TEXT) AS t, usage, idle FROM cpu ORDER BY host, time",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| {
            format!(
                "{} {} {:?} {:?}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<f64>>(2),
                r.get::<_, Option<i64>>(3)
            )
        })
        .collect()
}

/// Asserts two row lists are equal, naming the first difference rather than printing
/// thousands of rows.
fn same_rows(got: &[String], want: &[String], what: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|i| got.get(*i) != want.get(*i)) {
        panic!(
            "{what}: {} rows against {}; first difference at row {i}: {:?} against {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

async fn file_count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT CAST(file_count AS BIGINT) FROM system.tables WHERE table_name = 'cpu'",
            &[],
        )
        .await
        .expect("system.tables")
        .get(0)
}

const NO_COMPACTION: &[&str] = &["--compaction-interval", "0"];
const EAGER: &[&str] = &[
    "--compaction-interval",
    "100ms",
    "--compaction-min-files",
    "2",
];

/// Writes three overlapping batches, each persisted into its own files (two days, so
/// six files), with compaction off. The third batch writes `usage` again for the first
/// ten points of every host (and not `idle`), so merging must keep the newest `usage`
/// and the older `idle`.
async fn three_generations(dir: &std::path::Path) {
    let server = TestServer::start_with(dir, NO_COMPACTION);
    server.write("c", &batch(DAY0, 200, 0.0)).await;
    server.stop();
    let server = TestServer::start_with(dir, NO_COMPACTION);
    server
        .write("c", &batch(DAY0 + 2000 * SECOND, 200, 1000.0))
        .await;
    server.stop();
    let server = TestServer::start_with(dir, NO_COMPACTION);
    let again: Vec<String> = (0..10)
        .flat_map(|i| {
            ["a", "b", "c"].map(|h| format!("cpu,host={h} usage=-{i} {}", DAY0 + i * 10 * SECOND))
        })
        .collect();
    server.write("c", &again.join("\n")).await;
    server.stop();
}

async fn wait_for_files(client: &tokio_postgres::Client, files: i64) {
    for _ in 0..200 {
        if file_count(client).await == files {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "compaction did not leave {files} files (now {})",
        file_count(client).await
    );
}

/// Starts an eagerly compacting server on `dir`, waits for one file per day (two days),
/// and checks every row against `before`.
async fn compact_and_compare(dir: &std::path::Path, before: &[String], what: &str) {
    let server = TestServer::start_with(dir, EAGER);
    let client = server.pg("c").await;
    wait_for_files(&client, 2).await;
    same_rows(&all_rows(&client).await, before, what);
    server.stop();
}

#[tokio::test]
async fn compaction_merges_small_files_and_changes_no_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_generations(dir.path()).await;
    assert_eq!(
        parquet_files(dir.path()),
        5,
        "3 + 2 files before compaction"
    );

    // A delete rewrites an old file: the rewrite keeps that file's place in write order,
    // so the newer `usage` written afterwards still wins.
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    let client = server.pg("c").await;
    let deleted = client
        .execute(
            "DELETE FROM cpu WHERE host = 'c' AND time >= '2024-03-01T00:30:00Z' AND time < '2024-03-01T00:31:00Z'",
            &[],
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 6);
    let before = all_rows(&client).await;
    assert_eq!(before.len(), 3 * 2 * 400 - 6);
    let first_a = before
        .iter()
        .find(|r| r.starts_with("a "))
        .expect("a row")
        .clone();
    assert!(
        first_a.ends_with("Some(-0.0) Some(0)") || first_a.ends_with("Some(0.0) Some(0)"),
        "{first_a}"
    );
    let tenth_b = before
        .iter()
        .filter(|r| r.starts_with("b "))
        .nth(9)
        .expect("b row")
        .clone();
    assert!(
        tenth_b.ends_with("Some(-9.0) Some(27)"),
        "newest usage, older idle: {tenth_b}"
    );
    server.stop();

    // One file per day partition.
    compact_and_compare(dir.path(), &before, "compaction changed an answer").await;

    // The replaced files are gone once nothing can read them (here: at the next start).
    let server = TestServer::start_with(dir.path(), NO_COMPACTION);
    assert_eq!(parquet_files(dir.path()), 2);
    let client = server.pg("c").await;
    same_rows(&all_rows(&client).await, &before, "after a restart");
    // New writes land beside the compacted files and are merged with them at query time.
    server
        .write("c", "cpu,host=a usage=42 1709251200000000000")
        .await;
    let rows = all_rows(&client).await;
    assert_eq!(rows.len(), before.len());
    assert!(rows[0].ends_with("Some(42.0) Some(0)"), "{}", rows[0]);
    server.stop();
}

#[tokio::test]
async fn a_crash_mid_compaction_leaves_the_old_files_or_the_new_ones() {
    for step in ["compaction-files-written", "compaction-catalog-saved"] {
        let dir = tempfile::tempdir().expect("tempdir");
        three_generations(dir.path()).await;
        let server = TestServer::start_with(dir.path(), NO_COMPACTION);
        let before = all_rows(&server.pg("c").await).await;
        server.stop();

        // The server stops itself (abort, like a kill -9) at `step` of its first merge.
        let mut server = TestServer::start_env(dir.path(), EAGER, &[("CHRONOSDB_CRASH_AT", step)]);
        assert!(
            server.wait_for_exit(Duration::from_secs(30)),
            "the server did not reach {step}"
        );
        // Both the old and the new files are on disk now; the catalog names one set.
        let on_disk = parquet_files(dir.path());
        assert!(
            on_disk > 5,
            "{step}: new files written beside the old: {on_disk}"
        );

        let server = TestServer::start_with(dir.path(), NO_COMPACTION);
        let client = server.pg("c").await;
        same_rows(
            &all_rows(&client).await,
            &before,
            &format!("{step}: an answer changed"),
        );
        let referenced = file_count(&client).await as usize;
        if step == "compaction-files-written" {
            assert_eq!(referenced, 5, "{step}: the old set stays");
        } else {
            assert!(
                referenced < 5,
                "{step}: the new set is in place ({referenced})"
            );
        }
        // The files the catalog does not name were removed at start-up.
        assert_eq!(parquet_files(dir.path()), referenced, "{step}");
        server.stop();

        // Compaction finishes on the next run, with the same answers.
        compact_and_compare(dir.path(), &before, &format!("{step}: after compaction")).await;
    }
}
