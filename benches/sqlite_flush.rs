//! Writing batches of metric records into the embedded SQLite store and into PostgreSQL.
//!
//! Targets: >= 300,000 rows/s sustained into SQLite, >= 200,000 into PostgreSQL (issue 7; the
//! PostgreSQL bench uses the server at 127.0.0.1:5432, database `test`, in a schema of its own,
//! or `ACE_TEST_POSTGRES_URL`). `append_10k` calls the store directly with a batch of
//! 10,000 stage records (three named metrics each); `engine_record_and_flush_10k` goes through
//! the engine: record 10,000 events, then `flush()` waits until they are on disk.

use std::sync::Arc;
use std::time::Duration;

use ace::store::{MetricRecord, Record, Store};
use ace::{Ace, AceConfig, PgOptions, PgStore, SqliteStore, Timestamp};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 10_000;

fn batch(offset: usize) -> Vec<Record> {
    let agents: Vec<Arc<str>> = (0..100).map(|i| Arc::from(format!("agent-{i:04}"))).collect();
    let names: [Arc<str>; 3] = [Arc::from("tokens_in"), Arc::from("tokens_out"), Arc::from("cost_usd")];
    let stage: Arc<str> = Arc::from("execution");
    (0..BATCH)
        .map(|i| {
            let n = offset + i;
            Record::Metric(MetricRecord {
                ts: Timestamp::from_micros(1_700_000_000_000_000 + n as i64),
                agent: agents[n % 100].clone(),
                task: Arc::from(format!("task-{}", n / 4)),
                stage: stage.clone(),
                duration_s: Some(1.0 + (n % 13) as f64 * 0.1),
                success: Some(!n.is_multiple_of(31)),
                metrics: vec![
                    (names[0].clone(), 800.0 + (n % 17) as f64),
                    (names[1].clone(), 200.0 + (n % 11) as f64),
                    (names[2].clone(), 0.0042),
                ],
            })
        })
        .collect()
}

fn bench_sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("sqlite");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));

    let store = SqliteStore::open(dir.path().join("bench-append.db")).unwrap();
    // Timestamps move forward from batch to batch, as they do in a running fleet; building the
    // batch is not timed.
    let mut k = 0usize;
    g.bench_function("append_10k", |b| {
        b.iter_batched(
            || {
                k += 1;
                batch(k * BATCH)
            },
            |records| store.append(&records).unwrap(),
            BatchSize::PerIteration,
        );
    });

    let config = AceConfig::builder().buffer_capacity(1_000_000).batch_size(1000).build().unwrap();
    let ace = Ace::builder()
        .config(config)
        .store(SqliteStore::open(dir.path().join("bench-engine.db")).unwrap())
        .build()
        .unwrap();
    let agents: Vec<String> = (0..100).map(|i| format!("agent-{i:04}")).collect();
    let mut n = 0usize;
    g.bench_function("engine_record_and_flush_10k", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                n += 1;
                ace.record_stage_with(&agents[n % 100], "task-1", "execution", 1.0, true, &[("tokens_in", 800.0)])
                    .unwrap();
            }
            ace.flush().unwrap();
        });
    });
    g.finish();
    ace.close().unwrap();
}

fn bench_postgres(c: &mut Criterion) {
    let url = std::env::var("ACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("ace_bench_{}", std::process::id());
    let store = match PgStore::connect(&url, PgOptions::default().schema(schema.clone()).max_connections(4)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("postgres bench skipped: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("postgres");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    let mut k = 0usize;
    g.bench_function("append_10k", |b| {
        b.iter_batched(
            || {
                k += 1;
                batch(k * BATCH)
            },
            |records| store.append(&records).unwrap(),
            BatchSize::PerIteration,
        );
    });
    g.finish();
    store.drop_schema(&schema).unwrap();
}

criterion_group!(benches, bench_sqlite, bench_postgres);
criterion_main!(benches);
