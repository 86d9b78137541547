//! Replay throughput: events of a trace fed to a fresh engine and scored, per second, on the
//! scoring-only engine of `replay` and on the full one (`run_full`).
//! Targets: >= 1,000,000 events/s (issue 4), >= 3,000,000 (issue 25, missed).
//!
//! The trace is the shared tau-bench development trace (`../shared/data/traces`) repeated 20
//! times under fresh task names, so the engine sees about 53,000 events of real shape; without
//! the shared data a synthetic trace of the same shape stands in (said on stderr).

use std::path::Path;

use ace::AceConfig;
use ace::replay::{replay, run_full};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../ace-core/examples/common/copies.rs"]
mod copies;

const COPIES: usize = 20;

fn synthetic() -> String {
    let mut out = String::new();
    for task in 0..100 {
        let t0 = 1_700_000_000 + task * 1000;
        out += &format!("{{\"ts\":{t0},\"type\":\"task_start\",\"agent\":\"a\",\"task\":\"t{task}\"}}\n");
        for step in 0..25 {
            let stage = ["planning", "execution", "observation"][step % 3];
            out += &format!(
                "{{\"ts\":{},\"type\":\"stage\",\"agent\":\"a\",\"task\":\"t{task}\",\"stage\":\"{stage}\",\"duration_s\":1.0,\"success\":true,\"metrics\":{{\"chars\":{}}}}}\n",
                t0 + 2 * step + 2,
                100 + step * 7
            );
        }
        out += &format!("{{\"ts\":{},\"type\":\"task_end\",\"agent\":\"a\",\"task\":\"t{task}\"}}\n", t0 + 60);
        out += &format!("{{\"type\":\"label\",\"task\":\"t{task}\",\"failed\":{}}}\n", task % 2 == 0);
    }
    out
}

fn trace() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/traces/tau_airline_dev.jsonl");
    let one = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        eprintln!("{} not found: using a synthetic trace", path.display());
        synthetic()
    });
    copies::copied(&one, COPIES).expect("the trace is valid")
}

fn bench_replay(c: &mut Criterion) {
    let text = trace();
    let events = replay(text.as_bytes(), "bench", AceConfig::default()).expect("replays").events;
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function("tau_airline_x20", |b| {
        b.iter(|| replay(text.as_bytes(), "bench", AceConfig::default()).expect("replays"));
    });
    group.bench_function("tau_airline_x20_full_engine", |b| {
        b.iter(|| run_full(text.as_bytes(), "bench", AceConfig::default()).expect("replays").score());
    });
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
