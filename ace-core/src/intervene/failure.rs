//! Which signals precede failed tasks: the engine's belief, per signal kind and per subject
//! (the error pattern, the stage and metric, the breaker a signal is about), that a task in
//! which the signal was raised goes on to fail.
//!
//! Evidence comes from two places, both reported by the host:
//! - a task's end with its outcome (`Ace::end_task_with(agent, task, Some(success))`): every
//!   subject raised in the task counts once, as failed or not;
//! - a reported intervention outcome (`Ace::report_outcome(id, true)`): the intervention worked,
//!   so the task was in trouble; it counts as a failure averted (and that subject is not counted
//!   again when the task ends).
//!
//! The belief is a Beta posterior. Each kind starts at Beta([`KIND_PRIOR`]) (a signal is
//! presumed to precede failure, 3 to 1) and gathers every outcome of its subjects; a subject
//! borrows [`KEY_PRIOR`] pseudo-outcomes at its kind's mean and adds its own. A signal is acted
//! on while the posterior mean plus two standard deviations reaches `ACE_INTERVENTION_MIN_FAILURE`
//! (0.5): optimism while evidence is thin (a subject seen twice is still tried), silence once
//! the evidence says tasks carry on fine after it. Without outcomes nothing changes: the prior
//! alone always acts. No randomness is involved, so decisions are the same run after run.
//!
//! Memory is bounded: at most [`MAX_KEYS`] subjects, the least recently raised forgotten first.
//! The state is a plain value ([`FailureState`]) that can be saved and restored.

use std::sync::Arc;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::Belief;
use crate::ids::PatternId;
use crate::signal::{Evidence, Signal, SignalKind};

/// Subjects remembered at most; past it the least recently raised quarter is forgotten.
pub const MAX_KEYS: usize = 4096;
/// Each kind's prior (failed, fine): a signal is presumed to precede failure.
pub const KIND_PRIOR: (f64, f64) = (3.0, 1.0);
/// Pseudo-outcomes a subject borrows from its kind's mean.
pub const KEY_PRIOR: f64 = 2.0;
/// Standard deviations of optimism added to the posterior mean.
pub const OPTIMISM: f64 = 2.0;

/// What a signal is about, beyond its kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Subject {
    /// An error pattern.
    Pattern {
        /// The pattern's id.
        pattern_id: PatternId,
    },
    /// A metric of a stage.
    Metric {
        /// The stage.
        stage: Option<Arc<str>>,
        /// The metric.
        metric: String,
    },
    /// A stage (loops, failure runs).
    Stage {
        /// The stage.
        stage: Option<Arc<str>>,
    },
    /// A circuit breaker.
    Breaker {
        /// Its name.
        breaker: String,
    },
    /// A tool (repeated calls, alternations, failures after a retry).
    Tool {
        /// Its name.
        tool: Arc<str>,
    },
    /// The task as a whole (a cascade, staleness, length).
    Task,
}

impl Subject {
    /// What `signal` is about.
    #[must_use]
    pub fn of(signal: &Signal) -> Subject {
        match SubjectRef::of(signal) {
            SubjectRef::Pattern(pattern_id) => Subject::Pattern { pattern_id },
            SubjectRef::Metric(stage, metric) => {
                Subject::Metric { stage: stage.map(Arc::from), metric: metric.to_owned() }
            }
            SubjectRef::Stage(stage) => Subject::Stage { stage: stage.map(Arc::from) },
            SubjectRef::Breaker(breaker) => Subject::Breaker { breaker: breaker.to_owned() },
            SubjectRef::Tool(tool) => Subject::Tool { tool: Arc::from(tool) },
            SubjectRef::Task => Subject::Task,
        }
    }

    pub(super) fn as_ref(&self) -> SubjectRef<'_> {
        match self {
            Subject::Pattern { pattern_id } => SubjectRef::Pattern(*pattern_id),
            Subject::Metric { stage, metric } => SubjectRef::Metric(stage.as_deref(), metric),
            Subject::Stage { stage } => SubjectRef::Stage(stage.as_deref()),
            Subject::Breaker { breaker } => SubjectRef::Breaker(breaker),
            Subject::Tool { tool } => SubjectRef::Tool(tool),
            Subject::Task => SubjectRef::Task,
        }
    }
}

/// A [`Subject`] borrowed from a signal: what is hashed, without copying names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum SubjectRef<'a> {
    Pattern(PatternId),
    Metric(Option<&'a str>, &'a str),
    Stage(Option<&'a str>),
    Breaker(&'a str),
    Tool(&'a str),
    Task,
}

impl<'a> SubjectRef<'a> {
    pub(super) fn of(signal: &'a Signal) -> Self {
        match &signal.evidence {
            Evidence::BaselineShift { metric, .. } => SubjectRef::Metric(signal.stage.as_deref(), metric),
            Evidence::ErrorPattern { pattern_id, .. } => SubjectRef::Pattern(*pattern_id),
            Evidence::Failures { .. } => SubjectRef::Stage(signal.stage.as_deref()),
            Evidence::Breaker { breaker, .. } => SubjectRef::Breaker(breaker),
            Evidence::ToolCalls { tool, .. } => SubjectRef::Tool(tool),
            Evidence::Cascade { .. } | Evidence::Staleness { .. } | Evidence::TaskLength { .. } => SubjectRef::Task,
        }
    }
}

/// Tasks that failed, and that did not, after a signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Tasks that failed (or whose intervention was reported to have worked).
    pub failed: f64,
    /// Tasks that ended well without help.
    pub fine: f64,
}

/// One subject's learnt tally, as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectTally {
    /// The signal kind.
    pub kind: SignalKind,
    /// What it was about.
    pub subject: Subject,
    /// Its outcomes.
    pub tally: Tally,
}

/// The learnt state, as a plain value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureState {
    /// Per signal kind, every outcome of its subjects.
    pub kinds: Vec<(SignalKind, Tally)>,
    /// Per subject, least recently raised first.
    pub subjects: Vec<SubjectTally>,
}

struct Entry {
    kind: SignalKind,
    subject: Subject,
    tally: Tally,
    /// When it was last raised, in raises.
    raised: u64,
}

/// The beliefs, keyed by a hash of (kind, subject) that the caller computes.
pub(super) struct Failures {
    kinds: [Tally; SignalKind::ALL.len()],
    keys: HashMap<u64, Entry>,
    tick: u64,
    threshold: f64,
}

impl Failures {
    pub(super) fn new(threshold: f64) -> Self {
        Failures { kinds: [Tally::default(); SignalKind::ALL.len()], keys: HashMap::new(), tick: 0, threshold }
    }

    /// Notes that a signal about `subject` was raised (remembering it, forgetting the least
    /// recent quarter when full).
    pub(super) fn raised(&mut self, key: u64, kind: SignalKind, subject: impl FnOnce() -> Subject) {
        self.tick += 1;
        if let Some(e) = self.keys.get_mut(&key) {
            e.raised = self.tick;
            return;
        }
        if self.keys.len() >= MAX_KEYS {
            self.forget_least_recent();
        }
        let entry = Entry { kind, subject: subject(), tally: Tally::default(), raised: self.tick };
        self.keys.insert(key, entry);
    }

    fn forget_least_recent(&mut self) {
        let keep = MAX_KEYS * 3 / 4;
        let mut ticks: Vec<u64> = self.keys.values().map(|e| e.raised).collect();
        let cut = ticks.len() - keep;
        // Ticks are unique: exactly `keep` entries are newer than the cut.
        let (_, &mut oldest_kept, _) = ticks.select_nth_unstable(cut);
        self.keys.retain(|_, e| e.raised >= oldest_kept);
    }

    /// The posterior that a task fails after a signal of `kind` about `key`.
    pub(super) fn belief(&self, key: u64, kind: SignalKind) -> Belief {
        let k = self.kinds[kind.index()];
        let (a, b) = KIND_PRIOR;
        let mean = (a + k.failed) / (a + b + k.failed + k.fine);
        let own = self.keys.get(&key).map_or(Tally::default(), |e| e.tally);
        Belief { alpha: KEY_PRIOR * mean + own.failed, beta: KEY_PRIOR * (1.0 - mean) + own.fine }
    }

    /// Whether a signal of `kind` about `key` may well precede a failure (see the module docs).
    pub(super) fn warranted(&self, key: u64, kind: SignalKind) -> bool {
        if self.threshold <= 0.0 {
            return true;
        }
        let Belief { alpha, beta } = self.belief(key, kind);
        let n = alpha + beta;
        let mean = alpha / n;
        let sd = (alpha * beta / (n * n * (n + 1.0))).sqrt();
        mean + OPTIMISM * sd >= self.threshold
    }

    /// Counts one outcome of a task in which a signal of `kind` about `key` was raised.
    pub(super) fn learn(&mut self, key: u64, kind: SignalKind, failed: bool) {
        let add = |t: &mut Tally| {
            if failed {
                t.failed += 1.0;
            } else {
                t.fine += 1.0;
            }
        };
        add(&mut self.kinds[kind.index()]);
        if let Some(e) = self.keys.get_mut(&key) {
            add(&mut e.tally);
        }
    }

    pub(super) fn state(&self) -> FailureState {
        let kinds = SignalKind::ALL
            .iter()
            .map(|k| (*k, self.kinds[k.index()]))
            .filter(|(_, t)| *t != Tally::default())
            .collect();
        let mut entries: Vec<&Entry> = self.keys.values().collect();
        entries.sort_unstable_by_key(|e| e.raised);
        let subjects = entries
            .into_iter()
            .map(|e| SubjectTally { kind: e.kind, subject: e.subject.clone(), tally: e.tally })
            .collect();
        FailureState { kinds, subjects }
    }

    /// Replaces the beliefs with `state`'s; `key` hashes a (kind, subject) as the caller does.
    pub(super) fn restore(&mut self, state: &FailureState, key: impl Fn(SignalKind, &Subject) -> u64) {
        self.kinds = [Tally::default(); SignalKind::ALL.len()];
        for (kind, tally) in &state.kinds {
            self.kinds[kind.index()] = *tally;
        }
        self.keys.clear();
        self.tick = 0;
        let skip = state.subjects.len().saturating_sub(MAX_KEYS);
        for s in &state.subjects[skip..] {
            self.tick += 1;
            let entry = Entry { kind: s.kind, subject: s.subject.clone(), tally: s.tally, raised: self.tick };
            self.keys.insert(key(s.kind, &s.subject), entry);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Whether a tally read from outside is usable: finite counts, none negative.
pub(super) fn valid(t: &Tally) -> bool {
    t.failed.is_finite() && t.fine.is_finite() && t.failed >= 0.0 && t.fine >= 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: SignalKind = SignalKind::TaskError;

    fn pattern(n: u64) -> Subject {
        Subject::Pattern { pattern_id: PatternId(n) }
    }

    #[test]
    fn without_outcomes_every_signal_is_warranted() {
        let mut f = Failures::new(0.5);
        f.raised(1, KIND, || pattern(1));
        assert!(f.warranted(1, KIND));
        assert!(f.warranted(2, SignalKind::LongTask), "an unseen subject takes its kind's prior");
        let b = f.belief(1, KIND);
        assert_eq!((b.alpha, b.beta), (1.5, 0.5));
    }

    #[test]
    fn a_subject_after_which_tasks_end_well_is_silenced_and_one_that_fails_is_not() {
        let mut f = Failures::new(0.5);
        f.raised(1, KIND, || pattern(1));
        f.raised(2, KIND, || pattern(2));
        let mut fine = 0;
        while f.warranted(1, KIND) {
            f.learn(1, KIND, false);
            fine += 1;
        }
        assert!((2..=6).contains(&fine), "silenced after {fine} tasks that ended well");
        for _ in 0..fine {
            f.learn(2, KIND, true);
        }
        assert!(f.warranted(2, KIND), "the same count of failures keeps it");
        // One failure after many fine tasks does not bring a subject back; a run of them does.
        for _ in 0..20 {
            f.learn(1, KIND, false);
        }
        f.learn(1, KIND, true);
        assert!(!f.warranted(1, KIND));
        for _ in 0..30 {
            f.learn(1, KIND, true);
        }
        assert!(f.warranted(1, KIND));
    }

    #[test]
    fn a_new_subject_starts_from_its_kinds_record() {
        let mut f = Failures::new(0.5);
        for p in 1..=10 {
            f.raised(p, KIND, || pattern(p));
            for _ in 0..3 {
                f.learn(p, KIND, false);
            }
        }
        assert!(!f.warranted(99, KIND), "ten subjects of the kind were harmless");
        assert!(f.warranted(99, SignalKind::Loop), "another kind is not tarred with it");
        f.raised(99, KIND, || pattern(99));
        f.learn(99, KIND, true);
        assert!(f.warranted(99, KIND), "one failure after it is enough to try it again");
        assert!(Failures::new(0.0).warranted(1, KIND), "a threshold of 0 always acts");
    }

    #[test]
    fn subjects_are_capped_least_recent_first_and_survive_a_snapshot() {
        let mut f = Failures::new(0.5);
        for k in 0..(MAX_KEYS as u64 + 10) {
            f.raised(k, KIND, || pattern(k));
            f.learn(k, KIND, k % 2 == 0);
        }
        assert!(f.len() <= MAX_KEYS);
        assert!(f.keys.contains_key(&(MAX_KEYS as u64 + 9)), "the newest is kept");
        assert!(!f.keys.contains_key(&0), "the oldest is forgotten");
        let state = f.state();
        assert_eq!(state.subjects.len(), f.len());
        assert!(state.subjects.windows(2).all(|w| w[0].subject != w[1].subject));
        let mut g = Failures::new(0.5);
        let hash = |_: SignalKind, s: &Subject| match s {
            Subject::Pattern { pattern_id } => pattern_id.0,
            _ => u64::MAX,
        };
        g.restore(&state, hash);
        assert_eq!(g.state(), state);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<FailureState>(&json).unwrap(), state);
        for k in [MAX_KEYS as u64, MAX_KEYS as u64 + 1] {
            assert_eq!(f.belief(k, KIND), g.belief(k, KIND));
        }
    }
}
