//! HTTP ingest: the three write APIs, ping and health, and every way a write is refused.

use std::io::Write;

use crate::common::TestServer;

async fn count(server: &TestServer, db: &str, table: &str) -> i64 {
    let client = server.pg(db).await;
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count");
    row.get(0)
}

#[tokio::test]
async fn three_write_apis_ping_and_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let (s, t) = server
        .post("/write?db=v1&precision=s", "cpu,host=a v=1 1700000000")
        .await;
    assert_eq!(s, 204, "{t}");
    let (s, t) = server
        .post(
            "/api/v2/write?bucket=v1&org=x&precision=ms",
            "cpu,host=b v=2 1700000000000",
        )
        .await;
    assert_eq!(s, 204, "{t}");
    let (s, t) = server
        .post(
            "/api/v3/write_lp?db=v1&precision=us",
            "cpu,host=c v=3 1700000000000000",
        )
        .await;
    assert_eq!(s, 204, "{t}");
    assert_eq!(count(&server, "v1", "cpu").await, 3);

    let client = reqwest::Client::new();
    let ping = client
        .get(format!("{}/ping", server.http))
        .send()
        .await
        .expect("ping");
    assert_eq!(ping.status().as_u16(), 204);
    assert!(ping.headers().contains_key("x-influxdb-version"));
    let head = client
        .head(format!("{}/ping", server.http))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status().as_u16(), 204);
    let health = client
        .get(format!("{}/health", server.http))
        .send()
        .await
        .expect("health")
        .text()
        .await
        .expect("text");
    let health: serde_json::Value = serde_json::from_str(&health).expect("json");
    assert_eq!(health["status"], "pass");
}

#[tokio::test]
async fn bad_lines_are_named_and_good_lines_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a usage=1.5 1").await;
    let body =
        "cpu,host=b usage=2 2\ncpu,host=c usage=\"high\" 3\n\ncpu,host=d usage=4 4\nnot a line";
    let (status, text) = server.post("/write?db=db", body.to_string()).await;
    assert_eq!(status, 400);
    let json: serde_json::Value = serde_json::from_str(&text).expect("json body");
    let errors = json["errors"].as_array().expect("errors");
    let lines: Vec<i64> = errors
        .iter()
        .map(|e| e["line"].as_i64().expect("line"))
        .collect();
    assert_eq!(lines, vec![2, 5]);
    let conflict = errors[0]["message"].as_str().expect("message");
    assert!(
        conflict.contains("usage") && conflict.contains("float") && conflict.contains("string"),
        "{conflict}"
    );
    assert_eq!(json["lines_written"], 2, "{text}");
    assert_eq!(count(&server, "db", "cpu").await, 3);

    let invalid_utf8: Vec<u8> = b"cpu,host=\xff usage=1 9\ncpu,host=e usage=5 10".to_vec();
    let (status, text) = server.post("/write?db=db", invalid_utf8).await;
    assert_eq!(status, 400);
    assert!(text.contains("UTF-8"), "{text}");
    assert_eq!(count(&server, "db", "cpu").await, 4);
}

#[tokio::test]
async fn refused_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(dir.path(), &["--max-request-size", "1KiB"]);
    // No database.
    let (s, t) = server.post("/write", "cpu v=1").await;
    assert_eq!(s, 400);
    assert!(t.contains("db"), "{t}");
    // Bad precision.
    let (s, t) = server
        .post("/write?db=x&precision=fortnight", "cpu v=1")
        .await;
    assert_eq!(s, 400);
    assert!(t.contains("precision"), "{t}");
    // Too large, plain and as a gzip bomb that inflates past the limit.
    let big = "cpu v=1\n".repeat(200);
    let (s, _) = server.post("/write?db=x", big.clone()).await;
    assert_eq!(s, 413);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'a'; 10 << 20]).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 1024 * 16);
    let (s, _) = server
        .post_with("/write?db=x", bomb, &[("Content-Encoding", "gzip")])
        .await;
    assert_eq!(s, 413);
    // Valid gzip within the limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"cpu,host=z v=1 1\ncpu,host=z v=2 2")
        .expect("gzip");
    let (s, t) = server
        .post_with(
            "/write?db=x",
            gz.finish().expect("gzip"),
            &[("Content-Encoding", "gzip")],
        )
        .await;
    assert_eq!(s, 204, "{t}");
    // Corrupt gzip, JSON content type, unknown encoding.
    let (s, _) = server
        .post_with(
            "/write?db=x",
            b"not gzip".to_vec(),
            &[("Content-Encoding", "gzip")],
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = server
        .post_with("/write?db=x", "{}", &[("Content-Type", "application/json")])
        .await;
    assert_eq!(s, 415);
    let (s, _) = server
        .post_with("/write?db=x", "cpu v=1", &[("Content-Encoding", "br")])
        .await;
    assert_eq!(s, 415);
    // v3 with accept_partial=false writes nothing when a line is bad.
    let (s, t) = server
        .post(
            "/api/v3/write_lp?db=x&accept_partial=false",
            "cpu,host=y v=1 5\ncpu v=oops 6",
        )
        .await;
    assert_eq!(s, 400);
    assert!(t.contains("nothing written"), "{t}");
    assert_eq!(count(&server, "x", "cpu").await, 2);
    // The server is still healthy after all of that.
    server.write("x", "cpu,host=w v=3 7").await;
    assert_eq!(count(&server, "x", "cpu").await, 3);
}

#[tokio::test]
async fn client_hanging_up_mid_body_loses_nothing_acknowledged() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu,host=a v=1 1").await;
    let addr = server.http.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\ncpu,host=b v=2 2\n")
        .await
        .expect("send");
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(count(&server, "db", "cpu").await, 1);
}

#[tokio::test]
async fn oversized_names_and_strings_are_refused_line_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let long_tag = "t".repeat(60 * 1024);
    let huge_tag = "t".repeat(20 * 1024 * 1024);
    let long_key = "k".repeat(70 * 1024);
    let long_string = "s".repeat(1024 * 1024 + 1);
    let body = format!(
        "big,host={long_tag} v=1 1\n\
         big,host={huge_tag} v=2 2\n\
         big,host=a {long_key}=3 3\n\
         big,host=a msg=\"{long_string}\" 4\n\
         big,host=a msg=\"short\" 5"
    );
    let (status, text) = server.post("/write?db=db", body).await;
    assert_eq!(status, 400, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json body");
    let errors = json["errors"].as_array().expect("errors");
    let lines: Vec<i64> = errors
        .iter()
        .map(|e| e["line"].as_i64().expect("line"))
        .collect();
    assert_eq!(lines, vec![2, 3, 4], "{text}");
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["message"].as_str().expect("message"))
        .collect();
    assert!(
        messages[0].contains("series key") && messages[0].contains("65536"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("--max-series-key-size"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("field key") && messages[1].len() < 300,
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("--max-string-field-size"),
        "{}",
        messages[2]
    );
    assert_eq!(json["lines_written"], 2, "{text}");
    assert_eq!(count(&server, "db", "big").await, 2);

    // A tighter limit after a restart does not lose lines acknowledged under the old one:
    // the WAL replays what was written.
    server.kill9();
    let server = TestServer::start_with(dir.path(), &["--max-series-key-size", "1KiB"]);
    assert_eq!(count(&server, "db", "big").await, 2);
    let (status, text) = server
        .post(
            "/write?db=db",
            format!("big,host={} v=9 9", "x".repeat(2000)),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("1024"), "{text}");
}

#[tokio::test]
async fn a_field_written_twice_in_one_line_keeps_the_last_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write("db", "m,host=a v=1,v=2,w=3 1\nm,host=b v=4,v=5 2")
        .await;
    let client = server.pg("db").await;
    let rows = client
        .query("SELECT v FROM m ORDER BY host", &[])
        .await
        .expect("query");
    let values: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, vec![2.0, 5.0]);
    // The same after a restart, from the WAL.
    server.kill9();
    let server = TestServer::start(dir.path());
    let client = server.pg("db").await;
    let rows = client
        .query("SELECT v FROM m ORDER BY host", &[])
        .await
        .expect("query");
    let values: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, vec![2.0, 5.0]);
}

/// Persisted rows and file count of table `m`, from `system.tables`.
async fn persisted(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT CAST(persisted_rows AS BIGINT), CAST(file_count AS BIGINT) \
             FROM system.tables WHERE table_name = 'm'",
            &[],
        )
        .await
        .expect("system.tables");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_paused_load_is_persisted_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = [
        "--buffer-size",
        "1MiB",
        "--persist-interval",
        "1h",
        "--persist-when-idle",
        "1s",
    ];
    let server = TestServer::start_with(dir.path(), &flags);
    let client = server.pg("db").await;
    // A few rows, far below an eighth of the buffer size, stay buffered while idle.
    server.write("db", "m,host=a v=1 1\nm,host=b v=2 1").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(persisted(&client).await, (0, 0));
    // The end of a bulk load: more than an eighth, then no writes.
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!("m,host=h{} v={i} {}", i % 50, 1_000_000_000 + i))
        .collect();
    server.write("db", &lines.join("\n")).await;
    let mut now = persisted(&client).await;
    for _ in 0..100 {
        if now.0 == 20_002 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        now = persisted(&client).await;
    }
    assert_eq!(now.0, 20_002, "rows in files: {now:?}");
    assert_eq!(count(&server, "db", "m").await, 20_002);
}
