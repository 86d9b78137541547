//! Context staleness: how far an agent's context has drifted since it was last rebuilt.
//!
//! Per agent, three counts since the last `Ace::refresh_context`
//! (or since the agent was first seen): seconds, stages recorded, and errors recorded. Each
//! becomes a part in [0, 1) that reaches 0.5 at its half-life (`ACE_CONTEXT_TIME_HALF_LIFE`,
//! 600 s; `ACE_CONTEXT_STEPS_HALF_LIFE`, 20; `ACE_CONTEXT_ERRORS_HALF_LIFE`, 3), `x / (x + half)`,
//! and the score is their probabilistic or, `1 - (1 - t)(1 - s)(1 - e)`: any one growing makes
//! the context stale, and together they do so sooner. With the defaults an agent is at 0.8 after
//! 40 minutes, or 80 stages, or 12 errors, or (say) 10 minutes, 20 stages and 3 errors together.
//!
//! When the score reaches `ACE_CONTEXT_STALENESS_THRESHOLD` (0.8) on a stage or an error, that
//! call returns one `context_stale` signal; the next comes only after a refresh. The state is a
//! few atomics per agent, shared with the monitor's entries; a stage pays a load and a store
//! (two threads recording one agent at the same instant may count one step between them).
//! `ace_context_staleness{agent_id}` is computed when scraped.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::clock::{Clock, Timestamp};
use crate::event::Severity;
use crate::shard::Sharded;
use crate::signal::{Evidence, Signal, SignalKind};
use crate::telemetry::{AgentLabels, Instrumented};

/// The staleness settings (`ACE_CONTEXT_*`; the defaults are the configuration's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StalenessConfig {
    /// Score that raises a signal.
    pub threshold: f64,
    /// Seconds since the refresh at which the time part is 0.5.
    pub time_half_life_s: f64,
    /// Stages since the refresh at which the steps part is 0.5.
    pub steps_half_life: f64,
    /// Errors since the refresh at which the errors part is 0.5.
    pub errors_half_life: f64,
}

impl Default for StalenessConfig {
    fn default() -> Self {
        StalenessConfig { threshold: 0.8, time_half_life_s: 600.0, steps_half_life: 20.0, errors_half_life: 3.0 }
    }
}

impl StalenessConfig {
    /// The score for `seconds`, `steps` and `errors` since the last refresh.
    #[must_use]
    pub fn score(&self, seconds: f64, steps: u64, errors: u64) -> f64 {
        let part = |x: f64, half: f64| if x <= 0.0 { 0.0 } else { x / (x + half) };
        let t = part(seconds, self.time_half_life_s);
        let s = part(steps as f64, self.steps_half_life);
        let e = part(errors as f64, self.errors_half_life);
        1.0 - (1.0 - t) * (1.0 - s) * (1.0 - e)
    }
}

/// One agent's context state. Shared (an `Arc`) by the organ and the monitor's entries.
pub(crate) struct AgentContext {
    agent: Arc<str>,
    label: Arc<str>,
    refreshed_at: AtomicI64,
    steps: AtomicU64,
    errors: AtomicU64,
    /// A `context_stale` signal went out since the last refresh.
    signalled: AtomicBool,
}

impl AgentContext {
    /// The agent's name (one copy, shared by the organs that keep per-agent state).
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.agent
    }

    fn score_at(&self, now: Timestamp, cfg: &StalenessConfig) -> (f64, f64, u64, u64) {
        let seconds = now.since(Timestamp::from_micros(self.refreshed_at.load(Ordering::Relaxed))).as_secs_f64();
        let steps = self.steps.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        (cfg.score(seconds, steps, errors), seconds, steps, errors)
    }

    /// Counts a stage (or an error); returns a signal if the score just reached the threshold.
    pub(crate) fn observe(
        &self,
        now: Timestamp,
        error: bool,
        task: &str,
        stage: &str,
        cfg: &StalenessConfig,
    ) -> Option<Signal> {
        // A load and a store, not a read-modify-write: two threads recording the same agent at
        // the same instant may count one step, which staleness (an estimate) can afford, and the
        // recording path saves a locked instruction.
        let counter = if error { &self.errors } else { &self.steps };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if self.signalled.load(Ordering::Relaxed) {
            return None;
        }
        let (score, seconds, steps, errors) = self.score_at(now, cfg);
        if score < cfg.threshold || self.signalled.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(Signal {
            kind: SignalKind::ContextStale,
            severity: if score >= 0.95 { Severity::High } else { Severity::Medium },
            at: now,
            agent: self.agent.clone(),
            task: Some(Arc::from(task)),
            stage: Some(Arc::from(stage)),
            message: format!(
                "{}: context is stale (score {score:.2} >= {:.2}): {:.0} s, {steps} stages and {errors} errors since it was last refreshed",
                self.agent, cfg.threshold, seconds
            ),
            evidence: Evidence::Staleness {
                score,
                threshold: cfg.threshold,
                seconds_since_refresh: seconds,
                steps_since_refresh: steps,
                errors_since_refresh: errors,
            },
        })
    }

    fn refresh(&self, now: Timestamp) {
        self.refreshed_at.store(now.as_micros(), Ordering::Relaxed);
        self.steps.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.signalled.store(false, Ordering::Relaxed);
    }
}

type AgentMap = HashMap<Arc<str>, Arc<AgentContext>>;

/// The agents' context states.
pub(crate) struct ContextOrgan {
    shards: Sharded<AgentMap>,
    hasher: DefaultHashBuilder,
    pub(crate) cfg: StalenessConfig,
    labels: AgentLabels,
    clock: Arc<dyn Clock>,
}

impl ContextOrgan {
    pub(crate) fn new(cfg: StalenessConfig, labels: AgentLabels, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(ContextOrgan { shards: Sharded::default(), hasher: DefaultHashBuilder::default(), cfg, labels, clock })
    }

    /// The organ's series (`ace_context_staleness`), computed at scrape time.
    pub(crate) fn series(self: &Arc<Self>) -> ContextSeries {
        ContextSeries { organ: Arc::downgrade(self) }
    }

    fn shard(&self, agent: &str) -> &Mutex<AgentMap> {
        self.shards.of(self.hasher.hash_one(agent))
    }

    /// The agent's state, created (fresh as of `now`) on first sight.
    pub(crate) fn agent(&self, agent: &str, now: Timestamp) -> Arc<AgentContext> {
        let mut shard = self.shard(agent).lock();
        if let Some(a) = shard.get(agent) {
            return a.clone();
        }
        let name: Arc<str> = Arc::from(agent);
        let state = Arc::new(AgentContext {
            label: self.labels.label(&name),
            agent: name.clone(),
            refreshed_at: AtomicI64::new(now.as_micros()),
            steps: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            signalled: AtomicBool::new(false),
        });
        shard.insert(name, state.clone());
        state
    }

    /// The agent's context was rebuilt at `now`.
    pub(crate) fn refresh(&self, agent: &str, now: Timestamp) {
        self.agent(agent, now).refresh(now);
    }

    /// Applies a refresh another process made at `at` (through the shared cache) if it is newer
    /// than this process's last; whether it was.
    pub(crate) fn refresh_from_peer(&self, agent: &str, at: Timestamp) -> bool {
        let shard = self.shard(agent).lock();
        match shard.get(agent) {
            Some(a) if a.refreshed_at.load(Ordering::Relaxed) < at.as_micros() => {
                a.refresh(at);
                true
            }
            _ => false,
        }
    }

    /// Up to `limit` agents whose score at `now` is at least `score`.
    pub(crate) fn staler_than(&self, score: f64, now: Timestamp, limit: usize) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for a in shard.values() {
                if out.len() >= limit {
                    return out;
                }
                if a.score_at(now, &self.cfg).0 >= score {
                    out.push(a.agent.clone());
                }
            }
        }
        out
    }

    /// The agent's score at `now`, if it was ever seen.
    pub(crate) fn staleness(&self, agent: &str, now: Timestamp) -> Option<f64> {
        let shard = self.shard(agent).lock();
        shard.get(agent).map(|a| a.score_at(now, &self.cfg).0)
    }
}

/// `ace_context_staleness{agent_id}`, computed at scrape.
#[derive(Clone)]
pub(crate) struct ContextSeries {
    organ: Weak<ContextOrgan>,
}

impl fmt::Debug for ContextSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextSeries").finish_non_exhaustive()
    }
}

impl Instrumented for ContextSeries {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for ContextSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(organ) = self.organ.upgrade() else { return Ok(()) };
        let now = organ.clock.now();
        // Agents sharing the overflow label report the stalest of them.
        let mut scores: std::collections::BTreeMap<Arc<str>, f64> = std::collections::BTreeMap::new();
        for shard in organ.shards.iter() {
            for a in shard.0.lock().values() {
                let score = a.score_at(now, &organ.cfg).0;
                let slot = scores.entry(a.label.clone()).or_insert(score);
                *slot = slot.max(score);
            }
        }
        let mut gauge = encoder.encode_descriptor(
            "ace_context_staleness",
            "Staleness of the agent's context in [0, 1] (time, stages and errors since its last refresh)",
            None,
            MetricType::Gauge,
        )?;
        for (agent, score) in &scores {
            ConstGauge::new(*score).encode(gauge.encode_family(&[("agent_id", &**agent)])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StalenessConfig {
        StalenessConfig::default()
    }

    #[test]
    fn the_score_combines_time_steps_and_errors() {
        let c = cfg();
        assert_eq!(c.score(0.0, 0, 0), 0.0);
        assert!((c.score(600.0, 0, 0) - 0.5).abs() < 1e-12);
        assert!((c.score(0.0, 20, 0) - 0.5).abs() < 1e-12);
        assert!((c.score(0.0, 0, 3) - 0.5).abs() < 1e-12);
        assert!((c.score(2400.0, 0, 0) - 0.8).abs() < 1e-12, "40 minutes alone");
        assert!((c.score(0.0, 0, 12) - 0.8).abs() < 1e-12, "12 errors alone");
        assert!((c.score(600.0, 20, 3) - 0.875).abs() < 1e-12, "all three at their half-life");
        assert!(c.score(1e12, u64::MAX, u64::MAX) <= 1.0);
    }
}
