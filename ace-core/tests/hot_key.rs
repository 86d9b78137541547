//! One busy (agent, stage) against the record buffer: the shards share their room, and one key
//! can use all of `buffer_capacity`, however fast it records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, PlaybookEntry, Record,
    Store,
};
use ace_core::{Ace, AceConfig, MemoryStore};

/// A memory store whose writes wait until the gate is opened, counting the metric records it
/// was given (the inner store keeps only its newest).
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    open: Mutex<bool>,
    opened: Condvar,
    metrics: AtomicU64,
}

impl GatedStore {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Store for GatedStore {
    fn backend(&self) -> &'static str {
        "gated"
    }
    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        let n = records.iter().filter(|r| matches!(r, Record::Metric(_))).count();
        self.metrics.fetch_add(n as u64, Ordering::SeqCst);
        self.inner.append(records)
    }
    fn save_baselines(&self, b: &[BaselineRecord]) -> ace_core::Result<()> {
        self.inner.save_baselines(b)
    }
    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        self.inner.load_baselines()
    }
    fn query_metrics(&self, q: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        self.inner.query_metrics(q)
    }
    fn count_metrics(&self) -> ace_core::Result<u64> {
        self.inner.count_metrics()
    }
    fn query_errors(&self, q: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        self.inner.query_errors(q)
    }
    fn save_patterns(&self, p: &[PatternRecord]) -> ace_core::Result<()> {
        self.inner.save_patterns(p)
    }
    fn load_patterns(&self) -> ace_core::Result<Vec<PatternRecord>> {
        self.inner.load_patterns()
    }
    fn query_interventions(&self, a: Option<&str>, n: usize) -> ace_core::Result<Vec<InterventionRecord>> {
        self.inner.query_interventions(a, n)
    }
    fn append_playbook(&self, entries: &[PlaybookEntry]) -> ace_core::Result<()> {
        self.inner.append_playbook(entries)
    }
    fn load_playbook(&self, domain: &str) -> ace_core::Result<Vec<PlaybookEntry>> {
        self.inner.load_playbook(domain)
    }
    fn ping(&self) -> ace_core::Result<Duration> {
        self.inner.ping()
    }
}

/// One (agent, stage) recorded from four threads while the writer is held in its first write,
/// so the result does not depend on the scheduler: what the writer drained is in its hands and
/// every other record waits in the shards. A burst exactly as large as `buffer_capacity` fits
/// whole, and the next record is dropped: the room is the capacity, no more and no less. (When
/// the shards had half the capacity, with a fixed reserve each, a hot key could fill about 0.39
/// of it; fixed slices gave it a sixteenth of that half.)
#[test]
fn one_hot_key_from_four_threads_drops_nothing() {
    const THREADS: usize = 4;
    const EACH: usize = 250_000;
    let store = Arc::new(GatedStore::default());
    // No spill directory: a held write keeps the writer from draining the buffers to disk.
    let config = AceConfig::builder()
        .buffer_capacity(THREADS * EACH)
        .spill_dir(None)
        .intervention_enabled(false)
        .build()
        .unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let ace = ace.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    ace.record_stage("agent", &format!("task-{t}-{}", i / 1000), "execution", 0.5, true).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let before = ace.stats();
    ace.record_stage("agent", "task-last", "execution", 0.5, true).unwrap();
    assert_eq!(ace.stats().dropped, 1, "the capacity is full: {:?}", ace.stats());
    store.open();
    ace.flush().unwrap();
    let after = ace.stats();
    assert_eq!(before.recorded, (THREADS * EACH) as u64, "{before:?}");
    assert_eq!(before.dropped, 0, "a hot key lost records: {before:?}");
    assert_eq!(store.metrics.load(Ordering::SeqCst), (THREADS * EACH) as u64, "every record is stored: {after:?}");
    assert_eq!(after.dropped, 1, "{after:?}");
}
