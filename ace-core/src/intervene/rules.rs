//! The rules: which strategies answer which signal, each with its prior.

use crate::decision::Strategy;
use crate::signal::{Direction, Evidence, Signal, SignalKind};

/// The rules: candidate strategies for a signal, each with a prior (alpha, beta), first choice
/// first. A first choice's prior (9, 1) is worth about ten outcomes, nine of them good, so
/// Thompson sampling follows the rule until reported outcomes say otherwise; a second choice
/// starts at (3, 2), a third at (2, 2).
#[must_use]
pub fn candidates(signal: &Signal) -> &'static [(Strategy, f64, f64)] {
    use Strategy::*;
    match (&signal.kind, &signal.evidence) {
        (SignalKind::ContextStale, _) => &[(RefreshContext, 9.0, 1.0), (Replan, 2.0, 2.0)],
        (SignalKind::CriticalError, _) => &[(Escalate, 9.0, 1.0), (Terminate, 3.0, 2.0), (Reflect, 2.0, 2.0)],
        (SignalKind::ErrorEscalation, _) => &[(Escalate, 9.0, 1.0), (Reflect, 3.0, 2.0)],
        (SignalKind::ErrorCascade, _) => &[(Replan, 9.0, 1.0), (Escalate, 3.0, 2.0)],
        (SignalKind::ErrorAccumulation, Evidence::ErrorPattern { error_kind, template, .. })
            if is_throttling(error_kind, template) =>
        {
            &[(Backoff, 9.0, 1.0), (Replan, 2.0, 2.0)]
        }
        (SignalKind::ErrorAccumulation, _) => &[(Reflect, 9.0, 1.0), (Replan, 3.0, 2.0), (Backoff, 2.0, 2.0)],
        (SignalKind::TaskError, Evidence::ErrorPattern { error_kind, template, .. })
            if is_throttling(error_kind, template) =>
        {
            &[(Backoff, 9.0, 1.0), (Reflect, 2.0, 2.0)]
        }
        (SignalKind::TaskError, _) => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0), (Replan, 2.0, 2.0)],
        (SignalKind::Loop, _) => &[(Replan, 9.0, 1.0), (Reflect, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::FailureRun, _) => &[(Reflect, 9.0, 1.0), (Replan, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::BreakerOpen, _) => &[(Backoff, 9.0, 1.0), (Replan, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::LongTask, _) => &[(Replan, 9.0, 1.0), (Escalate, 3.0, 2.0), (Terminate, 2.0, 2.0)],
        // The agent keeps making one call (or two in turn): whatever it expects back, it is not
        // getting it; it should plan again rather than call once more.
        (SignalKind::ToolRepeat | SignalKind::ToolAlternation, _) => {
            &[(Replan, 9.0, 1.0), (Reflect, 3.0, 2.0), (Escalate, 2.0, 2.0)]
        }
        // A retry did not help: look at why the tool fails before calling it again.
        (SignalKind::ToolRetryFailure, _) => &[(Reflect, 9.0, 1.0), (Replan, 3.0, 2.0), (Escalate, 2.0, 2.0)],
        (SignalKind::Degradation, Evidence::BaselineShift { metric, direction, .. }) => match metric.as_str() {
            "success" => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0), (Replan, 2.0, 2.0)],
            "duration_s" => &[(Backoff, 9.0, 1.0), (Replan, 3.0, 2.0)],
            "tokens_in" | "tokens_out" | "cost_usd" if *direction == Direction::Up => {
                &[(RefreshContext, 9.0, 1.0), (Replan, 2.0, 2.0)]
            }
            _ => &[(Reflect, 9.0, 1.0), (Verify, 3.0, 2.0)],
        },
        _ => &[],
    }
}

fn is_throttling(kind: &str, template: &str) -> bool {
    let text = format!("{kind} {template}").to_ascii_lowercase();
    ["rate limit", "ratelimit", "too many requests", "429", "throttl", "quota", "overloaded"]
        .iter()
        .any(|w| text.contains(w))
}
