//! How sure the decider is of a choice: the posterior probability that the chosen strategy works
//! better than the runner-up, and whether the kind of signal has little outcome history (then
//! that probability rests mostly on the rule's prior). A judge can then be asked about the hard
//! cases only (`ACE_JUDGE_BELOW`).

use std::cell::RefCell;
use std::sync::LazyLock;

use super::Belief;
use crate::decision::{Confidence, Strategy};

/// Outcomes reported for a kind of signal (over its candidate strategies) below which its
/// decisions are [`novel`](Confidence::novel).
pub const NOVEL_OUTCOMES: u64 = 5;

/// Points of the grid over (0, 1) that [`beats`] integrates on.
const GRID: usize = 512;

/// `(ln x, ln(1 - x))` at each midpoint `x` of the grid: the same values for every call, so
/// computed once.
static LOGS: LazyLock<[(f64, f64); GRID]> = LazyLock::new(|| {
    std::array::from_fn(|i| {
        let x = (i as f64 + 0.5) / GRID as f64;
        (x.ln(), (1.0 - x).ln())
    })
});

/// Pairs of beliefs remembered by [`beats`] (a decision compares the same few pairs again and
/// again until outcomes are reported), one slot per hash, the newest pair winning.
const MEMO: usize = 256;

/// A pair of beliefs by the bits of its four numbers.
type Key = [u64; 4];

/// The remembered pairs, each with its value, by slot.
type Memo = [Option<(Key, f64)>; MEMO];

thread_local! {
    static REMEMBERED: RefCell<Box<Memo>> = RefCell::new(Box::new([None; MEMO]));
}

/// P(X > Y) for X ~ `a`, Y ~ `b`: both densities on a midpoint grid (normalised numerically, so
/// no gamma function is needed), then the sum of P(X = x) P(Y < x). Accurate to about 1e-3 for
/// beliefs of up to a few thousand outcomes; a few microseconds, or a lookup for a pair seen
/// lately (the same value: the function is pure).
#[must_use]
pub fn beats(a: Belief, b: Belief) -> f64 {
    let key: Key = [a.alpha.to_bits(), a.beta.to_bits(), b.alpha.to_bits(), b.beta.to_bits()];
    let slot = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, k| (h ^ k).wrapping_mul(0x0100_0000_01b3));
    let slot = (slot ^ (slot >> 32)) as usize % MEMO;
    let found = REMEMBERED.with(|m| m.borrow()[slot].filter(|(k, _)| *k == key).map(|(_, v)| v));
    if let Some(v) = found {
        return v;
    }
    let v = integrate(a, b);
    REMEMBERED.with(|m| m.borrow_mut()[slot] = Some((key, v)));
    v
}

/// Densities remembered by [`integrate`]: the beliefs compared are mostly the rules' priors,
/// a handful, in ever new pairs.
const DENSITIES: usize = 16;

/// A belief by the bits of its two numbers, and its density on the grid.
type Density = ((u64, u64), Box<[f64; GRID]>);

thread_local! {
    static DENSITY: RefCell<Vec<Density>> = const { RefCell::new(Vec::new()) };
}

/// The belief's density on the grid, normalised to sum to 1.
fn density(belief: Belief) -> [f64; GRID] {
    let logs = &*LOGS;
    let mut p = [0.0; GRID];
    for (l, (lx, l1x)) in p.iter_mut().zip(logs) {
        *l = (belief.alpha - 1.0) * lx + (belief.beta - 1.0) * l1x;
    }
    let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    p.iter_mut().for_each(|l| *l = (*l - max).exp());
    let sum: f64 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// [`density`], remembered for the last [`DENSITIES`] beliefs.
fn density_of(belief: Belief, out: &mut [f64; GRID]) {
    let key = (belief.alpha.to_bits(), belief.beta.to_bits());
    DENSITY.with(|d| {
        let mut d = d.borrow_mut();
        if let Some((_, p)) = d.iter().find(|(k, _)| *k == key) {
            *out = **p;
            return;
        }
        *out = density(belief);
        if d.len() == DENSITIES {
            d.remove(0);
        }
        d.push((key, Box::new(*out)));
    });
}

/// [`beats`] computed.
fn integrate(a: Belief, b: Belief) -> f64 {
    let (mut pa, mut pb) = ([0.0; GRID], [0.0; GRID]);
    density_of(a, &mut pa);
    density_of(b, &mut pb);
    let mut below = 0.0;
    let mut total = 0.0;
    for (x, y) in pa.iter().zip(&pb) {
        total += x * (below + 0.5 * y);
        below += y;
    }
    total.clamp(0.0, 1.0)
}

/// The confidence of choosing `chosen` among `beliefs` (every candidate's current belief) after
/// `outcomes` reported outcomes for the signal's kind.
#[must_use]
pub fn assess(chosen: Strategy, beliefs: &[(Strategy, Belief)], outcomes: u64) -> Confidence {
    let novel = outcomes < NOVEL_OUTCOMES;
    let Some(&(_, mine)) = beliefs.iter().find(|(s, _)| *s == chosen) else {
        return Confidence { score: 1.0, runner_up: None, outcomes, novel };
    };
    let runner_up = beliefs
        .iter()
        .filter(|(s, _)| *s != chosen)
        .max_by(|a, b| a.1.mean().total_cmp(&b.1.mean()).then_with(|| b.0.cmp(&a.0)));
    match runner_up {
        Some(&(strategy, other)) => {
            Confidence { score: beats(mine, other), runner_up: Some(strategy), outcomes, novel }
        }
        None => Confidence { score: 1.0, runner_up: None, outcomes, novel },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(alpha: f64, beta: f64) -> Belief {
        Belief { alpha, beta }
    }

    /// The computation as first written (a log per point and call), which the table and the
    /// memo must match bit for bit.
    fn beats_plainly(a: Belief, b: Belief) -> f64 {
        let density = |belief: Belief| -> Vec<f64> {
            let logs: Vec<f64> = (0..GRID)
                .map(|i| {
                    let x = (i as f64 + 0.5) / GRID as f64;
                    (belief.alpha - 1.0) * x.ln() + (belief.beta - 1.0) * (1.0 - x).ln()
                })
                .collect();
            let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut p: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
            let sum: f64 = p.iter().sum();
            p.iter_mut().for_each(|v| *v /= sum);
            p
        };
        let (pa, pb) = (density(a), density(b));
        let mut below = 0.0;
        let mut total = 0.0;
        for (x, y) in pa.iter().zip(&pb) {
            total += x * (below + 0.5 * y);
            below += y;
        }
        total.clamp(0.0, 1.0)
    }

    #[test]
    fn the_table_and_the_memo_give_the_plain_values_bit_for_bit() {
        let values = [1.0, 1.5, 2.0, 3.0, 7.25, 40.0, 900.0];
        for _ in 0..2 {
            for &a1 in &values {
                for &a2 in &values {
                    for &b1 in &values[..4] {
                        for &b2 in &values[2..] {
                            let (x, y) = (b(a1, a2), b(b1, b2));
                            assert_eq!(beats(x, y).to_bits(), beats_plainly(x, y).to_bits(), "{x:?} {y:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_probability_of_beating_matches_closed_forms() {
        // Equal beliefs: one half. Beta(2,1) against Beta(1,1): P(max of two uniforms > U) = 2/3.
        assert!((beats(b(3.0, 3.0), b(3.0, 3.0)) - 0.5).abs() < 1e-3);
        assert!((beats(b(2.0, 1.0), b(1.0, 1.0)) - 2.0 / 3.0).abs() < 2e-3, "{}", beats(b(2.0, 1.0), b(1.0, 1.0)));
        // Beta(1,1) against Beta(1,2) (a min of two uniforms): 2/3 as well.
        assert!((beats(b(1.0, 1.0), b(1.0, 2.0)) - 2.0 / 3.0).abs() < 2e-3);
        // Much evidence apart: near certainty, both ways.
        assert!(beats(b(900.0, 100.0), b(100.0, 900.0)) > 0.999);
        assert!(beats(b(100.0, 900.0), b(900.0, 100.0)) < 0.001);
    }

    #[test]
    fn the_runner_up_is_the_best_other_and_little_history_is_flagged() {
        let beliefs =
            [(Strategy::Backoff, b(9.0, 1.0)), (Strategy::Replan, b(2.0, 2.0)), (Strategy::Escalate, b(1.0, 3.0))];
        let c = assess(Strategy::Backoff, &beliefs, 0);
        assert_eq!((c.runner_up, c.novel, c.outcomes), (Some(Strategy::Replan), true, 0));
        assert!(c.score > 0.9 && c.score < 1.0, "{c:?}");
        let c = assess(Strategy::Replan, &beliefs, 40);
        assert_eq!((c.runner_up, c.novel), (Some(Strategy::Backoff), false));
        assert!(c.score < 0.1, "{c:?}");
        let alone = assess(Strategy::Backoff, &beliefs[..1], 3);
        assert_eq!((alone.score, alone.runner_up), (1.0, None));
    }
}
