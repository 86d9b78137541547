//! Circuit breakers: a call through a closed breaker (acquire and complete), a rejection by an
//! open one, and both cores through one breaker. Targets (issue 5): closed call <= 15 ns,
//! rejection <= 30 ns single-threaded. Peers (the Python breakers agents use today) cost 0.6 to
//! 1.4 µs per call (see docs/breakers.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ace::breaker::{BreakerConfig, CircuitBreaker, Window};
use ace::{ManualClock, SystemClock, Timestamp};
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn bench_breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    let closed = CircuitBreaker::new("closed", BreakerConfig::default(), Arc::new(SystemClock)).unwrap();
    g.bench_function("closed_call_default", |b| {
        b.iter(|| black_box(&closed).try_acquire().unwrap().success());
    });
    let counted = CircuitBreaker::new(
        "count",
        BreakerConfig::builder().window(Window::Count(100)).build().unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    g.bench_function("closed_call_count_window", |b| {
        b.iter(|| black_box(&counted).try_acquire().unwrap().success());
    });
    let open = CircuitBreaker::new("open", BreakerConfig::default(), Arc::new(SystemClock)).unwrap();
    open.open_for(Duration::from_secs(1_000_000));
    g.bench_function("rejection_open", |b| {
        b.iter(|| black_box(&open).try_acquire().is_err());
    });
    let manual =
        CircuitBreaker::new("manual", BreakerConfig::default(), Arc::new(ManualClock::new(Timestamp::EPOCH))).unwrap();
    manual.force_open();
    g.bench_function("rejection_forced_open", |b| {
        b.iter(|| black_box(&manual).try_acquire().is_err());
    });
    // For reading the figures above: what one read of the engine's system clock costs here.
    let clock = SystemClock;
    g.bench_function("clock_read", |b| b.iter(|| ace::Clock::now(black_box(&clock))));
    g.bench_function("instant_now", |b| b.iter(Instant::now));
    let shared = Arc::new(CircuitBreaker::new("shared", BreakerConfig::default(), Arc::new(SystemClock)).unwrap());
    g.bench_function("closed_call_2_threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let shared = shared.clone();
                    s.spawn(move || {
                        for _ in 0..iters {
                            black_box(&*shared).try_acquire().unwrap().success();
                        }
                    });
                }
            });
            // Wall time per call across both threads.
            started.elapsed() / 2
        });
    });
    g.finish();
}

criterion_group!(benches, bench_breaker);
criterion_main!(benches);
