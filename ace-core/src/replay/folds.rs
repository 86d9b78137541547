//! Cross-validation of settings on labelled traces.
//!
//! Every candidate configuration replays every trace once (the engine learns online, from
//! the events alone; labels are never fed). Tasks are dealt into [`FOLDS`] folds by *group*
//! (a task's name without a trailing trial suffix `-t<N>`, so all trials of one task fall in
//! one fold). For each fold, the candidate is chosen on the other folds' labels
//! ([`choose`]), and that choice is scored on the fold; the figures are the average over the
//! folds, beside the baseline "intervene at a task's first error" on the same folds.
//!
//! A candidate is *feasible* on a set of tasks when, on every trace, its precision reaches
//! [`Targets::min_precision`], its recall reaches the baseline's, and its early hits reach
//! [`Targets::min_early_hits`] (each where defined). Among feasible candidates the one with
//! the highest total recall wins, ties to the earlier (put the defaults first); when none is
//! feasible, the one that misses the targets by least.

use serde::Serialize;

use super::score::{Flagger, ReplayScore, Run};
use crate::config::{AceConfig, Setting};
use crate::error::{Error, Result};

/// Folds of the cross-validation.
pub const FOLDS: usize = 5;

/// What a chosen configuration must reach on the tasks it is chosen on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Targets {
    /// Flagged tasks that failed / flagged tasks, at least.
    pub min_precision: f64,
    /// Early hits, at least.
    pub min_early_hits: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets { min_precision: 0.9, min_early_hits: 0.9 }
    }
}

/// A candidate configuration: a name and its settings (`ACE_*` names and values) over a base.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// A short name.
    pub name: String,
    /// The settings it changes.
    pub settings: Vec<(String, String)>,
}

impl Candidate {
    /// A candidate from `(setting, value)` pairs.
    #[must_use]
    pub fn new(name: &str, settings: &[(&str, &str)]) -> Self {
        Candidate {
            name: name.to_owned(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    /// `base` with this candidate's settings applied; an unknown setting or a bad value is an
    /// error naming it.
    pub fn config(&self, base: &AceConfig) -> Result<AceConfig> {
        let mut config = base.clone();
        for (key, value) in &self.settings {
            let setting = Setting::find(key)
                .ok_or_else(|| Error::invalid("candidate", format!("{}: unknown setting {key:?}", self.name)))?;
            setting.apply(&mut config, value)?;
        }
        config.validate()?;
        Ok(config)
    }
}

/// The settings [`grid`] varies, each with its values, the default first.
pub const AXES: &[(&str, &[&str])] = &[
    ("ACE_TASK_ERROR_SEVERITY", &["medium", "low", "high"]),
    ("ACE_LONG_TASK_QUANTILE", &["0.95", "0", "0.9", "0.98"]),
    ("ACE_CONTEXT_STALENESS_THRESHOLD", &["0.8", "0.9", "1"]),
    ("ACE_ERROR_THRESHOLD", &["3", "2"]),
];

/// The candidates `ace eval` chooses among: the defaults first, then every other combination
/// of the values of [`AXES`], each named by the settings it changes.
#[must_use]
pub fn grid() -> Vec<Candidate> {
    let mut out = vec![Candidate::new("defaults", &[])];
    let total: usize = AXES.iter().map(|(_, v)| v.len()).product();
    for mut n in 1..total {
        let mut settings = Vec::new();
        for (key, values) in AXES {
            let v = n % values.len();
            n /= values.len();
            if v != 0 {
                settings.push(((*key).to_owned(), values[v].to_owned()));
            }
        }
        let name = settings.iter().map(|(k, v)| format!("{}={v}", k.trim_start_matches("ACE_"))).collect::<Vec<_>>();
        out.push(Candidate { name: name.join(" "), settings });
    }
    out
}

/// The group of a task: its name without a trailing trial suffix `-t<N>`.
#[must_use]
pub fn group_of(task: &str) -> &str {
    match task.rsplit_once("-t") {
        Some((group, trial)) if !group.is_empty() && !trial.is_empty() && trial.bytes().all(|b| b.is_ascii_digit()) => {
            group
        }
        _ => task,
    }
}

/// The fold of each task of `run` (in the order of `run.tasks`): groups in order of first
/// appearance, dealt round-robin into `k` folds.
#[must_use]
pub fn assign_folds(run: &Run, k: usize) -> Vec<usize> {
    let mut groups: Vec<&str> = Vec::new();
    run.tasks
        .iter()
        .map(|t| {
            let g = group_of(&t.task);
            let i = groups.iter().position(|x| *x == g).unwrap_or_else(|| {
                groups.push(g);
                groups.len() - 1
            });
            i % k.max(1)
        })
        .collect()
}

/// One labelled trace, replayed under every candidate.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Its name.
    pub name: String,
    /// One run per candidate, in the candidates' order.
    pub runs: Vec<Run>,
    /// The fold of each task (see [`assign_folds`]).
    pub folds: Vec<usize>,
}

impl Replayed {
    /// Replays `text` under each candidate's configuration over `base`.
    pub fn new(name: &str, text: &str, candidates: &[Candidate], base: &AceConfig) -> Result<Self> {
        let mut runs = Vec::with_capacity(candidates.len());
        for c in candidates {
            runs.push(super::run(text.as_bytes(), name, c.config(base)?)?);
        }
        let folds = runs.first().map_or_else(Vec::new, |r| assign_folds(r, FOLDS));
        Ok(Replayed { name: name.to_owned(), runs, folds })
    }

    /// The score of candidate `c` (or the baseline) over the tasks whose fold `keep` accepts.
    #[must_use]
    pub fn score(&self, c: usize, who: Flagger, keep: impl Fn(usize) -> bool) -> ReplayScore {
        self.runs[c].score_of(who, |i| keep(self.folds.get(i).copied().unwrap_or(0)))
    }
}

/// How far a candidate is from the targets on some tasks (0 when feasible), and its recall.
fn fit(sets: &[Replayed], c: usize, targets: Targets, keep: &impl Fn(usize) -> bool) -> (f64, f64) {
    let (mut shortfall, mut recall) = (0.0, 0.0);
    for set in sets {
        let ace = set.score(c, Flagger::Ace, keep);
        let base = set.score(c, Flagger::FirstError, keep);
        let short = |value: Option<f64>, target: f64| value.map_or(0.0, |v| (target - v).max(0.0));
        shortfall += short(ace.precision, targets.min_precision);
        shortfall += short(ace.early_hits, targets.min_early_hits);
        if let Some(floor) = base.recall {
            shortfall += (floor - ace.recall.unwrap_or(0.0)).max(0.0);
        }
        recall += ace.recall.unwrap_or(0.0);
    }
    (shortfall, recall)
}

/// The candidate chosen on the tasks whose fold `keep` accepts (see the module docs).
#[must_use]
pub fn choose(sets: &[Replayed], candidates: usize, targets: Targets, keep: impl Fn(usize) -> bool) -> usize {
    let mut best: Option<(usize, (f64, f64))> = None;
    for c in 0..candidates {
        let f = fit(sets, c, targets, &keep);
        let better = match best {
            None => true,
            // Less shortfall first (to 1e-9), then more recall.
            Some((_, b)) => f.0 < b.0 - 1e-9 || ((f.0 - b.0).abs() <= 1e-9 && f.1 > b.1 + 1e-9),
        };
        if better {
            best = Some((c, f));
        }
    }
    best.map_or(0, |(c, _)| c)
}

/// Figures averaged over folds (folds where a figure is undefined are left out of its mean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Averaged {
    /// Mean precision over the folds.
    pub precision: Option<f64>,
    /// Mean recall over the folds.
    pub recall: Option<f64>,
    /// Mean early hits over the folds.
    pub early_hits: Option<f64>,
    /// Flagged tasks, over all folds.
    pub flagged_tasks: u64,
    /// Labelled tasks, over all folds.
    pub tasks: u64,
}

impl Averaged {
    fn of(scores: &[ReplayScore]) -> Self {
        let mean = |f: fn(&ReplayScore) -> Option<f64>| {
            let v: Vec<f64> = scores.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Averaged {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            early_hits: mean(|s| s.early_hits),
            flagged_tasks: scores.iter().map(|s| s.flagged_tasks).sum(),
            tasks: scores.iter().map(|s| s.tasks).sum(),
        }
    }
}

/// One trace's figures: in sample (the first candidate, the defaults, on every task) and
/// cross-validated, for ace and the baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetFigures {
    /// The trace's name.
    pub name: String,
    /// The defaults on every task.
    pub in_sample: ReplayScore,
    /// The baseline on every task.
    pub baseline: ReplayScore,
    /// Ace, each fold scored with the candidate chosen on the others, averaged.
    pub cross_validated: Averaged,
    /// The baseline on the same folds, averaged.
    pub baseline_folds: Averaged,
    /// Per fold: ace's test score and the baseline's.
    pub folds: Vec<(ReplayScore, ReplayScore)>,
}

/// A cross-validation over some traces.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CrossValidation {
    /// The candidates, the defaults first.
    pub candidates: Vec<Candidate>,
    /// The targets the choice aims at.
    pub targets: Targets,
    /// The candidate chosen for each fold (on the others).
    pub chosen: Vec<usize>,
    /// The candidate chosen on every task.
    pub chosen_on_all: usize,
    /// Per trace.
    pub sets: Vec<SetFigures>,
}

/// Cross-validates `candidates` (the defaults first) over `sets` (see the module docs).
#[must_use]
pub fn cross_validate(sets: &[Replayed], candidates: &[Candidate], targets: Targets) -> CrossValidation {
    let chosen: Vec<usize> = (0..FOLDS).map(|f| choose(sets, candidates.len(), targets, |g| g != f)).collect();
    let chosen_on_all = choose(sets, candidates.len(), targets, |_| true);
    let figures = sets
        .iter()
        .map(|set| {
            let folds: Vec<(ReplayScore, ReplayScore)> = (0..FOLDS)
                .map(|f| {
                    (set.score(chosen[f], Flagger::Ace, |g| g == f), set.score(0, Flagger::FirstError, |g| g == f))
                })
                .collect();
            let ace: Vec<ReplayScore> = folds.iter().map(|(a, _)| a.clone()).collect();
            let base: Vec<ReplayScore> = folds.iter().map(|(_, b)| b.clone()).collect();
            SetFigures {
                name: set.name.clone(),
                in_sample: set.score(0, Flagger::Ace, |_| true),
                baseline: set.score(0, Flagger::FirstError, |_| true),
                cross_validated: Averaged::of(&ace),
                baseline_folds: Averaged::of(&base),
                folds,
            }
        })
        .collect();
    CrossValidation { candidates: candidates.to_vec(), targets, chosen, chosen_on_all, sets: figures }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_of_a_task_share_a_group() {
        assert_eq!(group_of("tau-12-t3"), "tau-12");
        assert_eq!(group_of("tau-12-t"), "tau-12-t");
        assert_eq!(group_of("-t3"), "-t3");
        assert_eq!(group_of("ww-Algorithm-Generated-7"), "ww-Algorithm-Generated-7");
        assert_eq!(group_of("retry-task"), "retry-task");
    }

    fn trace(tasks: &[(&str, bool, bool)]) -> String {
        // (task, has an error, failed)
        let mut out = String::new();
        for (i, (task, error, failed)) in tasks.iter().enumerate() {
            let ts = 1_700_000_000 + i * 1000;
            out += &format!("{{\"ts\":{ts},\"type\":\"task_start\",\"agent\":\"a\",\"task\":\"{task}\"}}\n");
            if *error {
                out += &format!(
                    "{{\"ts\":{},\"type\":\"error\",\"agent\":\"a\",\"task\":\"{task}\",\"stage\":\"execution\",\"kind\":\"{}\",\"message\":\"m\"}}\n",
                    ts + 1,
                    if *failed { "TypeError" } else { "NotFoundWarning" },
                );
            }
            out += &format!("{{\"ts\":{},\"type\":\"task_end\",\"agent\":\"a\",\"task\":\"{task}\"}}\n", ts + 2);
            out += &format!("{{\"type\":\"label\",\"task\":\"{task}\",\"failed\":{failed}}}\n");
        }
        out
    }

    #[test]
    fn folds_keep_trials_together_and_the_choice_is_made_without_the_fold() {
        let names: Vec<String> = (0..10).flat_map(|g| (0..2).map(move |t| format!("job-{g}-t{t}"))).collect();
        // Odd groups fail with a crash; even groups see a routine warning and succeed.
        let tasks: Vec<(&str, bool, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let odd = (i / 2) % 2 == 1;
                (n.as_str(), true, odd)
            })
            .collect();
        let text = trace(&tasks);
        let candidates = vec![
            Candidate::new("defaults", &[]),
            Candidate::new("every error", &[("ACE_TASK_ERROR_SEVERITY", "low")]),
            Candidate::new("no task errors", &[("ACE_TASK_ERROR_SEVERITY", "off")]),
        ];
        let set = Replayed::new("toy", &text, &candidates, &AceConfig::default()).unwrap();
        assert_eq!(set.folds.len(), 20);
        for pair in set.folds.chunks(2) {
            assert_eq!(pair[0], pair[1], "both trials of a task in one fold");
        }
        assert_eq!(set.folds.iter().filter(|f| **f == 0).count(), 4);
        let cv = cross_validate(std::slice::from_ref(&set), &candidates, Targets::default());
        // The defaults flag the crashes only: precision 1, recall 1 = the baseline's.
        assert_eq!(cv.chosen, vec![0; FOLDS]);
        let s = &cv.sets[0];
        assert_eq!((s.cross_validated.precision, s.cross_validated.recall), (Some(1.0), Some(1.0)));
        assert_eq!(s.baseline_folds.precision, Some(0.5));
        assert_eq!(s.in_sample.flagged_tasks, 10);
        assert_eq!(s.baseline.flagged_tasks, 20);
        // Asking for nothing but recall, the first candidate with full recall still wins.
        let lax = cross_validate(
            std::slice::from_ref(&set),
            &candidates,
            Targets { min_precision: 0.0, min_early_hits: 0.0 },
        );
        assert_eq!(lax.chosen_on_all, 0);
        let bad = Candidate::new("bad", &[("ACE_NOPE", "1")]);
        assert!(Replayed::new("toy", &text, &[bad], &AceConfig::default()).is_err());
    }
}
