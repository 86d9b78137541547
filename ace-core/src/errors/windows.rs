//! The sliding windows of the error organ: per (task, pattern) and per (agent, pattern), each
//! keeping the latest occurrence times, with the bounds that keep a scope's patterns and a
//! fleet's tasks within memory.

use std::sync::Arc;
use std::time::Duration;

use hashbrown::{HashMap, HashTable};
use prometheus_client::metrics::counter::Counter;
use smallvec::SmallVec;

use super::MAX_PATTERNS_PER_SCOPE;
use crate::clock::Timestamp;
use crate::event::Severity;

#[derive(Default)]
pub(super) struct Window {
    /// The occurrence times within the window, at most the cap (64), as a ring: oldest first
    /// from `head`, which moves only once the ring is full. Most windows (a task's) see one or
    /// two errors: those are held inline, with no allocation.
    times: SmallVec<[Timestamp; 2]>,
    head: u8,
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
        if self.times.get(usize::from(self.head)).is_some_and(|&t| t < horizon) {
            // Times have left the window: in order again, then the expired go.
            self.times.rotate_left(usize::from(self.head));
            self.head = 0;
            let expired = self.times.iter().take_while(|&&t| t < horizon).count();
            self.times.drain(..expired);
        }
        if self.times.is_empty() {
            self.max_severity = None;
        }
        if self.times.len() < cap {
            if self.times.len() == self.times.capacity() {
                // Past its first two, a window soon holds its cap (at most 64 times): one
                // allocation, not one per doubling.
                self.times.reserve_exact(cap - self.times.len());
            }
            self.times.push(now);
        } else {
            // Full: the newest takes the oldest's place.
            let cap = self.times.len();
            self.times[usize::from(self.head)] = now;
            self.head = ((usize::from(self.head) + 1) % cap) as u8;
        }
        self.last = now;
        self.times.len()
    }

    /// The times within the window, oldest first.
    #[cfg(test)]
    fn in_order(&self) -> Vec<Timestamp> {
        let (newer, older) = self.times.split_at(usize::from(self.head));
        older.iter().chain(newer).copied().collect()
    }
}

/// A task's windows, by pattern: a task has one or two patterns, so a short list (the first
/// held inline) costs far less than a hash map.
#[derive(Default)]
pub(super) struct Windows(pub(super) SmallVec<[(u64, Window); 1]>);

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
    /// The stages with errors and the last error in each (most tasks: one, held inline).
    pub(super) stages: SmallVec<[(Arc<str>, Timestamp); 1]>,
    /// `ace_errors_total` handles used by this task, by stage and severity (most tasks: one).
    pub(super) counters: SmallVec<[(Arc<str>, Severity, Counter); 1]>,
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
            stages: SmallVec::new(),
            counters: SmallVec::new(),
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
    /// The stage names of the shard's tasks, one copy each (up to [`MAX_SHARED_STAGES`]): a
    /// task's stages are a few of the application's, not a copy each.
    pub(super) stage_names: StageNames,
    pub(super) ops: u64,
    pub(super) signals: u64,
}

/// Stage names a shard keeps one copy of; past them a task's stage is its own copy.
const MAX_SHARED_STAGES: usize = 64;

/// Stage names, one copy each (up to [`MAX_SHARED_STAGES`]).
#[derive(Default)]
pub(super) struct StageNames(Vec<Arc<str>>);

impl StageNames {
    /// The shared copy of a stage name (a new one past the cap).
    pub(super) fn get(&mut self, stage: &str) -> Arc<str> {
        if let Some(s) = self.0.iter().find(|s| &***s == stage) {
            return s.clone();
        }
        let name: Arc<str> = Arc::from(stage);
        if self.0.len() < MAX_SHARED_STAGES {
            self.0.push(name.clone());
        }
        name
    }
}

#[derive(Default)]
pub(super) struct AgentShard {
    pub(super) agents: HashTable<AgentState>,
    pub(super) ops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn a_window_keeps_the_latest_times_within_it_up_to_its_cap() {
        let mut w = Window::default();
        let window = Duration::from_secs(10);
        assert_eq!(w.push(at(0), window, 4), 1);
        assert_eq!(w.push(at(1), window, 4), 2);
        assert!(!w.times.spilled(), "a window of one or two errors allocates nothing");
        for s in 2..8 {
            w.push(at(s), window, 4);
        }
        assert_eq!(w.in_order(), [at(4), at(5), at(6), at(7)], "the cap keeps the latest");
        assert_eq!(w.push(at(16), window, 4), 3, "4 s and 5 s have left the window");
        assert_eq!(w.in_order(), [at(6), at(7), at(16)]);
        assert_eq!(w.push(at(16), window, 4), 4);
        assert_eq!(w.push(at(16), window, 4), 4);
        assert_eq!(w.in_order(), [at(7), at(16), at(16), at(16)], "the ring turns past its cap");
        assert_eq!(w.push(at(18), window, 4), 4, "7 s has left, from the middle of the ring");
        assert_eq!(w.in_order(), [at(16), at(16), at(16), at(18)]);
        w.max_severity = Some(Severity::High);
        assert_eq!(w.push(at(40), window, 4), 1, "all of them have");
        assert_eq!(w.max_severity, None, "an emptied window forgets its severity");
    }

    #[test]
    fn a_shard_keeps_one_copy_of_each_stage_name_up_to_its_cap() {
        let mut names = StageNames::default();
        let a = names.get("planning");
        assert!(Arc::ptr_eq(&a, &names.get("planning")));
        for i in 0..MAX_SHARED_STAGES {
            names.get(&format!("stage-{i}"));
        }
        let past = names.get("late");
        assert_eq!(&*past, "late");
        assert!(!Arc::ptr_eq(&past, &names.get("late")), "past the cap a name is its own copy");
    }
}
