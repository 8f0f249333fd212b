//! `chronosdb bench-queries`: the TSBS devops queries, timed over the wire.
//!
//! Each query runs `--runs` times with parameters drawn from a seeded generator (a random
//! host, a random window inside the loaded data), so chronosdb (SQL over pgwire, with
//! tokio-postgres' extended protocol, as drivers do) and InfluxDB 1.x (InfluxQL over HTTP)
//! answer the same questions in the same order. A run's latency includes reading the whole
//! result. The median is reported, after two warm-up runs.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::ServerError;
use crate::bench::{FIELDS, INTERVAL_NANOS, START_NANOS};

/// The system a query run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Chronosdb,
    Influxdb,
    /// Print each run's SQL (`name<TAB>sql`) instead of running it, for other engines
    /// (`scripts/bench-duckdb`).
    PrintSql,
}

/// Options of `chronosdb bench-queries`.
#[derive(Debug, Clone, Args)]
pub struct QueryBenchArgs {
    /// Which system to query.
    #[arg(long, value_enum, default_value_t = Target::Chronosdb)]
    pub target: Target,
    /// pgwire address of chronosdb.
    #[arg(long, default_value = "127.0.0.1:5433")]
    pub pg: String,
    /// HTTP base URL of InfluxDB 1.x.
    #[arg(long, default_value = "http://127.0.0.1:8086")]
    pub influx_url: String,
    /// Database holding the `chronosdb bench` data.
    #[arg(long, default_value = "benchmark")]
    pub db: String,
    /// Hosts in the loaded data set.
    #[arg(long, default_value_t = 100)]
    pub hosts: usize,
    /// Hours in the loaded data set.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Timed runs per query.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Only these queries (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Prepare each query before running it, as tokio-postgres's `query()` does (one
    /// round trip to prepare, one to run, and a close). By default each query goes in one
    /// round trip (Parse, Bind, Describe, Execute, Sync), as psql's, JDBC's and psycopg's
    /// do, and as InfluxDB's HTTP query does.
    #[arg(long)]
    pub prepare_each: bool,
    /// Time `EXPLAIN` of each query instead of the query: planning alone.
    #[arg(long)]
    pub explain: bool,
}

/// The TSBS devops queries we time.
pub const QUERIES: [&str; 8] = [
    "single-groupby-1-1-1",
    "single-groupby-5-1-12",
    "double-groupby-1",
    "double-groupby-all",
    "high-cpu-all",
    "lastpoint",
    "groupby-orderby-limit",
    "count",
];

const HOUR: i64 = 3_600_000_000_000;

/// A query in both languages.
struct Query {
    sql: String,
    influxql: String,
}

/// RFC 3339 text of a nanosecond timestamp (UTC, whole seconds).
fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        chronosdb_storage::engine::civil_date(days),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Small deterministic generator for query parameters.
struct Params {
    state: u64,
    hosts: usize,
    end: i64,
}

impl Params {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn host(&mut self) -> String {
        format!("host_{}", self.next() % self.hosts as u64)
    }

    /// A random window of `len` inside the data, aligned to the minute.
    fn window(&mut self, len: i64) -> (String, String) {
        let span = (self.end - START_NANOS - len).max(0);
        let minutes = span / 60_000_000_000;
        let offset = if minutes > 0 {
            (self.next() % minutes as u64) as i64 * 60_000_000_000
        } else {
            0
        };
        let start = START_NANOS + offset;
        (rfc3339(start), rfc3339(start + len))
    }
}

fn build(name: &str, p: &mut Params) -> Query {
    let metrics = |n: usize| FIELDS[..n].to_vec();
    match name {
        "single-groupby-1-1-1" | "single-groupby-5-1-12" => {
            let (n, hours) = if name == "single-groupby-1-1-1" {
                (1, 1)
            } else {
                (5, 12)
            };
            let host = p.host();
            let (start, end) = p.window(hours * HOUR);
            let sql_aggs: Vec<String> = metrics(n).iter().map(|m| format!("max({m})")).collect();
            Query {
                sql: format!(
                    "SELECT time_bucket('1 minute', time) AS minute, {} FROM cpu WHERE hostname = '{host}' AND time >= '{start}' AND time < '{end}' GROUP BY 1 ORDER BY 1",
                    sql_aggs.join(", ")
                ),
                influxql: format!(
                    "SELECT {} FROM cpu WHERE hostname = '{host}' AND time >= '{start}' AND time < '{end}' GROUP BY time(1m)",
                    sql_aggs.join(", ")
                ),
            }
        }
        "double-groupby-1" | "double-groupby-all" => {
            let n = if name == "double-groupby-1" { 1 } else { 10 };
            let (start, end) = p.window(12 * HOUR);
            let sql_aggs: Vec<String> = metrics(n).iter().map(|m| format!("avg({m})")).collect();
            let influx_aggs: Vec<String> =
                metrics(n).iter().map(|m| format!("mean({m})")).collect();
            Query {
                sql: format!(
                    "SELECT time_bucket('1 hour', time) AS hour, hostname, {} FROM cpu WHERE time >= '{start}' AND time < '{end}' GROUP BY 1, 2 ORDER BY 1, 2",
                    sql_aggs.join(", ")
                ),
                influxql: format!(
                    "SELECT {} FROM cpu WHERE time >= '{start}' AND time < '{end}' GROUP BY time(1h), hostname",
                    influx_aggs.join(", ")
                ),
            }
        }
        "high-cpu-all" => {
            let (start, end) = p.window(12 * HOUR);
            Query {
                sql: format!(
                    "SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '{start}' AND time < '{end}'"
                ),
                influxql: format!(
                    "SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '{start}' AND time < '{end}'"
                ),
            }
        }
        "lastpoint" => Query {
            sql: "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC".into(),
            influxql: "SELECT last(*) FROM cpu GROUP BY *".into(),
        },
        "groupby-orderby-limit" => {
            let (_, end) = p.window(HOUR);
            Query {
                sql: format!(
                    "SELECT time_bucket('1 minute', time) AS minute, max(usage_user) FROM cpu WHERE time < '{end}' GROUP BY 1 ORDER BY 1 DESC LIMIT 5"
                ),
                influxql: format!(
                    "SELECT max(usage_user) FROM cpu WHERE time < '{end}' GROUP BY time(1m) LIMIT 5"
                ),
            }
        }
        _ => Query {
            sql: "SELECT count(*) FROM cpu".into(),
            influxql: "SELECT count(usage_user) FROM cpu".into(),
        },
    }
}

/// Runs one query against the target; returns the number of rows (or values) read.
async fn run_one(target: &Connection, query: &Query) -> Result<usize, ServerError> {
    match target {
        Connection::Pg {
            client,
            prepare_each,
        } => {
            let rows = match prepare_each {
                true => client.query(query.sql.as_str(), &[]).await,
                false => client.query_typed(query.sql.as_str(), &[]).await,
            }
            .map_err(|e| ServerError::Bench(format!("{}: {e}", query.sql)))?;
            Ok(rows.len())
        }
        Connection::Influx { client, url } => {
            let response = client
                .post(url)
                .form(&[("q", query.influxql.as_str())])
                .send()
                .await
                .map_err(|e| ServerError::Bench(format!("InfluxDB query failed: {e}")))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| ServerError::Bench(format!("InfluxDB query failed: {e}")))?;
            let text = String::from_utf8_lossy(&body);
            if !status.is_success() || text.contains("\"error\"") {
                return Err(ServerError::Bench(format!(
                    "{}: {status} {text}",
                    query.influxql
                )));
            }
            // Rows in the JSON answer: one '[' per value row, minus the structure's own.
            Ok(text.matches("],[").count() + text.matches("\"values\":[[").count())
        }
    }
}

/// The queries asked for with `--only`, or all.
fn selected(args: &QueryBenchArgs) -> Vec<&'static str> {
    QUERIES
        .into_iter()
        .filter(|name| args.only.is_empty() || args.only.iter().any(|o| o == name))
        .collect()
}

/// The same seed per query for every system: identical parameters, identical order.
fn params_for(name: &str, hosts: usize, end: i64) -> Params {
    Params {
        state: 0x9E37_79B9_7F4A_7C15 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32,
        hosts,
        end,
    }
}

enum Connection {
    Pg {
        client: tokio_postgres::Client,
        /// Prepare, then run (see `QueryBenchArgs::prepare_each`).
        prepare_each: bool,
    },
    Influx {
        client: reqwest::Client,
        url: String,
    },
}

pub async fn run(args: QueryBenchArgs) -> Result<(), ServerError> {
    let end = START_NANOS + (args.hours * 3600.0 / 10.0).round() as i64 * INTERVAL_NANOS;
    let connection = match args.target {
        Target::PrintSql => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for name in selected(&args) {
                let mut params = params_for(name, args.hosts, end);
                for _ in 0..args.runs + 2 {
                    // A reader that stops early (`| head`) ends the listing, not a panic.
                    if writeln!(out, "{name}\t{}", build(name, &mut params).sql).is_err() {
                        return Ok(());
                    }
                }
            }
            return Ok(());
        }
        Target::Chronosdb => {
            let (host, port) = args.pg.rsplit_once(':').ok_or_else(|| {
                ServerError::Bench(format!("--pg {}: expected host:port", args.pg))
            })?;
            let config = format!("host={host} port={port} user=bench dbname={}", args.db);
            let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                .await
                .map_err(|e| ServerError::Bench(format!("connect to {}: {e}", args.pg)))?;
            tokio::spawn(connection);
            Connection::Pg {
                client,
                prepare_each: args.prepare_each,
            }
        }
        Target::Influxdb => Connection::Influx {
            client: reqwest::Client::new(),
            url: format!(
                "{}/query?db={}&epoch=ns",
                args.influx_url.trim_end_matches('/'),
                args.db
            ),
        },
    };
    let label = match args.target {
        Target::Influxdb => "influxdb",
        _ => "chronosdb",
    };
    for name in selected(&args) {
        let mut params = params_for(name, args.hosts, end);
        let mut times: Vec<Duration> = Vec::with_capacity(args.runs);
        let mut rows = 0;
        for run in 0..args.runs + 2 {
            let mut query = build(name, &mut params);
            if args.explain {
                query.sql = format!("EXPLAIN {}", query.sql);
            }
            let started = Instant::now();
            rows = run_one(&connection, &query).await?;
            if run >= 2 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        let median = times
            .get(times.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        let name = match args.explain {
            true => format!("explain-{name}"),
            false => name.to_string(),
        };
        println!("{label} {name} median_ms={median:.2} rows={rows}");
    }
    Ok(())
}
