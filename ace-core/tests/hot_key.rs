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
/// was given (the inner store keeps only its newest). With a `key` it stands for a store whose
/// data outlives the process, so the engine spills for it.
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    open: Mutex<bool>,
    opened: Condvar,
    metrics: AtomicU64,
    key: Option<String>,
    /// Says it keeps records in memory (as `MemoryStore` does), though its writes wait.
    in_memory: bool,
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
    fn spill_key(&self) -> Option<String> {
        self.key.clone()
    }
    fn takes_records_in_memory(&self) -> bool {
        self.in_memory
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

/// Counter `name{reason=...}` in the engine's metrics text (0 when absent).
fn dropped_for(ace: &Ace, reason: &str) -> u64 {
    let prefix = format!("ace_records_dropped_total{{reason=\"{reason}\"}} ");
    ace.metrics_text().lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
}

/// Records `each` stages of one (agent, stage) from each of `threads` threads, as fast as they go.
fn hammer(ace: &Ace, threads: usize, each: usize) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    ace.record_stage("agent-1", "task-1", "planning", 0.5, true).unwrap();
                }
            });
        }
    });
}

/// Records `THREADS x EACH` stages of one key while the store's first write is held, with a
/// buffer of `capacity` and a spill budget of `spill_max_bytes`; returns the engine, the store
/// (still gated) and the spill directory.
fn hot_key_past_capacity(
    capacity: usize,
    spill_max_bytes: u64,
    threads: usize,
    each: usize,
) -> (Ace, Arc<GatedStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(GatedStore { key: Some("gated-test".into()), ..GatedStore::default() });
    let config = AceConfig::builder()
        .buffer_capacity(capacity)
        .batch_size(100)
        .spill_dir(Some(dir.path().to_path_buf()))
        .spill_max_bytes(spill_max_bytes)
        .intervention_enabled(false)
        .build()
        .unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    hammer(&ace, threads, each);
    (ace, store, dir)
}

/// Far past the capacity, as fast as four threads call, while the store does not answer: the
/// records that find the buffer full go to the spill directory's overflow segment, written by
/// the recording threads themselves, and are all stored once the store answers. Without the
/// overflow every record past the capacity (and past what the writer spills meanwhile) is
/// dropped.
#[test]
fn past_the_capacity_a_hot_key_overflows_to_disk_and_loses_nothing() {
    const THREADS: usize = 4;
    const EACH: usize = 100_000;
    let (ace, store, dir) = hot_key_past_capacity(2_000, 1 << 30, THREADS, EACH);
    let before = ace.stats();
    assert_eq!(before.recorded, (THREADS * EACH) as u64, "{before:?}");
    assert_eq!(before.dropped, 0, "a hot key lost records: {before:?}");
    let waiting = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(waiting > 0, "records past the capacity wait on disk");
    store.open();
    ace.flush().unwrap();
    let after = ace.stats();
    assert_eq!(store.metrics.load(Ordering::SeqCst), (THREADS * EACH) as u64, "every record is stored: {after:?}");
    assert_eq!(after.dropped, 0, "{after:?}");
    ace.close().unwrap();
    // The engine gone, so is its owner lock file (`{tag}.owner`).
    drop(ace);
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "every spill file is stored and deleted: {left:?}");
}

/// Past the spill budget, records are dropped and counted (`spill_full`, in `stats().dropped`),
/// and what was taken is stored: recorded = stored + dropped.
#[test]
fn past_the_spill_budget_the_overflow_drops_and_counts() {
    const EACH: usize = 200_000;
    // About 40 bytes a record: room for some 25,000 records on disk.
    let (ace, store, _dir) = hot_key_past_capacity(2_000, 1 << 20, 1, EACH);
    let before = ace.stats();
    assert!(before.dropped > 0, "the budget is far smaller than the records: {before:?}");
    store.open();
    ace.flush().unwrap();
    let after = ace.stats();
    let stored = store.metrics.load(Ordering::SeqCst);
    assert_eq!(stored + after.dropped, EACH as u64, "nothing is lost uncounted: stored {stored}, {after:?}");
    assert_eq!(dropped_for(&ace, "spill_full") + dropped_for(&ace, "buffer_full"), after.dropped);
    assert!(dropped_for(&ace, "spill_full") > 0);
}

/// The in-memory default: one key from four threads, far past a small buffer. With no spill
/// directory, a caller that finds the buffer full waits (a few milliseconds at most) for the
/// writer to move records into the store instead of dropping its own; every record is stored.
/// Without the wait, four threads outrun a writer that drains every few milliseconds and most
/// records past the first 2,000 are dropped.
#[test]
fn past_the_capacity_a_hot_key_into_memory_loses_nothing() {
    const THREADS: usize = 4;
    const EACH: usize = 100_000;
    let store = Arc::new(MemoryStore::with_max_records(THREADS * EACH));
    let config =
        AceConfig::builder().buffer_capacity(2_000).batch_size(100).intervention_enabled(false).build().unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    hammer(&ace, THREADS, EACH);
    ace.flush().unwrap();
    let stats = ace.stats();
    assert_eq!(stats.recorded, (THREADS * EACH) as u64, "{stats:?}");
    assert_eq!(stats.dropped, 0, "a hot key lost records: {stats:?}");
    assert_eq!(store.count_metrics().unwrap(), (THREADS * EACH) as u64, "every record is stored");
}

/// A writer held up in a write (a store that says it keeps records in memory, but whose write
/// waits): callers wait for room once (`STALL`), then drop and count without waiting while the
/// writer stays stuck, so 50,000 calls end (a wait each would take hours); after the write
/// goes through, recorded = stored + dropped.
#[test]
fn a_stuck_writer_is_waited_for_once_then_records_are_dropped_and_counted() {
    const EACH: usize = 50_000;
    let store = Arc::new(GatedStore { in_memory: true, ..GatedStore::default() });
    let config =
        AceConfig::builder().buffer_capacity(2_000).batch_size(100).intervention_enabled(false).build().unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    for _ in 0..EACH {
        ace.record_stage("agent-1", "task-1", "planning", 0.5, true).unwrap();
    }
    let before = ace.stats();
    assert!(before.dropped > 0, "the writer was stuck: {before:?}");
    store.open();
    ace.flush().unwrap();
    let stored = store.metrics.load(Ordering::SeqCst);
    assert_eq!(stored + ace.stats().dropped, EACH as u64, "nothing is lost uncounted: stored {stored}");
    assert_eq!(dropped_for(&ace, "buffer_full"), ace.stats().dropped);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
