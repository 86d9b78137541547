//! Automatic retention (`ACE_RETAIN_DAYS`): the writer deletes the store's old metric, error
//! and intervention records, on start and then every [`RETAIN_EVERY`], a chunk of
//! [`ROWS_PER_TURN`] at a time (`Store::delete_before`) between its writes, so a pass through a
//! large backlog never holds the store, or the writer, for long.
//!
//! Time is the engine's clock: the cutoff, and when the next pass is due.

use std::sync::Arc;
use std::time::Duration;

use super::{Periodic, PersistSeries};
use crate::clock::{Clock, Timestamp};
use crate::event::retain_cutoff;
use crate::store::Store;

/// How often a pass starts.
pub(crate) const RETAIN_EVERY: Duration = Duration::from_secs(3600);
/// Rows one turn of the writer's loop deletes at most.
pub(crate) const ROWS_PER_TURN: u64 = 10_000;

/// Deletes the records older than `days` days, a chunk a turn.
pub(crate) struct Retention {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    days: u32,
    /// `ace_records_retention_deleted_total`, counted as each chunk goes.
    series: PersistSeries,
    /// When the last pass ended (`None`: none yet, so the first turn starts one).
    last: Option<Timestamp>,
    /// The cutoff of the pass under way, and what it has deleted so far.
    pass: Option<(Timestamp, u64)>,
}

impl Retention {
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, days: u32, series: PersistSeries) -> Self {
        Retention { store, clock, days, series, last: None, pass: None }
    }

    fn end(&mut self, now: Timestamp) {
        self.pass = None;
        self.last = Some(now);
    }
}

impl Periodic for Retention {
    fn tick(&mut self) {
        let now = self.clock.now();
        let (cutoff, deleted) = match self.pass {
            Some(pass) => pass,
            None if self.last.is_some_and(|last| now.since(last) < RETAIN_EVERY) => return,
            None => match retain_cutoff(self.days, now) {
                Ok(cutoff) => (cutoff, 0),
                // The configuration was validated: not reached.
                Err(_) => return self.end(now),
            },
        };
        let deleted_now = self.store.delete_before(cutoff, ROWS_PER_TURN);
        if let Ok(n) = deleted_now {
            self.series.retention_deleted.inc_by(n);
        }
        match deleted_now {
            Ok(n) if n >= ROWS_PER_TURN => self.pass = Some((cutoff, deleted + n)),
            Ok(n) => {
                let deleted = deleted + n;
                tracing::info!(store = self.store.backend(), days = self.days, deleted, "old records deleted");
                self.end(now);
            }
            Err(e) => {
                tracing::warn!(store = self.store.backend(), error = %e, retry_in = ?RETAIN_EVERY, "cannot delete old records");
                self.end(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::record::{MetricRecord, Record};
    use crate::store::MemoryStore;

    const DAY: Duration = Duration::from_secs(86_400);

    fn metric(ts: Timestamp) -> Record {
        Record::Metric(MetricRecord {
            ts,
            agent: "a".into(),
            task: "t".into(),
            stage: "planning".into(),
            duration_s: None,
            success: None,
            metrics: vec![],
        })
    }

    /// A pass starts at once and deletes a chunk a turn until nothing older is left; the next
    /// starts an hour of engine time after it ended.
    #[test]
    fn passes_go_a_chunk_a_turn_and_come_back_hourly() {
        let start = Timestamp::from_micros(1_700_000_000_000_000);
        let clock = Arc::new(ManualClock::new(start));
        let store = MemoryStore::with_max_records(usize::MAX);
        let old: Vec<Record> =
            (0..25_000).map(|i| metric(start.minus(3 * DAY).plus(Duration::from_micros(i)))).collect();
        store.append(&old).unwrap();
        store.append(&[metric(start)]).unwrap();
        let series = PersistSeries::default();
        let mut retention = Retention::new(Arc::new(store.clone()), clock.clone(), 2, series.clone());
        retention.tick();
        assert_eq!(store.count_metrics().unwrap(), 15_001, "one chunk a turn");
        assert_eq!(series.retention_deleted.get(), 10_000, "counted as each chunk goes");
        retention.tick();
        retention.tick();
        assert_eq!(store.count_metrics().unwrap(), 1);
        assert_eq!(series.retention_deleted.get(), 25_000);
        assert!(retention.pass.is_none(), "the pass ended on a short chunk");
        // A late record as old waits for the next pass, an hour on.
        store.append(&[metric(start.minus(3 * DAY))]).unwrap();
        clock.advance(RETAIN_EVERY - Duration::from_secs(1));
        retention.tick();
        assert_eq!(store.count_metrics().unwrap(), 2);
        clock.advance(Duration::from_secs(1));
        retention.tick();
        assert_eq!(store.count_metrics().unwrap(), 1);
    }

    /// A store that keeps everything says so once an hour, not every turn.
    #[test]
    fn a_store_that_cannot_delete_is_retried_an_hour_later() {
        #[derive(Debug)]
        struct Keeps(MemoryStore, std::sync::atomic::AtomicUsize);
        impl Store for Keeps {
            fn backend(&self) -> &'static str {
                "keeps"
            }
            fn append(&self, r: &[Record]) -> crate::Result<()> {
                self.0.append(r)
            }
            fn save_baselines(&self, b: &[crate::record::BaselineRecord]) -> crate::Result<()> {
                self.0.save_baselines(b)
            }
            fn load_baselines(&self) -> crate::Result<Vec<crate::record::BaselineRecord>> {
                self.0.load_baselines()
            }
            fn query_metrics(&self, q: &crate::store::MetricQuery) -> crate::Result<Vec<MetricRecord>> {
                self.0.query_metrics(q)
            }
            fn count_metrics(&self) -> crate::Result<u64> {
                self.0.count_metrics()
            }
            fn query_errors(&self, q: &crate::store::ErrorQuery) -> crate::Result<Vec<crate::record::ErrorRecord>> {
                self.0.query_errors(q)
            }
            fn save_patterns(&self, p: &[crate::record::PatternRecord]) -> crate::Result<()> {
                self.0.save_patterns(p)
            }
            fn load_patterns(&self) -> crate::Result<Vec<crate::record::PatternRecord>> {
                self.0.load_patterns()
            }
            fn query_interventions(
                &self,
                agent: Option<&str>,
                limit: usize,
            ) -> crate::Result<Vec<crate::record::InterventionRecord>> {
                self.0.query_interventions(agent, limit)
            }
            fn append_playbook(&self, e: &[crate::record::PlaybookEntry]) -> crate::Result<()> {
                self.0.append_playbook(e)
            }
            fn load_playbook(&self, d: &str) -> crate::Result<Vec<crate::record::PlaybookEntry>> {
                self.0.load_playbook(d)
            }
            fn delete_before(&self, cutoff: Timestamp, max_rows: u64) -> crate::Result<u64> {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = (cutoff, max_rows);
                Err(crate::Error::invalid("ACE_RETAIN_DAYS", "keeps everything"))
            }
            fn ping(&self) -> crate::Result<Duration> {
                Ok(Duration::ZERO)
            }
        }
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000)));
        let store = Arc::new(Keeps(MemoryStore::new(), std::sync::atomic::AtomicUsize::new(0)));
        let mut retention = Retention::new(store.clone(), clock.clone(), 30, PersistSeries::default());
        for _ in 0..5 {
            retention.tick();
        }
        assert_eq!(store.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        clock.advance(RETAIN_EVERY);
        retention.tick();
        assert_eq!(store.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
