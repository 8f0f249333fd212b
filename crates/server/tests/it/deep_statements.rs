//! Deep statements (issue 21): long operator chains, deep nesting and huge IN lists sent
//! over pgwire while other sessions write and query. Each statement is answered or
//! refused with a clear error (SQLSTATE 54001 for "too complex"); the server stays up, the
//! other sessions see no error, and every acknowledged write reads back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::TestServer;

/// `SELECT` statements of one shape with `terms` terms.
fn statement(shape: &str, terms: usize) -> String {
    let join = |item: &dyn Fn(usize) -> String, sep: &str| {
        (0..terms).map(item).collect::<Vec<_>>().join(sep)
    };
    match shape {
        "plus" => format!("SELECT {}", join(&|_| "1".into(), "+")),
        "plus_column" => format!(
            "SELECT {} FROM cpu LIMIT 1",
            join(&|_| "usage".into(), " + ")
        ),
        "and" => format!(
            "SELECT count(*) FROM cpu WHERE {}",
            join(&|_| "usage >= 0".into(), " AND ")
        ),
        "or" => format!(
            "SELECT count(*) FROM cpu WHERE {}",
            join(&|i| format!("host = 'h{i}'"), " OR ")
        ),
        "not" => format!("SELECT {}true{}", "NOT (".repeat(terms), ")".repeat(terms)),
        "parentheses" => format!("SELECT {}1{}", "(".repeat(terms), ")".repeat(terms)),
        "case" => format!(
            "SELECT {}1{}",
            "CASE WHEN true THEN ".repeat(terms),
            " END".repeat(terms)
        ),
        "subqueries" => format!("SELECT {}1{}", "(SELECT ".repeat(terms), ")".repeat(terms)),
        "in_list" => format!(
            "SELECT count(*) FROM cpu WHERE host IN ({})",
            join(&|i| format!("'h{i}'"), ", ")
        ),
        other => panic!("unknown shape {other}"),
    }
}

#[tokio::test]
async fn deep_statements_are_answered_or_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(TestServer::start(dir.path()));
    server.write("db", "cpu,host=h0 usage=1 1").await;
    let stop = Arc::new(AtomicBool::new(false));

    // A writer and a reader beside the deep statements; neither may see an error.
    let acknowledged = Arc::new(AtomicUsize::new(1));
    let writer = {
        let (server, stop, acknowledged) = (server.clone(), stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (status, text) = server
                    .post("/write?db=db", format!("cpu,host=w usage=2 {}", 1000 + i))
                    .await;
                assert_eq!(status, 204, "a write beside deep statements failed: {text}");
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let reader = {
        let (client, stop) = (server.pg("db").await, stop.clone());
        tokio::spawn(async move {
            let mut queries = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client
                    .query_one("SELECT count(*) FROM cpu WHERE host = 'h0'", &[])
                    .await
                    .expect("a query beside deep statements failed");
                queries += 1;
            }
            queries
        })
    };

    let client = server.pg("db").await;
    let shapes = [
        "plus",
        "plus_column",
        "and",
        "or",
        "not",
        "parentheses",
        "case",
        "subqueries",
    ];
    let mut outcomes = Vec::new();
    for shape in shapes {
        for terms in [2_000, 20_000, 200_000] {
            let sql = statement(shape, terms);
            let started = std::time::Instant::now();
            let outcome = match client.simple_query(&sql).await {
                Ok(_) => "answered".to_string(),
                Err(e) => {
                    let db = e.as_db_error().unwrap_or_else(|| {
                        panic!("{shape} x {terms}: not a clear error (connection lost?): {e}")
                    });
                    assert_eq!(
                        db.code().code(),
                        "54001",
                        "{shape} x {terms}: {}",
                        db.message()
                    );
                    assert!(db.message().contains("too complex"), "{}", db.message());
                    "refused (54001)".to_string()
                }
            };
            eprintln!("{shape} x {terms}: {outcome} in {:?}", started.elapsed());
            outcomes.push((shape, terms, outcome));
        }
    }
    // PostgreSQL answers 2,000 terms of +, AND and OR; so must we.
    for (shape, terms, outcome) in &outcomes {
        if *terms == 2_000 && ["plus", "plus_column", "and", "or"].contains(shape) {
            assert_eq!(outcome, "answered", "{shape} x {terms}");
        }
    }
    // A 100,000-element IN list is flat: answered.
    let rows = client
        .simple_query(&statement("in_list", 100_000))
        .await
        .expect("a 100k IN list");
    assert!(!rows.is_empty());

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let queries = reader.await.expect("reader");
    assert!(queries > 0);
    let (status, _) = server
        .post("/write?db=db", "cpu,host=z usage=3 5".to_string())
        .await;
    assert_eq!(status, 204, "the server is down");
    let written: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(written as usize, acknowledged.load(Ordering::Relaxed) + 1);
}
