//! A task's recent tool calls, and what their sequence says.
//!
//! Three signals, each at most once per task, counted over the task's last [`WINDOW`] tool
//! records (a record is one `record_tool` call, or one `stage` event of a trace with a `tool`):
//!
//! - *tool_repeat*: the same tool with the same arguments digest `ACE_TOOL_REPEAT` times;
//! - *tool_alternation*: the calls with a digest alternated between two calls (A B A B ...)
//!   for `ACE_TOOL_ALTERNATION` calls in a row;
//! - *tool_retry_failure*: one tool failed `ACE_TOOL_RETRY_FAILURES` times (so it was called
//!   again after failing, and failed again).
//!
//! Calls without a digest (arguments unknown) count for failures only: equal arguments cannot
//! be told apart from different ones.

use std::collections::VecDeque;
use std::sync::Arc;

use super::TrajectoryConfig;
use crate::tool::call_key;

/// Tool records of a task remembered.
pub(crate) const WINDOW: usize = 16;

const FIRED_REPEAT: u8 = 1;
const FIRED_ALTERNATION: u8 = 2;
const FIRED_RETRY: u8 = 4;

/// One tool record: 32-bit keys are plenty to tell apart the 16 calls of a window (two distinct
/// calls collide with a chance of one in 4 billion) and keep a task's window at 256 bytes.
#[derive(Clone, Copy)]
struct Call {
    /// The call's key (tool and digest), when it has a digest.
    key: Option<u32>,
    /// The tool's key.
    tool: u32,
    failed: bool,
}

/// A finding of [`ToolWindow::push`], for the track to make a signal of.
#[derive(Debug, PartialEq)]
pub(crate) enum ToolFinding {
    /// The call was made `count` times.
    Repeat { count: u32, threshold: u32 },
    /// The last `count` calls alternated between this call and `other`.
    Alternation { count: u32, threshold: u32, other: (Arc<str>, Arc<str>) },
    /// The tool failed `count` times.
    RetryFailure { count: u32, threshold: u32 },
}

/// The recent tool calls of one task.
#[derive(Default)]
pub(crate) struct ToolWindow {
    recent: VecDeque<Call>,
    /// The keys of the last two calls with a digest: the one before last, the last.
    keys: [Option<u32>; 2],
    /// The last call with a digest, by name (the other side of an alternation).
    last: Option<(Arc<str>, Arc<str>)>,
    /// Calls with a digest at the end of the sequence that alternate between two calls.
    alternation: u32,
    fired: u8,
}

impl ToolWindow {
    /// Counts one tool record; pushes what it makes due into `out`.
    pub(crate) fn push(
        &mut self,
        tool: &str,
        digest: Option<&str>,
        success: bool,
        cfg: &TrajectoryConfig,
        out: &mut Vec<ToolFinding>,
    ) {
        let tool_key = call_key(tool, None) as u32;
        let key = digest.map(|d| call_key(tool, Some(d)) as u32);
        if self.recent.capacity() == 0 {
            self.recent.reserve_exact(WINDOW);
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(Call { key, tool: tool_key, failed: !success });

        if let (Some(k), Some(d)) = (key, digest) {
            let threshold = cfg.tool_repeat;
            if threshold > 0 && self.fired & FIRED_REPEAT == 0 {
                let count = self.recent.iter().filter(|c| c.key == Some(k)).count() as u32;
                if count >= threshold {
                    self.fired |= FIRED_REPEAT;
                    out.push(ToolFinding::Repeat { count, threshold });
                }
            }
            self.alternation = match self.keys {
                [_, Some(last)] if last == k => 1,
                [Some(before), Some(_)] if before == k => self.alternation + 1,
                [_, Some(_)] => 2,
                _ => 1,
            };
            let threshold = cfg.tool_alternation;
            if threshold >= 4
                && self.alternation >= threshold
                && self.fired & FIRED_ALTERNATION == 0
                && let Some(other) = &self.last
            {
                self.fired |= FIRED_ALTERNATION;
                out.push(ToolFinding::Alternation { count: self.alternation, threshold, other: other.clone() });
            }
            self.keys = [self.keys[1], Some(k)];
            self.last = Some((Arc::from(tool), Arc::from(d)));
        }

        let threshold = cfg.tool_retry_failures;
        if !success && threshold > 0 && self.fired & FIRED_RETRY == 0 {
            let count = self.recent.iter().filter(|c| c.tool == tool_key && c.failed).count() as u32;
            if count >= threshold {
                self.fired |= FIRED_RETRY;
                out.push(ToolFinding::RetryFailure { count, threshold });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(repeat: u32, alternation: u32, retry: u32) -> TrajectoryConfig {
        TrajectoryConfig {
            tool_repeat: repeat,
            tool_alternation: alternation,
            tool_retry_failures: retry,
            ..TrajectoryConfig::default()
        }
    }

    fn feed(
        w: &mut ToolWindow,
        calls: &[(&str, Option<&str>, bool)],
        c: &TrajectoryConfig,
    ) -> Vec<(usize, ToolFinding)> {
        let mut found = Vec::new();
        for (i, &(tool, digest, success)) in calls.iter().enumerate() {
            let mut out = Vec::new();
            w.push(tool, digest, success, c, &mut out);
            found.extend(out.into_iter().map(|f| (i, f)));
        }
        found
    }

    #[test]
    fn a_call_repeated_fires_once_at_the_threshold() {
        let c = cfg(3, 0, 0);
        let mut w = ToolWindow::default();
        let calls = [
            ("search", Some("d1"), true),
            ("search", Some("d2"), true), // other arguments: not a repeat
            ("search", Some("d1"), true),
            ("book", Some("d1"), true), // other tool, same digest: not a repeat
            ("search", None, true),     // no digest: not counted
            ("search", Some("d1"), true),
            ("search", Some("d1"), true),
        ];
        assert_eq!(feed(&mut w, &calls, &c), [(5, ToolFinding::Repeat { count: 3, threshold: 3 })]);
    }

    #[test]
    fn repeats_are_counted_in_the_recent_window_only() {
        let c = cfg(2, 0, 0);
        let mut w = ToolWindow::default();
        let mut calls = vec![("a", Some("x"), true)];
        let digests: Vec<String> = (0..WINDOW).map(|i| format!("y{i}")).collect();
        calls.extend(digests.iter().map(|d| ("a", Some(d.as_str()), true)));
        calls.push(("a", Some("x"), true)); // the first call left the window
        assert!(feed(&mut w, &calls, &c).is_empty());
    }

    #[test]
    fn an_alternation_fires_with_the_other_call() {
        let c = cfg(0, 4, 0);
        let mut w = ToolWindow::default();
        let calls = [
            ("get", Some("a"), true),
            ("get", Some("a"), true), // A A: no alternation yet
            ("put", Some("b"), true), // A B
            ("other", None, false),   // no digest: skipped in the sequence
            ("get", Some("a"), true), // A B A
            ("put", Some("b"), true), // A B A B
            ("get", Some("a"), true),
        ];
        let found = feed(&mut w, &calls, &c);
        assert_eq!(found.len(), 1);
        let (i, ToolFinding::Alternation { count, threshold, other }) = &found[0] else { panic!("{found:?}") };
        assert_eq!((*i, *count, *threshold), (5, 4, 4));
        assert_eq!((&*other.0, &*other.1), ("get", "a"));
        // A B C B: broken.
        let mut w = ToolWindow::default();
        let calls = [("t", Some("a"), true), ("t", Some("b"), true), ("t", Some("c"), true), ("t", Some("b"), true)];
        assert!(feed(&mut w, &calls, &c).is_empty());
    }

    #[test]
    fn a_tool_failing_again_after_a_retry_fires() {
        let c = cfg(0, 0, 2);
        let mut w = ToolWindow::default();
        let calls = [
            ("book", Some("a"), true),
            ("book", None, false), // the result: failed
            ("search", None, false),
            ("book", Some("b"), true), // the retry
            ("book", None, false),     // failed again
            ("book", None, false),
        ];
        assert_eq!(feed(&mut w, &calls, &c), [(4, ToolFinding::RetryFailure { count: 2, threshold: 2 })]);
    }

    #[test]
    fn zero_turns_each_signal_off() {
        let c = cfg(0, 0, 0);
        let mut w = ToolWindow::default();
        let calls = [("a", Some("x"), false); 10];
        assert!(feed(&mut w, &calls, &c).is_empty());
    }
}
