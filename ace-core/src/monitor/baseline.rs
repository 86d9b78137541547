//! Baselines and the degradation detector.
//!
//! Each (agent, stage, metric) stream keeps a slow exponentially weighted mean and variance (the
//! baseline: it forgets old data with weight `alpha` per observation, after a plain Welford
//! warm-up) and a fast exponentially weighted mean (the recent level). A degradation is declared
//! only when the recent level is both *significant* (at least `z` standard errors of the fast mean
//! away from the baseline) and *material* (at least `min_pct` percent away), and stays so for
//! `sustain` consecutive observations. Single outliers move the fast mean by at most `alpha_fast`
//! times a clipped deviation, so a stationary agent almost never raises a signal, while a real
//! slowdown is caught within a handful of observations.
//!
//! While a stream is degraded its baseline still learns, four times slower, so a shift that
//! persists for long enough becomes the new normal and the stream recovers on its own.

use crate::record::ALPHA_FAST;
pub use crate::record::BaselineState;
use crate::signal::Direction;

/// Observations are clipped to this many standard deviations before they update anything.
const CLIP_SD: f64 = 6.0;
/// The baseline learns this much slower while its stream is degraded.
const DEGRADED_SLOWDOWN: f64 = 0.25;

/// The thresholds of the detector (from [`AceConfig`](crate::AceConfig)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Observations before the baseline judges anything.
    pub warmup: u32,
    /// Weight of each observation in the baseline.
    pub alpha: f64,
    /// Standard errors of the recent level away from the baseline to count as significant.
    pub z: f64,
    /// Percent away from the baseline to count as material.
    pub min_pct: f64,
    /// Consecutive significant observations before a degradation is declared.
    pub sustain: u32,
}

/// Which shifts of a stream are bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Only increases (durations).
    Up,
    /// Only decreases.
    Down,
    /// A 0/1 stream (success); only decreases count. Never clipped: a failure is not an outlier.
    Rate,
    /// Both (named metrics, whose good direction ace does not know).
    Both,
}

/// A change of a stream's condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    /// The stream degraded in this direction.
    Degraded(Direction),
    /// The stream is back to its baseline.
    Recovered,
}

/// One stream's baseline and detector.
#[derive(Clone, Debug, Default)]
pub struct Detector {
    /// The persisted part.
    pub state: BaselineState,
    streak: u32,
}

impl Detector {
    /// A detector resuming from a persisted state.
    #[must_use]
    pub fn from_state(state: BaselineState) -> Self {
        Detector { state, streak: 0 }
    }

    /// Feeds one observation; returns a transition when the stream degrades or recovers.
    pub fn observe(&mut self, x: f64, watch: Watch, cfg: &DetectorConfig) -> Option<Transition> {
        let s = &mut self.state;
        s.count += 1;
        if s.count <= u64::from(cfg.warmup) {
            // Welford: exact mean and population variance over the warm-up.
            let n = s.count as f64;
            let delta = x - s.mean;
            s.mean += delta / n;
            s.var += (delta * (x - s.mean) - s.var) / n;
            s.recent = s.mean;
            return None;
        }
        let sd = s.std();
        let x = if watch == Watch::Rate { x } else { x.clamp(s.mean - CLIP_SD * sd, s.mean + CLIP_SD * sd) };
        s.recent += ALPHA_FAST * (x - s.recent);

        let deviation = s.recent - s.mean;
        let z = deviation / s.standard_error();
        let pct = if deviation == 0.0 { 0.0 } else { deviation / s.mean.abs().max(1e-12) * 100.0 };
        let direction = if deviation > 0.0 { Direction::Up } else { Direction::Down };
        let watched = match watch {
            Watch::Up => direction == Direction::Up,
            Watch::Down | Watch::Rate => direction == Direction::Down,
            Watch::Both => true,
        };
        let significant = watched && z.abs() >= cfg.z && pct.abs() >= cfg.min_pct;
        self.streak = if significant { self.streak.saturating_add(1) } else { 0 };

        let mut transition = None;
        if !s.degraded && self.streak >= cfg.sustain {
            s.degraded = true;
            transition = Some(Transition::Degraded(direction));
        } else if s.degraded && (!watched || z.abs() < cfg.z / 2.0) {
            s.degraded = false;
            transition = Some(Transition::Recovered);
        }

        // Learn after judging, so an observation never hides its own shift.
        let alpha = if s.degraded { cfg.alpha * DEGRADED_SLOWDOWN } else { cfg.alpha };
        let diff = x - s.mean;
        let incr = alpha * diff;
        s.mean += incr;
        s.var = (1.0 - alpha) * (s.var + diff * incr);
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: DetectorConfig = DetectorConfig { warmup: 20, alpha: 0.01, z: 4.0, min_pct: 20.0, sustain: 3 };

    /// A small deterministic generator (SplitMix64) so these tests never flake.
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.next_f64().max(1e-300), self.next_f64());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
        /// Log-normal with median `median` and log-sd `sigma`: a realistic latency.
        fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
            median * (sigma * self.normal()).exp()
        }
    }

    #[test]
    fn warmup_is_exact_welford() {
        let mut d = Detector::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            assert_eq!(d.observe(x, Watch::Up, &CFG), None);
        }
        assert_eq!(d.state.mean, 2.5);
        assert!((d.state.var - 1.25).abs() < 1e-12);
        assert!(!d.state.is_warm(CFG.warmup));
    }

    #[test]
    fn stationary_heavy_tailed_latency_raises_almost_nothing() {
        for seed in 0..5 {
            let mut rng = Rng(seed);
            let mut d = Detector::default();
            let alarms = (0..20_000)
                .filter(|_| {
                    matches!(d.observe(rng.lognormal(2.0, 0.5), Watch::Up, &CFG), Some(Transition::Degraded(_)))
                })
                .count();
            assert!(alarms <= 1, "seed {seed}: {alarms} false alarms in 20000 stationary observations");
        }
    }

    #[test]
    fn stationary_success_rate_raises_almost_nothing() {
        let mut rng = Rng(7);
        let mut d = Detector::default();
        let alarms = (0..20_000)
            .filter(|_| {
                let x = if rng.next_f64() < 0.95 { 1.0 } else { 0.0 };
                matches!(d.observe(x, Watch::Rate, &CFG), Some(Transition::Degraded(_)))
            })
            .count();
        assert!(alarms <= 1, "{alarms} false alarms");
    }

    #[test]
    fn a_doubling_of_latency_is_caught_within_a_few_observations() {
        let mut rng = Rng(42);
        let mut d = Detector::default();
        for _ in 0..500 {
            d.observe(rng.lognormal(2.0, 0.3), Watch::Up, &CFG);
        }
        let caught = (1..=50).find(|_| d.observe(rng.lognormal(4.0, 0.3), Watch::Up, &CFG).is_some());
        let after = caught.expect("a doubling must be detected within 50 observations");
        assert!(after <= 10, "detected only after {after} observations");
        assert!(d.state.degraded);
        assert!(d.state.deviation_pct() > 20.0);
    }

    #[test]
    fn improvements_are_not_degradations_of_latency() {
        let mut rng = Rng(3);
        let mut d = Detector::default();
        for _ in 0..300 {
            d.observe(rng.lognormal(2.0, 0.3), Watch::Up, &CFG);
        }
        for _ in 0..300 {
            assert_eq!(d.observe(rng.lognormal(0.5, 0.3), Watch::Up, &CFG), None);
        }
    }

    #[test]
    fn failure_burst_is_caught_and_recovers() {
        let mut d = Detector::default();
        for _ in 0..200 {
            d.observe(1.0, Watch::Rate, &CFG);
        }
        let caught = (1..=10).find(|_| d.observe(0.0, Watch::Rate, &CFG).is_some());
        assert!(caught.is_some_and(|n| n <= 6), "caught after {caught:?}");
        let recovered = (1..=100).find(|_| d.observe(1.0, Watch::Rate, &CFG) == Some(Transition::Recovered));
        assert!(recovered.is_some(), "must recover once successes return");
    }

    #[test]
    fn small_shifts_are_not_material() {
        let mut rng = Rng(9);
        let mut d = Detector::default();
        for _ in 0..1000 {
            d.observe(100.0 + rng.normal(), Watch::Both, &CFG);
        }
        // +5% is far beyond 4 standard errors here, but below the 20% materiality bar.
        for _ in 0..500 {
            assert_eq!(d.observe(105.0 + rng.normal(), Watch::Both, &CFG), None);
        }
    }

    #[test]
    fn a_persistent_shift_becomes_the_new_normal() {
        let mut d = Detector::default();
        for _ in 0..100 {
            d.observe(1.0, Watch::Up, &CFG);
        }
        let mut transitions = Vec::new();
        for _ in 0..5000 {
            if let Some(t) = d.observe(3.0, Watch::Up, &CFG) {
                transitions.push(t);
            }
        }
        assert_eq!(transitions.first(), Some(&Transition::Degraded(Direction::Up)));
        assert_eq!(transitions.last(), Some(&Transition::Recovered));
        assert!((d.state.mean - 3.0).abs() < 0.1);
    }
}
