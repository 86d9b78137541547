//! The `Ace` handle: one engine, cheap to clone, shared by every thread of the host.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::batcher::{Writer, WriterSync};
use crate::breaker::{BreakerConfig, Breakers, CircuitBreaker, OwnedPermit, Permit, Rejected};
use crate::cache::Cache;
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::config::AceConfig;
use crate::context::{ContextOrgan, StalenessConfig};
use crate::error::{Error, Result};
use crate::errors::{ErrorEvent, ErrorOrgan, ErrorReport, MinerConfig, PatternRecord};
use crate::event::Severity;
use crate::intervene::{Decider, DecisionConfig, Intervention, InterventionId, Judge, Report, Verdict};
use crate::metrics::Metrics;
use crate::metrics::{AgentType, ResultLabel, Type, VerdictLabel};
use crate::monitor::{BaselineState, DetectorConfig, Monitor, Observation, StageTimer};
use crate::playbook::{Embedder, HashEmbedder, PlaybookConfig, Playbooks};
use crate::signal::Signal;
use crate::store::{MemoryStore, Store};
use crate::trace::TraceWriter;
use crate::trajectory::{TrajectoryConfig, TrajectoryOrgan};

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
    shared: Arc<Shared>,
    registry: Registry,
    subscribers: parking_lot::RwLock<Vec<Subscriber>>,
    judge: Option<Arc<dyn Judge>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the engine and its writer thread share.
pub(crate) struct Shared {
    pub(crate) config: AceConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) monitor: Monitor,
    pub(crate) errors: ErrorOrgan,
    pub(crate) context: Arc<ContextOrgan>,
    pub(crate) trajectory: Arc<TrajectoryOrgan>,
    pub(crate) decider: Decider,
    pub(crate) trace: Option<TraceWriter>,
    pub(crate) breakers: Arc<Breakers>,
    /// The engine's own breaker in front of the store (`ace-store` in the registry).
    pub(crate) store_breaker: Arc<CircuitBreaker>,
    pub(crate) journal: Option<crate::spill::Journal>,
    /// The fleet's shared cache, if any.
    pub(crate) cache: Option<Arc<dyn Cache>>,
    /// Breakers that opened here, to publish through the cache: (name, open until, micros).
    pub(crate) opened: Mutex<Vec<(Arc<str>, i64)>>,
    /// Context refreshes made here, to publish through the cache: (agent, micros).
    pub(crate) refreshed: Mutex<Vec<(Arc<str>, i64)>>,
    pub(crate) playbooks: Playbooks,
    pub(crate) metrics: Metrics,
    pub(crate) sync: WriterSync,
}

/// The engine's health, in the shape of the seed runbook's `/health` answer (see
/// [`Ace::health`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `healthy`, `degraded` (the cache unreachable, a breaker open, records dropped, the buffer
    /// over half full) or `unhealthy` (the store does not answer).
    pub status: &'static str,
    /// ace's version.
    pub version: &'static str,
    /// When it was taken (engine clock, RFC 3339 UTC).
    pub timestamp: String,
    /// `connected` or `unreachable`.
    pub database: &'static str,
    /// The store backend (`sqlite`, `postgres`, `memory`).
    pub database_backend: &'static str,
    /// The store's round trip in milliseconds (when connected).
    pub latency_ms: Option<f64>,
    /// Why the store did not answer.
    pub database_error: Option<String>,
    /// The shared cache: `connected`, `unreachable` or `not_configured`.
    pub redis: &'static str,
    /// The cache's backend (`redis`, `memory`), when one is configured.
    pub cache_backend: Option<&'static str>,
    /// The cache's round trip in milliseconds (when connected).
    pub cache_latency_ms: Option<f64>,
    /// Each breaker's state, by name.
    pub circuit_breakers: std::collections::BTreeMap<String, &'static str>,
    /// Records waiting for the store.
    pub buffered: u64,
    /// Records accepted but not stored (should stay 0).
    pub dropped: u64,
}

impl Health {
    /// The health as JSON (what `/health` serves).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"status":"unhealthy"}"#.to_owned())
    }
}

/// Counters of the engine's activity since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Observations recorded (valid calls).
    pub recorded: u64,
    /// Records written to the store.
    pub persisted: u64,
    /// Records waiting to be written.
    pub buffered: u64,
    /// Records not persisted because the buffer was full (also in `ace_records_dropped_total`).
    pub dropped: u64,
    /// Signals raised, by every organ (also in `ace_signals_total{kind}`).
    pub signals: u64,
    /// (agent, stage) pairs with baselines.
    pub baselines: u64,
    /// Errors recorded (valid calls).
    pub errors: u64,
    /// Error patterns held by the miner.
    pub patterns: u64,
    /// Tasks followed: with stages or error windows held (released by `end_task`, or once idle:
    /// error windows after a window, stage tracks after an hour).
    pub open_tasks: u64,
    /// Failed batch writes (each retried).
    pub store_failures: u64,
}

impl Ace {
    /// A builder with the default configuration, an in-memory store and the system clock.
    pub fn builder() -> AceBuilder {
        AceBuilder {
            config: None,
            store: None,
            clock: None,
            persist: true,
            judge: None,
            embedder: None,
            playbook: None,
            cache: None,
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Records a finished stage: its duration in seconds and whether it succeeded.
    pub fn record_stage(&self, agent: &str, task: &str, stage: &str, duration_s: f64, success: bool) -> Result<Report> {
        self.record_stage_with(agent, task, stage, duration_s, success, &[])
    }

    /// Records a finished stage with named metrics (`tokens_in`, `tokens_out`, `cost_usd`, or any
    /// valid name). Each metric gets its own baseline per (agent, stage).
    ///
    /// The event is validated as a whole: if anything is invalid (an empty id, a NaN value, a
    /// negative duration, a stage name with odd characters) nothing is recorded, the call returns
    /// [`Error::InvalidInput`] and `ace_events_rejected_total` counts it.
    pub fn record_stage_with(
        &self,
        agent: &str,
        task: &str,
        stage: &str,
        duration_s: f64,
        success: bool,
        metrics: &[(&str, f64)],
    ) -> Result<Report> {
        self.observe(&Observation { agent, task, stage, outcome: Some((duration_s, success)), metrics })
    }

    /// Records one named metric of a stage without an outcome (a cost known only later, say).
    pub fn record_metric(&self, agent: &str, task: &str, stage: &str, name: &str, value: f64) -> Result<Report> {
        self.observe(&Observation { agent, task, stage, outcome: None, metrics: &[(name, value)] })
    }

    fn observe(&self, obs: &Observation<'_>) -> Result<Report> {
        let shared = self.shared();
        let now = shared.clock.now();
        let (signals, wake) = shared.monitor.record(now, obs)?;
        if let Some(journal) = &shared.journal {
            journal.append(&crate::store::Record::Metric(crate::store::MetricRecord {
                ts: now,
                agent: Arc::from(obs.agent),
                task: Arc::from(obs.task),
                stage: Arc::from(obs.stage),
                duration_s: obs.outcome.map(|(d, _)| d),
                success: obs.outcome.map(|(_, s)| s),
                metrics: obs.metrics.iter().map(|&(n, v)| (Arc::from(n), v)).collect(),
            }));
        }
        if let (Some(trace), Some(outcome)) = (&shared.trace, obs.outcome) {
            trace.stage(now, obs.agent, obs.task, obs.stage, outcome, obs.metrics);
        }
        shared.sync.wake(wake);
        if signals.is_empty() {
            return Ok(Report::default());
        }
        let intervention = self.decide(now, obs.agent, obs.task, &signals);
        Ok(Report { signals, intervention })
    }

    /// At most one intervention for the signals of one call; counted, timed and delivered to
    /// the subscribers. Kept out of line: most calls raise no signal.
    #[cold]
    #[inline(never)]
    fn decide(&self, now: Timestamp, agent: &str, task: &str, signals: &[Signal]) -> Option<Box<Intervention>> {
        if signals.is_empty() {
            return None;
        }
        let shared = self.shared();
        let started = std::time::Instant::now();
        let mut intervention = shared.decider.decide(now, agent, task, signals)?;
        if let Some(cache) = &self.shared().cache
            && !self.claimed(cache, &intervention)
        {
            shared.decider.forget(intervention.id);
            return None;
        }
        if let Some(judge) = &self.inner.judge
            && !self.judged(judge, &mut intervention)
        {
            return None;
        }
        let strategy = intervention.strategy.as_str();
        shared
            .metrics
            .intervention_latency
            .get_or_create(&Type { r#type: strategy })
            .observe(started.elapsed().as_secs_f64());
        let agent_label = shared.metrics.agent_label(&intervention.agent);
        shared.metrics.interventions.get_or_create(&AgentType { agent_id: agent_label, r#type: strategy }).inc();
        let record = crate::store::Record::Intervention(crate::store::InterventionRecord {
            ts: now,
            id: intervention.id,
            agent: intervention.agent.clone(),
            task: intervention.task.clone(),
            strategy: intervention.strategy,
            severity: intervention.severity,
            signal_kind: intervention.signals[0].kind,
            reason: intervention.reason.clone(),
            signals_json: serde_json::to_string(&intervention.signals).unwrap_or_else(|_| "[]".to_owned()),
            outcome: None,
        });
        // Closing races a decision only at shutdown; the intervention is still returned.
        let journaled = shared.journal.as_ref().map(|_| record.clone());
        if let Ok(wake) = shared.monitor.buffer(intervention.id.0, record) {
            shared.sync.wake(wake);
        }
        if let (Some(journal), Some(r)) = (&shared.journal, journaled) {
            journal.append(&r);
        }
        let subscribers = self.inner.subscribers.read().clone();
        for subscriber in subscribers {
            let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| subscriber(&intervention)));
            if delivered.is_err() {
                shared.metrics.subscriber_failures.inc();
                tracing::error!(strategy, agent, "an intervention subscriber panicked; the recording call carries on");
            }
        }
        Some(Box::new(intervention))
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

    /// The engine's named circuit breakers, rate limiters and bulkheads (see [`crate::breaker`]).
    #[must_use]
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.shared().breakers
    }

    /// The circuit breaker named `name`, made with the registry's default configuration on
    /// first use: `ACE_BREAKER_FAILURES` (5) failures in a row open it for
    /// `ACE_BREAKER_WAIT_SECONDS` (60 s), then one trial call decides.
    pub fn breaker(&self, name: &str) -> Result<Arc<CircuitBreaker>> {
        self.shared().breakers.get(name)
    }

    /// Leave for `agent`'s call in `task` through `breaker`. A rejection raises a
    /// `breaker_open` signal for the task and carries the intervention it warrants (by rule,
    /// `backoff`; once per breaker and task, within the task's gates) in
    /// [`Rejected::intervention`].
    ///
    /// ```
    /// use ace_core::{Ace, Strategy};
    ///
    /// let ace = Ace::builder().build()?;
    /// let llm = ace.breaker("llm")?;
    /// for _ in 0..5 {
    ///     ace.acquire("agent-1", "task-1", &llm).unwrap().failure();
    /// }
    /// let rejected = ace.acquire("agent-1", "task-1", &llm).unwrap_err();
    /// assert_eq!(rejected.intervention.unwrap().strategy, Strategy::Backoff);
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn acquire<'b>(
        &self,
        agent: &str,
        task: &str,
        breaker: &'b CircuitBreaker,
    ) -> std::result::Result<Permit<'b>, Rejected> {
        match breaker.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(rejected) => Err(self.breaker_rejected(agent, task, rejected)),
        }
    }

    #[cold]
    /// [`Ace::acquire`] for a permit that owns a handle on its breaker (see
    /// [`crate::breaker::OwnedPermit`]).
    pub fn acquire_owned(
        &self,
        agent: &str,
        task: &str,
        breaker: &Arc<CircuitBreaker>,
    ) -> std::result::Result<OwnedPermit, Rejected> {
        match breaker.try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(rejected) => Err(self.breaker_rejected(agent, task, rejected)),
        }
    }

    fn breaker_rejected(&self, agent: &str, task: &str, mut rejected: Rejected) -> Rejected {
        if self.is_closed()
            || crate::event::validate_id("agent", agent).is_err()
            || crate::event::validate_id("task", task).is_err()
        {
            return rejected;
        }
        let shared = self.shared();
        let now = shared.clock.now();
        let retry = rejected.retry_after.map(|d| format!(", retry after {:.1} s", d.as_secs_f64())).unwrap_or_default();
        let signal = Signal {
            kind: crate::SignalKind::BreakerOpen,
            severity: Severity::High,
            at: now,
            agent: Arc::from(agent),
            task: Some(Arc::from(task)),
            stage: None,
            message: format!(
                "{agent}: circuit breaker '{}' is {} and turned the call away{retry}",
                rejected.breaker, rejected.state
            ),
            evidence: crate::Evidence::Breaker {
                breaker: rejected.breaker.to_string(),
                state: rejected.state.as_str().to_owned(),
                retry_after_s: rejected.retry_after.map(|d| d.as_secs_f64()),
            },
        };
        shared.metrics.count_signal(crate::SignalKind::BreakerOpen);
        rejected.intervention = self.decide(now, agent, task, std::slice::from_ref(&signal));
        rejected
    }

    /// Claims the task's cooldown and a place under its cap in the shared cache; false when
    /// another replica acted on the task within the cooldown or the cap is reached fleet-wide.
    /// A cache error leaves the local decision standing.
    fn claimed(&self, cache: &Arc<dyn Cache>, proposal: &Intervention) -> bool {
        let shared = self.shared();
        let count = |result| {
            shared.metrics.cache_requests.get_or_create(&ResultLabel { result }).inc();
        };
        let key = format!("gate:{}:{}", proposal.agent, proposal.task);
        let cooldown = shared.config.cooldown;
        if !cooldown.is_zero() {
            match cache.claim(&format!("{key}:cooldown"), &proposal.id.to_string(), cooldown) {
                Ok(true) => count("hit"),
                Ok(false) => {
                    count("miss");
                    return false;
                }
                Err(e) => {
                    count("error");
                    tracing::warn!(error = %e, "the shared cache failed; deciding on local state");
                    return true;
                }
            }
        }
        // A task's count lives a day: tasks end long before.
        match cache.incr(&format!("{key}:count"), std::time::Duration::from_secs(86_400)) {
            Ok(n) if n <= i64::from(shared.config.max_interventions_per_task) => {
                count("hit");
                true
            }
            Ok(_) => {
                count("miss");
                false
            }
            Err(e) => {
                count("error");
                tracing::warn!(error = %e, "the shared cache failed; deciding on local state");
                true
            }
        }
    }

    /// Puts a proposal to the judge; false when it was vetoed.
    fn judged(&self, judge: &Arc<dyn Judge>, proposal: &mut Intervention) -> bool {
        let shared = self.shared();
        let count = |verdict| shared.metrics.judge_calls.get_or_create(&VerdictLabel { verdict }).inc();
        match crate::intervene::judge::ask(judge, proposal, shared.config.judge_timeout) {
            Ok(None) => true,
            Ok(Some(Verdict::Accept)) => {
                count("accept");
                true
            }
            Ok(Some(Verdict::Veto)) => {
                count("veto");
                shared.decider.forget(proposal.id);
                false
            }
            Ok(Some(Verdict::Pick(strategy))) => {
                count("pick");
                if strategy != proposal.strategy {
                    shared.decider.repick(proposal.id, proposal.signals[0].kind, strategy);
                    proposal.strategy = strategy;
                    proposal.reason =
                        format!("{strategy}: {} (strategy chosen by the judge)", proposal.signals[0].message);
                }
                true
            }
            Err(failure) => {
                count(failure.as_str());
                tracing::warn!(
                    failure = failure.as_str(),
                    agent = &*proposal.agent,
                    "the intervention judge gave no verdict; the engine's own choice stands"
                );
                true
            }
        }
    }

    /// Calls `f` with every intervention the engine issues, on the thread of the recording call
    /// that caused it (so keep it short: hand the work to a channel). A subscriber that panics is
    /// counted in `ace_intervention_subscriber_failures_total` and does not fail the call.
    pub fn subscribe(&self, f: impl Fn(&Intervention) + Send + Sync + 'static) {
        self.inner.subscribers.write().push(Arc::new(f));
    }

    /// Reports whether an intervention worked; the engine learns which strategy works for which
    /// kind of signal. An unknown id, or one reported already, is [`Error::InvalidInput`].
    pub fn report_outcome(&self, id: InterventionId, success: bool) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let shared = self.shared();
        let (agent, rate) = shared.decider.report_outcome(id, success)?;
        let agent_id = shared.metrics.agent_label(&agent);
        shared.metrics.effectiveness.get_or_create(&crate::metrics::AgentId { agent_id }).set(rate);
        let record = crate::store::Record::Outcome(crate::store::OutcomeRecord { ts: shared.clock.now(), id, success });
        let journaled = shared.journal.as_ref().map(|_| record.clone());
        let wake = shared.monitor.buffer(id.0, record)?;
        shared.sync.wake(wake);
        if let (Some(journal), Some(r)) = (&shared.journal, journaled) {
            journal.append(&r);
        }
        Ok(())
    }

    /// Records an error: groups its message into a pattern, counts it in the task's and the
    /// agent's sliding windows, and returns the pattern, the severity (given, or inferred from
    /// the kind and message when `severity` is `None`) and any signals (see [`crate::errors`]).
    /// The error is persisted through the batcher like metrics.
    ///
    /// ```
    /// use ace_core::{Ace, SignalKind};
    ///
    /// let ace = Ace::builder().build()?;
    /// for port in [5432, 5433, 5434] {
    ///     let msg = format!("connection to db-1:{port} refused");
    ///     let report = ace.record_error("agent-1", "task-1", "execution", "ConnectionError", &msg, None)?;
    ///     assert_eq!(&*report.template, "connection to <*> refused");
    ///     if port == 5434 {
    ///         assert_eq!(report.signals[0].kind, SignalKind::ErrorAccumulation); // 3 in 300 s
    ///     }
    /// }
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn record_error(
        &self,
        agent: &str,
        task: &str,
        stage: &str,
        kind: &str,
        message: &str,
        severity: Option<Severity>,
    ) -> Result<ErrorReport> {
        self.record_error_event(&ErrorEvent { agent, task, stage, kind, message, severity })
    }

    /// [`Ace::record_error`] with the arguments in a struct.
    pub fn record_error_event(&self, ev: &ErrorEvent<'_>) -> Result<ErrorReport> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let shared = self.shared();
        let now = shared.clock.now();
        let counted = shared.errors.record(now, ev)?;
        if let Some(trace) = &shared.trace {
            trace.error(now, ev.agent, ev.task, ev.stage, ev.kind, ev.message, ev.severity);
        }
        let key = counted.key;
        let record = crate::store::Record::Error(crate::store::ErrorRecord {
            ts: now,
            agent: counted.agent,
            task: counted.task,
            stage: counted.stage,
            kind: counted.kind,
            message: counted.message,
            severity: counted.report.severity,
            pattern: counted.report.pattern,
        });
        let journaled = shared.journal.as_ref().map(|_| record.clone());
        let wake = shared.monitor.buffer(key, record)?;
        shared.sync.wake(wake);
        if let (Some(journal), Some(r)) = (&shared.journal, journaled) {
            journal.append(&r);
        }
        let mut report = counted.report;
        report.intervention = self.decide(now, ev.agent, ev.task, &report.signals);
        Ok(report)
    }

    /// Says a task has ended: its error windows (per pattern, and its stages for cascades) and
    /// its intervention gates (count, cooldown, de-dup) are released, and its length (stages
    /// recorded) joins what the agent's tasks usually take (see [`crate::trajectory`]). Returns
    /// whether the engine knew the task (it had stages or errors). Tasks never ended have their
    /// error windows released after a window without errors, and their tracks after an hour
    /// without stages.
    pub fn end_task(&self, agent: &str, task: &str) -> Result<bool> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        crate::event::validate_id("agent", agent)?;
        crate::event::validate_id("task", task)?;
        let shared = self.shared();
        if let Some(trace) = &shared.trace {
            trace.task_end(shared.clock.now(), agent, task);
        }
        shared.decider.end_task(agent, task);
        let followed = shared.trajectory.end_task(agent, task);
        Ok(shared.errors.end_task(agent, task) | followed)
    }

    /// Says the agent's context was rebuilt (new instructions, a fresh retrieval, a summary of
    /// the conversation so far): its staleness drops to 0 and a new `context_stale` signal may
    /// come once it grows again. See [`crate::context`].
    pub fn refresh_context(&self, agent: &str) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        crate::event::validate_id("agent", agent)?;
        let shared = self.shared();
        let now = shared.clock.now();
        shared.context.refresh(agent, now);
        if shared.cache.is_some() {
            shared.refreshed.lock().push((Arc::from(agent), now.as_micros()));
        }
        if let Some(trace) = &shared.trace {
            trace.refresh(now, agent);
        }
        Ok(())
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
        self.shared().monitor.baseline(agent, stage, metric)
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

    /// Flushes, stops the writer thread and releases the store. Later calls return
    /// [`Error::Closed`]. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Whether [`Ace::close`] was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared().monitor.closed.load(Ordering::Acquire)
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
        crate::metrics::prometheus_text(&self.metrics_text())
    }

    /// The engine's metrics, to register into a host's own registry with [`Metrics::register`].
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.shared().metrics
    }

    /// The engine's health: the store's and the cache's round trips (pings, so this call waits
    /// on them), each breaker's state, the buffer. `unhealthy` when the store does not answer,
    /// `degraded` when the cache does not answer, a breaker is open, records were dropped or the
    /// buffer is over half full.
    ///
    /// ```
    /// let ace = ace_core::Ace::builder().build()?;
    /// let health = ace.health();
    /// assert_eq!((health.status, health.database), ("healthy", "connected"));
    /// assert!(health.to_json().starts_with(r#"{"status":"healthy","version":"#));
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    #[must_use]
    pub fn health(&self) -> Health {
        let shared = self.shared();
        let ping = shared.store.ping();
        let stats = self.stats();
        let circuit_breakers: std::collections::BTreeMap<String, &'static str> =
            shared.breakers.all().iter().map(|b| (b.name().to_owned(), b.state().as_str())).collect();
        let open = shared
            .breakers
            .all()
            .iter()
            .any(|b| matches!(b.state(), crate::breaker::State::Open | crate::breaker::State::ForcedOpen));
        let (database, latency_ms, database_error) = match &ping {
            Ok(d) => ("connected", Some(d.as_secs_f64() * 1e3), None),
            Err(e) => ("unreachable", None, Some(e.to_string())),
        };
        let cache_ping = self.shared().cache.as_ref().map(|c| (c.backend(), c.ping()));
        let (redis, cache_backend, cache_latency_ms) = match &cache_ping {
            None => ("not_configured", None, None),
            Some((backend, Ok(d))) => ("connected", Some(*backend), Some(d.as_secs_f64() * 1e3)),
            Some((backend, Err(_))) => ("unreachable", Some(*backend), None),
        };
        let status = if ping.is_err() {
            "unhealthy"
        } else if open
            || redis == "unreachable"
            || stats.dropped > 0
            || stats.buffered as usize > shared.config.buffer_capacity / 2
        {
            "degraded"
        } else {
            "healthy"
        };
        Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            timestamp: shared.clock.now().to_rfc3339(),
            database,
            database_backend: shared.store.backend(),
            latency_ms,
            database_error,
            redis,
            cache_backend,
            cache_latency_ms,
            circuit_breakers,
            buffered: stats.buffered,
            dropped: stats.dropped,
        }
    }

    /// Activity counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let c = shared.monitor.counts();
        let e = shared.errors.counts();
        let (persisted, carried) = shared.sync.progress();
        Stats {
            recorded: c.recorded,
            persisted,
            buffered: c.buffered + carried,
            dropped: c.dropped,
            signals: c.signals + e.signals,
            baselines: c.entries,
            errors: e.recorded,
            patterns: e.patterns,
            open_tasks: e.tasks.max(shared.trajectory.open_tasks() as u64),
            store_failures: shared.metrics.store_failures.get(),
        }
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
        if shared.monitor.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Every recorder checks `closed` under its shard lock: once each lock has been taken
        // after the flag was set, nothing more can enter the buffers.
        shared.monitor.barrier();
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

/// Builds an [`Ace`].
///
/// ```
/// use std::time::Duration;
/// use ace_core::{Ace, AceConfig, ManualClock, MemoryStore, Timestamp};
///
/// let ace = Ace::builder()
///     .config(AceConfig::builder().batch_size(500).batch_timeout(Duration::from_millis(200)).build()?)
///     .store(MemoryStore::new())
///     .clock(ManualClock::new(Timestamp::from_micros(0)))
///     .build()?;
/// # Ok::<(), ace_core::Error>(())
/// ```
#[must_use]
pub struct AceBuilder {
    config: Option<AceConfig>,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    persist: bool,
    judge: Option<Arc<dyn Judge>>,
    embedder: Option<Arc<dyn Embedder>>,
    playbook: Option<PlaybookConfig>,
    cache: Option<Arc<dyn Cache>>,
}

impl AceBuilder {
    /// The configuration (default: [`AceConfig::default`]).
    pub fn config(mut self, config: AceConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// A judge that sees proposed interventions before they are issued and may accept, veto
    /// or change them (see [`crate::intervene::judge`]); none by default.
    pub fn judge(mut self, judge: impl Judge) -> Self {
        self.judge = Some(Arc::new(judge));
        self
    }

    /// A cache shared by the processes of a fleet (Redis: `ace_store::RedisCache`): per-task
    /// cooldowns and caps then hold across replicas (see [`crate::cache`]). None by default.
    pub fn cache(mut self, cache: impl Cache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// [`AceBuilder::cache`], already shared.
    pub fn cache_arc(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The embedder of the playbooks (default: the built-in [`HashEmbedder`], no model).
    pub fn embedder(mut self, embedder: impl Embedder) -> Self {
        self.embedder = Some(Arc::new(embedder));
        self
    }

    /// The playbooks' thresholds and gates (default: [`PlaybookConfig::default`]).
    pub fn playbook_config(mut self, config: PlaybookConfig) -> Self {
        self.playbook = Some(config);
        self
    }

    /// Whether records (stages, metrics, errors, interventions) are written to the store
    /// (default: true). With `false` the engine only watches and decides, as `ace replay` does:
    /// nothing is buffered, nothing written, and the store is used only to load baselines and
    /// patterns at start.
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The store (default: a fresh [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store, already shared.
    pub fn store_arc(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validates the configuration, loads stored baselines and starts the writer thread.
    pub fn build(self) -> Result<Ace> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let metrics = Metrics::new(config.metrics_max_agents);
        let mut registry = Registry::default();
        metrics.register(&mut registry);

        let detector = DetectorConfig {
            warmup: config.baseline_warmup,
            alpha: config.baseline_alpha,
            z: config.degradation_z,
            min_pct: config.degradation_min_pct,
            sustain: config.degradation_sustain,
        };
        let context = ContextOrgan::new(StalenessConfig::from_config(&config), metrics.clone(), clock.clone());
        let trajectory = Arc::new(TrajectoryOrgan::new(TrajectoryConfig::from_config(&config)));
        let mut monitor = Monitor::new(
            detector,
            config.buffer_capacity,
            config.batch_size,
            metrics.clone(),
            context.clone(),
            trajectory.clone(),
        );
        monitor.set_persist(self.persist);
        let started = std::time::Instant::now();
        let baselines = store.load_baselines()?;
        metrics.time_query("load_baselines", started.elapsed().as_secs_f64());
        let loaded = baselines.len();
        monitor.load(baselines);
        let errors = ErrorOrgan::new(
            MinerConfig::default(),
            config.error_threshold,
            config.error_window,
            config.task_error_severity,
            metrics.clone(),
            context.clone(),
        )?;
        let started = std::time::Instant::now();
        let patterns = store.load_patterns()?;
        metrics.time_query("load_patterns", started.elapsed().as_secs_f64());
        let restored = errors.load(&patterns);
        // Reloaded patterns are already stored.
        drop(errors.changed_patterns());
        tracing::debug!(store = store.backend(), baselines = loaded, patterns = restored, "ace engine starting");

        let decider = Decider::new(DecisionConfig::from_config(&config));
        let trace = config.trace_path.as_deref().map(TraceWriter::open).transpose()?;
        let defaults = BreakerConfig::builder()
            .window(crate::breaker::Window::ConsecutiveFailures(config.breaker_failures))
            .wait_in_open(config.breaker_wait)
            .build()?;
        let breakers = Arc::new(Breakers::new(defaults, clock.clone()));
        // Three failed writes in a row open it for a second, doubling to 30 s while it keeps
        // failing; the writer spills meanwhile. Store I/O runs on real time, not the engine's
        // (possibly manual) clock.
        let store_breaker = breakers.adopt(CircuitBreaker::with_sink_of(
            &breakers,
            "ace-store",
            BreakerConfig::builder()
                .window(crate::breaker::Window::ConsecutiveFailures(3))
                .wait_in_open(std::time::Duration::from_secs(1))
                .backoff(2.0, std::time::Duration::from_secs(30))
                .build()?,
            Arc::new(SystemClock),
        )?);
        metrics.breaker_series.attach(&breakers);
        let playbooks = Playbooks::new(
            self.playbook.unwrap_or_default(),
            self.embedder.unwrap_or_else(|| Arc::new(HashEmbedder::default())),
            store.clone(),
            clock.clone(),
            metrics.playbook.clone(),
        )?;
        // Each store spills into a directory of its own under ACE_SPILL_DIR.
        let spill_dir = match (&config.spill_dir, store.spill_key(), self.persist) {
            (Some(dir), Some(key), true) => {
                let hash = key
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
                Some(dir.join(format!("{}-{hash:016x}", store.backend())))
            }
            _ => None,
        };
        let bad_dir = |dir: &std::path::Path, e: std::io::Error| {
            Error::config(
                "ACE_SPILL_DIR",
                &dir.display().to_string(),
                format!("cannot create the spill directory: {e}"),
            )
        };
        let spill =
            spill_dir.as_deref().map(|d| crate::spill::Spill::open(d).map_err(|e| bad_dir(d, e))).transpose()?;
        if let Some(s) = &spill {
            s.adopt_orphans();
        }
        let journal = match (config.durable, &spill_dir) {
            (false, _) => None,
            (true, Some(d)) => Some(crate::spill::Journal::open(d).map_err(|e| bad_dir(d, e))?),
            (true, None) => {
                return Err(Error::config(
                    "ACE_DURABLE",
                    "true",
                    "durable mode needs a spill directory (ACE_SPILL_DIR) and a store that persists (SQLite, PostgreSQL)",
                ));
            }
        };
        let shared = Arc::new(Shared {
            config,
            clock,
            store,
            monitor,
            errors,
            context,
            trajectory,
            decider,
            trace,
            breakers,
            store_breaker,
            journal,
            cache: self.cache,
            opened: Mutex::new(Vec::new()),
            refreshed: Mutex::new(Vec::new()),
            playbooks,
            metrics,
            sync: WriterSync::default(),
        });
        if shared.cache.is_some() {
            // Openings are published by the writer thread (never on the caller's): queue them.
            let weak = Arc::downgrade(&shared);
            shared.breakers.subscribe(move |e| {
                if let (
                    Some(shared),
                    crate::breaker::EventKind::Transition { to: crate::breaker::State::Open, why, .. },
                ) = (weak.upgrade(), &e.kind)
                    && *why != crate::breaker::FROM_PEER
                    && let Ok(b) = shared.breakers.get(&e.name)
                    && let Some(until) = b.open_until_time()
                {
                    shared.opened.lock().push((e.name.clone(), until.as_micros()));
                }
            });
        }
        let writer = Writer::spawn(shared.clone(), spill)?;
        Ok(Ace {
            inner: Arc::new(Inner {
                shared,
                registry,
                subscribers: parking_lot::RwLock::new(Vec::new()),
                judge: self.judge,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }
}
