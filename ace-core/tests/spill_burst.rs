//! A burst far larger than `buffer_capacity` into a store that takes records more slowly than
//! they come: what the store cannot take in time goes through the spill files, and nothing is
//! dropped, duplicated or reordered (issue 20 items 2 and 3, issue 21 item 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, PlaybookEntry, Record,
    Store,
};
use ace_core::{Ace, AceConfig, MemoryStore};

/// A store that takes about 330,000 records/s (SQLite on a small machine takes about 200,000)
/// and keeps, for each metric record, its agent and its number (the duration recorded).
#[derive(Debug, Default)]
struct SlowStore {
    inner: MemoryStore,
    seen: Mutex<Vec<(Arc<str>, f64)>>,
    appends: AtomicU64,
    /// Every write fails (the store is down).
    down: AtomicBool,
    /// Records handed to `append`, counted before it waits.
    received: AtomicU64,
    /// Writes wait while this is set.
    held: Mutex<bool>,
    released: Condvar,
    /// Each save of baselines takes this many milliseconds.
    baseline_ms: AtomicU64,
    /// Saves of baselines begun.
    baseline_saves: AtomicU64,
    /// The writes in the order they came: `a` an append, `b` a save of baselines.
    writes: Mutex<Vec<u8>>,
}

impl SlowStore {
    fn release(&self) {
        *self.held.lock().unwrap() = false;
        self.released.notify_all();
    }
}

impl Store for SlowStore {
    fn backend(&self) -> &'static str {
        "slow"
    }
    fn spill_key(&self) -> Option<String> {
        Some("slow".into())
    }
    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        self.received.fetch_add(records.len() as u64, Ordering::SeqCst);
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.released.wait(held).unwrap();
        }
        drop(held);
        if self.down.load(Ordering::SeqCst) {
            return Err(ace_core::Error::StoreUnavailable { backend: "slow", message: "down".into(), source: None });
        }
        std::thread::sleep(Duration::from_micros(3) * records.len() as u32);
        self.writes.lock().unwrap().push(b'a');
        let mut seen = self.seen.lock().unwrap();
        for r in records {
            if let Record::Metric(m) = r {
                seen.push((m.agent.clone(), m.duration_s.unwrap_or(f64::NAN)));
            }
        }
        self.appends.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn save_baselines(&self, b: &[BaselineRecord]) -> ace_core::Result<()> {
        self.baseline_saves.fetch_add(1, Ordering::SeqCst);
        self.writes.lock().unwrap().push(b'b');
        std::thread::sleep(Duration::from_millis(self.baseline_ms.load(Ordering::SeqCst)));
        self.inner.save_baselines(b)
    }
    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        self.inner.load_baselines()
    }
    fn query_metrics(&self, q: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        self.inner.query_metrics(q)
    }
    fn count_metrics(&self) -> ace_core::Result<u64> {
        Ok(self.seen.lock().unwrap().len() as u64)
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
    fn ping(&self) -> Result<Duration, ace_core::Error> {
        self.inner.ping()
    }
}

/// An engine on `store` with room for `capacity` records in memory and spill files in `dir`.
fn engine(store: &Arc<SlowStore>, capacity: usize, dir: &std::path::Path) -> Ace {
    let config = AceConfig::builder()
        .buffer_capacity(capacity)
        .spill_dir(Some(dir.to_path_buf()))
        .intervention_enabled(false)
        .build()
        .unwrap();
    Ace::builder().config(config).store_arc(store.clone()).build().unwrap()
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

/// 200,000 records from a tight loop into the slow store, with room for 40,000 in memory. The
/// store's first write (of one record) is held until half the burst is recorded, so whatever
/// the machine's pace the writer has to spill meanwhile; then the store takes records more slowly
/// than they come. The recorder pauses whenever the engine holds a fifth of `buffer_capacity` in
/// memory (the buffers, and drains gathered for a spill file; three keys have about 0.4 of it,
/// less the room a drain under way has not yet given back), so that a machine busy with other
/// work cannot make it drop: this test is about what the spill path keeps, not how fast (see
/// `benches/spill.rs` and `ace-py/tests/test_stores.py` for the speed).
#[test]
fn a_burst_far_larger_than_the_buffer_into_a_slow_store_is_stored_whole_and_in_order() {
    const N: usize = 200_000;
    const CAPACITY: usize = 40_000;
    const AGENTS: [&str; 3] = ["agent-0", "agent-1", "agent-2"];
    let dir = tempfile_dir("burst");
    let store = Arc::new(SlowStore::default());
    *store.held.lock().unwrap() = true;
    let ace = engine(&store, CAPACITY, &dir);
    ace.record_stage(AGENTS[0], "task-1", "execution", 0.0, true).unwrap();
    while store.received.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 1..N {
        if i == N / 2 {
            store.release();
        }
        if i % 100 == 0 {
            while ace.stats().buffered >= (CAPACITY / 5) as u64 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        ace.record_stage(AGENTS[i % 3], "task-1", "execution", i as f64, true).unwrap();
    }
    let burst = ace.stats();
    ace.flush().unwrap();
    let stats = ace.stats();
    let text = ace.metrics_text();
    ace.close().unwrap();
    assert_eq!(
        burst.dropped,
        0,
        "records dropped during the burst: {burst:?} {}",
        text.lines().filter(|l| l.contains("dropped")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let spilled = counter(&text, "ace_records_spilled_total");
    assert!(spilled > 0, "the burst went through the spill files: {text}");
    assert_eq!(counter(&text, "ace_records_replayed_total"), spilled, "{text}");
    let seen = store.seen.lock().unwrap();
    assert_eq!(seen.len(), N, "every record stored once");
    for (a, agent) in AGENTS.iter().enumerate() {
        let numbers: Vec<usize> = seen.iter().filter(|(x, _)| &**x == *agent).map(|(_, n)| *n as usize).collect();
        let expected: Vec<usize> = (a..N).step_by(3).collect();
        assert!(numbers == expected, "{agent}: stored out of order, twice, or not at all");
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .flatten()
        .filter(|e| e.path().extension().is_none_or(|x| x != "owner"))
        .collect();
    assert!(left.is_empty(), "no spill file is left once flushed: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Saving a fleet's baselines is long work on the writer thread (most of a second at 10,000
/// agents with SQLite), during which it drained no buffer: the scale bench dropped 22,000-52,000
/// records at each ten-second save. Between the parts of the save the writer now stores what
/// came in meanwhile, so records recorded at a steady pace are neither dropped nor spilled.
#[test]
fn records_recorded_while_baselines_are_saved_are_stored_between_its_parts() {
    const CAPACITY: usize = 20_000;
    const AGENTS: usize = 64;
    const PACED: usize = 60_000;
    let dir = tempfile_dir("baselines");
    let store = Arc::new(SlowStore::default());
    let ace = Arc::new(engine(&store, CAPACITY, &dir));
    // Baselines in every part of the table, then a save (forced by a flush) of 50 ms a part.
    for a in 0..AGENTS {
        ace.record_stage(&format!("agent-{a}"), "task-1", "execution", 0.0, true).unwrap();
    }
    ace.flush().unwrap();
    store.baseline_ms.store(50, Ordering::SeqCst);
    let saves = store.baseline_saves.load(Ordering::SeqCst);
    let mark = store.writes.lock().unwrap().len();
    for a in 0..AGENTS {
        ace.record_stage(&format!("agent-{a}"), "task-1", "execution", 0.0, true).unwrap();
    }
    let flushing = {
        let ace = ace.clone();
        std::thread::spawn(move || ace.flush())
    };
    while store.baseline_saves.load(Ordering::SeqCst) == saves {
        std::thread::sleep(Duration::from_millis(1));
    }
    // 100 records a millisecond, about 100,000/s, while the save runs (three times the room of
    // the buffers over its parts).
    for i in 0..PACED {
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        ace.record_stage(&format!("agent-{}", i % AGENTS), "task-1", "execution", 1.0, true).unwrap();
    }
    flushing.join().unwrap().unwrap();
    let writes = store.writes.lock().unwrap()[mark..].to_vec();
    let parts = store.baseline_saves.load(Ordering::SeqCst) - saves;
    store.baseline_ms.store(0, Ordering::SeqCst);
    ace.flush().unwrap();
    let stats = ace.stats();
    let text = ace.metrics_text();
    assert!(parts >= 8, "the save came in parts: {parts}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(counter(&text, "ace_records_spilled_total"), 0, "stored, not spilled: {text}");
    // Appends between the save's parts: after its first part, before its last.
    let first = writes.iter().position(|w| *w == b'b').unwrap();
    let last = writes.iter().rposition(|w| *w == b'b').unwrap();
    let between = writes[first..last].iter().filter(|w| **w == b'a').count();
    assert!(between >= 4, "records stored between the parts of the save: {}", String::from_utf8_lossy(&writes));
    assert_eq!(store.seen.lock().unwrap().len(), 2 * AGENTS + PACED, "every record stored once");
    drop(ace);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Spill files left by the previous version (JSON Lines) are stored after an upgrade, in order
/// with the binary files written since.
#[test]
fn json_lines_spill_files_of_the_previous_version_are_stored_in_order_after_an_upgrade() {
    let dir = tempfile_dir("upgrade");
    let store = Arc::new(SlowStore::default());
    store.down.store(true, Ordering::SeqCst);
    let config = AceConfig::builder().spill_dir(Some(dir.clone())).intervention_enabled(false).build().unwrap();
    let first = Ace::builder().config(config.clone()).store_arc(store.clone()).build().unwrap();
    for i in 10..20 {
        first.record_stage("agent-1", "task-1", "execution", f64::from(i), true).unwrap();
    }
    assert!(first.flush().is_err(), "the store is down");
    first.close().unwrap_or_default();
    let spill = std::fs::read_dir(&dir).unwrap().flatten().next().unwrap().path();
    // Less the engine's owner lock file (`{tag}.owner`), which goes when the engine does.
    let binary: Vec<_> = std::fs::read_dir(&spill)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|x| x != "owner"))
        .collect();
    assert!(!binary.is_empty() && binary.iter().all(|p| p.extension().is_some_and(|x| x == "spill")), "{binary:?}");
    // The previous version's file, older than the engine's (its name sorts first), as it wrote
    // it: one JSON object a line.
    let old: String = (0..10)
        .map(|i| {
            let r = Record::Metric(MetricRecord {
                ts: ace_core::Timestamp::from_micros(i),
                agent: Arc::from("agent-1"),
                task: Arc::from("task-1"),
                stage: Arc::from("execution"),
                duration_s: Some(i as f64),
                success: Some(true),
                metrics: Vec::new(),
            });
            serde_json::to_string(&r).unwrap() + "\n"
        })
        .collect();
    std::fs::write(spill.join(format!("{:020}-1-00000001.jsonl", 1)), old).unwrap();

    store.down.store(false, Ordering::SeqCst);
    let second = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    second.flush().unwrap();
    second.close().unwrap();
    let seen: Vec<f64> = store.seen.lock().unwrap().iter().map(|(_, n)| *n).collect();
    assert_eq!(seen, (0..20).map(f64::from).collect::<Vec<_>>(), "old records first, each once");
    // The engines gone, so is their owner lock file.
    drop((first, second));
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0, "every file stored and removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
