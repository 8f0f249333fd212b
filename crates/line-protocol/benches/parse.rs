//! Criterion benchmark of the line-protocol parser on TSBS devops "cpu" lines.
//! Reports throughput in bytes/s (MB/s) and, in a second group, lines/s.

use chronosdb_line_protocol::parse_lines;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn tsbs_body(lines: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..lines {
        let host = i % 100;
        body.push_str(&format!(
            "cpu,hostname=host_{host},region=eu-west-1,datacenter=eu-west-1a,rack={r},os=Ubuntu16.04LTS,arch=x64,team=SF,service=19,service_version=1,service_environment=test usage_user=58.{i},usage_system=2.{i},usage_idle=24.{i},usage_nice=61.{i},usage_iowait=22.{i},usage_irq=63.{i},usage_softirq=6.{i},usage_steal=44.{i},usage_guest=80.{i},usage_guest_nice=38.{i} {ts}\n",
            r = host % 7,
            ts = 1_451_606_400_000_000_000i64 + (i as i64) * 10_000_000_000,
        ));
    }
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = tsbs_body(10_000);
    let mut bytes = c.benchmark_group("line_protocol_bytes");
    bytes.throughput(Throughput::Bytes(body.len() as u64));
    bytes.bench_function("tsbs_cpu_10k_lines", |b| {
        b.iter(|| black_box(parse_lines(black_box(&body))).len())
    });
    bytes.finish();
    let mut lines = c.benchmark_group("line_protocol_lines");
    lines.throughput(Throughput::Elements(10_000));
    lines.bench_function("tsbs_cpu_10k_lines", |b| {
        b.iter(|| black_box(parse_lines(black_box(&body))).len())
    });
    lines.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
