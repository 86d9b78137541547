//! Spilling: what the writer does with the records the store cannot take in time.
//!
//! `spill/write_12500` writes one file of 12,500 stage records (an eighth of a
//! `buffer_capacity` of 100,000, the drain a slow write spills), synced, as the writer does;
//! `spill/replay_12500` reads such a file back and deletes it, as a replay does before the
//! records go to the store. `spill/encode_12500` is the writer's CPU cost of a file alone (the
//! rest of `write_12500` is the `fsync`, about 4 ms whatever the size on the CI machine), next to
//! `spill/encode_json_12500`, the JSON Lines the spill files were before. Building the records
//! is not timed.
//!
//! `cargo bench --bench spill`

use std::sync::Arc;
use std::time::Duration;

use ace::store::{MetricRecord, Record};
use ace::{SpillDir, Timestamp};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 12_500;

/// What a Python loop of `record_stage("agent-1", "task-1", "planning", 0.5, True)` leaves.
fn records() -> Vec<Record> {
    let (agent, task, stage): (Arc<str>, Arc<str>, Arc<str>) =
        (Arc::from("agent-1"), Arc::from("task-1"), Arc::from("planning"));
    (0..N)
        .map(|i| {
            Record::Metric(MetricRecord {
                ts: Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
                agent: agent.clone(),
                task: task.clone(),
                stage: stage.clone(),
                duration_s: Some(0.5),
                success: Some(true),
                metrics: Vec::new(),
            })
        })
        .collect()
}

fn bench_spill(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut spill = SpillDir::open(dir.path()).unwrap();
    let mut g = c.benchmark_group("spill");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    let batch = records();
    g.bench_function("encode_12500", |b| b.iter(|| SpillDir::encode(&batch).unwrap()));
    g.bench_function("encode_json_12500", |b| {
        b.iter(|| {
            let mut text = Vec::with_capacity(batch.len() * 200);
            for r in &batch {
                serde_json::to_writer(&mut text, r).unwrap();
                text.push(b'\n');
            }
            text.len()
        });
    });
    g.bench_function("write_12500", |b| {
        b.iter(|| spill.write(&batch).unwrap());
        spill.replay().unwrap();
    });
    // A second handle on the directory reads what the first writes (as another engine could).
    let mut reader = SpillDir::open(dir.path()).unwrap();
    g.bench_function("replay_12500", |b| {
        b.iter_batched(
            || spill.write(&batch).unwrap(),
            |_| assert_eq!(reader.replay().unwrap().len(), N),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench_spill);
criterion_main!(benches);
