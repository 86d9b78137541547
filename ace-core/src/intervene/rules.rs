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

/// Words (lower case) that mark an error as throttling, in its kind or template.
const THROTTLING: [&[u8]; 7] =
    [b"rate limit", b"ratelimit", b"too many requests", b"429", b"throttl", b"quota", b"overloaded"];

/// Whether a byte (lower-cased) begins one of [`THROTTLING`], by byte value.
const STARTS: [bool; 256] = {
    let mut starts = [false; 256];
    let mut i = 0;
    while i < THROTTLING.len() {
        starts[THROTTLING[i][0] as usize] = true;
        i += 1;
    }
    starts
};

/// Whether "`kind` `template`", ASCII letters in any case, contains a [`THROTTLING`] word. Kept
/// cheap because every decision on an error asks it up to three times: the text is laid out in
/// a stack buffer (a heap one past 512 bytes) and a word is compared only where its first letter
/// stands.
fn is_throttling(kind: &str, template: &str) -> bool {
    let mut stack = [0u8; 512];
    let mut heap = Vec::new();
    let len = kind.len() + 1 + template.len();
    let text: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    text[..kind.len()].copy_from_slice(kind.as_bytes());
    text[kind.len()] = b' ';
    text[kind.len() + 1..].copy_from_slice(template.as_bytes());
    let text = &*text;
    (0..len).any(|i| {
        STARTS[usize::from(text[i].to_ascii_lowercase())]
            && THROTTLING.iter().any(|w| text[i..].get(..w.len()).is_some_and(|t| t.eq_ignore_ascii_case(w)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_found_as_a_lower_cased_search_finds_it() {
        let plain = |kind: &str, template: &str| {
            let text = format!("{kind} {template}").to_ascii_lowercase();
            THROTTLING.iter().any(|w| text.contains(std::str::from_utf8(w).unwrap()))
        };
        let long = format!("{} Quota", "x".repeat(600));
        for (kind, template) in [
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
            ("E", long.as_str()),
            ("E", &long[..600]),
        ] {
            assert_eq!(is_throttling(kind, template), plain(kind, template), "{kind:?} {template:?}");
        }
    }
}
