//! The intervention engine's core: which strategy, for which signal, and whether at all.
//!
//! [`Decider::decide`] takes the signals one call produced and returns at most one
//! [`Intervention`]. Rules give each signal kind its candidate strategies with a prior; the
//! choice among them is Thompson sampling over a Beta posterior per (signal kind, strategy),
//! deterministic under a seed, which reported outcomes ([`Decider::report_outcome`]) update.
//! Whether to act at all depends on what the signal is worth: the engine learns, per signal
//! kind and subject, how often a task failed after it (from task ends with their outcome and
//! from reported intervention outcomes; see [`failure`]) and leaves alone what tasks get over
//! by themselves (`ACE_INTERVENTION_MIN_FAILURE`).
//! Gates, per task: `ACE_INTERVENTION_ENABLED`, a cooldown (`ACE_COOLDOWN_SECONDS`), a cap
//! (`ACE_MAX_INTERVENTIONS_PER_TASK`, counted per task and reset when the task ends) and de-dup
//! (a signal about the same thing, say the same error pattern or the same metric, is acted on
//! once per task).
//!
//! Everything learnt is one plain value, [`Learnt`], that [`Decider::learnt`] copies out and
//! [`Decider::restore`] puts back.

mod awaited;
pub mod confidence;
pub mod failure;
pub mod judge;
mod rng;
mod rules;

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::record::LearntRecord;
use crate::shard::{SHARDS, Sharded, hash_pair};
use crate::signal::{Signal, SignalKind};

use awaited::{Awaited, Awaiting};
use failure::{FailureState, Failures, Subject, SubjectRef};
use rng::Rng;

pub use crate::decision::{Amendment, Confidence, Intervention, Report, Strategy, Verdict};
pub use crate::ids::InterventionId;
pub use judge::Judge;
pub use rules::candidates;

/// Task gates held at most (in all shards); see [`TaskGate::touched`].
const MAX_GATES: usize = 57_344;
const SHARD_MAX_GATES: usize = MAX_GATES / SHARDS;
const GATE_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The gates and the seed (`ACE_INTERVENTION_ENABLED`, `ACE_COOLDOWN_SECONDS`,
/// `ACE_MAX_INTERVENTIONS_PER_TASK`, `ACE_INTERVENTION_SEED`,
/// `ACE_INTERVENTION_MIN_FAILURE`).
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
    /// A signal is acted on while the chance that its task fails may reach this (see
    /// [`failure`]); 0 acts on every signal.
    pub min_failure: f64,
}

/// A Beta(alpha, beta) belief: that a strategy works for a kind of signal, or that a task fails
/// after a signal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

/// One strategy's learnt belief for a kind of signal, as saved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyBelief {
    /// The signal kind.
    pub kind: SignalKind,
    /// The strategy.
    pub strategy: Strategy,
    /// The belief that it works.
    pub belief: Belief,
}

/// Everything the decider learnt, as a plain value: the strategies' beliefs and which signals
/// precede failure. Save it with [`Decider::learnt`] and put it back with [`Decider::restore`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Learnt {
    /// Per (signal kind, strategy), in a fixed order.
    pub strategies: Vec<StrategyBelief>,
    /// Which signals preceded failed tasks.
    pub failures: FailureState,
}

/// What a signal is about, for de-dup within a task and as the key of what is learnt, as a
/// 64-bit hash of its kind and [`Subject`]. (Two subjects colliding, a chance of about one in
/// 2^64, would be taken for one.)
fn subject(hasher: &DefaultHashBuilder, signal: &Signal) -> u64 {
    hasher.hash_one((signal.kind, SubjectRef::of(signal)))
}

/// A task's gate. Held boxed: a table keeps a slot per 8/7 gates or more, and a slot is then
/// a pointer.
struct TaskGate {
    hash: u64,
    agent: Arc<str>,
    task: Arc<str>,
    count: u32,
    last: Option<Timestamp>,
    /// The subjects acted on (see [`subject`]), grown one at a time: most tasks see one, held
    /// inline.
    acted_on: SmallVec<[u64; 1]>,
    /// The subjects raised in the task with their kinds, learnt from when it ends (most tasks:
    /// one, held inline).
    raised: SmallVec<[(u64, SignalKind); 1]>,
    /// The last signal about the task: gates idle for an hour, or the least recent past the
    /// cap, are forgotten (a task that never reports its end must not be kept forever).
    touched: Timestamp,
}

/// The gates of the tasks of one shard, by (agent, task).
type Gates = HashTable<Box<TaskGate>>;

/// Decides interventions and learns from their outcomes.
pub struct Decider {
    cfg: DecisionConfig,
    /// Whether a decision's confidence is computed (see [`Decider::skip_confidence`]).
    assess: bool,
    tasks: Sharded<Gates>,
    hasher: DefaultHashBuilder,
    learning: Mutex<Learning>,
}

struct Learning {
    rng: Rng,
    /// The rule's prior per (kind, strategy), as first met.
    beliefs: HashMap<(SignalKind, Strategy), Belief>,
    failures: Failures,
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

/// The first intervention id of a decider: a value of its own, so the ids of two engines never
/// meet (a process and its restart on one SQLite file, replicas writing to one database; the
/// store keeps the first record of an id and an outcome names its intervention by id). An
/// engine's ids then count up from it (wrapping), so a store's index on them takes each in at
/// one place, and two engines' runs of ids overlap only if their random starts fall within the
/// runs' length of each other (about 2^-39 for two engines of 2^24 interventions each). The seed
/// governs the sampling, not the ids.
fn first_id() -> u64 {
    crate::ids::random_u64()
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
            assess: true,
            tasks: Sharded::default(),
            hasher: DefaultHashBuilder::default(),
            learning: Mutex::new(Learning {
                rng: Rng(cfg.seed ^ 0x5851_F42D_4C95_7F2D),
                beliefs: HashMap::new(),
                failures: Failures::new(cfg.min_failure),
                learnt: HashMap::new(),
                fresh: HashMap::new(),
                awaiting: Awaited::new(first_id()),
                outcomes: HashMap::new(),
            }),
        }
    }

    /// Leaves every decision's confidence at [`Confidence::default`] instead of computing it
    /// (a replay: nothing there reads it, and no judge is asked). The choices are the same: the
    /// confidence follows the draws and changes none of them.
    pub(crate) fn skip_confidence(&mut self) {
        self.assess = false;
    }

    /// The shard of `agent`'s `task`, and the task's hash.
    fn gates(&self, agent: &str, task: &str) -> (&Mutex<Gates>, u64) {
        let hash = hash_pair(&self.hasher, agent, task);
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
                    acted_on: SmallVec::new(),
                    raised: SmallVec::new(),
                    touched: now,
                };
                gates.insert_unique(hash, Box::new(gate), |g| g.hash).into_mut()
            }
        };
        gate.touched = now;
        let mut l = self.learning.lock();
        // Every subject with a rule counts for learning, acted on or not.
        let subjects: Vec<u64> = signals.iter().map(|s| subject(&self.hasher, s)).collect();
        for (s, &key) in signals.iter().zip(&subjects) {
            if candidates(s).is_empty() {
                continue;
            }
            l.failures.raised(key, s.kind, || Subject::of(s));
            if !gate.raised.iter().any(|(k, _)| *k == key) {
                gate.raised.reserve_exact(1);
                gate.raised.push((key, s.kind));
            }
        }
        if gate.count >= self.cfg.max_per_task || gate.last.is_some_and(|t| now.since(t) < self.cfg.cooldown) {
            return None;
        }
        // The most severe signal not yet acted on in this task, that has a rule and may well
        // precede a failure.
        let (index, signal) = signals
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                !candidates(s).is_empty()
                    && !gate.acted_on.contains(&subjects[*i])
                    && l.failures.warranted(subjects[*i], s.kind)
            })
            .max_by_key(|(i, s)| (s.severity, std::cmp::Reverse(*i)))?;
        let (strategy, confidence) = choose(&mut l, signal, self.assess);
        gate.count += 1;
        gate.last = Some(now);
        gate.acted_on.reserve_exact(1);
        gate.acted_on.push(subjects[index]);
        let (agent, task) = (gate.agent.clone(), gate.task.clone());
        drop(gates);
        let id = l.awaiting.push(Awaiting {
            kind: signal.kind,
            strategy,
            agent: agent.clone(),
            task: task.clone(),
            subject: subjects[index],
        });
        drop(l);
        let mut ordered = Vec::with_capacity(signals.len());
        ordered.push(signal.clone());
        ordered.extend(signals.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, s)| s.clone()));
        Some(Intervention {
            id,
            at: now,
            agent,
            task,
            strategy,
            severity: signal.severity,
            reason: format!("{strategy}: {}", signal.message),
            signals: ordered,
            confidence,
            amended: None,
        })
    }

    /// Reports whether an intervention worked: updates the belief in its strategy for its kind
    /// of signal, and, when it worked, counts its task as one in trouble after that signal (a
    /// failure averted; the task's end will not count it again). An unknown id (or one
    /// reported already, or forgotten) is an error. Returns the agent and the share of its
    /// reported interventions that worked.
    pub fn report_outcome(&self, id: InterventionId, success: bool) -> Result<(Arc<str>, f64)> {
        let mut guard = self.learning.lock();
        let l = &mut *guard;
        let Some(Awaiting { kind, strategy, agent, task, subject }) = l.awaiting.remove(id) else {
            return Err(Error::invalid(
                "intervention id",
                format!("{id} is unknown or its outcome was already reported"),
            ));
        };
        if success {
            l.failures.learn(subject, kind, true);
        }
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
        drop(guard);
        if success {
            let (shard, hash) = self.gates(&agent, &task);
            let mut gates = shard.lock();
            if let Some(g) = gates.find_mut(hash, |g| g.agent == agent && g.task == task) {
                g.raised.retain(|(k, _)| *k != subject);
            }
        }
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

    /// The outcome counts learnt per (kind, strategy), on top of the priors (what the store
    /// and the fleet keep).
    #[must_use]
    pub fn learnt_counts(&self) -> Vec<LearntRecord> {
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

    /// The current belief that a task fails after `signal` (see [`failure`]), and whether the
    /// decider would act on it.
    #[must_use]
    pub fn failure_belief(&self, signal: &Signal) -> (Belief, bool) {
        let key = subject(&self.hasher, signal);
        let l = self.learning.lock();
        (l.failures.belief(key, signal.kind), l.failures.warranted(key, signal.kind))
    }

    /// Forgets a task's gates (count, cooldown, de-dup): it has ended. With its outcome
    /// (`success`), every subject raised in it learns whether it preceded a failure. Returns
    /// whether the decider knew the task.
    pub fn end_task(&self, agent: &str, task: &str, success: Option<bool>) -> bool {
        let (shard, hash) = self.gates(agent, task);
        let gate = {
            let mut gates = shard.lock();
            match gates.find_entry(hash, |g| &*g.agent == agent && &*g.task == task) {
                Ok(entry) => entry.remove().0,
                Err(_) => return false,
            }
        };
        if let Some(success) = success
            && !gate.raised.is_empty()
        {
            let mut l = self.learning.lock();
            for &(key, kind) in &gate.raised {
                l.failures.learn(key, kind, !success);
            }
        }
        true
    }

    /// A copy of everything learnt.
    #[must_use]
    pub fn learnt(&self) -> Learnt {
        let l = self.learning.lock();
        let mut strategies: Vec<StrategyBelief> = l
            .beliefs
            .iter()
            .map(|(&(kind, strategy), &prior)| StrategyBelief {
                kind,
                strategy,
                belief: l.with_learnt(kind, strategy, prior),
            })
            .collect();
        strategies.sort_unstable_by_key(|b| (b.kind.index(), b.strategy));
        Learnt { strategies, failures: l.failures.state() }
    }

    /// Replaces what was learnt with `learnt` (saved by [`Decider::learnt`], here or in another
    /// process). A count that is negative or not finite is [`Error::InvalidInput`], and nothing
    /// changes.
    pub fn restore(&self, learnt: &Learnt) -> Result<()> {
        let bad_belief = learnt.strategies.iter().find(|b| {
            let Belief { alpha, beta } = b.belief;
            !(alpha.is_finite() && beta.is_finite() && alpha > 0.0 && beta > 0.0)
        });
        if let Some(b) = bad_belief {
            return Err(Error::invalid(
                "learnt",
                format!("the belief in {} for {} must be positive and finite, got {:?}", b.strategy, b.kind, b.belief),
            ));
        }
        let tallies =
            learnt.failures.kinds.iter().map(|(_, t)| t).chain(learnt.failures.subjects.iter().map(|s| &s.tally));
        if let Some(t) = tallies.into_iter().find(|t| !failure::valid(t)) {
            return Err(Error::invalid("learnt", format!("a failure tally must be >= 0 and finite, got {t:?}")));
        }
        let mut l = self.learning.lock();
        // The saved beliefs hold the counts learnt on top of the priors.
        l.beliefs = learnt.strategies.iter().map(|b| ((b.kind, b.strategy), b.belief)).collect();
        l.learnt.clear();
        l.fresh.clear();
        let hasher = &self.hasher;
        l.failures.restore(&learnt.failures, |kind, s| hasher.hash_one((kind, s.as_ref())));
        Ok(())
    }
}

/// Thompson sampling among the signal's candidate strategies, and how sure the choice is (when
/// `assess`; [`Confidence::default`] otherwise).
fn choose(l: &mut Learning, signal: &Signal, assess: bool) -> (Strategy, Confidence) {
    let mut best = (Strategy::Reflect, f64::NEG_INFINITY);
    let mut beliefs = Vec::with_capacity(4);
    let mut outcomes = 0;
    for &(strategy, alpha, beta) in candidates(signal) {
        let prior = *l.beliefs.entry((signal.kind, strategy)).or_insert(Belief { alpha, beta });
        let belief = l.with_learnt(signal.kind, strategy, prior);
        let (s, f) = l.learnt.get(&(signal.kind, strategy)).copied().unwrap_or_default();
        outcomes += s + f;
        beliefs.push((strategy, belief));
        let draw = l.rng.beta(belief);
        if draw > best.1 {
            best = (strategy, draw);
        }
    }
    let confidence = if assess { confidence::assess(best.0, &beliefs, outcomes) } else { Confidence::default() };
    (best.0, confidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use crate::ids::PatternId;
    use crate::signal::{ErrorScope, Evidence};
    use awaited::MAX_AWAITING;

    fn cfg() -> DecisionConfig {
        DecisionConfig { enabled: true, cooldown: Duration::from_secs(60), max_per_task: 5, seed: 42, min_failure: 0.5 }
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
        assert!(d.end_task("a", "t", None));
        assert!(d.decide(t(5000), "a", "t", &[s(1)]).is_some(), "a new task starts with clean gates");
        let off = Decider::new(DecisionConfig { enabled: false, ..cfg() });
        assert!(off.decide(t(0), "a", "t", &[s(1)]).is_none());
        assert!(d.decide(t(9000), "a", "t9", &[]).is_none());
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
    fn skipping_the_confidence_changes_no_choice() {
        let run = |assess: bool| {
            let mut d = Decider::new(DecisionConfig { cooldown: Duration::ZERO, ..cfg() });
            if !assess {
                d.skip_confidence();
            }
            let mut chosen = Vec::new();
            for task in 0..200 {
                let kind = [SignalKind::ErrorAccumulation, SignalKind::TaskError, SignalKind::CriticalError][task % 3];
                let i =
                    d.decide(t(task as i64), "a", &format!("t{task}"), &[error_signal(kind, "E", 7, Severity::Medium)]);
                let i = i.unwrap();
                // Learning from outcomes moves the beliefs, so later draws differ from the priors'.
                d.report_outcome(i.id, i.strategy == Strategy::Replan).unwrap();
                chosen.push((i.id, i.strategy, i.reason, i.confidence));
            }
            chosen
        };
        let (full, lean) = (run(true), run(false));
        assert!(full.iter().any(|c| c.3 != Confidence::default()), "the full decider assessed");
        assert!(lean.iter().all(|c| c.3 == Confidence::default()));
        // Each decider draws its own first id; what must match is each id's place in the run.
        let strip = |v: Vec<(InterventionId, Strategy, String, Confidence)>| {
            let first = v[0].0.0;
            v.into_iter().map(|(id, s, r, _)| (id.0.wrapping_sub(first), s, r)).collect::<Vec<_>>()
        };
        assert_eq!(strip(full), strip(lean));
    }

    #[test]
    fn two_deciders_with_one_seed_issue_different_ids_that_count_up() {
        // Two engines with the default seed: a process and its restart on one SQLite file, or
        // two replicas writing to one database. The store keeps the first record of an id.
        let s = error_signal(SignalKind::ErrorAccumulation, "E", 1, Severity::Medium);
        let ids = |d: &Decider| -> Vec<u64> {
            (0..3).map(|i| d.decide(t(i), "a", &format!("t{i}"), std::slice::from_ref(&s)).unwrap().id.0).collect()
        };
        let (a, b) = (ids(&Decider::new(cfg())), ids(&Decider::new(cfg())));
        assert!(a.iter().all(|x| !b.contains(x)), "{a:x?} {b:x?}");
        assert_eq!([a[1].wrapping_sub(a[0]), a[2].wrapping_sub(a[1])], [1, 1]);
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
        assert_eq!(d.learnt_counts(), vec![one], "still learnt");
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
        assert_eq!(other.learnt_counts().iter().find(|r| r.strategy == j.strategy).unwrap().successes, 51);
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

    #[test]
    fn a_signal_after_which_tasks_succeed_is_left_alone_and_one_before_failures_is_not() {
        let d = Decider::new(cfg());
        let harmless = |_| error_signal(SignalKind::TaskError, "CacheMiss", 1, Severity::Medium);
        let harmful = |_| error_signal(SignalKind::TaskError, "PaymentError", 2, Severity::Medium);
        let mut acted = (0, 0);
        for k in 0..40 {
            let (task_a, task_b) = (format!("a{k}"), format!("b{k}"));
            let harmless_acted = d.decide(t(k), "a", &task_a, &[harmless(k)]).is_some();
            assert!(!(harmless_acted && k >= 10), "acted on the harmless error at task {k}");
            acted.0 += usize::from(harmless_acted);
            acted.1 += usize::from(d.decide(t(k), "a", &task_b, &[harmful(k)]).is_some());
            assert!(d.end_task("a", &task_a, Some(true)));
            assert!(d.end_task("a", &task_b, Some(false)));
        }
        assert!((1..=5).contains(&acted.0), "tasks got over the harmless error: acted on {} times", acted.0);
        assert_eq!(acted.1, 40, "every task failed after the other");
        let (belief, warranted) = d.failure_belief(&harmless(0));
        assert!(belief.mean() < 0.1 && !warranted, "{belief:?}");
        // Tasks ended without an outcome teach nothing.
        let quiet = Decider::new(cfg());
        for k in 0..40 {
            let task = format!("q{k}");
            assert!(quiet.decide(t(k), "a", &task, &[harmless(k)]).is_some());
            quiet.end_task("a", &task, None);
        }
    }

    #[test]
    fn an_intervention_that_worked_counts_its_task_as_one_in_trouble_once() {
        let d = Decider::new(cfg());
        let s = error_signal(SignalKind::TaskError, "E", 1, Severity::Medium);
        for k in 0..20 {
            let task = format!("t{k}");
            let i = d.decide(t(k), "a", &task, std::slice::from_ref(&s)).expect("never silenced");
            d.report_outcome(i.id, true).unwrap();
            // The agent says the task succeeded: it did, thanks to the intervention.
            d.end_task("a", &task, Some(true));
        }
        let learnt = d.learnt();
        let tally = learnt.failures.subjects[0].tally;
        assert_eq!((tally.failed, tally.fine), (20.0, 0.0));
    }

    #[test]
    fn what_was_learnt_is_saved_and_restored_deterministically() {
        let run = |d: &Decider, from: i64| -> Vec<Option<Strategy>> {
            (from..from + 30)
                .map(|k| {
                    let task = format!("t{k}");
                    let s = error_signal(SignalKind::ErrorAccumulation, "E", (k % 3) as u64, Severity::Medium);
                    let got = d.decide(t(k), "a", &task, &[s]);
                    if let Some(i) = &got {
                        d.report_outcome(i.id, i.strategy == Strategy::Replan).unwrap();
                    }
                    d.end_task("a", &task, Some(k % 3 == 0));
                    got.map(|i| i.strategy)
                })
                .collect()
        };
        let a = Decider::new(cfg());
        let b = Decider::new(cfg());
        assert_eq!(run(&a, 0), run(&b, 0), "same seed, same decisions");
        let saved = a.learnt();
        assert!(!saved.strategies.is_empty() && saved.failures.subjects.len() == 3);
        let json = serde_json::to_string(&saved).unwrap();
        let c = Decider::new(cfg());
        c.restore(&serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(c.learnt(), saved);
        for p in 0..3 {
            let s = error_signal(SignalKind::ErrorAccumulation, "E", p, Severity::Medium);
            assert_eq!(c.failure_belief(&s), a.failure_belief(&s));
        }
        let mut bad = saved.clone();
        bad.failures.subjects[0].tally.fine = -1.0;
        assert_eq!(c.restore(&bad).unwrap_err().code(), "invalid_input");
        bad = saved;
        bad.strategies[0].belief.alpha = f64::NAN;
        assert_eq!(c.restore(&bad).unwrap_err().code(), "invalid_input");
    }
}
