//! Shared bench helpers: a store that discards, so recording is measured without storage, and a
//! second connection that holds a SQLite file locked, so it is measured while the store is slow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ace::errors::PatternRecord;
use ace::store::{BaselineRecord, ErrorQuery, ErrorRecord, MetricQuery, MetricRecord, Record, Store};

/// Counts what it is given and keeps nothing; or, made with [`NullStore::down`], refuses every
/// write like a store that is down (and has a spill key, so the engine spills for it).
#[derive(Debug, Default)]
pub struct NullStore {
    /// Records received.
    pub appended: AtomicU64,
    /// Every write fails.
    pub failing: bool,
    /// Reports a spill key (so the engine may spill and journal for it).
    pub keyed: bool,
}

impl NullStore {
    /// A store that is down.
    #[allow(dead_code)]
    pub fn down() -> Self {
        NullStore { appended: AtomicU64::new(0), failing: true, keyed: true }
    }

    /// A store that works and has a spill key (for durable mode).
    #[allow(dead_code)]
    pub fn keyed() -> Self {
        NullStore { appended: AtomicU64::new(0), failing: false, keyed: true }
    }
}

impl Store for NullStore {
    fn backend(&self) -> &'static str {
        "null"
    }
    fn append(&self, records: &[Record]) -> ace::Result<()> {
        if self.failing {
            return Err(ace::Error::StoreUnavailable { backend: "null", message: "down (bench)".into(), source: None });
        }
        self.appended.fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn spill_key(&self) -> Option<String> {
        self.keyed.then(|| format!("bench-null-{}", std::process::id()))
    }
    fn save_baselines(&self, _: &[BaselineRecord]) -> ace::Result<()> {
        Ok(())
    }
    fn load_baselines(&self) -> ace::Result<Vec<BaselineRecord>> {
        Ok(Vec::new())
    }
    fn query_metrics(&self, _: &MetricQuery) -> ace::Result<Vec<MetricRecord>> {
        Ok(Vec::new())
    }
    fn count_metrics(&self) -> ace::Result<u64> {
        Ok(self.appended.load(Ordering::Relaxed))
    }
    fn query_errors(&self, _: &ErrorQuery) -> ace::Result<Vec<ErrorRecord>> {
        Ok(Vec::new())
    }
    fn save_patterns(&self, _: &[PatternRecord]) -> ace::Result<()> {
        Ok(())
    }
    fn load_patterns(&self) -> ace::Result<Vec<PatternRecord>> {
        Ok(Vec::new())
    }
    fn query_interventions(&self, _: Option<&str>, _: usize) -> ace::Result<Vec<ace::store::InterventionRecord>> {
        Ok(Vec::new())
    }
    fn append_playbook(&self, _: &[ace::store::PlaybookEntry]) -> ace::Result<()> {
        Ok(())
    }
    fn load_playbook(&self, _: &str) -> ace::Result<Vec<ace::store::PlaybookEntry>> {
        Ok(Vec::new())
    }
    fn ping(&self) -> ace::Result<Duration> {
        Ok(Duration::ZERO)
    }
}

// Not every bench that shares this module holds a file locked.
#[allow(dead_code, unused_imports)]
#[path = "../tests/common/sqlite_lock.rs"]
mod sqlite_lock;
#[allow(unused_imports)]
pub use sqlite_lock::hold_exclusive;
