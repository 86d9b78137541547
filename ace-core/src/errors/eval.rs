//! Scoring a grouping against ground truth, as the log-parsing literature does.
//!
//! *Grouping accuracy* (GA, Zhu et al., ICSE-SEIP 2019) counts a message as right when the group a
//! parser put it in holds exactly the messages of its true group. *FGA* (Jiang et al., ISSTA 2024)
//! is the F1 of two shares of correct groups: among the groups found and among the true groups.

use std::collections::HashMap;
use std::hash::Hash;

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
