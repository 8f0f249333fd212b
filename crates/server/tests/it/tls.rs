//! TLS on both listeners, with a certificate authority the test makes: psql with
//! `sslmode=verify-full` (cleartext token over TLS), HTTPS with the CA as the only root,
//! and `--require-tls` refusing plaintext pgwire and plain HTTP.

use std::path::Path;
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls::crypto::aws_lc_rs;

use crate::clients::available;
use crate::common::TestServer;

/// Writes `ca.pem`, and `server.pem` / `server.key` signed by it for `localhost` and
/// `127.0.0.1`, into `dir`.
fn make_certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "chronosdb test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write server.key");
}

fn start(dir: &Path, required: bool) -> TestServer {
    make_certificates(dir);
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let mut flags = vec![
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
    ];
    if required {
        flags.push("--require-tls");
    }
    TestServer::start_secure(&dir.join("data"), &flags)
}

/// An HTTPS client that trusts only the test's CA.
fn https_client(dir: &Path) -> reqwest::Client {
    // reqwest is built without a default crypto provider; install the one rustls uses here.
    let _ = aws_lc_rs::default_provider().install_default();
    let ca = std::fs::read(dir.join("ca.pem")).expect("read ca.pem");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .build()
        .expect("HTTPS client")
}

/// Runs psql with a connection string; returns success and everything it printed.
fn psql(conninfo: &str, password: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .env("PGPASSWORD", password)
        .args([
            conninfo,
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn required_tls_serves_verified_clients_and_refuses_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), true);
    let admin = server.admin_token.clone().expect("admin token");
    let https = server.http.replace("http://", "https://");
    let client = https_client(dir.path());

    // A write and a query over HTTPS, the certificate verified against the test's CA.
    let write = client
        .post(format!("{https}/api/v3/write_lp?db=secure"))
        .header("Authorization", format!("Token {admin}"))
        .body(
            "cpu,host=a usage=1.5 1700000000000000000\ncpu,host=b usage=2.5 1700000000000000000\n",
        )
        .send()
        .await
        .expect("HTTPS write");
    assert_eq!(write.status().as_u16(), 204, "{:?}", write.text().await);
    let health = client
        .get(format!("{https}/health"))
        .send()
        .await
        .expect("HTTPS health");
    assert_eq!(health.status().as_u16(), 200);

    // Plain HTTP on the same port: a 400 that says to use https://.
    let plain = reqwest::Client::new()
        .get(format!("{}/health", server.http))
        .send()
        .await
        .expect("plain HTTP answer");
    assert_eq!(plain.status().as_u16(), 400);
    let body: serde_json::Value =
        serde_json::from_str(&plain.text().await.expect("body")).expect("JSON body");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("requires TLS"),
        "{body}"
    );

    // A client that trusts other roots (the system's) refuses the server's certificate.
    let untrusting = reqwest::Client::builder().build().expect("client");
    assert!(
        untrusting
            .get(format!("{https}/health"))
            .send()
            .await
            .is_err()
    );

    // pgwire without TLS: refused before any password is asked for.
    let refused = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(server.pg_port)
        .user("admin")
        .password(admin.as_str())
        .dbname("secure")
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("plaintext pgwire refused");
    let message = refused
        .as_db_error()
        .map(|e| format!("{} {}", e.code().code(), e.message()))
        .unwrap_or_else(|| refused.to_string());
    assert!(
        message.contains("28000") && message.contains("requires TLS"),
        "{message}"
    );

    if !available("psql", "psql", &["--version"]) {
        return;
    }
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().expect("path");
    for host in ["localhost", "127.0.0.1"] {
        let conninfo = format!(
            "host={host} port={} user=admin dbname=secure sslmode=verify-full sslrootcert={ca}",
            server.pg_port
        );
        let (ok, out) = psql(
            &conninfo,
            &admin,
            "SELECT host, usage FROM cpu ORDER BY host",
        );
        assert!(ok, "psql verify-full via {host}: {out}");
        assert_eq!(out.trim(), "a|1.5\nb|2.5", "{out}");
        let (ok, out) = psql(&conninfo, "cdb_wrong", "SELECT 1");
        assert!(
            !ok && out.contains("password authentication failed"),
            "{out}"
        );
    }
    // verify-full checks the name: a certificate for localhost is not one for 127.0.0.2.
    let (ok, out) = psql(
        &format!(
            "host=127.0.0.2 port={} user=admin dbname=secure sslmode=verify-full sslrootcert={ca}",
            server.pg_port
        ),
        &admin,
        "SELECT 1",
    );
    assert!(!ok && out.contains("127.0.0.2"), "{out}");
    let (ok, out) = psql(
        &format!(
            "host=127.0.0.1 port={} user=admin dbname=secure sslmode=disable",
            server.pg_port
        ),
        &admin,
        "SELECT 1",
    );
    assert!(!ok && out.contains("requires TLS"), "{out}");
}

#[tokio::test]
async fn optional_tls_serves_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), false);
    let admin = server.admin_token.clone().expect("admin token");
    let https = server.http.replace("http://", "https://");

    let (status, body) = server
        .post_with(
            "/api/v3/write_lp?db=mixed",
            "m v=1i 1700000000000000000\n",
            &[("Authorization", &format!("Token {admin}"))],
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let secure = https_client(dir.path())
        .get(format!("{https}/health"))
        .send()
        .await
        .expect("HTTPS health");
    assert_eq!(secure.status().as_u16(), 200);

    // Plaintext pgwire still logs in with SCRAM.
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(server.pg_port)
        .user("admin")
        .password(admin.as_str())
        .dbname("mixed")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("plaintext SCRAM login");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT v FROM m", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, i64>(0), 1);

    if !available("psql", "psql", &["--version"]) {
        return;
    }
    let ca = dir.path().join("ca.pem");
    let conninfo = format!(
        "host=localhost port={} user=admin dbname=mixed sslmode=verify-full sslrootcert={}",
        server.pg_port,
        ca.display()
    );
    let (ok, out) = psql(&conninfo, &admin, "SELECT v FROM m");
    assert!(ok && out.trim() == "1", "{out}");
    // psql without TLS proves the same token with SCRAM-SHA-256, the user being its name.
    let plain = format!(
        "host=127.0.0.1 port={} user=admin dbname=mixed sslmode=disable",
        server.pg_port
    );
    let (ok, out) = psql(&plain, &admin, "SELECT v FROM m");
    assert!(ok && out.trim() == "1", "{out}");
    let (ok, out) = psql(&plain, "cdb_wrong", "SELECT v FROM m");
    assert!(
        !ok && out.contains("password authentication failed"),
        "{out}"
    );
}
