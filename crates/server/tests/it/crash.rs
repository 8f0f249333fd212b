//! Durability under crashes: writers record every acknowledged point while the server is
//! killed with SIGKILL at random moments; after each restart every acknowledged point must
//! be there exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::TestServer;

fn rounds() -> usize {
    std::env::var("CHRONOSDB_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// A cheap deterministic pseudo-random sequence for kill timing.
fn jitter(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_points_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A tiny buffer so that persistence and WAL truncation happen during the test too.
    let flags = ["--buffer-size", "64KiB", "--persist-interval", "1s"];
    let acked: Arc<Mutex<HashSet<(usize, i64)>>> = Arc::default();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next_seq = 0i64;
    for round in 0..rounds() {
        let server = TestServer::start_with(dir.path(), &flags);
        let url = format!("{}/write?db=crash", server.http);
        let mut writers = Vec::new();
        for writer in 0..4usize {
            let url = url.clone();
            let acked = acked.clone();
            let start = next_seq + writer as i64 * 1_000_000;
            writers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut seq = start;
                loop {
                    let mut body = String::new();
                    let batch: Vec<i64> = (seq..seq + 50).collect();
                    for s in &batch {
                        body.push_str(&format!("points,writer=w{writer} seq={s}i {s}\n"));
                    }
                    seq += 50;
                    match client.post(&url).body(body).send().await {
                        Ok(r) if r.status().as_u16() == 204 => {
                            let mut acked = acked.lock().expect("lock");
                            for s in batch {
                                acked.insert((writer, s));
                            }
                        }
                        _ => return,
                    }
                }
            }));
        }
        let wait = 150 + jitter(&mut seed) % 500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill9();
        for w in writers {
            let _ = w.await;
        }
        next_seq += 4 * 1_000_000;

        let server = TestServer::start_with(dir.path(), &flags);
        let client = server.pg("crash").await;
        let rows = client
            .query("SELECT writer, seq FROM points", &[])
            .await
            .expect("query after restart");
        let mut seen: HashMap<(usize, i64), usize> = HashMap::new();
        for row in rows {
            let writer: &str = row.get(0);
            let writer: usize = writer.trim_start_matches('w').parse().expect("writer");
            *seen.entry((writer, row.get(1))).or_default() += 1;
        }
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty(), "round {round}: nothing was acknowledged");
        for point in &acked {
            match seen.get(point) {
                Some(1) => {}
                Some(n) => panic!("round {round}: point {point:?} appears {n} times"),
                None => panic!("round {round}: acknowledged point {point:?} is missing"),
            }
        }
        for (point, n) in &seen {
            assert_eq!(*n, 1, "round {round}: point {point:?} appears {n} times");
        }
        eprintln!(
            "round {round}: killed after {wait} ms; {} acknowledged points all present once ({} rows)",
            acked.len(),
            seen.len()
        );
        server.kill9();
    }
}

fn wal_segments(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    crate::common::files_with_extension(&data_dir.join("wal"), "wal")
}

#[tokio::test]
async fn torn_tail_is_dropped_and_corruption_stops_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a v=1 1").await;
    server.write("db", "cpu,host=b v=2 2").await;
    server.kill9();

    // A torn tail: the last record cut short, as a crash mid-append leaves it.
    let segment = wal_segments(dir.path())
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .expect("a WAL segment with records");
    let len = std::fs::metadata(&segment).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open");
    file.set_len(len - 3).expect("truncate");
    drop(file);
    let server = TestServer::start(dir.path());
    let client = server.pg("db").await;
    let hosts: Vec<String> = client
        .query("SELECT host FROM cpu ORDER BY host", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        hosts,
        vec!["a"],
        "the torn record is dropped, the one before it kept"
    );
    server.write("db", "cpu,host=c v=3 3").await;
    server.kill9();

    // Corruption before the tail: flip a byte inside the first record's payload.
    let segment = wal_segments(dir.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 40).unwrap_or(false))
        .expect("segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[20] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronosdb"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--http-bind", "127.0.0.1:0", "--pg-bind", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "start-up must stop on a corrupt WAL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = segment.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        stderr.contains(name) && stderr.contains("offset 0"),
        "{stderr}"
    );
}
