//! Deciding an intervention: signals in, at most one intervention out (rules, gates, Thompson
//! sampling). Target (issue 4): p99 <= 10 µs in process. Criterion reports the mean per
//! decision; the bench prints p50/p99 of single decisions first.

use std::time::{Duration, Instant};

use ace::intervene::{Decider, DecisionConfig};
use ace::{Evidence, Severity, Signal, SignalKind, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn signal(k: usize) -> Signal {
    Signal {
        kind: SignalKind::ErrorAccumulation,
        severity: Severity::Medium,
        at: Timestamp::from_micros(0),
        agent: "agent-1".into(),
        task: Some(format!("task-{k}").into()),
        stage: Some("execution".into()),
        message: "agent-1 execution: ToolError \"search tool returned HTTP <*>\" occurred 3 times within 300s".into(),
        evidence: Evidence::ErrorPattern {
            pattern_id: ace::PatternId(k as u64 % 7),
            error_kind: "ToolError".into(),
            template: "search tool returned HTTP <*>".into(),
            occurrences: 3,
            window_s: 300.0,
            scope: ace::ErrorScope::Task,
            severity: Severity::Medium,
            previous_severity: Severity::Medium,
        },
    }
}

fn decider() -> Decider {
    Decider::new(DecisionConfig { enabled: true, cooldown: Duration::ZERO, max_per_task: 5, seed: 1, min_failure: 0.5 })
}

fn bench_decide(c: &mut Criterion) {
    let signals: Vec<Signal> = (0..1024).map(signal).collect();
    let tasks: Vec<String> = (0..1024).map(|k| format!("task-{k}")).collect();
    {
        let d = decider();
        let mut times = Vec::with_capacity(200_000);
        for k in 0..200_000usize {
            let started = Instant::now();
            let i = std::hint::black_box(d.decide(
                Timestamp::from_micros(k as i64),
                "agent-1",
                &tasks[k % 1024],
                &signals[k % 1024..=k % 1024],
            ));
            times.push(started.elapsed());
            if let Some(i) = i {
                d.report_outcome(i.id, k % 3 == 0).unwrap();
            }
            if k % 1024 == 1023 {
                for t in &tasks {
                    d.end_task("agent-1", t, None);
                }
            }
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        eprintln!("decide: p50 {:?}  p99 {:?}  p99.9 {:?}", p(0.5), p(0.99), p(0.999));
    }
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    let d = decider();
    let mut k = 0usize;
    g.bench_function("one_signal", |b| {
        b.iter(|| {
            k += 1;
            let task = &tasks[k % 1024];
            let i = d.decide(Timestamp::from_micros(k as i64), "agent-1", task, &signals[k % 1024..=k % 1024]);
            d.end_task("agent-1", task, None);
            i
        });
    });
    g.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
