//! Shared bench helpers: a store that discards, so recording is measured without storage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ace::store::{BaselineRecord, MetricQuery, MetricRecord, Record, Store};

/// Counts what it is given and keeps nothing.
#[derive(Debug, Default)]
pub struct NullStore {
    /// Records received.
    pub appended: AtomicU64,
}

impl Store for NullStore {
    fn backend(&self) -> &'static str {
        "null"
    }
    fn append(&self, records: &[Record]) -> ace::Result<()> {
        self.appended.fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
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
    fn ping(&self) -> ace::Result<Duration> {
        Ok(Duration::ZERO)
    }
}
