//! What a replay saw per task, and its score over all labelled tasks or a subset of them (a
//! fold), for the engine and for the baseline "intervene at a task's first error".

use std::collections::BTreeMap;

use serde::Serialize;

use crate::signal::SignalKind;

/// What a replay measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplayScore {
    /// Tasks with a label.
    pub tasks: u64,
    /// Labelled tasks that really failed.
    pub failed_tasks: u64,
    /// Labelled tasks with at least one intervention.
    pub flagged_tasks: u64,
    /// Flagged tasks that failed / flagged tasks (`None` when none is flagged).
    pub precision: Option<f64>,
    /// Flagged tasks that failed / failed tasks (`None` when none failed).
    pub recall: Option<f64>,
    /// See the module docs (`None` when no task qualifies).
    pub early_hits: Option<f64>,
    /// Interventions issued.
    pub interventions: u64,
    /// Interventions per labelled task.
    pub interventions_per_task: f64,
    /// Interventions by strategy.
    pub strategies: BTreeMap<String, u64>,
    /// Flagged labelled tasks by the signal kind of their first intervention: (flagged, of them
    /// failed).
    pub flagged_by_kind: BTreeMap<String, (u64, u64)>,
    /// Events fed (labels excluded).
    pub events: u64,
    /// Events fed per second of wall time.
    pub events_per_second: f64,
    /// Each labelled task's outcome, in order of first appearance (not in the JSON summary;
    /// `ace replay --tasks` prints them).
    #[serde(skip)]
    pub per_task: Vec<TaskScore>,
}

/// What the engine did for one labelled task.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskScore {
    /// The task.
    pub task: String,
    /// Whether it really failed (its label).
    pub failed: bool,
    /// Whether it had at least one intervention.
    pub flagged: bool,
    /// The index (over the task's events) of its first intervention.
    pub first_intervention: Option<usize>,
    /// The index of its first `error` event.
    pub first_error: Option<usize>,
    /// Its `mistake_index` label.
    pub mistake_index: Option<usize>,
    /// Signals raised for it, by kind (`tool_repeat`: 1).
    pub signals: BTreeMap<&'static str, u32>,
    /// The signal kinds its interventions acted on, in order.
    pub intervened_on: Vec<&'static str>,
}

/// A task's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    /// Whether the task really failed.
    pub failed: bool,
    /// The index, among the task's events, of the last event of the decisive mistake's step.
    pub mistake_index: Option<usize>,
}

/// One task of a replay: where its first error and first intervention came, and its label.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskRun {
    /// The task's name.
    pub task: String,
    /// Its label, when the trace has one.
    pub label: Option<Label>,
    /// Events of the task fed.
    pub events: usize,
    /// The index of its first `error` event.
    pub first_error: Option<usize>,
    /// The index of the event that brought its first intervention.
    pub first_intervention: Option<usize>,
    /// The signal kind the first intervention acted on.
    pub first_kind: Option<SignalKind>,
    /// Interventions issued for it.
    pub interventions: u64,
    /// Interventions by strategy.
    pub strategies: BTreeMap<&'static str, u64>,
    /// Signals raised for it, by kind.
    pub signals: BTreeMap<&'static str, u32>,
    /// The signal kinds its interventions acted on, in order.
    pub intervened_on: Vec<&'static str>,
}

/// Who flags a task and when: the engine, or the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flagger {
    /// The engine's interventions.
    Ace,
    /// "Intervene at a task's first error": a task is flagged at its first `error` event.
    FirstError,
}

/// A whole replay, task by task, in the order tasks first appeared.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Run {
    /// The tasks.
    pub tasks: Vec<TaskRun>,
    /// Events fed (labels excluded).
    pub events: u64,
    /// Wall time of the replay, seconds.
    pub seconds: f64,
}

impl Run {
    /// The score of the engine over every labelled task (interventions counted on every task).
    #[must_use]
    pub fn score(&self) -> ReplayScore {
        let mut s = self.score_of(Flagger::Ace, |_| true);
        // Interventions count on every task, labelled or not.
        s.interventions = self.tasks.iter().map(|t| t.interventions).sum();
        s.strategies.clear();
        for t in &self.tasks {
            for (k, n) in &t.strategies {
                *s.strategies.entry((*k).to_owned()).or_default() += n;
            }
        }
        s.interventions_per_task = if s.tasks == 0 { 0.0 } else { s.interventions as f64 / s.tasks as f64 };
        s.per_task = self
            .tasks
            .iter()
            .filter_map(|t| {
                let label = t.label?;
                Some(TaskScore {
                    task: t.task.clone(),
                    failed: label.failed,
                    flagged: t.first_intervention.is_some(),
                    first_intervention: t.first_intervention,
                    first_error: t.first_error,
                    mistake_index: label.mistake_index,
                    signals: t.signals.clone(),
                    intervened_on: t.intervened_on.clone(),
                })
            })
            .collect();
        s.events = self.events;
        s.events_per_second = self.events as f64 / self.seconds.max(1e-9);
        s
    }

    /// The score of `who` over the labelled tasks whose index in [`Run::tasks`] `keep`
    /// accepts. Counts of events and speed are left at zero (they belong to the whole replay).
    #[must_use]
    pub fn score_of(&self, who: Flagger, keep: impl Fn(usize) -> bool) -> ReplayScore {
        let mut score = ReplayScore::default();
        let (mut hits, mut early_total, mut true_flags) = (0u64, 0u64, 0u64);
        for t in self.tasks.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, t)| t) {
            let Some(label) = t.label else { continue };
            let first = match who {
                Flagger::Ace => t.first_intervention,
                Flagger::FirstError => t.first_error,
            };
            let flagged = first.is_some();
            score.tasks += 1;
            score.failed_tasks += u64::from(label.failed);
            score.flagged_tasks += u64::from(flagged);
            true_flags += u64::from(flagged && label.failed);
            match who {
                Flagger::Ace => {
                    score.interventions += t.interventions;
                    for (k, n) in &t.strategies {
                        *score.strategies.entry((*k).to_owned()).or_default() += n;
                    }
                    if let Some(kind) = t.first_kind {
                        let e = score.flagged_by_kind.entry(kind.as_str().to_owned()).or_default();
                        e.0 += 1;
                        e.1 += u64::from(label.failed);
                    }
                }
                Flagger::FirstError => {
                    score.interventions += u64::from(flagged);
                    if flagged {
                        let e = score.flagged_by_kind.entry("first_error".to_owned()).or_default();
                        e.0 += 1;
                        e.1 += u64::from(label.failed);
                    }
                }
            }
            if let Some(m) = label.mistake_index
                && t.first_error.is_some_and(|e| e <= m)
            {
                early_total += 1;
                hits += u64::from(first.is_some_and(|f| f <= m));
            }
        }
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        score.precision = ratio(true_flags, score.flagged_tasks);
        score.recall = ratio(true_flags, score.failed_tasks);
        score.early_hits = ratio(hits, early_total);
        score.interventions_per_task =
            if score.tasks == 0 { 0.0 } else { score.interventions as f64 / score.tasks as f64 };
        score
    }
}
