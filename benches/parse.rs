//! Benchmark 4: `soap::parse_envelope` (the parse the server does: borrowed from the body)
//! on SAP's own trace (getAttributes) and on a dial request, in ns per request (criterion)
//! and heap allocations per request (a counting global allocator, printed before the
//! timings); `parse_request` (the same parse, then copied into an owned tree, for tools
//! and tests) beside it.
//!
//! `cargo bench --bench parse` (criterion options after `--`, e.g. `-- --quick`).

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ici_connector::soap::{parse_envelope, parse_request};

#[path = "common/counting.rs"]
mod counting;
use counting::{ALLOCATIONS, BYTES};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const VENDOR_TRACE: &str = include_str!("../tests/fixtures/soap/vendor-trace.http");
const DIAL: &str = include_str!("../tests/fixtures/soap/examples/11-dial.xml");

fn vendor_body() -> &'static [u8] {
    VENDOR_TRACE
        .split_once("\r\n\r\n")
        .or_else(|| VENDOR_TRACE.split_once("\n\n"))
        .expect("the trace has a body")
        .1
        .as_bytes()
}

/// (allocations, bytes) of one parse, averaged over `runs`.
fn allocations(body: &[u8], owned: bool, runs: u64) -> (f64, f64) {
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..runs {
        if owned {
            black_box(parse_request(black_box(body)).expect("parses"));
        } else {
            black_box(parse_envelope(black_box(body)).expect("parses"));
        }
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / runs as f64,
        (b1 - b0) as f64 / runs as f64,
    )
}

fn parse(c: &mut Criterion) {
    let inputs = [
        ("vendor_trace_getAttributes", vendor_body()),
        ("dial", DIAL.as_bytes()),
    ];
    for (owned, prefix) in [(false, ""), (true, "owned_")] {
        for (name, body) in inputs {
            let (count, bytes) = allocations(body, owned, 1000);
            // One line per input that benches/run.sh copies into BENCHMARKS.md.
            println!(
                "allocations {prefix}{name}: {count:.1} allocations/request, {bytes:.0} bytes/request, body {} bytes",
                body.len()
            );
        }
    }
    let mut group = c.benchmark_group("parse_request");
    for (name, body) in inputs {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_envelope(black_box(body)).expect("parses"))
        });
        group.bench_function(format!("owned_{name}"), |b| {
            b.iter(|| parse_request(black_box(body)).expect("parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
