//! The sliding windows of the error organ: per (task, pattern) and per (agent, pattern), each
//! keeping the latest occurrence times, with the bounds that keep a scope's patterns and a
//! fleet's tasks within memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{HashMap, HashTable};
use prometheus_client::metrics::counter::Counter;

use super::MAX_PATTERNS_PER_SCOPE;
use crate::clock::Timestamp;
use crate::event::Severity;

#[derive(Default)]
pub(super) struct Window {
    pub(super) times: VecDeque<Timestamp>,
    /// The highest severity of the occurrences in the window.
    pub(super) max_severity: Option<Severity>,
    pub(super) accumulation_at: Option<Timestamp>,
    pub(super) critical_at: Option<Timestamp>,
    pub(super) last: Timestamp,
}

impl Window {
    /// Counts an occurrence at `now`; returns the occurrences within the window.
    pub(super) fn push(&mut self, now: Timestamp, window: Duration, cap: usize) -> usize {
        let horizon = now.minus(window);
        while self.times.front().is_some_and(|&t| t < horizon) {
            self.times.pop_front();
        }
        if self.times.is_empty() {
            self.max_severity = None;
        }
        if self.times.len() == cap {
            self.times.pop_front();
        } else if self.times.capacity() == 0 {
            // A window soon holds its cap (at most 64 times): one allocation, not one per doubling.
            self.times.reserve_exact(cap);
        }
        self.times.push_back(now);
        self.last = now;
        self.times.len()
    }
}

/// A task's windows, by pattern: a task has one or two patterns, so a short list, grown one
/// at a time, costs far less than a hash map.
#[derive(Default)]
pub(super) struct Windows(pub(super) Vec<(u64, Window)>);

impl Windows {
    pub(super) fn entry(&mut self, serial: u64) -> &mut Window {
        let i = match self.0.iter().position(|(s, _)| *s == serial) {
            Some(i) => i,
            None => {
                self.0.reserve_exact(1);
                self.0.push((serial, Window::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// Keeps at most [`MAX_PATTERNS_PER_SCOPE`] windows, dropping the idlest.
    pub(super) fn bound(&mut self) {
        if let Some(cut) = idlest_cut(self.0.iter().map(|(_, w)| w)) {
            self.0.retain(|(_, w)| w.last > cut);
        }
    }
}

pub(super) fn fired_within(at: Option<Timestamp>, now: Timestamp, window: Duration) -> bool {
    at.is_some_and(|t| t >= now.minus(window))
}

/// Keeps at most [`MAX_PATTERNS_PER_SCOPE`] windows, dropping the idlest.
pub(super) fn bound(patterns: &mut HashMap<u64, Window>) {
    if let Some(cut) = idlest_cut(patterns.values()) {
        patterns.retain(|_, w| w.last > cut);
    }
}

/// Past [`MAX_PATTERNS_PER_SCOPE`] windows, the last activity at or before which windows go so
/// that fewer than 3/4 of it stay; `None` while there are not that many.
pub(super) fn idlest_cut<'a>(windows: impl ExactSizeIterator<Item = &'a Window>) -> Option<Timestamp> {
    if windows.len() <= MAX_PATTERNS_PER_SCOPE {
        return None;
    }
    let mut lasts: Vec<Timestamp> = windows.map(|w| w.last).collect();
    let cut = lasts.len() - MAX_PATTERNS_PER_SCOPE * 3 / 4;
    Some(*lasts.select_nth_unstable(cut).1)
}

pub(super) struct TaskState {
    pub(super) hash: u64,
    pub(super) agent: Arc<str>,
    pub(super) task: Arc<str>,
    pub(super) patterns: Windows,
    pub(super) stages: Vec<(Arc<str>, Timestamp)>,
    /// `ace_errors_total` handles used by this task, by stage and severity.
    pub(super) counters: Vec<(Arc<str>, Severity, Counter)>,
    pub(super) cascade_at: Option<Timestamp>,
    /// A `task_error` signal was raised for this task.
    pub(super) flagged: bool,
    pub(super) last: Timestamp,
}

impl TaskState {
    pub(super) fn new(hash: u64, agent: Arc<str>, task: &str) -> Self {
        TaskState {
            hash,
            agent,
            task: Arc::from(task),
            patterns: Windows::default(),
            stages: Vec::new(),
            counters: Vec::new(),
            cascade_at: None,
            flagged: false,
            last: Timestamp::EPOCH,
        }
    }
}

pub(super) struct AgentState {
    pub(super) hash: u64,
    pub(super) agent: Arc<str>,
    pub(super) patterns: HashMap<u64, Window>,
    pub(super) last: Timestamp,
}

#[derive(Default)]
pub(super) struct TaskShard {
    /// Boxed: the table keeps a slot per 8/7 tasks or more, and a slot is then a pointer.
    pub(super) tasks: HashTable<Box<TaskState>>,
    pub(super) ops: u64,
    pub(super) signals: u64,
}

#[derive(Default)]
pub(super) struct AgentShard {
    pub(super) agents: HashTable<AgentState>,
    pub(super) ops: u64,
}
