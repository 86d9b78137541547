//! The intervention engine's core: which strategy, for which signal, and whether at all.
//!
//! [`Decider::decide`] takes the signals one call produced and returns at most one
//! [`Intervention`]. Rules give each signal kind its candidate strategies with a prior; the
//! choice among them is Thompson sampling over a Beta posterior per (signal kind, strategy),
//! deterministic under a seed, which reported outcomes ([`Decider::report_outcome`]) update.
//! Gates, per task: `ACE_INTERVENTION_ENABLED`, a cooldown (`ACE_COOLDOWN_SECONDS`), a cap
//! (`ACE_MAX_INTERVENTIONS_PER_TASK`, counted per task and reset when the task ends) and de-dup
//! (a signal about the same thing, say the same error pattern or the same metric, is acted on
//! once per task).

pub mod judge;

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use parking_lot::Mutex;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::record::LearntRecord;
use crate::shard::{SHARDS, Sharded};
use crate::signal::{Direction, Evidence, Signal, SignalKind};

pub use crate::decision::{Intervention, Report, Strategy, Verdict};
pub use crate::ids::InterventionId;
pub use judge::Judge;

/// Task gates held at most (in all shards); see [`TaskGate::touched`].
const MAX_GATES: usize = 57_344;
const SHARD_MAX_GATES: usize = MAX_GATES / SHARDS;
const GATE_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);
/// Interventions awaiting an outcome, at most (the oldest are forgotten beyond this).
const MAX_AWAITING: usize = 57_344;

/// The gates and the seed (`ACE_INTERVENTION_ENABLED`, `ACE_COOLDOWN_SECONDS`,
/// `ACE_MAX_INTERVENTIONS_PER_TASK`, `ACE_INTERVENTION_SEED`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecisionConfig {
    /// Whether interventions are issued at all.
    pub enabled: bool,
    /// Minimum time between two interventions on one task.
    pub cooldown: Duration,
    /// Interventions per task at most.
    pub max_per_task: u32,
    /// Seed of the sampling: the same seed and inputs give the same decisions.
    pub seed: u64,
}

/// A Beta(alpha, beta) belief that a strategy works for a kind of signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Belief {
    /// Prior successes plus reported successes.
    pub alpha: f64,
    /// Prior failures plus reported failures.
    pub beta: f64,
}

impl Belief {
    /// The expected success rate.
    #[must_use]
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// The rules: candidate strategies for a signal, each with a prior (alpha, beta), first choice
/// first. A first choice's prior (9, 1) is worth about ten outcomes, nine of them good, so
/// Thompson sampling follows the rule until reported outcomes say otherwise; a second choice
/// starts at (3, 2), a third at (2, 2).
#[must_use]
pub fn candidates(signal: &Signal) -> &'static [(Strategy, f64, f64)] {
    use Strategy::*;
    match (&signal.kind, &signal.evidence) {
        (SignalKind::ContextStale, _) => &[(RefreshContext, 9.0, 1.0), (Replan, 2.0, 2.0)],
        (SignalKind::CriticalError, _) => &[(Escalate, 9.0, 1.0), (Terminate, 3.0, 2.0), (Reflect, 2.0, 2.0)],
        (SignalKind::ErrorEscalation, _) => &[(Escalate, 9.0, 1.0), (Reflect, 3.0, 2.0)],
        (SignalKind::ErrorCascade, _) => &[(Replan, 9.0, 1.0), (Escalate, 3.0, 2.0)],
        (SignalKind::ErrorAccumulation, Evidence::ErrorPattern { error_kind, template, .. })
            if is_throttling(error_kind, template) =>
        {
            &[(Backoff, 9.0, 1.0), (Replan, 2.0, 2.0)]
        }
        (SignalKind::ErrorAccumulation, _) => &[(Reflect, 9.0, 1.0), (Replan, 3.0, 2.0), (Backoff, 2.0, 2.0)],
        (SignalKind::TaskError, Evidence::ErrorPattern { error_kind, template, .. })
            if is_throttling(error_kind, template) =>
        {
            &[(Backoff, 9.0, 1.0), (Reflect, 2.0, 2.0)]
        }
        (SignalKind::TaskError, _) => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0), (Replan, 2.0, 2.0)],
        (SignalKind::Loop, _) => &[(Replan, 9.0, 1.0), (Reflect, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::FailureRun, _) => &[(Reflect, 9.0, 1.0), (Replan, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::BreakerOpen, _) => &[(Backoff, 9.0, 1.0), (Replan, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::LongTask, _) => &[(Replan, 9.0, 1.0), (Escalate, 3.0, 2.0), (Terminate, 2.0, 2.0)],
        (SignalKind::Degradation, Evidence::BaselineShift { metric, direction, .. }) => match metric.as_str() {
            "success" => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0), (Replan, 2.0, 2.0)],
            "duration_s" => &[(Backoff, 9.0, 1.0), (Replan, 3.0, 2.0)],
            "tokens_in" | "tokens_out" | "cost_usd" if *direction == Direction::Up => {
                &[(RefreshContext, 9.0, 1.0), (Replan, 2.0, 2.0)]
            }
            _ => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0)],
        },
        _ => &[],
    }
}

fn is_throttling(kind: &str, template: &str) -> bool {
    let text = format!("{kind} {template}").to_ascii_lowercase();
    ["rate limit", "ratelimit", "too many requests", "429", "throttl", "quota", "overloaded"]
        .iter()
        .any(|w| text.contains(w))
}

/// What a signal is about, for de-dup within a task, as a 64-bit hash: its kind, and the
/// stage and metric, pattern or breaker it concerns. (Two subjects of one task colliding, a
/// chance of about one in 2^64, would leave the second unanswered, as a repeat is.)
fn subject(hasher: &DefaultHashBuilder, signal: &Signal) -> u64 {
    let mut h = hasher.build_hasher();
    signal.kind.hash(&mut h);
    match &signal.evidence {
        Evidence::BaselineShift { metric, .. } => (0u8, signal.stage.as_deref(), metric.as_str()).hash(&mut h),
        Evidence::ErrorPattern { pattern_id, .. } => (1u8, pattern_id).hash(&mut h),
        Evidence::Failures { .. } => (2u8, signal.stage.as_deref()).hash(&mut h),
        Evidence::Breaker { breaker, .. } => (3u8, breaker.as_str()).hash(&mut h),
        Evidence::Cascade { .. } | Evidence::Staleness { .. } | Evidence::TaskLength { .. } => 4u8.hash(&mut h),
    }
    h.finish()
}

/// A task's gate. Held boxed: a table keeps a slot per 8/7 gates or more, and a slot is then
/// a pointer.
struct TaskGate {
    hash: u64,
    agent: Arc<str>,
    task: Arc<str>,
    count: u32,
    last: Option<Timestamp>,
    /// The subjects acted on (see [`subject`]), grown one at a time: most tasks see one.
    acted_on: Vec<u64>,
    /// The last signal about the task: gates idle for an hour, or the least recent past the
    /// cap, are forgotten (a task that never reports its end must not be kept forever).
    touched: Timestamp,
}

/// SplitMix64 with Marsaglia-Tsang gamma draws: deterministic Beta samples under a seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn beta(&mut self, b: Belief) -> f64 {
        let x = self.gamma(b.alpha);
        let y = self.gamma(b.beta);
        x / (x + y)
    }
}

/// An intervention awaiting its outcome.
struct Awaiting {
    kind: SignalKind,
    strategy: Strategy,
    agent: Arc<str>,
}

/// The step between consecutive intervention ids (odd, so it has an inverse modulo 2^64).
const ID_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
/// `ID_STEP`'s inverse modulo 2^64 (Newton's iteration; each step doubles the correct bits).
const ID_STEP_INVERSE: u64 = {
    let mut inv = ID_STEP;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(ID_STEP.wrapping_mul(inv)));
        i += 1;
    }
    inv
};

/// The interventions awaiting an outcome, in a ring of [`MAX_AWAITING`] slots.
///
/// Ids are `first + n * ID_STEP` (wrapping), so an id gives back its sequence number `n`, and
/// `n % MAX_AWAITING` is its slot: a slot holds the newest intervention that maps to it, and an
/// older one is forgotten when a newer takes its place. A hash map with removals at one end
/// and inserts at the other fills with tombstones until it doubles its table; this never grows
/// past the cap.
struct Awaited {
    first: u64,
    next: u64,
    slots: Vec<Option<(u64, Awaiting)>>,
}

impl Awaited {
    fn new(first: u64) -> Self {
        Awaited { first, next: 0, slots: Vec::new() }
    }

    fn push(&mut self, awaiting: Awaiting) -> InterventionId {
        let n = self.next;
        self.next += 1;
        let slot = (n % MAX_AWAITING as u64) as usize;
        if slot == self.slots.len() {
            self.slots.push(Some((n, awaiting)));
        } else {
            self.slots[slot] = Some((n, awaiting));
        }
        InterventionId(self.first.wrapping_add(n.wrapping_mul(ID_STEP)))
    }

    fn slot(&mut self, id: InterventionId) -> Option<&mut Option<(u64, Awaiting)>> {
        let n = id.0.wrapping_sub(self.first).wrapping_mul(ID_STEP_INVERSE);
        if n >= self.next {
            return None;
        }
        let slot = self.slots.get_mut((n % MAX_AWAITING as u64) as usize)?;
        slot.as_ref().is_some_and(|(m, _)| *m == n).then_some(slot)
    }

    fn get_mut(&mut self, id: InterventionId) -> Option<&mut Awaiting> {
        self.slot(id)?.as_mut().map(|(_, a)| a)
    }

    fn remove(&mut self, id: InterventionId) -> Option<Awaiting> {
        self.slot(id)?.take().map(|(_, a)| a)
    }
}

/// The gates of the tasks of one shard, by (agent, task).
type Gates = HashTable<Box<TaskGate>>;

/// Decides interventions and learns from their outcomes.
pub struct Decider {
    cfg: DecisionConfig,
    tasks: Sharded<Gates>,
    hasher: DefaultHashBuilder,
    learning: Mutex<Learning>,
}

struct Learning {
    rng: Rng,
    /// The rule's prior per (kind, strategy), as first met.
    beliefs: HashMap<(SignalKind, Strategy), Belief>,
    /// Outcomes learnt per (kind, strategy), on top of the prior: (successes, failures). Set
    /// from outside by [`Decider::restore_learnt`] (the store's totals, the fleet's).
    learnt: HashMap<(SignalKind, Strategy), (u64, u64)>,
    /// Outcomes reported here and not yet taken by [`Decider::take_learnt`].
    fresh: HashMap<(SignalKind, Strategy), (u64, u64)>,
    awaiting: Awaited,
    /// Reported outcomes per agent: (successes, reports).
    outcomes: HashMap<Arc<str>, (u64, u64)>,
}

impl Learning {
    /// `prior` plus the outcomes learnt for (kind, strategy).
    fn with_learnt(&self, kind: SignalKind, strategy: Strategy, prior: Belief) -> Belief {
        let (s, f) = self.learnt.get(&(kind, strategy)).copied().unwrap_or_default();
        Belief { alpha: prior.alpha + s as f64, beta: prior.beta + f as f64 }
    }
}

fn records(counts: &HashMap<(SignalKind, Strategy), (u64, u64)>) -> Vec<LearntRecord> {
    let mut out: Vec<LearntRecord> = counts
        .iter()
        .map(|(&(kind, strategy), &(successes, failures))| LearntRecord { kind, strategy, successes, failures })
        .collect();
    out.sort_by_key(|r| (r.kind.index(), r.strategy.as_str()));
    out
}

impl fmt::Debug for Decider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decider").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Decider {
    /// A decider with `cfg`.
    #[must_use]
    pub fn new(cfg: DecisionConfig) -> Self {
        Decider {
            cfg,
            tasks: Sharded::default(),
            hasher: DefaultHashBuilder::default(),
            learning: Mutex::new(Learning {
                rng: Rng(cfg.seed ^ 0x5851_F42D_4C95_7F2D),
                beliefs: HashMap::new(),
                learnt: HashMap::new(),
                fresh: HashMap::new(),
                awaiting: Awaited::new((cfg.seed.wrapping_mul(ID_STEP) | 1).wrapping_add(ID_STEP)),
                outcomes: HashMap::new(),
            }),
        }
    }

    /// The shard of `agent`'s `task`, and the task's hash.
    fn gates(&self, agent: &str, task: &str) -> (&Mutex<Gates>, u64) {
        let hash = self.hasher.hash_one((agent, task));
        (self.tasks.of(hash), hash)
    }

    /// At most one intervention for the signals one call produced about `agent` and `task`.
    pub fn decide(&self, now: Timestamp, agent: &str, task: &str, signals: &[Signal]) -> Option<Intervention> {
        if !self.cfg.enabled || signals.is_empty() {
            return None;
        }
        let (shard, hash) = self.gates(agent, task);
        let mut gates = shard.lock();
        #[allow(clippy::borrowed_box)] // the table's element type
        let found = |g: &Box<TaskGate>| &*g.agent == agent && &*g.task == task;
        if gates.len() >= SHARD_MAX_GATES && gates.find(hash, found).is_none() {
            crate::shard::forget_least_recent(&mut gates, now, GATE_IDLE, SHARD_MAX_GATES, |g| g.touched);
        }
        let gate = match gates.find_mut(hash, found) {
            Some(g) => g,
            None => {
                // The names of a new gate are the signals' copies when they match.
                let first = &signals[0];
                let gate = TaskGate {
                    hash,
                    agent: if &*first.agent == agent { first.agent.clone() } else { Arc::from(agent) },
                    task: match &first.task {
                        Some(t) if &**t == task => t.clone(),
                        _ => Arc::from(task),
                    },
                    count: 0,
                    last: None,
                    acted_on: Vec::new(),
                    touched: now,
                };
                gates.insert_unique(hash, Box::new(gate), |g| g.hash).into_mut()
            }
        };
        gate.touched = now;
        if gate.count >= self.cfg.max_per_task || gate.last.is_some_and(|t| now.since(t) < self.cfg.cooldown) {
            return None;
        }
        // The most severe signal not yet acted on in this task, that has a rule.
        let (index, signal) = signals
            .iter()
            .enumerate()
            .filter(|(_, s)| !candidates(s).is_empty() && !gate.acted_on.contains(&subject(&self.hasher, s)))
            .max_by_key(|(i, s)| (s.severity, std::cmp::Reverse(*i)))?;
        let strategy = self.choose(signal);
        gate.count += 1;
        gate.last = Some(now);
        gate.acted_on.reserve_exact(1);
        gate.acted_on.push(subject(&self.hasher, signal));
        let key = (gate.agent.clone(), gate.task.clone());
        drop(gates);

        let id = {
            let mut l = self.learning.lock();
            l.awaiting.push(Awaiting { kind: signal.kind, strategy, agent: key.0.clone() })
        };
        let mut ordered = Vec::with_capacity(signals.len());
        ordered.push(signal.clone());
        ordered.extend(signals.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, s)| s.clone()));
        Some(Intervention {
            id,
            at: now,
            agent: key.0,
            task: key.1,
            strategy,
            severity: signal.severity,
            reason: format!("{strategy}: {}", signal.message),
            signals: ordered,
        })
    }

    fn choose(&self, signal: &Signal) -> Strategy {
        let mut l = self.learning.lock();
        let mut best = (Strategy::Reflect, f64::NEG_INFINITY);
        for &(strategy, alpha, beta) in candidates(signal) {
            let prior = *l.beliefs.entry((signal.kind, strategy)).or_insert(Belief { alpha, beta });
            let belief = l.with_learnt(signal.kind, strategy, prior);
            let draw = l.rng.beta(belief);
            if draw > best.1 {
                best = (strategy, draw);
            }
        }
        best.0
    }

    /// Reports whether an intervention worked: updates the belief in its strategy for its kind
    /// of signal. An unknown id (or one reported already, or forgotten) is an error. Returns
    /// the agent and the share of its reported interventions that worked.
    pub fn report_outcome(&self, id: InterventionId, success: bool) -> Result<(Arc<str>, f64)> {
        let mut guard = self.learning.lock();
        let l = &mut *guard;
        let Some(Awaiting { kind, strategy, agent }) = l.awaiting.remove(id) else {
            return Err(Error::invalid(
                "intervention id",
                format!("{id} is unknown or its outcome was already reported"),
            ));
        };
        for counts in [l.learnt.entry((kind, strategy)).or_default(), l.fresh.entry((kind, strategy)).or_default()] {
            if success {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        let counts = l.outcomes.entry(agent.clone()).or_default();
        counts.0 += u64::from(success);
        counts.1 += 1;
        let rate = counts.0 as f64 / counts.1 as f64;
        Ok((agent, rate))
    }

    /// The judge picked another strategy for intervention `id`: its outcome will teach about
    /// that one. Returns whether the id was awaiting an outcome.
    pub(crate) fn repick(&self, id: InterventionId, kind: SignalKind, strategy: Strategy) -> bool {
        let mut l = self.learning.lock();
        l.beliefs.entry((kind, strategy)).or_insert(Belief { alpha: 1.0, beta: 1.0 });
        match l.awaiting.get_mut(id) {
            Some(a) => {
                a.strategy = strategy;
                true
            }
            None => false,
        }
    }

    /// The judge vetoed intervention `id`: no outcome will come.
    pub(crate) fn forget(&self, id: InterventionId) {
        self.learning.lock().awaiting.remove(id);
    }

    /// The current belief in `strategy` for `kind` (the rule's prior until outcomes arrive).
    #[must_use]
    pub fn belief(&self, kind: SignalKind, strategy: Strategy) -> Option<Belief> {
        let l = self.learning.lock();
        l.beliefs.get(&(kind, strategy)).map(|prior| l.with_learnt(kind, strategy, *prior))
    }

    /// Everything learnt: the outcome counts per (kind, strategy), on top of the priors.
    #[must_use]
    pub fn learnt(&self) -> Vec<LearntRecord> {
        records(&self.learning.lock().learnt)
    }

    /// The outcomes reported here since the last call: what is new to save or to share.
    #[must_use]
    pub fn take_learnt(&self) -> Vec<LearntRecord> {
        records(&std::mem::take(&mut self.learning.lock().fresh))
    }

    /// Sets what was learnt elsewhere (the store's totals at start, the fleet's since): each
    /// (kind, strategy) counts `totals` plus the outcomes reported here and not yet taken by
    /// [`Decider::take_learnt`]. A (kind, strategy) missing from `totals` keeps its counts.
    pub fn restore_learnt(&self, totals: &[LearntRecord]) {
        let mut l = self.learning.lock();
        for t in totals {
            let fresh = l.fresh.get(&(t.kind, t.strategy)).copied().unwrap_or_default();
            l.learnt.insert((t.kind, t.strategy), (t.successes + fresh.0, t.failures + fresh.1));
        }
    }

    /// Forgets a task's gates (count, cooldown, de-dup): it has ended.
    pub fn end_task(&self, agent: &str, task: &str) -> bool {
        let (shard, hash) = self.gates(agent, task);
        let mut gates = shard.lock();
        match gates.find_entry(hash, |g| &*g.agent == agent && &*g.task == task) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use crate::ids::PatternId;
    use crate::signal::ErrorScope;

    fn cfg() -> DecisionConfig {
        DecisionConfig { enabled: true, cooldown: Duration::from_secs(60), max_per_task: 5, seed: 42 }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000)
    }

    fn error_signal(kind: SignalKind, error_kind: &str, pattern: u64, severity: Severity) -> Signal {
        Signal {
            kind,
            severity,
            at: t(0),
            agent: "a".into(),
            task: Some("t".into()),
            stage: Some("execution".into()),
            message: format!("a execution: {error_kind} \"x <*>\" occurred 3 times"),
            evidence: Evidence::ErrorPattern {
                pattern_id: PatternId(pattern),
                error_kind: error_kind.into(),
                template: "x <*>".into(),
                occurrences: 3,
                window_s: 300.0,
                scope: ErrorScope::Task,
                severity,
                previous_severity: severity,
            },
        }
    }

    fn stale() -> Signal {
        Signal {
            kind: SignalKind::ContextStale,
            severity: Severity::Medium,
            at: t(0),
            agent: "a".into(),
            task: Some("t".into()),
            stage: Some("planning".into()),
            message: "a: context is stale".into(),
            evidence: Evidence::Staleness {
                score: 0.85,
                threshold: 0.8,
                seconds_since_refresh: 900.0,
                steps_since_refresh: 40,
                errors_since_refresh: 1,
            },
        }
    }

    #[test]
    fn rules_pick_sensible_strategies() {
        let d = Decider::new(cfg());
        let i = d.decide(t(0), "a", "t1", &[stale()]).unwrap();
        assert_eq!(i.strategy, Strategy::RefreshContext);
        assert!(i.reason.starts_with("refresh_context: a: context is stale"), "{}", i.reason);
        let r = d
            .decide(
                t(0),
                "a",
                "t2",
                &[error_signal(SignalKind::ErrorAccumulation, "RateLimitError", 1, Severity::Medium)],
            )
            .unwrap();
        assert_eq!(r.strategy, Strategy::Backoff);
        assert_eq!(
            candidates(&error_signal(SignalKind::CriticalError, "E", 2, Severity::Critical))[0].0,
            Strategy::Escalate
        );
    }

    #[test]
    fn without_outcomes_the_rule_decides_almost_always() {
        let d = Decider::new(cfg());
        let refresh = (0..1000)
            .filter(|k| d.decide(t(0), "a", &format!("t{k}"), &[stale()]).unwrap().strategy == Strategy::RefreshContext)
            .count();
        // Beta(9, 1) against Beta(2, 2): the second choice wins a draw about 4% of the time.
        assert!(refresh > 930, "{refresh}");
    }

    #[test]
    fn the_most_severe_signal_is_acted_on_and_listed_first() {
        let d = Decider::new(cfg());
        let low = error_signal(SignalKind::ErrorAccumulation, "E", 1, Severity::Medium);
        let critical = error_signal(SignalKind::CriticalError, "E", 2, Severity::Critical);
        let i = d.decide(t(0), "a", "t", &[low.clone(), critical.clone()]).unwrap();
        assert_eq!(i.signals, vec![critical, low]);
        assert_eq!(i.severity, Severity::Critical);
    }

    #[test]
    fn cooldown_cap_dedup_and_disable_gate_per_task() {
        let d = Decider::new(cfg());
        let s = |p| error_signal(SignalKind::ErrorAccumulation, "E", p, Severity::Medium);
        assert!(d.decide(t(0), "a", "t", &[s(1)]).is_some());
        assert!(d.decide(t(30), "a", "t", &[s(2)]).is_none(), "cooldown: 60 s per task");
        assert!(d.decide(t(30), "a", "other", &[s(2)]).is_some(), "another task is not cooled down");
        assert!(d.decide(t(61), "a", "t", &[s(1)]).is_none(), "the same pattern again: de-dup");
        assert!(d.decide(t(61), "a", "t", &[s(2)]).is_some());
        for (k, p) in (3..10).enumerate() {
            let at = t(200 + 100 * k as i64);
            let got = d.decide(at, "a", "t", &[s(p)]);
            assert_eq!(got.is_some(), k < 3, "cap of 5 per task (2 given already), at {k}");
        }
        assert!(d.end_task("a", "t"));
        assert!(d.decide(t(5000), "a", "t", &[s(1)]).is_some(), "a new task starts with clean gates");
        let off = Decider::new(DecisionConfig { enabled: false, ..cfg() });
        assert!(off.decide(t(0), "a", "t", &[s(1)]).is_none());
        assert!(d.decide(t(9000), "a", "t9", &[]).is_none());
    }

    #[test]
    fn the_step_inverse_recovers_sequence_numbers() {
        assert_eq!(ID_STEP.wrapping_mul(ID_STEP_INVERSE), 1);
        let mut ring = Awaited::new(12_345);
        let ids: Vec<InterventionId> = (0..3)
            .map(|_| ring.push(Awaiting { kind: SignalKind::TaskError, strategy: Strategy::Replan, agent: "a".into() }))
            .collect();
        assert_eq!(ids[0].0, 12_345);
        assert_eq!(ids[2].0, 12_345u64.wrapping_add(ID_STEP.wrapping_mul(2)));
        assert!(ring.remove(InterventionId(ids[2].0.wrapping_add(ID_STEP))).is_none(), "not issued yet");
        assert!(ring.remove(InterventionId(7)).is_none(), "never issued");
        assert!(ring.remove(ids[1]).is_some());
        assert!(ring.remove(ids[1]).is_none(), "reported once");
        assert!(ring.get_mut(ids[0]).is_some() && ring.get_mut(ids[2]).is_some());
    }

    #[test]
    fn interventions_awaiting_an_outcome_are_capped_oldest_first() {
        let d = Decider::new(DecisionConfig { cooldown: Duration::ZERO, ..cfg() });
        let s = error_signal(SignalKind::ErrorAccumulation, "E", 1, Severity::Medium);
        let n = MAX_AWAITING + 10;
        let ids: Vec<InterventionId> = (0..n)
            .map(|i| d.decide(t(i as i64), "a", &format!("t{i}"), std::slice::from_ref(&s)).unwrap().id)
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), n, "ids are unique");
        assert!(d.learning.lock().awaiting.slots.len() <= MAX_AWAITING);
        for id in &ids[..10] {
            assert!(d.report_outcome(*id, true).is_err(), "the oldest are forgotten");
        }
        assert!(d.report_outcome(ids[10], true).is_ok());
        assert!(d.report_outcome(ids[n - 1], false).is_ok());
        assert!(d.report_outcome(ids[n - 1], false).is_err(), "an outcome is reported once");
    }

    #[test]
    fn gates_of_tasks_that_never_end_are_capped() {
        let d = Decider::new(cfg());
        let s = |p| error_signal(SignalKind::ErrorAccumulation, "E", p, Severity::Medium);
        // 100,000 tasks, one signal each, 10 ms apart, none ever reported ended.
        for i in 0..100_000i64 {
            let at = Timestamp::from_micros(i * 10_000);
            assert!(d.decide(at, "a", &format!("t{i}"), &[s(1)]).is_some());
        }
        let held: usize = d.tasks.iter().map(|g| g.0.lock().len()).sum();
        assert!(held <= MAX_GATES, "{held}");
        // The newest task's gate is still there: its cooldown holds.
        assert!(d.decide(Timestamp::from_micros(99_999 * 10_000 + 1), "a", "t99999", &[s(2)]).is_none());
    }

    #[test]
    fn outcomes_teach_which_strategy_works_deterministically() {
        let run = |seed| {
            let d = Decider::new(DecisionConfig { seed, cooldown: Duration::ZERO, ..cfg() });
            let mut chosen = Vec::new();
            for task in 0..400 {
                let s = error_signal(SignalKind::ErrorAccumulation, "ToolError", 7, Severity::Medium);
                let i = d.decide(t(task), "a", &format!("t{task}"), &[s]).unwrap();
                // In this world only replanning works.
                d.report_outcome(i.id, i.strategy == Strategy::Replan).unwrap();
                chosen.push(i.strategy);
            }
            (chosen, d.belief(SignalKind::ErrorAccumulation, Strategy::Replan).unwrap())
        };
        let (a, belief) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b, "same seed, same decisions");
        let late_replans = a[300..].iter().filter(|s| **s == Strategy::Replan).count();
        assert!(late_replans > 90, "learned: {late_replans} of the last 100");
        assert!(belief.mean() > 0.9);
    }

    #[test]
    fn learnt_counts_are_taken_once_and_restored_on_top_of_the_prior() {
        let d = Decider::new(cfg());
        let i = d.decide(t(0), "a", "t", &[stale()]).unwrap();
        d.report_outcome(i.id, false).unwrap();
        let kind = SignalKind::ContextStale;
        let one = LearntRecord { kind, strategy: i.strategy, successes: 0, failures: 1 };
        assert_eq!(d.take_learnt(), vec![one]);
        assert!(d.take_learnt().is_empty(), "taken once");
        assert_eq!(d.learnt(), vec![one], "still learnt");
        // Another decider, told that refreshing failed 40 times and replanning worked 30 times,
        // now replans, though its rule prefers refreshing.
        let other = Decider::new(cfg());
        let s = |strategy, successes, failures| LearntRecord { kind, strategy, successes, failures };
        other.restore_learnt(&[s(Strategy::RefreshContext, 0, 40), s(Strategy::Replan, 30, 0)]);
        let replans = (0..100)
            .filter(|k| other.decide(t(0), "a", &format!("t{k}"), &[stale()]).unwrap().strategy == Strategy::Replan)
            .count();
        assert!(replans > 95, "{replans}");
        assert_eq!(other.belief(kind, Strategy::RefreshContext).unwrap(), Belief { alpha: 9.0, beta: 41.0 });
        // An outcome reported here and not yet taken stays on top of restored totals.
        let j = other.decide(t(0), "a", "u", &[stale()]).unwrap();
        other.report_outcome(j.id, true).unwrap();
        other.restore_learnt(&[s(j.strategy, 50, 0)]);
        assert_eq!(other.learnt().iter().find(|r| r.strategy == j.strategy).unwrap().successes, 51);
    }

    #[test]
    fn outcomes_for_unknown_or_reported_ids_are_refused() {
        let d = Decider::new(cfg());
        let i = d.decide(t(0), "a", "t", &[stale()]).unwrap();
        d.report_outcome(i.id, true).unwrap();
        assert_eq!(d.report_outcome(i.id, true).unwrap_err().code(), "invalid_input");
        assert_eq!(d.report_outcome(InterventionId(12345), false).unwrap_err().code(), "invalid_input");
        assert_eq!(i.id.to_string().parse::<InterventionId>().unwrap(), i.id);
        assert_eq!("not-a-strategy".parse::<Strategy>().unwrap_err().code(), "invalid_input");
        assert_eq!("backoff".parse::<Strategy>().unwrap(), Strategy::Backoff);
    }
}
