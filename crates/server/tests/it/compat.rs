//! Real clients and real peers: the InfluxDB Python client libraries writing unchanged,
//! the S3 object store against an S3-compatible server (moto), and garbage on the pgwire
//! port. `.ci/run` installs the Python packages; without them these tests say so and pass.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::TestServer;

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn influxdb_python_clients_write_unchanged() {
    if !python_has("influxdb_client") || !python_has("influxdb") {
        eprintln!(
            "SKIPPED: pip packages influxdb-client and influxdb are not installed (.ci/run installs them)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let port: u16 = server
        .http
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port");
    let script = format!(
        r#"
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
with InfluxDBClient(url="http://127.0.0.1:{port}", token="unused", org="any") as c:
    w = c.write_api(write_options=SYNCHRONOUS)
    w.write(bucket="py", record=Point("weather").tag("city", "paris").field("temp", 21.5).time(1700000000, WritePrecision.S), write_precision=WritePrecision.S)
    w.write(bucket="py", record="weather,city=oslo temp=3.5 1700000000000000000")
    assert c.ping()
from influxdb import InfluxDBClient as V1
v1 = V1(host="127.0.0.1", port={port}, database="py")
assert v1.write_points([{{"measurement": "weather", "tags": {{"city": "rome"}}, "time": "2023-11-14T22:13:20Z", "fields": {{"temp": 18.0}}}}])
print("ok")
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python clients failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let client = server.pg("py").await;
    let rows = client
        .query("SELECT city, temp, time FROM weather ORDER BY city", &[])
        .await
        .expect("query");
    let cities: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(cities, vec!["oslo", "paris", "rome"]);
    let times: Vec<std::time::SystemTime> = rows.iter().map(|r| r.get(2)).collect();
    assert!(
        times.iter().all(|t| *t == times[0]),
        "all three points share one timestamp"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn s3_object_store_against_moto() {
    if Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED: moto_server is not installed (.ci/run installs moto[server])");
        return;
    }
    let port = free_port();
    let mut moto = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http.get(&endpoint).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "moto did not start");
    let created = http
        .put(format!("{endpoint}/tsdata"))
        .send()
        .await
        .expect("create bucket");
    assert!(created.status().is_success());

    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--object-store", "s3://tsdata/node1"];
    let server = TestServer::start_env(dir.path(), &flags, &env);
    server
        .write("db", "cpu,host=a v=1 1\ncpu,host=b v=2 2")
        .await;
    server.stop();
    let listing = http
        .get(format!("{endpoint}/tsdata?list-type=2&prefix=node1/"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(
        listing.contains(".parquet"),
        "no Parquet file in the bucket: {listing}"
    );
    assert!(
        listing.contains("catalog.json"),
        "no catalog in the bucket: {listing}"
    );
    // Nothing but the WAL is on local disk.
    assert!(!dir.path().join("objects").exists());

    let server = TestServer::start_env(dir.path(), &flags, &env);
    let client = server.pg("db").await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
    drop(server);
    let _ = moto.kill();
    let _ = moto.wait();
}

#[tokio::test]
async fn garbage_on_the_pgwire_port_does_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server.write("db", "cpu v=1 1").await;
    let inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        // A startup packet claiming an enormous length.
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        // A valid startup then a message of an unknown type with a bogus length.
        {
            let mut v = Vec::new();
            let params = b"user\0x\0database\0db\0\0";
            v.extend_from_slice(&((8 + params.len()) as u32).to_be_bytes());
            v.extend_from_slice(&196608u32.to_be_bytes());
            v.extend_from_slice(params);
            v.extend_from_slice(b"Z\xff\xff\xff\xff");
            v
        },
    ];
    for input in inputs {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", server.pg_port))
            .await
            .expect("connect");
        let _ = s.write_all(&input).await;
        let mut buf = vec![0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    }
    let client = server.pg("db").await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    let _ = std::io::stderr().flush();
}
