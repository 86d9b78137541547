//! Storage: the traits every backend implements, the records they keep, and [`MemoryStore`].
//!
//! The engine never calls a store on the caller's thread: records go through the batcher and
//! reach [`Store::append`] from the engine's writer thread, in batches. A store is therefore a
//! plain blocking interface; a backend built on async I/O (sqlx) runs its own runtime inside.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::event::Severity;
pub use crate::record::{
    BaselineRecord, ErrorRecord, InterventionRecord, LearntRecord, MetricRecord, OutcomeRecord, PatternRecord,
    PlaybookEntry, Record,
};

/// Which metric records to read back.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricQuery {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only this stage.
    pub stage: Option<String>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many records (0: no limit).
    pub limit: usize,
}

impl MetricQuery {
    /// Every record.
    #[must_use]
    pub fn all() -> Self {
        MetricQuery::default()
    }

    /// Only this agent's records.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Only this stage's records.
    #[must_use]
    pub fn stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Only records at or after `ts`.
    #[must_use]
    pub fn since(mut self, ts: Timestamp) -> Self {
        self.since = Some(ts);
        self
    }

    /// At most `n` records.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// Whether `r` matches (for stores that filter in memory).
    #[must_use]
    pub fn matches(&self, r: &MetricRecord) -> bool {
        self.agent.as_deref().is_none_or(|a| a == &*r.agent)
            && self.stage.as_deref().is_none_or(|s| s == &*r.stage)
            && self.since.is_none_or(|t| r.ts >= t)
    }
}

/// Which error records to read back.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ErrorQuery {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only this severity or worse.
    pub min_severity: Option<Severity>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many records (0: no limit).
    pub limit: usize,
}

impl ErrorQuery {
    /// Every record.
    #[must_use]
    pub fn all() -> Self {
        ErrorQuery::default()
    }

    /// Only this agent's records.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Only records of `severity` or worse.
    #[must_use]
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = Some(severity);
        self
    }

    /// Only records at or after `ts`.
    #[must_use]
    pub fn since(mut self, ts: Timestamp) -> Self {
        self.since = Some(ts);
        self
    }

    /// At most `n` records.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// Whether `r` matches (for stores that filter in memory).
    #[must_use]
    pub fn matches(&self, r: &ErrorRecord) -> bool {
        self.agent.as_deref().is_none_or(|a| a == &*r.agent)
            && self.min_severity.is_none_or(|s| r.severity >= s)
            && self.since.is_none_or(|t| r.ts >= t)
    }
}

/// Which audited interventions to read back (newest first, see [`Store::recent_interventions`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct InterventionQuery {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only interventions at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl InterventionQuery {
    /// Every intervention.
    #[must_use]
    pub fn all() -> Self {
        InterventionQuery::default()
    }

    /// Only this agent's interventions.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Only interventions at or after `ts`.
    #[must_use]
    pub fn since(mut self, ts: Timestamp) -> Self {
        self.since = Some(ts);
        self
    }

    /// At most `n` interventions.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
}

/// A durable (or in-memory) home for what the engine records.
///
/// Every method may block; the engine calls them from its own threads. Implementations must pass
/// the conformance suite in the repository's `tests/conformance/`.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`memory`, `sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Appends a batch atomically: afterwards either every record is stored or none is (and an
    /// error says why). Records of one batch keep their order.
    ///
    /// A batch whose append failed is sent again as the same batch (the same records in the
    /// same order, at once or from a spill file later), never merged with newer records: a
    /// store whose commit can succeed while its reply is lost (a network database) recognises
    /// the batch and does not store it twice.
    fn append(&self, records: &[Record]) -> Result<()>;

    /// Inserts or replaces baselines, keyed by (agent, stage, metric).
    fn save_baselines(&self, baselines: &[BaselineRecord]) -> Result<()>;

    /// Every stored baseline.
    fn load_baselines(&self) -> Result<Vec<BaselineRecord>>;

    /// Metric records matching `query`, oldest first (ties in insertion order).
    fn query_metrics(&self, query: &MetricQuery) -> Result<Vec<MetricRecord>>;

    /// How many metric records are stored.
    fn count_metrics(&self) -> Result<u64>;

    /// Error records matching `query`, oldest first (ties in insertion order).
    fn query_errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>>;

    /// Inserts or replaces error patterns, keyed by (kind, template): a pattern whose template
    /// was generalised is a new row, and the old row stays as history.
    fn save_patterns(&self, patterns: &[PatternRecord]) -> Result<()>;

    /// Every stored pattern, most frequent first.
    fn load_patterns(&self) -> Result<Vec<PatternRecord>>;

    /// Audited interventions of `agent` (all with `None`), oldest first, at most `limit`
    /// (0: no limit), with their outcomes where reported.
    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> Result<Vec<InterventionRecord>>;

    /// The newest audited interventions matching `query`, newest first (ties: the last stored
    /// first), with their outcomes where reported: what `ace interventions` shows. The default
    /// reads [`Store::query_interventions`] whole and filters in memory; the SQL stores filter
    /// and order in the database.
    fn recent_interventions(&self, query: &InterventionQuery) -> Result<Vec<InterventionRecord>> {
        let mut out = self.query_interventions(query.agent.as_deref(), 0)?;
        out.retain(|i| query.since.is_none_or(|t| i.ts >= t));
        out.reverse();
        if query.limit > 0 {
            out.truncate(query.limit);
        }
        Ok(out)
    }

    /// The newest error records matching `query`, newest first (ties: the last stored first),
    /// at most `query.limit`: what `ace errors` shows. The default reads
    /// [`Store::query_errors`] without a limit and keeps the last ones; the SQL stores order and
    /// limit in the database.
    fn recent_errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>> {
        let mut all = query.clone();
        all.limit = 0;
        let mut out = self.query_errors(&all)?;
        out.reverse();
        if query.limit > 0 {
            out.truncate(query.limit);
        }
        Ok(out)
    }

    /// Appends playbook log entries atomically (all or none). An entry whose (domain, version)
    /// exists already is refused with an error: two writers never fork a playbook's history.
    fn append_playbook(&self, entries: &[PlaybookEntry]) -> Result<()>;

    /// Every log entry of `domain`, by version.
    fn load_playbook(&self, domain: &str) -> Result<Vec<PlaybookEntry>>;

    /// Adds outcome counts to the stored totals per (kind, strategy): each call adds, so
    /// replicas sharing a database each add the outcomes reported to them, and every outcome
    /// counts once. The default keeps nothing: a store that does not override this and
    /// [`Store::load_learnt`] forgets what the engine learnt at each restart.
    fn add_learnt(&self, learnt: &[LearntRecord]) -> Result<()> {
        let _ = learnt;
        Ok(())
    }

    /// The stored totals per (kind, strategy), read once at start.
    fn load_learnt(&self) -> Result<Vec<LearntRecord>> {
        Ok(Vec::new())
    }

    /// What identifies this store's data across processes (a database file's path, a server
    /// and database), or `None` for a store whose data lives and dies with the process. Records
    /// are spilled to disk while the store fails only for stores with a key, into a directory
    /// of their own, so a spilled record is only ever stored into the store it was meant for.
    fn spill_key(&self) -> Option<String> {
        None
    }

    /// Whether [`Store::append`] only moves records into this process's memory (it never waits
    /// on a disk or the network). A caller that finds the engine's buffers full then waits for
    /// the writer to make room rather than drop its record (the writer is held up only by the
    /// machine's scheduler): until the writer's next drain, at most 100 ms, and not at all for
    /// a second after a drain took longer than 50 ms. With any other store such a record goes
    /// to the spill directory and the call never waits. `false` unless overridden.
    fn takes_records_in_memory(&self) -> bool {
        false
    }

    /// Records this store let go by design since it was made (a bounded store's oldest, as
    /// [`MemoryStore`] keeps its newest only): not a loss to report, but a count to show
    /// (`ace_records_evicted_total`, `Stats::evicted`). 0 for a store that keeps everything.
    fn evicted(&self) -> u64 {
        0
    }

    /// Deletes at most `max_rows` metric, error and intervention records created before
    /// `cutoff` (the oldest first where the store can tell); returns how many went, fewer than
    /// `max_rows` once none older is left. Baselines, patterns, playbooks and what was learnt
    /// stay. The engine calls it a chunk at a time when `ACE_RETAIN_DAYS` is set (on a thread
    /// of its own, never the writer's), so a pass never holds the store for long. The default deletes nothing and says so: a store
    /// that keeps everything.
    fn delete_before(&self, cutoff: Timestamp, max_rows: u64) -> Result<u64> {
        let _ = (cutoff, max_rows);
        Err(Error::invalid("ACE_RETAIN_DAYS", format!("the {} store does not delete old records", self.backend())))
    }

    /// Checks the store is reachable; returns the round-trip time.
    fn ping(&self) -> Result<Duration>;

    /// Releases connections. Called once by the engine's `close()`.
    fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// A store that keeps records in memory: for tests and ephemeral runs. Clones share data.
///
/// It keeps a bounded history: at most [`MemoryStore::DEFAULT_MAX_RECORDS`] metric records, as
/// many errors and as many interventions (or what [`MemoryStore::with_max_records`] says); past
/// that the oldest go first and are counted in [`MemoryStore::evicted`]. Eviction is what a ring
/// does, not a failure: an engine on the default store runs for ever in bounded memory.
/// Baselines, patterns and playbooks are state, not history, and are all kept.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_max_records(MemoryStore::DEFAULT_MAX_RECORDS)
    }
}

#[derive(Debug, Default)]
struct MemoryInner {
    max_records: usize,
    evicted: u64,
    metrics: VecDeque<MetricRecord>,
    errors: VecDeque<ErrorRecord>,
    interventions: VecDeque<InterventionRecord>,
    baselines: HashMap<(String, String, String), BaselineRecord>,
    patterns: HashMap<(String, String), PatternRecord>,
    playbooks: HashMap<String, Vec<PlaybookEntry>>,
    learnt: HashMap<(crate::signal::SignalKind, crate::decision::Strategy), (u64, u64)>,
}

impl MemoryStore {
    /// Records of each kind (metrics, errors, interventions) kept by default: 100,000, about
    /// 15 MB of metric records.
    pub const DEFAULT_MAX_RECORDS: usize = 100_000;

    /// An empty store keeping [`MemoryStore::DEFAULT_MAX_RECORDS`] of each kind.
    #[must_use]
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store keeping at most `max` records of each kind (`usize::MAX`: all of them;
    /// at least 1).
    #[must_use]
    pub fn with_max_records(max: usize) -> Self {
        let inner = MemoryInner { max_records: max.max(1), ..MemoryInner::default() };
        MemoryStore { inner: Arc::new(Mutex::new(inner)) }
    }

    /// Records evicted (the oldest, past the bound) since the store was made.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.inner.lock().evicted
    }
}

/// Appends `record` to a bounded history, evicting the oldest past `max`; how many went.
fn push_bounded<T>(list: &mut VecDeque<T>, record: T, max: usize) -> u64 {
    let mut evicted = 0;
    while list.len() >= max {
        list.pop_front();
        evicted += 1;
    }
    list.push_back(record);
    evicted
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn evicted(&self) -> u64 {
        MemoryStore::evicted(self)
    }

    fn takes_records_in_memory(&self) -> bool {
        true
    }

    fn delete_before(&self, cutoff: Timestamp, max_rows: u64) -> Result<u64> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut left = max_rows;
        let mut keep = |ts: Timestamp| {
            let gone = left > 0 && ts < cutoff;
            left -= u64::from(gone);
            !gone
        };
        inner.metrics.retain(|r| keep(r.ts));
        inner.errors.retain(|r| keep(r.ts));
        inner.interventions.retain(|r| keep(r.ts));
        Ok(max_rows - left)
    }

    fn append(&self, records: &[Record]) -> Result<()> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let max = inner.max_records;
        let before = inner.evicted;
        for record in records {
            inner.evicted += match record {
                Record::Metric(m) => push_bounded(&mut inner.metrics, m.clone(), max),
                Record::Error(e) => push_bounded(&mut inner.errors, e.clone(), max),
                Record::Intervention(i) => push_bounded(&mut inner.interventions, i.clone(), max),
                Record::Outcome(o) => {
                    if let Some(i) = inner.interventions.iter_mut().rev().find(|i| i.id == o.id) {
                        i.outcome = Some(o.success);
                    }
                    0
                }
            };
        }
        if before == 0 && inner.evicted > 0 {
            tracing::info!(
                max_records = max,
                "the memory store is full: the oldest records now make room for new ones"
            );
        }
        Ok(())
    }

    fn query_errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>> {
        let inner = self.inner.lock();
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        let mut out: Vec<ErrorRecord> = inner.errors.iter().filter(|r| query.matches(r)).cloned().collect();
        out.sort_by_key(|r| r.ts);
        out.truncate(limit);
        Ok(out)
    }

    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> Result<Vec<InterventionRecord>> {
        let inner = self.inner.lock();
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut out: Vec<InterventionRecord> =
            inner.interventions.iter().filter(|i| agent.is_none_or(|a| a == &*i.agent)).cloned().collect();
        out.sort_by_key(|i| i.ts);
        out.truncate(limit);
        Ok(out)
    }

    fn append_playbook(&self, entries: &[PlaybookEntry]) -> Result<()> {
        let mut inner = self.inner.lock();
        for e in entries {
            let log = inner.playbooks.get(&e.domain);
            let clash = log.is_some_and(|l| l.iter().any(|x| x.version == e.version))
                || entries.iter().filter(|x| x.domain == e.domain && x.version == e.version).count() > 1;
            if clash {
                return Err(crate::Error::Store {
                    backend: "memory",
                    operation: "append playbook entries",
                    source: format!("playbook {:?} already has version {}", e.domain, e.version).into(),
                });
            }
        }
        for e in entries {
            inner.playbooks.entry(e.domain.clone()).or_default().push(e.clone());
        }
        Ok(())
    }

    fn load_playbook(&self, domain: &str) -> Result<Vec<PlaybookEntry>> {
        let mut out = self.inner.lock().playbooks.get(domain).cloned().unwrap_or_default();
        out.sort_by_key(|e| e.version);
        Ok(out)
    }

    fn add_learnt(&self, learnt: &[LearntRecord]) -> Result<()> {
        let mut inner = self.inner.lock();
        for r in learnt {
            let counts = inner.learnt.entry((r.kind, r.strategy)).or_default();
            counts.0 += r.successes;
            counts.1 += r.failures;
        }
        Ok(())
    }

    fn load_learnt(&self) -> Result<Vec<LearntRecord>> {
        let inner = self.inner.lock();
        Ok(inner
            .learnt
            .iter()
            .map(|(&(kind, strategy), &(successes, failures))| LearntRecord { kind, strategy, successes, failures })
            .collect())
    }

    fn save_patterns(&self, patterns: &[PatternRecord]) -> Result<()> {
        let mut inner = self.inner.lock();
        for p in patterns {
            inner.patterns.insert((p.kind.clone(), p.template.clone()), p.clone());
        }
        Ok(())
    }

    fn load_patterns(&self) -> Result<Vec<PatternRecord>> {
        let mut out: Vec<PatternRecord> = self.inner.lock().patterns.values().cloned().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn save_baselines(&self, baselines: &[BaselineRecord]) -> Result<()> {
        let mut inner = self.inner.lock();
        for b in baselines {
            inner.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b.clone());
        }
        Ok(())
    }

    fn load_baselines(&self) -> Result<Vec<BaselineRecord>> {
        let inner = self.inner.lock();
        let mut all: Vec<_> = inner.baselines.values().cloned().collect();
        all.sort_by(|a, b| (&a.agent, &a.stage, &a.metric).cmp(&(&b.agent, &b.stage, &b.metric)));
        Ok(all)
    }

    fn query_metrics(&self, query: &MetricQuery) -> Result<Vec<MetricRecord>> {
        let inner = self.inner.lock();
        let mut out: Vec<MetricRecord> = inner.metrics.iter().filter(|r| query.matches(r)).cloned().collect();
        out.sort_by_key(|r| r.ts); // stable: ties keep insertion order
        if query.limit > 0 {
            out.truncate(query.limit);
        }
        Ok(out)
    }

    fn count_metrics(&self) -> Result<u64> {
        Ok(self.inner.lock().metrics.len() as u64)
    }

    fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        drop(self.inner.lock());
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(i: i64) -> Record {
        Record::Metric(MetricRecord {
            ts: Timestamp::from_micros(i),
            agent: Arc::from("a"),
            task: Arc::from("t"),
            stage: Arc::from("s"),
            duration_s: Some(1.0),
            success: Some(true),
            metrics: Vec::new(),
        })
    }

    #[test]
    fn the_memory_store_keeps_the_newest_records_and_counts_the_evicted() {
        let store = MemoryStore::with_max_records(3);
        let batch: Vec<Record> = (0..5).map(metric).collect();
        store.append(&batch).unwrap();
        store.append(&[metric(5)]).unwrap();
        assert_eq!(store.count_metrics().unwrap(), 3);
        assert_eq!(store.evicted(), 3);
        let kept: Vec<i64> =
            store.query_metrics(&MetricQuery::all()).unwrap().iter().map(|r| r.ts.as_micros()).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(MemoryStore::new().inner.lock().max_records, MemoryStore::DEFAULT_MAX_RECORDS);
        assert_eq!(crate::AceConfig::default().memory_max_records, MemoryStore::DEFAULT_MAX_RECORDS);
        assert_eq!(MemoryStore::with_max_records(0).inner.lock().max_records, 1, "at least one");
    }
}
