//! A burst far larger than `buffer_capacity` into a store that takes records more slowly than
//! they come: what the store cannot take in time goes through the spill files, and nothing is
//! dropped, duplicated or reordered (issue 20 items 2 and 3, issue 21 item 2).

use std::sync::Mutex;
use std::sync::{Arc, atomic::AtomicU64, atomic::Ordering};
use std::time::{Duration, Instant};

use ace_core::errors::PatternRecord;
use ace_core::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, PlaybookEntry, Record,
    Store,
};
use ace_core::{Ace, AceConfig, MemoryStore};

/// A store that takes about 250,000 records/s (SQLite on a small machine takes about 200,000)
/// and keeps, for each metric record, its agent and its number (the duration recorded).
#[derive(Debug, Default)]
struct SlowStore {
    inner: MemoryStore,
    seen: Mutex<Vec<(Arc<str>, f64)>>,
    appends: AtomicU64,
}

impl Store for SlowStore {
    fn backend(&self) -> &'static str {
        "slow"
    }
    fn spill_key(&self) -> Option<String> {
        Some("slow".into())
    }
    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        std::thread::sleep(Duration::from_micros(4) * records.len() as u32);
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

fn counter(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

/// 600,000 records at 1.5 M/s (a tight Python loop's pace; JSON spill files carried about
/// 1.2 M/s, and this test dropped over a hundred thousand records with them) into a store six
/// times slower, with room for 20,000 records in memory. The pace is kept in steps of 1,000
/// records; a recorder that falls behind (descheduled) does not catch up in a burst.
#[test]
fn a_burst_thirty_times_the_buffer_into_a_slow_store_is_stored_whole_and_in_order() {
    const N: usize = 600_000;
    const AGENTS: [&str; 3] = ["agent-0", "agent-1", "agent-2"];
    const RATE: f64 = 1.5e6;
    let dir = tempfile_dir("burst");
    let store = Arc::new(SlowStore::default());
    let config = AceConfig::builder()
        .buffer_capacity(20_000)
        .spill_dir(Some(dir.clone()))
        .intervention_enabled(false)
        .build()
        .unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
    let mut origin = Instant::now();
    for i in 0..N {
        if i % 1_000 == 0 {
            let due = origin + Duration::from_secs_f64(i as f64 / RATE);
            let now = Instant::now();
            if now > due + Duration::from_millis(1) {
                origin += now - due;
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        ace.record_stage(AGENTS[i % 3], "task-1", "execution", i as f64, true).unwrap();
    }
    let burst = ace.stats();
    ace.flush().unwrap();
    let stats = ace.stats();
    let text = ace.metrics_text();
    ace.close().unwrap();
    assert_eq!(burst.dropped, 0, "records dropped during the burst: {burst:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(counter(&text, "ace_records_spilled_total") > 0, "the burst went through the spill files: {text}");
    let seen = store.seen.lock().unwrap();
    assert_eq!(seen.len(), N, "every record stored once");
    for (a, agent) in AGENTS.iter().enumerate() {
        let numbers: Vec<usize> = seen.iter().filter(|(x, _)| &**x == *agent).map(|(_, n)| *n as usize).collect();
        let expected: Vec<usize> = (a..N).step_by(3).collect();
        assert!(numbers == expected, "{agent}: stored out of order, twice, or not at all");
    }
    let left: Vec<_> =
        std::fs::read_dir(&dir).unwrap().flatten().flat_map(|d| std::fs::read_dir(d.path()).unwrap()).collect();
    assert!(left.is_empty(), "no spill file is left once flushed: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
