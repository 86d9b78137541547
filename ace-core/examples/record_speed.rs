//! Record speed: `cargo run --profile bench -p agent-ace-core --example record_speed`
//! times `record_stage` on one thread (100 agents, as `benches/record.rs`) with the system
//! clock, the coarse clock and a manual one, in turn, and prints the median of 40 batches of
//! 20,000 calls for each, with and without three metrics.
//!
//! `record_speed once N [metrics]` makes `N` calls (default 100,000) on one engine with a manual
//! clock and prints the mean: deterministic, so that
//! `valgrind --tool=callgrind --toggle-collect='*Ace::observe*'` counts a call's instructions.

use std::time::Instant;

use ace_core::{Ace, AceConfig, Clock, CoarseClock, ManualClock, MemoryStore, SystemClock};

const AGENTS: usize = 100;
const BATCH: usize = 20_000;

fn engine(clock: impl Clock) -> Ace {
    let config = AceConfig::builder().buffer_capacity(1_000_000).batch_size(1000).build().unwrap();
    Ace::builder().config(config).clock(clock).store(MemoryStore::with_max_records(10_000)).build().unwrap()
}

fn batch(ace: &Ace, agents: &[String], metrics: bool, i: &mut usize) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        *i = i.wrapping_add(1);
        let a = &agents[*i % AGENTS];
        let x = (*i % 7) as f64;
        if metrics {
            let m = [("tokens_in", 800.0 + x), ("tokens_out", 200.0 + x), ("cost_usd", 0.004)];
            ace.record_stage_with(a, "task-1", "execution", 1.0 + x * 0.05, true, &m).unwrap();
        } else {
            ace.record_stage(a, "task-1", "execution", 1.0 + x * 0.05, !i.is_multiple_of(50)).unwrap();
        }
    }
    start.elapsed().as_nanos() as f64 / BATCH as f64
}

fn main() {
    let agents: Vec<String> = (0..AGENTS).map(|i| format!("agent-{i:04}")).collect();
    if std::env::args().nth(1).as_deref() == Some("once") {
        let n: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
        let metrics = std::env::args().nth(3).as_deref() == Some("metrics");
        let ace = engine(ManualClock::default());
        let (mut i, start) = (0, Instant::now());
        for _ in 0..n.div_ceil(BATCH) {
            batch(&ace, &agents, metrics, &mut i);
        }
        let ns = start.elapsed().as_nanos() as f64 / (n.div_ceil(BATCH) * BATCH) as f64;
        println!("record_stage, manual clock, metrics {metrics}: {ns:.0} ns each");
        return;
    }
    let engines = [
        ("system clock", engine(SystemClock)),
        ("coarse clock", engine(CoarseClock::new())),
        ("manual clock", engine(ManualClock::default())),
    ];
    for metrics in [false, true] {
        let mut times = vec![Vec::new(); engines.len()];
        let mut i = 0;
        for (_, ace) in &engines {
            batch(ace, &agents, metrics, &mut i); // warm
        }
        for _ in 0..40 {
            for (k, (_, ace)) in engines.iter().enumerate() {
                times[k].push(batch(ace, &agents, metrics, &mut i));
            }
        }
        for t in &mut times {
            t.sort_by(f64::total_cmp);
        }
        for (k, (name, _)) in engines.iter().enumerate() {
            let t = &times[k];
            let what = if metrics { "with 3 metrics" } else { "outcome only" };
            println!(
                "record_stage {what:14} {name}: median {:4.0} ns (p10 {:4.0}, p90 {:4.0}), {:.2}x the system clock's",
                t[20],
                t[4],
                t[36],
                t[20] / times[0][20]
            );
        }
    }
}
