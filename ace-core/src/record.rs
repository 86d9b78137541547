//! Every record the engine persists, as plain data: what stores write and read back.
//!
//! Stores (`ace-store`), the writer thread and the organs all speak these types, so they sit
//! below the organs: a store depends on the records, never on the organ that made them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::decision::Strategy;
use crate::event::Severity;
use crate::ids::{InterventionId, PatternId};
use crate::signal::SignalKind;

/// Weight of each observation in a baseline's recent level (about the last 20 observations).
pub(crate) const ALPHA_FAST: f64 = 0.1;
/// The variance of the fast mean, in units of the baseline's variance: `ALPHA_FAST / (2 - ALPHA_FAST)`.
const FAST_VAR: f64 = ALPHA_FAST / (2.0 - ALPHA_FAST);
/// `sqrt(FAST_VAR + 1 / 200)`: the standard error's factor once a baseline has 200 observations
/// (every call of a warm stream; a square root and a division saved). The test
/// `the_standard_errors_factor_is_the_computed_one` checks it bit for bit.
const SE_FACTOR_WARM: f64 = 0.240_065_780_458_957_6;

/// One observation of the performance monitor: a finished stage, or a single named metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// When it was recorded (engine clock).
    pub ts: Timestamp,
    /// The agent.
    pub agent: Arc<str>,
    /// The task.
    pub task: Arc<str>,
    /// The stage.
    pub stage: Arc<str>,
    /// The stage's duration in seconds (absent for a single metric).
    pub duration_s: Option<f64>,
    /// Whether the stage succeeded (absent for a single metric).
    pub success: Option<bool>,
    /// Named metrics (`tokens_in`, `cost_usd`, ...).
    pub metrics: Vec<(Arc<str>, f64)>,
}

/// Anything the engine persists through the batcher. Later organs add variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Record {
    /// A performance observation (table `ace_performance_metrics`).
    Metric(MetricRecord),
    /// An error (table `ace_errors`).
    Error(ErrorRecord),
    /// An intervention, for audit (table `ace_interventions`).
    Intervention(InterventionRecord),
    /// The reported outcome of an intervention (sets `outcome` on its row).
    Outcome(OutcomeRecord),
}

/// One entry of a playbook domain's log: an operation or a snapshot, chained by hash (see
/// the playbook organ).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookEntry {
    /// The domain (tenant).
    pub domain: String,
    /// The version this entry makes (1, 2, ... per domain).
    pub version: u64,
    /// When it was written.
    pub at: Timestamp,
    /// SHA-256 (hex) of the previous entry's hash, this version and `body`.
    pub hash: String,
    /// A snapshot of the whole domain rather than one operation.
    pub snapshot: bool,
    /// The operation or snapshot, as JSON.
    pub body: String,
}

/// An intervention as audited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterventionRecord {
    /// When it was decided (engine clock).
    pub ts: Timestamp,
    /// Its id.
    pub id: InterventionId,
    /// The agent.
    pub agent: Arc<str>,
    /// The task.
    pub task: Arc<str>,
    /// What the agent was told to do.
    pub strategy: Strategy,
    /// The severity of the signal acted on.
    pub severity: Severity,
    /// The kind of the signal acted on.
    pub signal_kind: SignalKind,
    /// The one-sentence reason.
    pub reason: String,
    /// The signals with their evidence, as JSON (the one acted on first).
    pub signals_json: String,
    /// The reported outcome, once there is one.
    pub outcome: Option<bool>,
}

/// The outcome of an intervention, reported by the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// When it was reported (engine clock).
    pub ts: Timestamp,
    /// The intervention.
    pub id: InterventionId,
    /// Whether it worked.
    pub success: bool,
}

/// What the engine learnt about one strategy for one kind of signal: the outcomes reported for
/// it, on top of the rule's prior. Stores add these up (`Store::add_learnt`);
/// a fleet adds them up in its cache, so each outcome counts once fleet-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LearntRecord {
    /// The kind of signal the strategy answered.
    pub kind: SignalKind,
    /// The strategy.
    pub strategy: Strategy,
    /// Interventions reported to have worked.
    pub successes: u64,
    /// Interventions reported not to have worked.
    pub failures: u64,
}

/// One recorded error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// When it was recorded (engine clock).
    pub ts: Timestamp,
    /// The agent.
    pub agent: Arc<str>,
    /// The task.
    pub task: Arc<str>,
    /// The stage.
    pub stage: Arc<str>,
    /// The error kind (an exception type, say).
    pub kind: Arc<str>,
    /// The message (cut to the miner's `max_message_bytes`, with a marker, when longer).
    pub message: Arc<str>,
    /// The severity, given or inferred, after escalation.
    pub severity: Severity,
    /// The pattern it was grouped into.
    pub pattern: PatternId,
}

/// A baseline as stored (table `ace_baselines`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecord {
    /// The agent.
    pub agent: String,
    /// The stage.
    pub stage: String,
    /// The metric (`duration_s`, `success`, or a named metric).
    pub metric: String,
    /// The baseline.
    pub state: BaselineState,
    /// When it was last updated (engine clock).
    pub updated_at: Timestamp,
}

/// A pattern as it is stored and reloaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternRecord {
    /// [`PatternId::of`] its kind and template.
    pub id: PatternId,
    /// The error kind.
    pub kind: String,
    /// The template, variable parts as `<*>`.
    pub template: String,
    /// Messages grouped.
    pub count: u64,
}

/// The persisted state of one baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineState {
    /// Observations seen.
    pub count: u64,
    /// The baseline's mean.
    pub mean: f64,
    /// The baseline's variance.
    pub var: f64,
    /// The recent level (fast exponentially weighted mean).
    pub recent: f64,
    /// Whether the stream is currently degraded.
    pub degraded: bool,
}

impl BaselineState {
    /// The baseline's standard deviation, floored so that a constant metric still has a scale:
    /// at least 5% of the mean's magnitude, and never zero.
    #[must_use]
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt().max(self.mean.abs() * 0.05).max(1e-9)
    }

    /// `(recent - mean) / |mean| * 100`; 0 when the mean is 0 and nothing moved.
    #[must_use]
    pub fn deviation_pct(&self) -> f64 {
        let d = self.recent - self.mean;
        if d == 0.0 { 0.0 } else { d / self.mean.abs().max(1e-12) * 100.0 }
    }

    /// How many standard errors the recent level is from the baseline.
    ///
    /// The standard error counts the noise of both estimates: the fast mean's, and the baseline
    /// mean's own (large right after warm-up, when it rests on few observations), so a young
    /// baseline needs a larger shift before it judges.
    #[must_use]
    pub fn z_score(&self) -> f64 {
        (self.recent - self.mean) / self.standard_error()
    }

    pub(crate) fn standard_error(&self) -> f64 {
        // Observations the baseline effectively remembers: all of them at first, then about
        // (2 - alpha) / alpha once forgetting dominates; 200 is that for the default alpha.
        let factor = if self.count >= 200 {
            SE_FACTOR_WARM
        } else {
            let n = (self.count as f64).max(1.0);
            (FAST_VAR + 1.0 / n).sqrt()
        };
        self.std() * factor
    }

    /// Whether the baseline has seen enough to judge.
    #[must_use]
    pub fn is_warm(&self, warmup: u32) -> bool {
        self.count > u64::from(warmup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_errors_factor_is_the_computed_one() {
        let computed = (FAST_VAR + 1.0 / 200.0_f64).sqrt();
        assert_eq!(SE_FACTOR_WARM.to_bits(), computed.to_bits());
        for count in [0, 1, 2, 199, 200, 201, 1_000_000] {
            let s = BaselineState { count, mean: 2.0, var: 0.3, recent: 2.5, degraded: false };
            let n = (count as f64).clamp(1.0, 200.0);
            let before = s.std() * (FAST_VAR + 1.0 / n).sqrt();
            assert_eq!(s.standard_error().to_bits(), before.to_bits(), "count {count}");
        }
    }
}
