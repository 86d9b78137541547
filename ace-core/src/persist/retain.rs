//! Automatic retention (`ACE_RETAIN_DAYS`): the store's old metric, error and intervention
//! records are deleted on start and then [`RETAIN_EVERY`] after the last pass ended, a chunk of
//! [`ROWS_PER_CHUNK`] at a time (`Store::delete_before`), so no one statement holds the store for
//! long.
//!
//! The writer's turn only starts a pass and notices its end: the pass runs on a thread of its
//! own (`ace-retain`), because a delete can wait (a SQLite file another process has locked, for
//! up to its busy timeout; the scan that finds the last old errors of a large file) and the
//! writer must go on draining the buffers meanwhile. Closing the engine stops a pass between two
//! chunks.
//!
//! Time is the engine's clock: the cutoff, and when the next pass is due.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Periodic, PersistSeries};
use crate::clock::{Clock, Timestamp};
use crate::error::Result;
use crate::event::retain_cutoff;
use crate::store::Store;

/// How long after a pass ended the next starts.
pub(crate) const RETAIN_EVERY: Duration = Duration::from_secs(3600);
/// Rows one `Store::delete_before` call deletes at most.
pub(crate) const ROWS_PER_CHUNK: u64 = 10_000;

/// Deletes the records older than `days` days, a pass at a time.
pub(crate) struct Retention {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    days: u32,
    /// `ace_records_retention_deleted_total`, counted as each chunk goes.
    series: PersistSeries,
    /// When the last pass ended (`None`: none yet, so the first turn starts one).
    last: Option<Timestamp>,
    /// The pass under way: its thread, and the flag that stops it between chunks.
    pass: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Retention {
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, days: u32, series: PersistSeries) -> Self {
        Retention { store, clock, days, series, last: None, pass: None }
    }

    /// Starts a pass deleting what is older than `cutoff` on its own thread.
    fn start(&mut self, cutoff: Timestamp, now: Timestamp) {
        let stop = Arc::new(AtomicBool::new(false));
        let (store, series, days, flag) = (self.store.clone(), self.series.clone(), self.days, stop.clone());
        let spawned = std::thread::Builder::new()
            .name("ace-retain".into())
            .spawn(move || run_pass(&*store, &series, days, cutoff, &flag));
        match spawned {
            Ok(handle) => self.pass = Some((handle, stop)),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?RETAIN_EVERY, "cannot start a thread to delete old records");
                self.last = Some(now);
            }
        }
    }
}

/// One pass: chunks until one comes back short, a delete fails or `stop` is set.
fn run_pass(store: &dyn Store, series: &PersistSeries, days: u32, cutoff: Timestamp, stop: &AtomicBool) {
    match delete_chunks(store, series, cutoff, stop) {
        Ok(deleted) => tracing::info!(store = store.backend(), days, deleted, "old records deleted"),
        Err(e) => {
            tracing::warn!(store = store.backend(), error = %e, retry_in = ?RETAIN_EVERY, "cannot delete old records");
        }
    }
}

/// Deletes the records older than `cutoff`, [`ROWS_PER_CHUNK`] a call, until a call comes back
/// short or `stop` is set; returns how many went (each chunk counted as it goes).
fn delete_chunks(store: &dyn Store, series: &PersistSeries, cutoff: Timestamp, stop: &AtomicBool) -> Result<u64> {
    let mut deleted = 0;
    while !stop.load(Ordering::Relaxed) {
        let n = store.delete_before(cutoff, ROWS_PER_CHUNK)?;
        series.retention_deleted.inc_by(n);
        deleted += n;
        if n < ROWS_PER_CHUNK {
            break;
        }
    }
    Ok(deleted)
}

/// `Ace::retain`: one pass now, on the caller's thread; the number of records deleted.
pub(crate) fn retain_now(store: &dyn Store, series: &PersistSeries, days: u32, now: Timestamp) -> Result<u64> {
    let cutoff = retain_cutoff(days, now)?;
    delete_chunks(store, series, cutoff, &AtomicBool::new(false))
}

impl Periodic for Retention {
    fn tick(&mut self) {
        let now = self.clock.now();
        if let Some((handle, _)) = &self.pass {
            if !handle.is_finished() {
                return;
            }
            if let Some((handle, _)) = self.pass.take() {
                let _ = handle.join();
            }
            self.last = Some(now);
            return;
        }
        if self.last.is_some_and(|last| now.since(last) < RETAIN_EVERY) {
            return;
        }
        match retain_cutoff(self.days, now) {
            Ok(cutoff) => self.start(cutoff, now),
            // The configuration was validated: not reached.
            Err(_) => self.last = Some(now),
        }
    }

    fn finish(&mut self) {
        if let Some((handle, stop)) = self.pass.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
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

    /// Waits for the pass under way to end, then lets a turn notice it.
    fn wait_for_pass(r: &mut Retention) {
        while r.pass.as_ref().is_some_and(|(h, _)| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        r.tick();
    }

    /// A pass starts at once, on its own thread, and deletes chunk after chunk until nothing
    /// older is left; the next starts an hour of engine time after it ended.
    #[test]
    fn passes_run_beside_the_writer_and_come_back_hourly() {
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
        assert!(retention.pass.is_some(), "the turn started a pass and returned");
        wait_for_pass(&mut retention);
        assert!(retention.pass.is_none(), "the turn noticed the pass's end");
        assert_eq!(store.count_metrics().unwrap(), 1);
        assert_eq!(series.retention_deleted.get(), 25_000, "three chunks counted");
        // A late record as old waits for the next pass, an hour on.
        store.append(&[metric(start.minus(3 * DAY))]).unwrap();
        clock.advance(RETAIN_EVERY - Duration::from_secs(1));
        retention.tick();
        assert!(retention.pass.is_none());
        assert_eq!(store.count_metrics().unwrap(), 2);
        clock.advance(Duration::from_secs(1));
        retention.tick();
        wait_for_pass(&mut retention);
        assert_eq!(store.count_metrics().unwrap(), 1);
        assert_eq!(series.retention_deleted.get(), 25_001);
    }

    /// A memory store whose `delete_before` answers as `answer` says for its `n`-th call.
    #[derive(Debug)]
    struct Scripted {
        inner: MemoryStore,
        calls: std::sync::atomic::AtomicUsize,
        answer: fn(usize) -> crate::Result<u64>,
    }

    impl Scripted {
        fn new(answer: fn(usize) -> crate::Result<u64>) -> Arc<Self> {
            Arc::new(Scripted { inner: MemoryStore::new(), calls: Default::default(), answer })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Store for Scripted {
        fn backend(&self) -> &'static str {
            "scripted"
        }
        fn append(&self, r: &[Record]) -> crate::Result<()> {
            self.inner.append(r)
        }
        fn save_baselines(&self, b: &[crate::record::BaselineRecord]) -> crate::Result<()> {
            self.inner.save_baselines(b)
        }
        fn load_baselines(&self) -> crate::Result<Vec<crate::record::BaselineRecord>> {
            self.inner.load_baselines()
        }
        fn query_metrics(&self, q: &crate::store::MetricQuery) -> crate::Result<Vec<MetricRecord>> {
            self.inner.query_metrics(q)
        }
        fn count_metrics(&self) -> crate::Result<u64> {
            self.inner.count_metrics()
        }
        fn query_errors(&self, q: &crate::store::ErrorQuery) -> crate::Result<Vec<crate::record::ErrorRecord>> {
            self.inner.query_errors(q)
        }
        fn save_patterns(&self, p: &[crate::record::PatternRecord]) -> crate::Result<()> {
            self.inner.save_patterns(p)
        }
        fn load_patterns(&self) -> crate::Result<Vec<crate::record::PatternRecord>> {
            self.inner.load_patterns()
        }
        fn query_interventions(
            &self,
            agent: Option<&str>,
            limit: usize,
        ) -> crate::Result<Vec<crate::record::InterventionRecord>> {
            self.inner.query_interventions(agent, limit)
        }
        fn append_playbook(&self, e: &[crate::record::PlaybookEntry]) -> crate::Result<()> {
            self.inner.append_playbook(e)
        }
        fn load_playbook(&self, d: &str) -> crate::Result<Vec<crate::record::PlaybookEntry>> {
            self.inner.load_playbook(d)
        }
        fn delete_before(&self, _cutoff: Timestamp, _max_rows: u64) -> crate::Result<u64> {
            (self.answer)(self.calls.fetch_add(1, Ordering::SeqCst))
        }
        fn ping(&self) -> crate::Result<Duration> {
            Ok(Duration::ZERO)
        }
    }

    /// A store that keeps everything says so once an hour, not every turn.
    #[test]
    fn a_store_that_cannot_delete_is_retried_an_hour_later() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000)));
        let store = Scripted::new(|_| Err(crate::Error::invalid("ACE_RETAIN_DAYS", "keeps everything")));
        let mut retention = Retention::new(store.clone(), clock.clone(), 30, PersistSeries::default());
        retention.tick();
        wait_for_pass(&mut retention);
        for _ in 0..5 {
            retention.tick();
        }
        assert!(retention.pass.is_none());
        assert_eq!(store.calls(), 1);
        clock.advance(RETAIN_EVERY);
        retention.tick();
        wait_for_pass(&mut retention);
        assert_eq!(store.calls(), 2);
    }

    /// Closing the engine stops a long pass between two chunks instead of waiting for its end.
    #[test]
    fn closing_stops_a_pass_between_chunks() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000)));
        // Full chunks, a millisecond each, for ten seconds unless stopped.
        let store = Scripted::new(|n| {
            std::thread::sleep(Duration::from_millis(1));
            Ok(if n < 10_000 { ROWS_PER_CHUNK } else { 0 })
        });
        let mut retention = Retention::new(store.clone(), clock, 30, PersistSeries::default());
        retention.tick();
        while store.calls() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        retention.finish();
        let after = store.calls();
        assert!(after < 10_000, "stopped after {after} chunks, not at the pass's end");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(store.calls(), after, "no chunk after the stop");
    }
}
