//! Scoring a grouping against ground truth, as the log-parsing literature does.
//!
//! *Grouping accuracy* (GA, Zhu et al., ICSE-SEIP 2019) counts a message as right when the group a
//! parser put it in holds exactly the messages of its true group. *FGA* (Jiang et al., ISSTA 2024)
//! is the F1 of two shares of correct groups: among the groups found and among the true groups.
//!
//! [`leave_one_out`] scores the miner honestly across log systems: for each system in turn, the
//! miner's knobs are picked on the others and the system is scored with them, so a setting that
//! only fits the systems it was picked on shows as a drop from the in-sample figure.

use std::collections::HashMap;
use std::hash::Hash;

use super::miner::{Miner, MinerConfig};
use crate::error::Result;

/// The scores of one grouping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupingScore {
    /// Messages scored.
    pub messages: usize,
    /// Grouping accuracy in [0, 1].
    pub ga: f64,
    /// F1 of group accuracy in [0, 1].
    pub fga: f64,
    /// Groups found.
    pub predicted_groups: usize,
    /// True groups.
    pub true_groups: usize,
    /// Found groups that equal a true group.
    pub correct_groups: usize,
}

/// Scores `predicted` against `truth` (one label per message, same order).
///
/// # Panics
/// When the two slices differ in length.
#[must_use]
pub fn score<P: Eq + Hash, T: Eq + Hash>(predicted: &[P], truth: &[T]) -> GroupingScore {
    assert_eq!(predicted.len(), truth.len(), "one predicted and one true label per message");
    let mut pred_sizes: HashMap<&P, usize> = HashMap::new();
    let mut true_sizes: HashMap<&T, usize> = HashMap::new();
    // For each predicted group: its one true label, or None once it mixes two.
    let mut pred_truth: HashMap<&P, Option<&T>> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        *pred_sizes.entry(p).or_default() += 1;
        *true_sizes.entry(t).or_default() += 1;
        pred_truth
            .entry(p)
            .and_modify(|seen| {
                if *seen != Some(t) {
                    *seen = None
                }
            })
            .or_insert(Some(t));
    }
    let mut correct_groups = 0;
    let mut correct_messages = 0;
    for (p, t) in &pred_truth {
        if let Some(t) = t
            && pred_sizes[p] == true_sizes[t]
        {
            correct_groups += 1;
            correct_messages += pred_sizes[p];
        }
    }
    let n = predicted.len();
    let precision = if pred_sizes.is_empty() { 0.0 } else { correct_groups as f64 / pred_sizes.len() as f64 };
    let recall = if true_sizes.is_empty() { 0.0 } else { correct_groups as f64 / true_sizes.len() as f64 };
    GroupingScore {
        messages: n,
        ga: if n == 0 { 0.0 } else { correct_messages as f64 / n as f64 },
        fga: if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) },
        predicted_groups: pred_sizes.len(),
        true_groups: true_sizes.len(),
        correct_groups,
    }
}

/// One log system's messages with their true groups (one label per message, same order).
#[derive(Clone, Debug)]
pub struct Labelled {
    /// The system's name.
    pub name: String,
    /// The messages, in log order.
    pub messages: Vec<String>,
    /// The true group of each message.
    pub truth: Vec<String>,
}

/// Groups `messages` (in order, one at a time) with a fresh miner of `cfg` and returns each
/// message's pattern serial, mapped to the pattern it ended in when patterns merged later.
pub fn group(cfg: &MinerConfig, messages: &[String]) -> Result<Vec<u64>> {
    let mut miner = Miner::new(cfg.clone())?;
    let serials: Vec<u64> = messages.iter().map(|m| miner.mine("", m).serial).collect();
    Ok(serials.into_iter().map(|s| miner.canonical(s)).collect())
}

/// The configurations the cross-validation chooses among: the default first, then a grid over
/// the two knobs that shape grouping (the similarity threshold and the merge count).
#[must_use]
pub fn candidates() -> Vec<MinerConfig> {
    let default = MinerConfig::default();
    let mut out = vec![default.clone()];
    for similarity in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8] {
        for variants_to_merge in [3, 4, 5, 6, 7, 8] {
            let cfg = MinerConfig { similarity, variants_to_merge, ..default.clone() };
            if cfg != default {
                out.push(cfg);
            }
        }
    }
    out
}

/// One system scored: with the default configuration, and with the one picked on the others.
#[derive(Clone, Debug)]
pub struct Fold {
    /// The held-out system.
    pub name: String,
    /// Its score with [`MinerConfig::default`] (which every system took part in choosing).
    pub in_sample: GroupingScore,
    /// The configuration picked on the other systems (see [`leave_one_out`]).
    pub chosen: MinerConfig,
    /// Its score with `chosen`.
    pub held_out: GroupingScore,
}

/// Leave-one-system-out cross-validation over `grid`: each system is scored with the
/// configuration that did best on the others. A configuration's fit is the worst average
/// GA + FGA on the others among it and its neighbours on the grid (one step along one knob), so
/// the pick sits on a plateau rather than next to a cliff; ties go to the earlier configuration
/// (put the default first).
pub fn leave_one_out(sets: &[Labelled], grid: &[MinerConfig]) -> Result<Vec<Fold>> {
    let table = score_grid(sets, grid)?;
    let in_sample = grid.iter().position(|c| *c == MinerConfig::default());
    let neighbours = neighbours(grid);
    let mut folds = Vec::with_capacity(sets.len());
    for (held, set) in sets.iter().enumerate() {
        let fit = |c: usize| -> f64 {
            table[c].iter().enumerate().filter(|&(d, _)| d != held).map(|(_, s)| s.ga + s.fga).sum()
        };
        let mut best = (0, f64::NEG_INFINITY);
        for (c, near) in neighbours.iter().enumerate() {
            let worst = near.iter().map(|&n| fit(n)).fold(fit(c), f64::min);
            if worst > best.1 + 1e-9 {
                best = (c, worst);
            }
        }
        let in_sample = match in_sample {
            Some(c) => table[c][held],
            None => score(&group(&MinerConfig::default(), &set.messages)?, &set.truth),
        };
        folds.push(Fold {
            name: set.name.clone(),
            in_sample,
            chosen: grid[best.0].clone(),
            held_out: table[best.0][held],
        });
    }
    Ok(folds)
}

/// For each configuration of `grid`, the others one step away along one knob.
fn neighbours(grid: &[MinerConfig]) -> Vec<Vec<usize>> {
    let mut sims: Vec<f64> = grid.iter().map(|c| c.similarity).collect();
    sims.sort_by(f64::total_cmp);
    sims.dedup();
    let mut merges: Vec<usize> = grid.iter().map(|c| c.variants_to_merge).collect();
    merges.sort_unstable();
    merges.dedup();
    let step = |a: usize, b: usize| a.abs_diff(b) == 1;
    let sim_at = |x: f64| sims.iter().position(|&s| s == x).unwrap_or(0);
    let merge_at = |x: usize| merges.iter().position(|&m| m == x).unwrap_or(0);
    grid.iter()
        .map(|a| {
            (0..grid.len())
                .filter(|&j| {
                    let b = &grid[j];
                    let same_rest =
                        MinerConfig { similarity: a.similarity, variants_to_merge: a.variants_to_merge, ..b.clone() }
                            == *a;
                    same_rest
                        && ((a.variants_to_merge == b.variants_to_merge
                            && step(sim_at(a.similarity), sim_at(b.similarity)))
                            || (a.similarity == b.similarity
                                && step(merge_at(a.variants_to_merge), merge_at(b.variants_to_merge))))
                })
                .collect()
        })
        .collect()
}

/// Every configuration of `grid` on every set: one row per configuration, one score per set.
pub fn score_grid(sets: &[Labelled], grid: &[MinerConfig]) -> Result<Vec<Vec<GroupingScore>>> {
    grid.iter()
        .map(|cfg| sets.iter().map(|s| Ok(score(&group(cfg, &s.messages)?, &s.truth))).collect::<Result<Vec<_>>>())
        .collect()
}

/// The mean GA and FGA of `scores`.
#[must_use]
pub fn average<'a>(scores: impl IntoIterator<Item = &'a GroupingScore>) -> (f64, f64) {
    let (mut ga, mut fga, mut n) = (0.0, 0.0, 0usize);
    for s in scores {
        ga += s.ga;
        fga += s.fga;
        n += 1;
    }
    if n == 0 { (0.0, 0.0) } else { (ga / n as f64, fga / n as f64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_grouping_scores_one() {
        let s = score(&[1, 1, 2, 3], &["a", "a", "b", "c"]);
        assert_eq!((s.ga, s.fga, s.correct_groups), (1.0, 1.0, 3));
    }

    #[test]
    fn merged_and_split_groups_are_wrong() {
        // Predicted 1 merges a and b; c is split in two.
        let s = score(&[1, 1, 1, 2, 3, 4], &["a", "a", "b", "c", "c", "d"]);
        assert_eq!(s.correct_groups, 1);
        assert!((s.ga - 1.0 / 6.0).abs() < 1e-12);
        let (p, r) = (1.0 / 4.0, 1.0 / 4.0);
        assert!((s.fga - 2.0 * p * r / (p + r)).abs() < 1e-12);
    }
}
