//! Writing with SQL: `CREATE TABLE`, `INSERT` and metadata go through durable paths, so what
//! they acknowledged survives `kill -9`, and the table is a table like any written over HTTP.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tables_and_inserted_rows_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    server
        .write(
            "derived",
            "cpu,host=a usage=10 60000000000\ncpu,host=b usage=30 60000000000",
        )
        .await;
    let pg = server.pg("derived").await;
    pg.batch_execute(
        "CREATE TABLE ratio (time TIMESTAMP, host TEXT, value DOUBLE, PRIMARY KEY (host));
         CREATE TABLE empty_but_declared (time TIMESTAMP, region TEXT, level BIGINT, PRIMARY KEY (region))",
    )
    .await
    .expect("create");
    let inserted = pg
        .execute(
            "INSERT INTO ratio SELECT time, host, usage / 100.0 FROM cpu",
            &[],
        )
        .await
        .expect("insert select");
    assert_eq!(inserted, 2);
    let inserted = pg
        .execute(
            "INSERT INTO ratio (time, host, value) VALUES ($1, 'c', $2)",
            &[
                &std::time::UNIX_EPOCH
                    .checked_add(std::time::Duration::from_secs(120))
                    .expect("time"),
                &0.25f64,
            ],
        )
        .await
        .expect("insert values with parameters");
    assert_eq!(inserted, 1);
    pg.batch_execute("INSERT INTO system.metadata VALUES ('ratio', NULL, 'unit', 'percent')")
        .await
        .expect("metadata");
    drop(pg);
    server.kill9();

    let server = TestServer::start(dir.path());
    let pg = server.pg("derived").await;
    let rows = pg
        .query("SELECT host, value FROM ratio ORDER BY host", &[])
        .await
        .expect("query after restart");
    let got: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, f64>(1)))
        .collect();
    assert_eq!(
        got,
        vec![("a".into(), 0.1), ("b".into(), 0.3), ("c".into(), 0.25)]
    );
    // The declared table exists with its columns, though no point was ever written to it.
    let columns = pg
        .query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'empty_but_declared' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns");
    let names: Vec<String> = columns.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(names, ["time", "region", "level"]);
    let unit = pg
        .query_one(
            "SELECT value FROM system.metadata WHERE table_name = 'ratio' AND key = 'unit'",
            &[],
        )
        .await
        .expect("metadata after restart");
    assert_eq!(unit.get::<_, String>(0), "percent");
    // A tag declared by CREATE TABLE is a tag: writing it as a field is refused.
    let (status, body) = server
        .post("/write?db=derived", "empty_but_declared region=1i 1")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("region"), "{body}");
    server.stop();
}
