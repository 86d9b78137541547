//! The rules: which strategies answer which signal, each with its prior.

use std::cell::RefCell;

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

/// Words (lower case) that mark an error as throttling, in its kind or template.
const THROTTLING: [&str; 7] = ["rate limit", "ratelimit", "too many requests", "429", "throttl", "quota", "overloaded"];

thread_local! {
    /// The last kind and template asked about, and the answer: a decision asks about each of
    /// its signals up to three times, and the signals of one error pattern come again and again.
    /// (Empty at first, which is the right answer for an empty kind and template: no.)
    static LAST: RefCell<(String, String, bool)> = const { RefCell::new((String::new(), String::new(), false)) };
}

/// Whether "`kind` `template`", ASCII letters in any case, contains a [`THROTTLING`] word:
/// computed when either differs from the last call's, else the last answer.
fn is_throttling(kind: &str, template: &str) -> bool {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != kind || last.1 != template {
            let text = format!("{kind} {template}").to_ascii_lowercase();
            let found = THROTTLING.iter().any(|w| text.contains(w));
            last.0.clear();
            last.0.push_str(kind);
            last.1.clear();
            last.1.push_str(template);
            last.2 = found;
        }
        last.2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_found_in_the_lower_cased_text_and_remembered_for_the_same_text_only() {
        let plain = |kind: &str, template: &str| {
            let text = format!("{kind} {template}").to_ascii_lowercase();
            THROTTLING.iter().any(|w| text.contains(w))
        };
        let cases = [
            ("RateLimitError", "slow down"),
            ("Rate", "limit reached"),
            ("E", "HTTP 429 <*>"),
            ("E", "http 42 9"),
            ("ToolError", "Too Many Requests for <*>"),
            ("E", "too many request"),
            ("É", "THROTTLED café"),
            ("E", "quot"),
            ("E", "server overloaded"),
            ("E", "overload"),
            ("", ""),
            ("NameError", "name <*> is not defined"),
        ];
        // Each case after each other (the remembered answer must not leak into the next).
        for (a, b) in cases.iter().flat_map(|a| cases.iter().map(move |b| (a, b))) {
            for &(kind, template) in [a, b, b] {
                assert_eq!(is_throttling(kind, template), plain(kind, template), "{kind:?} {template:?}");
            }
        }
        // The first call of a thread meets the initial memory: right for the empty text too.
        assert!(!std::thread::spawn(|| is_throttling("", "")).join().unwrap());
        assert!(std::thread::spawn(|| is_throttling("E", "quota")).join().unwrap());
    }
}
