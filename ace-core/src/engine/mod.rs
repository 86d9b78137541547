//! The `Ace` handle: one engine, cheap to clone, shared by every thread of the host.
//!
//! A thin façade over the layers below: recording calls (`record.rs`) go through the entry
//! table and the organs and, when signals warrant it, to a decision (`decide.rs`); breakers guard
//! calls (`guard.rs`); health and stats read every part (`health.rs`); the builder wires it all
//! (`builder.rs`).

mod builder;
mod decide;
mod guard;
mod health;
mod judging;
mod metrics;
mod readback;
mod recent;
mod record;
mod reflect;
mod room;
mod settings;
mod timer;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use prometheus_client::registry::Registry;

pub use builder::AceBuilder;
pub use health::{Health, Stats};
pub use metrics::Metrics;
pub use readback::MAX_READ_BACK;
pub use recent::RECENT_SIGNALS;
pub use reflect::{MAX_SUMMARY_BYTES, Reflection, Reflector, TaskSummary};
pub use timer::StageTimer;

use crate::breaker::{Breakers, CircuitBreaker};
use crate::clock::{Clock, Timestamp};
use crate::config::AceConfig;
use crate::context::ContextOrgan;
use crate::decision::Intervention;
use crate::error::{Error, Result};
use crate::errors::{ErrorOrgan, PatternRecord};
use crate::fleet::Fleet;
use crate::hot::Hot;
use crate::intervene::{Decider, Judge};
use crate::monitor::BaselineState;
use crate::persist::WriterSync;
use crate::persist::overflow::Overflow;
use crate::persist::spill::Journal;
use crate::playbook::Playbooks;
use crate::store::Store;
use crate::trace::TraceWriter;
use crate::trajectory::TrajectoryOrgan;

/// The engine. Clone it freely: clones share one engine (an `Arc` inside).
///
/// Recording calls are synchronous, never wait for I/O and return the signals they produced.
/// Persistence happens on the engine's own writer thread, in batches of
/// [`AceConfig::batch_size`] records or every [`AceConfig::batch_timeout`], whichever comes first.
/// No async runtime is needed.
///
/// ```
/// use ace_core::{Ace, MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let ace = Ace::builder().store(store.clone()).build()?;
/// let signals = ace.record_stage_with("agent-1", "task-1", "planning", 0.42, true, &[("tokens_in", 812.0)])?;
/// assert!(signals.is_empty()); // a fresh baseline is still warming up
/// ace.flush()?;                // returns when everything accepted is stored
/// assert_eq!(store.count_metrics()?, 1);
/// ace.close()?;
/// assert_eq!(ace.record_stage("agent-1", "task-1", "planning", 0.4, true).unwrap_err().code(), "closed");
/// # Ok::<(), ace_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Ace {
    inner: Arc<Inner>,
}

/// Called with every intervention.
type Subscriber = Arc<dyn Fn(&Intervention) + Send + Sync>;

struct Inner {
    shared: Shared,
    registry: Registry,
    subscribers: parking_lot::RwLock<Vec<Subscriber>>,
    judge: Option<Arc<dyn Judge>>,
    /// The background judge's queue (`ACE_JUDGE_BLOCKING=false`).
    judge_queue: Option<judging::Queue>,
    /// When the reflections of the last minute ran (`ACE_REFLECT_PER_MINUTE`).
    reflections: parking_lot::Mutex<Vec<Timestamp>>,
    /// The background reflector's queue (`Ace::reflect_on_failure`).
    reflect_queue: parking_lot::Mutex<Option<reflect::ReflectQueue>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The parts the handle works with.
struct Shared {
    config: AceConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    hot: Arc<Hot>,
    errors: Arc<ErrorOrgan>,
    context: Arc<ContextOrgan>,
    trajectory: Arc<TrajectoryOrgan>,
    decider: Arc<Decider>,
    trace: Option<TraceWriter>,
    breakers: Arc<Breakers>,
    /// The engine's own breaker in front of the store (`ace-store` in the registry).
    _store_breaker: Arc<CircuitBreaker>,
    journal: Option<Arc<Journal>>,
    /// Where records that find the buffers full go, outside durable mode (with a spill
    /// directory).
    overflow: Option<Arc<Overflow>>,
    /// With a store that keeps records in memory: how a caller that finds the buffers full
    /// waits for the writer to make room (see `room.rs`).
    room: Option<Arc<room::RoomWait>>,
    /// The fleet's shared cache, if any.
    fleet: Option<Arc<Fleet>>,
    playbooks: Playbooks,
    metrics: Metrics,
    /// The newest signals, for read-back.
    recent: recent::RecentSignals,
    sync: Arc<WriterSync>,
    /// See `AceBuilder::scoring_only`.
    scoring_only: bool,
}

impl Ace {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Calls `f` with every intervention the engine issues, on the thread of the recording call
    /// that caused it (so keep it short: hand the work to a channel). A subscriber that panics is
    /// counted in `ace_intervention_subscriber_failures_total` and does not fail the call.
    pub fn subscribe(&self, f: impl Fn(&Intervention) + Send + Sync + 'static) {
        self.inner.subscribers.write().push(Arc::new(f));
    }

    /// The playbooks, one per domain, persisted in the engine's store (see [`crate::playbook`]).
    ///
    /// ```
    /// use ace_core::Ace;
    /// use ace_core::playbook::{Feedback, Insight, Stage};
    ///
    /// let ace = Ace::builder().build()?;
    /// let pb = ace.playbooks();
    /// let report = pb.merge("airline", &[
    ///     Insight::new("strategies", "Verify the fare total before charging the card"),
    ///     Insight::new("strategies", "verify the fare total before charging the card."),
    /// ])?;
    /// assert_eq!((report.added.len(), report.merged.len()), (1, 1));
    /// let id = &report.added[0];
    /// for _ in 0..3 {
    ///     pb.feedback("airline", id, Feedback::Helpful)?;
    /// }
    /// let best = pb.retrieve("airline", "charging a card", 5, Stage::Staging)?;
    /// assert_eq!(&best[0].bullet.id, id);
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    #[must_use]
    pub fn playbooks(&self) -> &Playbooks {
        &self.shared().playbooks
    }

    /// The agent's context staleness in [0, 1] now, or `None` for an agent never seen.
    #[must_use]
    pub fn context_staleness(&self, agent: &str) -> Option<f64> {
        let shared = self.shared();
        shared.context.staleness(agent, shared.clock.now())
    }

    /// The error patterns the miner holds, most frequent first.
    #[must_use]
    pub fn patterns(&self) -> Vec<PatternRecord> {
        self.shared().errors.patterns()
    }

    /// Starts timing a stage; the returned guard records it when finished or dropped.
    pub fn time_stage(&self, agent: &str, task: &str, stage: &str) -> StageTimer {
        StageTimer::new(self.clone(), agent, task, stage)
    }

    /// The current baseline of one (agent, stage, metric); `metric` is `duration_s`, `success` or
    /// a named metric.
    #[must_use]
    pub fn baseline(&self, agent: &str, stage: &str, metric: &str) -> Option<BaselineState> {
        self.shared().hot.baseline(agent, stage, metric)
    }

    /// Blocks until every record accepted before the call is stored (and baselines are saved).
    /// Returns the store's error if the write failed; the records stay buffered and are retried.
    pub fn flush(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if let Some(trace) = &self.shared().trace {
            trace.flush()?;
        }
        self.shared().sync.flush(self.shared().store.backend())
    }

    /// Deletes the metric, error and intervention records older than `days` days (engine
    /// clock) from the store now, on the caller's thread, 10,000 rows a call so no one
    /// statement holds the store for long; returns how many went. Baselines, patterns,
    /// playbooks and what was learnt are kept. `days` of 0 or over 36,500 is
    /// [`Error::InvalidInput`]; a store that cannot delete returns its error. The same pass
    /// `ACE_RETAIN_DAYS` runs every hour in the background (counted in
    /// `ace_records_retention_deleted_total` either way).
    ///
    /// ```
    /// let ace = ace_core::Ace::builder().build()?;
    /// ace.record_stage("agent-1", "task-1", "planning", 0.5, true)?;
    /// ace.flush()?;
    /// assert_eq!(ace.retain(30)?, 0); // the record is new
    /// assert!(ace.retain(0).is_err());
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn retain(&self, days: u32) -> Result<u64> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let shared = self.shared();
        crate::persist::retain_now(&*shared.store, &shared.metrics.persist, days, shared.clock.now())
    }

    /// Flushes, stops the writer thread and releases the store. Later calls return
    /// [`Error::Closed`]. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Whether [`Ace::close`] was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared().hot.closed.load(Ordering::Acquire)
    }

    /// All metrics as OpenMetrics text (what `/metrics` serves).
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// All metrics in the classic Prometheus text format (version 0.0.4), which `promtool check
    /// metrics` and scrapers that do not ask for OpenMetrics read; `/metrics` serves it unless
    /// the client's `Accept` names `application/openmetrics-text`.
    #[must_use]
    pub fn metrics_text_prometheus(&self) -> String {
        crate::telemetry::prometheus_text(&self.metrics_text())
    }

    /// The engine's metrics, to register into a host's own registry with [`Metrics::register`].
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.shared().metrics
    }

    /// The configuration the engine runs with.
    #[must_use]
    pub fn config(&self) -> &AceConfig {
        &self.shared().config
    }

    /// The engine's current time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.shared().clock.now()
    }

    /// The store records go to.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared().store
    }
}

impl fmt::Debug for Ace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ace")
            .field("store", &self.shared().store.backend())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        let shared = &self.shared;
        if shared.hot.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Every recorder checks `closed` under its shard lock: once each lock has been taken
        // after the flag was set, nothing more can enter the buffers.
        shared.hot.barrier();
        let flushed = shared.sync.flush(shared.store.backend());
        shared.sync.shutdown();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        let closed = shared.store.close();
        let traced = shared.trace.as_ref().map_or(Ok(()), TraceWriter::flush);
        flushed.and(closed).and(traced)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "ace engine dropped without a clean close");
        }
    }
}
