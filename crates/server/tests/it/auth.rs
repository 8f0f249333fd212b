//! Authentication: a matrix of every endpoint and pgwire against every kind of token, the
//! data directory searched for plaintext tokens, and the slowing of token guessing.

use std::time::{Duration, Instant};

use crate::common::TestServer;

/// The tokens of the matrix; `None` is a request without one.
const KINDS: [&str; 8] = [
    "none", "wrong", "expired", "revoked", "read_a", "write_a", "read_b", "admin",
];

async fn http(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", server.http))
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

async fn make_token(server: &TestServer, admin: &str, body: serde_json::Value) -> String {
    let (status, answer) = http(
        server,
        reqwest::Method::POST,
        "/api/v3/configure/token",
        Some(admin),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    answer["token"].as_str().expect("token").to_string()
}

/// Connects over pgwire with SCRAM, as user `user` with password `token`.
async fn pg(
    server: &TestServer,
    db: &str,
    user: &str,
    token: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(server.pg_port)
        .user(user)
        .dbname(db);
    if let Some(token) = token {
        config.password(token);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test]
async fn every_endpoint_checks_every_kind_of_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_secure(dir.path(), &[]);
    let admin = server.admin_token.clone().expect("admin token printed");
    for db in ["a", "b"] {
        let (status, _) = http(
            &server,
            reqwest::Method::POST,
            &format!("/api/v3/write_lp?db={db}"),
            Some(&admin),
            "cpu,host=h1 v=1 1000000000",
        )
        .await;
        assert_eq!(status, 204);
    }
    let scoped = |name: &str, db: &str, permission: &str| serde_json::json!({ "name": name, "db": db, "permission": permission });
    let read_a = make_token(&server, &admin, scoped("read_a", "a", "read")).await;
    let write_a = make_token(&server, &admin, scoped("write_a", "a", "write")).await;
    let read_b = make_token(&server, &admin, scoped("read_b", "b", "read")).await;
    let mut expired_body = scoped("expired", "a", "read_write");
    expired_body["expires_at"] = serde_json::json!(1);
    let expired = make_token(&server, &admin, expired_body).await;
    let revoked = make_token(&server, &admin, scoped("revoked", "a", "read_write")).await;
    let (status, _) = http(
        &server,
        reqwest::Method::DELETE,
        "/api/v3/configure/token?name=revoked",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let wrong = "cdb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    let token_of = |kind: &str| -> Option<String> {
        match kind {
            "none" => None,
            "wrong" => Some(wrong.clone()),
            "expired" => Some(expired.clone()),
            "revoked" => Some(revoked.clone()),
            "read_a" => Some(read_a.clone()),
            "write_a" => Some(write_a.clone()),
            "read_b" => Some(read_b.clone()),
            _ => Some(admin.clone()),
        }
    };

    // HTTP: (method, path, body, status for read_a, write_a, read_b, admin).
    let endpoints: [(reqwest::Method, &str, &str, [u16; 4]); 10] = [
        (
            reqwest::Method::POST,
            "/write?db=a",
            "cpu v=2 2000000000",
            [403, 204, 403, 204],
        ),
        (
            reqwest::Method::POST,
            "/api/v2/write?bucket=a",
            "cpu v=3 3000000000",
            [403, 204, 403, 204],
        ),
        (
            reqwest::Method::POST,
            "/api/v3/write_lp?db=a",
            "cpu v=4 4000000000",
            [403, 204, 403, 204],
        ),
        (
            reqwest::Method::POST,
            "/api/v3/write_lp?db=b",
            "cpu v=5 5000000000",
            [403, 403, 403, 204],
        ),
        (
            reqwest::Method::POST,
            "/api/v2/delete?bucket=a",
            r#"{"start": "1970-01-01T00:00:09Z", "stop": "1970-01-01T00:00:10Z"}"#,
            [403, 204, 403, 204],
        ),
        (
            reqwest::Method::GET,
            "/api/v3/configure/database",
            "",
            [403, 403, 403, 200],
        ),
        (
            reqwest::Method::GET,
            "/api/v3/configure/token",
            "",
            [403, 403, 403, 200],
        ),
        (
            reqwest::Method::POST,
            "/api/v3/configure/database",
            r#"{"db":"c"}"#,
            [403, 403, 403, 201],
        ),
        // Backups read every database: admin only (the file is not in a backup: 404).
        (
            reqwest::Method::POST,
            "/api/v3/backup",
            "",
            [403, 403, 403, 200],
        ),
        (
            reqwest::Method::GET,
            "/api/v3/backup/file?lease=1&path=a/cpu/x.parquet",
            "",
            [403, 403, 403, 404],
        ),
    ];
    for (method, path, body, valid) in &endpoints {
        for kind in KINDS {
            let expected = match kind {
                "none" | "wrong" | "expired" | "revoked" => 401,
                "read_a" => valid[0],
                "write_a" => valid[1],
                "read_b" => valid[2],
                _ => valid[3],
            };
            let token = token_of(kind);
            let (status, answer) =
                http(&server, method.clone(), path, token.as_deref(), body).await;
            assert_eq!(status, expected, "{method} {path} with {kind}: {answer}");
            if status >= 400 {
                assert!(answer["message"].is_string(), "JSON error body: {answer}");
            }
        }
    }
    // v1's u/p parameters and Basic auth carry the token too.
    let (status, _) = http(
        &server,
        reqwest::Method::POST,
        &format!("/write?db=a&u=anyone&p={write_a}"),
        None,
        "cpu v=6 6000000000",
    )
    .await;
    assert_eq!(status, 204);
    let basic = reqwest::Client::new()
        .post(format!("{}/write?db=a", server.http))
        .basic_auth("anyone", Some(&read_a))
        .body("cpu v=7 7000000000")
        .send()
        .await
        .expect("basic");
    assert_eq!(basic.status().as_u16(), 403, "Basic auth with a read token");
    // /ping and /health stay open.
    let (status, _) = http(&server, reqwest::Method::GET, "/health", None, "").await;
    assert_eq!(status, 200);

    // pgwire: connect to a, read, write, list databases.
    for kind in KINDS {
        let token = token_of(kind);
        let user = if kind == "wrong" || kind == "none" {
            "read_a"
        } else {
            kind
        };
        let connected = pg(&server, "a", user, token.as_deref()).await;
        let client = match (kind, connected) {
            ("none" | "wrong" | "expired" | "revoked", Err(e)) => {
                assert!(kind == "none" || sqlstate(&e) == "28P01", "{kind}: {e:?}");
                continue;
            }
            ("read_b", Err(e)) => {
                assert_eq!(sqlstate(&e), "28000", "a token of b cannot reach a: {e:?}");
                continue;
            }
            (_, Err(e)) => panic!("{kind} must connect: {e:?}"),
            ("none" | "wrong" | "expired" | "revoked" | "read_b", Ok(_)) => {
                panic!("{kind} must not connect to a")
            }
            (_, Ok(client)) => client,
        };
        let read = client.query("SELECT count(*) FROM cpu", &[]).await;
        let write = client
            .query(
                "INSERT INTO cpu (time, host, v) VALUES (now(), 'h9', 9)",
                &[],
            )
            .await;
        let databases = client.query("SELECT * FROM system.databases", &[]).await;
        let outcome = |r: &Result<_, tokio_postgres::Error>| match r {
            Ok(_) => "ok".to_string(),
            Err(e) => sqlstate(e),
        };
        let got = [outcome(&read), outcome(&write), outcome(&databases)];
        let expected = match kind {
            "read_a" => ["ok", "42501", "42501"],
            "write_a" => ["42501", "ok", "42501"],
            _ => ["ok", "ok", "ok"],
        };
        assert_eq!(
            got, expected,
            "pgwire with {kind}: read, write, system.databases"
        );
        // A write-only client can still describe its database (drivers do at connect).
        if kind == "write_a" {
            client
                .query("SELECT relname FROM pg_catalog.pg_class", &[])
                .await
                .expect("catalog");
        }
    }
    // A wrong SCRAM password for a real token name is refused.
    let Err(e) = pg(&server, "a", "admin", Some("cdb_not_the_password")).await else {
        panic!("a wrong password must be refused");
    };
    assert_eq!(sqlstate(&e), "28P01");

    // Dropping a database revokes its tokens.
    let (status, answer) = http(
        &server,
        reqwest::Method::DELETE,
        "/api/v3/configure/database?db=b",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["tokens_revoked"], serde_json::json!(["read_b"]));

    // No issued token's plaintext is anywhere in the data directory.
    server.stop();
    let issued = [&admin, &read_a, &write_a, &read_b, &expired, &revoked];
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        let bytes = std::fs::read(&path).expect("file");
        for token in issued {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds a plaintext token",
                path.display()
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("tokens.json"))
            .expect("tokens.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn guessing_tokens_is_slowed_and_valid_clients_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_secure(dir.path(), &[]);
    let admin = server.admin_token.clone().expect("admin token");
    // Use up the peer's free failures.
    for _ in 0..12 {
        let (status, _) = http(
            &server,
            reqwest::Method::GET,
            "/api/v3/configure/token",
            Some("cdb_guess"),
            "",
        )
        .await;
        assert_eq!(status, 401);
    }
    // Six more guesses in parallel wait their turn, a penalty each (a few may be forgiven
    // meanwhile, at one per two seconds); a valid request
    // sent at the same time is answered before the guesses are.
    let started = Instant::now();
    let guesses = futures::future::join_all((0..6).map(|_| async {
        http(
            &server,
            reqwest::Method::GET,
            "/api/v3/configure/token",
            Some("cdb_guess"),
            "",
        )
        .await;
        started.elapsed()
    }));
    let valid = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, _) = http(
            &server,
            reqwest::Method::GET,
            "/api/v3/configure/token",
            Some(&admin),
            "",
        )
        .await;
        assert_eq!(status, 200);
        started.elapsed()
    };
    let (guessed, valid_at) = tokio::join!(guesses, valid);
    let last_guess = guessed.iter().max().copied().unwrap_or_default();
    assert!(
        last_guess >= Duration::from_secs(3),
        "guesses were not slowed: {last_guess:?}"
    );
    assert!(
        valid_at < last_guess,
        "the valid request waited behind the guesses"
    );
    // A wrong SCRAM password counts too and is refused.
    assert!(pg(&server, "a", "admin", Some("cdb_guess")).await.is_err());
}

#[tokio::test]
async fn admins_manage_tokens_in_sql() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_secure(dir.path(), &[]);
    let admin_token = server.admin_token.clone().expect("admin token");
    let admin = pg(&server, "m", "admin", Some(&admin_token))
        .await
        .expect("admin connects to any database name");
    admin
        .batch_execute("CREATE DATABASE m")
        .await
        .expect("create database");
    let row = admin
        .query_one(
            "CREATE TOKEN grafana FOR DATABASE m READ EXPIRES IN '30d'",
            &[],
        )
        .await
        .expect("create token");
    let secret: String = row.get("token");
    assert!(secret.starts_with("cdb_"));
    let reader = pg(&server, "m", "grafana", Some(&secret))
        .await
        .expect("the new token connects");
    let e = reader
        .simple_query("CREATE ADMIN TOKEN sneaky")
        .await
        .expect_err("a read token cannot make tokens");
    assert_eq!(sqlstate(&e), "42501");
    let listed = admin
        .simple_query("SHOW TOKENS")
        .await
        .expect("show tokens");
    let names: Vec<String> = listed
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get("name").map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["admin", "grafana"]);
    // Over the extended protocol (binary results) too.
    let rows = admin.query("SHOW TOKENS", &[]).await.expect("show tokens");
    let expiry: Option<i64> = rows[1].get("expires_at");
    assert!(expiry.is_some_and(|at| at > 1_700_000_000));
    let e = admin
        .simple_query("CREATE TOKEN x FOR DATABASE m EVERYTHING")
        .await
        .expect_err("bad syntax");
    assert_eq!(sqlstate(&e), "42601");
    admin
        .simple_query("DROP TOKEN grafana")
        .await
        .expect("drop token");
    assert!(pg(&server, "m", "grafana", Some(&secret)).await.is_err());
}

/// A query answered from the plan cache is checked against the token like any other: a
/// write-only token cannot read what an admin's identical query cached.
#[tokio::test]
async fn cached_plans_are_checked_against_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_secure(dir.path(), &[]);
    let admin_token = server.admin_token.clone().expect("admin token");
    let admin = pg(&server, "m", "admin", Some(&admin_token))
        .await
        .expect("admin connects");
    admin
        .batch_execute("CREATE DATABASE m")
        .await
        .expect("create database");
    admin
        .batch_execute(
            "CREATE TABLE cpu (time TIMESTAMP, host TEXT, v DOUBLE, PRIMARY KEY (host)); \
             INSERT INTO cpu VALUES ('2024-01-01T00:00:00Z', 'a', 1.0)",
        )
        .await
        .expect("set up");
    let sql = "SELECT count(*) FROM cpu WHERE host = 'a'";
    for _ in 0..2 {
        let n: i64 = admin.query_one(sql, &[]).await.expect("admin reads").get(0);
        assert_eq!(n, 1);
    }
    let row = admin
        .query_one("CREATE TOKEN feeder FOR DATABASE m WRITE", &[])
        .await
        .expect("create token");
    let secret: String = row.get("token");
    let writer = pg(&server, "m", "feeder", Some(&secret))
        .await
        .expect("the write token connects");
    for sql in [sql, "SELECT count(*) FROM cpu WHERE host = 'b'"] {
        let e = writer
            .query(sql, &[])
            .await
            .expect_err("a write token cannot read");
        assert_eq!(sqlstate(&e), "42501", "{e}");
        let e = writer
            .simple_query(sql)
            .await
            .expect_err("a write token cannot read");
        assert_eq!(sqlstate(&e), "42501", "{e}");
    }
}
