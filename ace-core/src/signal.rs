//! Signals: what the organs find.
//!
//! Every organ turns events into signals, each a typed, timestamped finding with the evidence
//! that produced it. The intervention engine turns signals into interventions; a host can also
//! act on them directly, since every recording call returns the signals it produced.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::event::Severity;
use crate::ids::PatternId;

/// What kind of finding a signal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalKind {
    /// A sustained, significant shift of a stage metric away from its baseline.
    Degradation,
    /// A metric that had degraded is back within its baseline.
    Recovery,
    /// One error pattern repeated `ACE_ERROR_THRESHOLD` times within `ACE_ERROR_WINDOW`, in a
    /// task or (across tasks) in an agent.
    ErrorAccumulation,
    /// An error of critical severity.
    CriticalError,
    /// Repeats of an error pattern raised its severity.
    ErrorEscalation,
    /// Errors spread across several stages of a task within the window.
    ErrorCascade,
    /// An agent's context staleness reached `ACE_CONTEXT_STALENESS_THRESHOLD`.
    ContextStale,
    /// The first error of a task at or above `ACE_TASK_ERROR_SEVERITY` (medium).
    TaskError,
    /// The same stage of a task failed `ACE_LOOP_THRESHOLD` times in a row.
    Loop,
    /// `ACE_FAILURE_RUN` stages of a task failed in a row, whichever stages they were.
    FailureRun,
    /// A task ran more stages than the agent's tasks usually take (see the `trajectory` organ).
    LongTask,
    /// A circuit breaker turned the agent's call away (see `Ace::acquire`).
    BreakerOpen,
    /// The same tool with the same arguments digest was called `ACE_TOOL_REPEAT` times among
    /// the task's recent tool calls.
    ToolRepeat,
    /// The task's tool calls alternated between two calls (A B A B) for `ACE_TOOL_ALTERNATION`
    /// calls in a row.
    ToolAlternation,
    /// A tool failed, was called again, and failed again: `ACE_TOOL_RETRY_FAILURES` failures of
    /// one tool among the task's recent tool calls.
    ToolRetryFailure,
}

impl SignalKind {
    /// Every kind.
    pub const ALL: [SignalKind; 15] = [
        SignalKind::Degradation,
        SignalKind::Recovery,
        SignalKind::ErrorAccumulation,
        SignalKind::CriticalError,
        SignalKind::ErrorEscalation,
        SignalKind::ErrorCascade,
        SignalKind::ContextStale,
        SignalKind::TaskError,
        SignalKind::Loop,
        SignalKind::FailureRun,
        SignalKind::LongTask,
        SignalKind::BreakerOpen,
        SignalKind::ToolRepeat,
        SignalKind::ToolAlternation,
        SignalKind::ToolRetryFailure,
    ];

    /// The kind's position in [`SignalKind::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name (`"degradation"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalKind::Degradation => "degradation",
            SignalKind::Recovery => "recovery",
            SignalKind::ErrorAccumulation => "error_accumulation",
            SignalKind::CriticalError => "critical_error",
            SignalKind::ErrorEscalation => "error_escalation",
            SignalKind::ErrorCascade => "error_cascade",
            SignalKind::ContextStale => "context_stale",
            SignalKind::TaskError => "task_error",
            SignalKind::Loop => "loop",
            SignalKind::FailureRun => "failure_run",
            SignalKind::LongTask => "long_task",
            SignalKind::BreakerOpen => "breaker_open",
            SignalKind::ToolRepeat => "tool_repeat",
            SignalKind::ToolAlternation => "tool_alternation",
            SignalKind::ToolRetryFailure => "tool_retry_failure",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a metric moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above the baseline (slower, more tokens, more cost).
    Up,
    /// Below the baseline (a lower success rate).
    Down,
}

/// The numbers behind a signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Evidence {
    /// A metric's recent level compared with its baseline.
    BaselineShift {
        /// The metric (`duration_s`, `success`, `tokens_in`, ...).
        metric: String,
        /// Which way it moved.
        direction: Direction,
        /// The baseline's mean.
        baseline_mean: f64,
        /// The baseline's standard deviation.
        baseline_std: f64,
        /// The recent level (a fast exponentially weighted mean).
        recent_mean: f64,
        /// `(recent - baseline) / |baseline| * 100`.
        deviation_pct: f64,
        /// How many standard errors the recent level is from the baseline.
        z_score: f64,
        /// Observations in the baseline.
        samples: u64,
    },
    /// Occurrences of one error pattern.
    ErrorPattern {
        /// The pattern's id (16 hex digits in JSON).
        pattern_id: PatternId,
        /// The error kind.
        error_kind: Arc<str>,
        /// The pattern's template.
        template: Arc<str>,
        /// Occurrences within the window (counted up to four times the threshold).
        occurrences: u32,
        /// The window in seconds.
        window_s: f64,
        /// Where they were counted.
        scope: ErrorScope,
        /// The severity of the latest occurrence, after escalation.
        severity: Severity,
        /// The severity before this occurrence.
        previous_severity: Severity,
    },
    /// An agent's context staleness.
    Staleness {
        /// The score in [0, 1].
        score: f64,
        /// The threshold it reached.
        threshold: f64,
        /// Seconds since the last refresh (or since the agent was first seen).
        seconds_since_refresh: f64,
        /// Stages recorded since then.
        steps_since_refresh: u64,
        /// Errors recorded since then.
        errors_since_refresh: u64,
    },
    /// Stages of a task that failed in a row (the same stage for a loop, any for a run).
    Failures {
        /// Failures in a row.
        failures: u32,
        /// The threshold they reached.
        threshold: u32,
    },
    /// A task's length against what the agent's tasks usually take.
    TaskLength {
        /// Stages recorded in the task so far.
        steps: u32,
        /// The length it exceeded.
        limit: u32,
        /// The median length of the agent's recent tasks (0 when only a fixed cap applies).
        typical_steps: u32,
        /// The agent's finished tasks the limit was learned from.
        tasks_seen: u32,
    },
    /// A circuit breaker that is not letting calls through.
    Breaker {
        /// The breaker's name.
        breaker: String,
        /// Its state (`open`, `half_open`, `forced_open`).
        state: String,
        /// Seconds until it lets a trial through, when known.
        retry_after_s: Option<f64>,
    },
    /// Tool calls of a task: a repeated call, an alternation, or failures of one tool.
    ToolCalls {
        /// The tool of the call that raised the signal.
        tool: Arc<str>,
        /// Its arguments digest, when known.
        args_digest: Option<Arc<str>>,
        /// For an alternation, the other call's tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        other_tool: Option<Arc<str>>,
        /// For an alternation, the other call's arguments digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        other_args_digest: Option<Arc<str>>,
        /// Repeats of the call, calls in the alternation, or failures of the tool.
        count: u32,
        /// The threshold they reached.
        threshold: u32,
        /// The recent tool calls of the task they were counted in.
        window: u32,
    },
    /// Errors across a task's stages.
    Cascade {
        /// The stages with an error within the window, oldest first.
        stages: Vec<String>,
        /// The window in seconds.
        window_s: f64,
    },
}

/// Where error occurrences were counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorScope {
    /// Within one task of the agent.
    Task,
    /// Across the agent's tasks.
    Agent,
}

/// A finding of one of the organs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// What was found.
    pub kind: SignalKind,
    /// How bad it is.
    pub severity: Severity,
    /// When it was found (engine clock).
    pub at: Timestamp,
    /// The agent concerned.
    pub agent: Arc<str>,
    /// The task during which it was found, if any.
    pub task: Option<Arc<str>>,
    /// The stage concerned, if any.
    pub stage: Option<Arc<str>>,
    /// One human-readable sentence.
    pub message: String,
    /// The numbers behind it.
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_in_index_order_with_unique_names() {
        for (i, k) in SignalKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{}\"", k.as_str()));
        }
    }
}
