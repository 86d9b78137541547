//! Recording errors: mining, windows, signals and buffering, per error.
//!
//! Target: p99 <= 2 µs per error, flat from 10 to 1,000 errors per task (the system ace replaces
//! re-scanned every error of a task on each new one). Criterion times the mean per error at 10,
//! 100 and 1,000 errors per task; before it runs, the bench prints p50/p99/p99.9 of single calls
//! timed one by one (`Instant` adds about 20-30 ns to each).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ace::{Ace, AceConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../ace-core/examples/common/error_mix.rs"]
mod error_mix;
use error_mix::message;

fn engine() -> Ace {
    let config = AceConfig::builder().buffer_capacity(2_000_000).batch_size(1000).build().unwrap();
    Ace::builder().config(config).store_arc(Arc::new(support::NullStore::default())).build().unwrap()
}

/// Records `per_task` errors into each task, ending it afterwards; `n` errors in all. `each`
/// gets the time of each call and whether it raised a signal.
fn run(ace: &Ace, per_task: usize, n: usize, offset: usize, mut each: impl FnMut(Duration, bool)) {
    let messages: Vec<(&str, String)> = (0..257).map(message).collect();
    for i in 0..n {
        let k = offset + i;
        let task = format!("task-{}", k / per_task);
        let (kind, msg) = &messages[k % messages.len()];
        let agent = ["agent-1", "agent-2", "agent-3", "agent-4"][(k / per_task) % 4];
        let started = Instant::now();
        let report = std::hint::black_box(ace.record_error(agent, &task, "execution", kind, msg, None).unwrap());
        each(started.elapsed(), !report.signals.is_empty());
        if (k + 1).is_multiple_of(per_task) {
            ace.end_task(agent, &task).unwrap();
        }
    }
}

fn percentiles() {
    for per_task in [10, 100, 1000] {
        let ace = engine();
        run(&ace, per_task, 20_000, 0, |_, _| {});
        let mut all = Vec::with_capacity(200_000);
        let mut quiet = Vec::with_capacity(200_000);
        run(&ace, per_task, 200_000, 20_000, |d, signalled| {
            all.push(d);
            if !signalled {
                quiet.push(d);
            }
        });
        for (name, times) in [("all calls", &mut all), ("calls without a signal", &mut quiet)] {
            times.sort();
            let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
            eprintln!(
                "record_error {per_task:>4} per task, {name} ({}): p50 {:?}  p99 {:?}  p99.9 {:?}",
                times.len(),
                p(0.50),
                p(0.99),
                p(0.999)
            );
        }
    }
}

fn bench_errors(c: &mut Criterion) {
    percentiles();
    let mut g = c.benchmark_group("record_error");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for per_task in [10usize, 100, 1000] {
        let ace = engine();
        run(&ace, per_task, 10_000, 0, |_, _| {});
        let messages: Vec<(&str, String)> = (0..257).map(message).collect();
        let mut k = 10_000usize;
        g.bench_function(format!("{per_task}_per_task"), |b| {
            b.iter(|| {
                k += 1;
                let task = format!("task-{}", k / per_task);
                let (kind, msg) = &messages[k % messages.len()];
                let r = ace.record_error("agent-1", &task, "execution", kind, msg, None).unwrap();
                if (k + 1).is_multiple_of(per_task) {
                    ace.end_task("agent-1", &task).unwrap();
                }
                r
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_errors);
criterion_main!(benches);
