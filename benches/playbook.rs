//! Playbooks with the built-in embedder: retrieval at 1,000, 10,000 and 100,000 bullets; merge of
//! 1,000 insights into 10,000 bullets; de-dup detection of 10,000 insights against 10,000
//! bullets. Targets (issue 6): retrieval p95 <= 1 ms at 10,000 bullets; merge of 1,000 into
//! 10,000 <= 50 ms. The bench prints retrieval percentiles and memory per bullet first.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live bytes: memory per bullet is measured, not guessed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

use ace::playbook::{Insight, Stage, Trust};
use ace::{Ace, MemoryStore};
use criterion::{Criterion, criterion_group, criterion_main};

const WORDS: &[&str] = &[
    "booking",
    "fare",
    "refund",
    "passenger",
    "baggage",
    "seat",
    "upgrade",
    "cancel",
    "change",
    "flight",
    "payment",
    "card",
    "gift",
    "certificate",
    "insurance",
    "policy",
    "membership",
    "gold",
    "silver",
    "basic",
    "economy",
    "business",
    "cabin",
    "origin",
    "destination",
    "date",
    "total",
    "price",
    "verify",
    "confirm",
    "user",
    "agent",
    "tool",
    "search",
    "reservation",
    "id",
    "segment",
    "return",
    "one",
    "way",
];

/// A bullet-like sentence, different for each `i`, from a fixed vocabulary.
fn sentence(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut words = Vec::new();
    for _ in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        words.push(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    format!("{} (rule {i})", words.join(" "))
}

fn export(n: u64) -> String {
    let bullets: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("str-{i:05}"), "section": "strategies", "content": sentence(i),
                "helpful": 5, "harmful": 0, "neutral": 0, "injected": 0, "reinforced": 0,
                "stage": "prod", "created_at": 0, "updated_at": 0, "provenance": null
            })
        })
        .collect();
    serde_json::json!({ "bullets": bullets }).to_string()
}

fn engine_with(n: u64) -> Ace {
    let ace = Ace::builder().store(MemoryStore::new()).build().unwrap();
    ace.playbooks().import_json("bench", &export(n), Trust::Trusted).unwrap();
    ace
}

/// Heap bytes per bullet of a playbook alone (its log goes to a store that keeps nothing).
fn bytes_per_bullet(n: u64) -> f64 {
    let json = export(n);
    let before = LIVE.load(Ordering::Relaxed);
    let ace = Ace::builder().store_arc(Arc::new(support::NullStore::default())).build().unwrap();
    ace.playbooks().import_json("bench", &json, Trust::Trusted).unwrap();
    let after = LIVE.load(Ordering::Relaxed);
    drop(ace);
    (after - before) as f64 / n as f64
}

fn bench_playbook(c: &mut Criterion) {
    let mut g = c.benchmark_group("playbook");
    g.sample_size(20);
    for n in [10_000, 100_000] {
        eprintln!("{n} bullets: {:.0} heap bytes per bullet, its 1 KiB vector included", bytes_per_bullet(n));
    }
    for n in [1_000u64, 10_000, 100_000] {
        let ace = engine_with(n);
        let pb = ace.playbooks();
        let mut times: Vec<f64> = (0..500)
            .map(|q| {
                let query = sentence(1_000_000 + q);
                let t = Instant::now();
                pb.retrieve("bench", &query, 10, Stage::Staging).unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        eprintln!(
            "retrieve top 10 of {n}: p50 {:.0} µs, p95 {:.0} µs, p99 {:.0} µs",
            times[250], times[475], times[495]
        );
        let mut q = 0u64;
        g.bench_function(format!("retrieve_top10_of_{n}"), |b| {
            b.iter(|| {
                q += 1;
                pb.retrieve("bench", &sentence(2_000_000 + q), 10, Stage::Staging).unwrap()
            });
        });
    }
    let insights: Vec<Insight> = (0..1_000u64)
        .map(|i| {
            if i % 4 == 0 {
                Insight::new("strategies", &sentence(i))
            } else {
                Insight::new("strategies", &sentence(50_000 + i))
            }
        })
        .collect();
    g.bench_function("merge_1000_into_10000", |b| {
        b.iter_batched(
            || engine_with(10_000),
            |ace| {
                let report = ace.playbooks().merge("bench", &insights).unwrap();
                assert_eq!(report.merged.len() + report.added.len(), 1_000);
                ace
            },
            criterion::BatchSize::PerIteration,
        );
    });
    let all: Vec<Insight> = (0..10_000u64).map(|i| Insight::new("strategies", &sentence(i))).collect();
    g.sample_size(10);
    g.bench_function("dedup_10000_against_10000", |b| {
        b.iter_batched(
            || engine_with(10_000),
            |ace| {
                let report = ace.playbooks().merge("bench", &all).unwrap();
                assert_eq!(report.merged.len(), 10_000, "every one is a duplicate");
                ace
            },
            criterion::BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench_playbook);
criterion_main!(benches);
