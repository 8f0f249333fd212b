//! `chronosdb bench`: the TSBS devops "cpu-only" data set, generated in memory and loaded
//! over HTTP line protocol by concurrent clients.
//!
//! One `cpu` row per host every 10 s from 2016-01-01T00:00:00Z, ten tags (hostname,
//! region, datacenter, rack, os, arch, team, service, service_version,
//! service_environment) and ten fields (usage_user … usage_guest_nice), each a random walk
//! with standard-normal steps clamped to [0, 100], written as integers as TSBS's devops
//! generator does (`ToPointAllInt64`); `--float-values` writes the walk's full-precision
//! floats instead, a harder case for compression. Batches are encoded before the clock
//! starts, so the loader measures the server, not itself. The same loader writes to
//! InfluxDB 1.x (`/write?db=`), which is how the two are compared side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clap::Args;

use crate::ServerError;

pub(crate) const START_NANOS: i64 = 1_451_606_400_000_000_000; // 2016-01-01T00:00:00Z
pub(crate) const INTERVAL_NANOS: i64 = 10_000_000_000;
pub(crate) const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];
const REGIONS: [(&str, [&str; 3]); 4] = [
    ("us-east-1", ["us-east-1a", "us-east-1b", "us-east-1c"]),
    ("us-west-1", ["us-west-1a", "us-west-1b", "us-west-1c"]),
    ("eu-west-1", ["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    (
        "ap-northeast-1",
        ["ap-northeast-1a", "ap-northeast-1b", "ap-northeast-1c"],
    ),
];
const OSES: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCHES: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "test"];

/// Options of `chronosdb bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Write endpoint base URL (chronosdb or InfluxDB 1.x).
    #[arg(long, default_value = "http://127.0.0.1:8086")]
    pub url: String,
    /// Database to write to.
    #[arg(long, default_value = "benchmark")]
    pub db: String,
    /// Number of hosts (series).
    #[arg(long, default_value_t = 100)]
    pub hosts: usize,
    /// Hours of data, starting 2016-01-01 (fractions allowed, e.g. 0.025 = 90 s).
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Lines per request.
    #[arg(long, default_value_t = 5000)]
    pub batch_size: usize,
    /// Label printed with the result.
    #[arg(long, default_value = "chronosdb")]
    pub label: String,
    /// Write the random walk as full-precision floats instead of TSBS's integers.
    #[arg(long)]
    pub float_values: bool,
}

/// xorshift64*: small, fast and deterministic; the data only needs to look like metrics.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard-normal sample (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n
    }
}

struct Host {
    tags: String,
    values: [f64; 10],
}

fn hosts(n: usize) -> Vec<Host> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let (region, datacenters) = REGIONS[rng.below(REGIONS.len())];
            let tags = format!(
                "hostname=host_{i},region={region},datacenter={},rack={},os={},arch={},team={},service={},service_version={},service_environment={}",
                datacenters[rng.below(3)],
                rng.below(100),
                OSES[rng.below(OSES.len())],
                ARCHES[rng.below(ARCHES.len())],
                TEAMS[rng.below(TEAMS.len())],
                rng.below(20),
                rng.below(2),
                ENVIRONMENTS[rng.below(ENVIRONMENTS.len())],
            );
            let mut values = [0.0; 10];
            for v in values.iter_mut() {
                *v = rng.next_f64() * 100.0;
            }
            Host { tags, values }
        })
        .collect()
}

/// Encodes the whole data set as request bodies of `batch_size` lines, in time order.
fn encode(args: &BenchArgs) -> (Vec<Bytes>, usize) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut hosts = hosts(args.hosts);
    let steps = ((args.hours * 3600.0) / 10.0).round() as i64;
    let mut batches = Vec::new();
    let mut body = String::with_capacity(args.batch_size * 300);
    let mut in_batch = 0;
    let mut rows = 0;
    for step in 0..steps {
        let ts = START_NANOS + step * INTERVAL_NANOS;
        for host in hosts.iter_mut() {
            body.push_str("cpu,");
            body.push_str(&host.tags);
            for (i, field) in FIELDS.iter().enumerate() {
                let v = &mut host.values[i];
                *v = (*v + rng.normal()).clamp(0.0, 100.0);
                body.push(if i == 0 { ' ' } else { ',' });
                body.push_str(field);
                body.push('=');
                if args.float_values {
                    body.push_str(&format!("{v}"));
                } else {
                    body.push_str(&format!("{}i", *v as i64));
                }
            }
            body.push(' ');
            body.push_str(&ts.to_string());
            body.push('\n');
            rows += 1;
            in_batch += 1;
            if in_batch == args.batch_size {
                batches.push(Bytes::from(std::mem::take(&mut body)));
                body.reserve(args.batch_size * 300);
                in_batch = 0;
            }
        }
    }
    if in_batch > 0 {
        batches.push(Bytes::from(body));
    }
    (batches, rows)
}

pub async fn run(args: BenchArgs) -> Result<(), ServerError> {
    let encode_started = Instant::now();
    let (batches, rows) = encode(&args);
    let bytes: usize = batches.iter().map(|b| b.len()).sum();
    eprintln!(
        "generated {rows} rows ({:.1} MB of line protocol) in {:.1}s; loading with {} workers",
        bytes as f64 / 1e6,
        encode_started.elapsed().as_secs_f64(),
        args.workers
    );
    let client = reqwest::Client::new();
    let url = format!(
        "{}/write?db={}&precision=ns",
        args.url.trim_end_matches('/'),
        args.db
    );
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.workers.max(1) {
        let (client, url, batches, next) =
            (client.clone(), url.clone(), batches.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else {
                    return Ok::<(), String>(());
                };
                let response = client
                    .post(&url)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                if !response.status().is_success() {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("write refused with {status}: {text}"));
                }
            }
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| ServerError::Bench(format!("loader task failed: {e}")))?
            .map_err(ServerError::Bench)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: loaded {rows} rows in {secs:.2}s: {:.0} rows/s, {:.0} field values/s",
        args.label,
        rows as f64 / secs,
        rows as f64 * FIELDS.len() as f64 / secs
    );
    Ok(())
}
