//! The newest signals the engine raised, kept in a bounded ring for read-back (the live page's
//! "recent signals", `Ace::recent_signals`). Signals are not stored: an intervention, which is,
//! carries the signals behind it; this ring also shows the signals that led to none.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Ace;
use crate::error::{Error, Result};
use crate::signal::Signal;

/// How many signals the engine keeps for [`Ace::recent_signals`] (the oldest go first).
pub const RECENT_SIGNALS: usize = 1000;

/// A bounded ring of the newest signals. Signals are rare next to records, so one lock is
/// cheap; a `std` lock, which a fork leaves usable (see `crate::persist::fork`).
pub(crate) struct RecentSignals {
    ring: Mutex<VecDeque<Signal>>,
}

impl RecentSignals {
    pub(crate) fn new() -> Self {
        Self { ring: Mutex::new(VecDeque::with_capacity(64)) }
    }

    fn push(&self, signals: &[Signal]) {
        if signals.is_empty() {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in signals {
            if ring.len() == RECENT_SIGNALS {
                ring.pop_front();
            }
            ring.push_back(s.clone());
        }
    }

    fn newest(&self, agent: Option<&str>, limit: usize) -> Vec<Signal> {
        let ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.iter().rev().filter(|s| agent.is_none_or(|a| &*s.agent == a)).take(limit).cloned().collect()
    }
}

impl Ace {
    /// Counts the signals of a call and keeps them for read-back (a scoring-only engine only
    /// counts them).
    pub(super) fn saw(&self, signals: &[Signal]) {
        let shared = self.shared();
        shared.metrics.count_signals(signals);
        if !shared.scoring_only {
            shared.recent.push(signals);
        }
    }

    /// The newest signals the engine raised (newest first), of `agent` if given, at most `limit`
    /// (0: all that are kept, up to [`RECENT_SIGNALS`]). Held in memory, not in the store: a
    /// restart starts with none, and each process has its own.
    pub fn recent_signals(&self, agent: Option<&str>, limit: usize) -> Result<Vec<Signal>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let limit = if limit == 0 { RECENT_SIGNALS } else { limit };
        Ok(self.shared().recent.newest(agent, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_signals_come_back_newest_first_bounded_and_filtered() {
        let ace = Ace::builder().build().unwrap();
        // A breaker rejection is a signal on every call: an easy way to raise many.
        let breaker = ace.breaker("dep").unwrap();
        breaker.force_open();
        for i in 0..(RECENT_SIGNALS + 5) {
            let agent = if i % 2 == 0 { "even" } else { "odd" };
            assert!(ace.acquire(agent, &format!("t{i}"), &breaker).is_err());
        }
        let all = ace.recent_signals(None, 0).unwrap();
        assert_eq!(all.len(), RECENT_SIGNALS, "bounded");
        assert_eq!(all[0].task.as_deref(), Some(&*format!("t{}", RECENT_SIGNALS + 4)), "newest first");
        let odd = ace.recent_signals(Some("odd"), 3).unwrap();
        assert_eq!(odd.len(), 3);
        assert!(odd.iter().all(|s| &*s.agent == "odd"));
        ace.close().unwrap();
        assert_eq!(ace.recent_signals(None, 1).unwrap_err().code(), "closed");
    }
}
