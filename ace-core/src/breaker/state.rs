//! The state machine, in one place so that every move, judged or made by hand, goes through one
//! function (`enter`): the six states, the atomic word that holds the state with its generation
//! and the half-open permits left, and the moves between states.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::Move;
use super::window::Tally;
use super::{CircuitBreaker, Judged};
use crate::clock::Timestamp;

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Calls go through; outcomes are judged.
    Closed = 0,
    /// Calls are rejected until the wait is over.
    Open = 1,
    /// Trial calls go through; their results decide.
    HalfOpen = 2,
    /// Calls go through; nothing is judged or counted in the window.
    Disabled = 3,
    /// Calls are rejected until the state is changed by hand.
    ForcedOpen = 4,
    /// Calls go through and are counted; the breaker never trips.
    MetricsOnly = 5,
}

impl State {
    /// Every state.
    pub const ALL: [State; 6] =
        [State::Closed, State::Open, State::HalfOpen, State::Disabled, State::ForcedOpen, State::MetricsOnly];

    /// The snake_case name (`"half_open"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
            State::MetricsOnly => "metrics_only",
        }
    }

    pub(super) fn from_bits(bits: u64) -> State {
        match bits & 0xff {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::Disabled,
            4 => State::ForcedOpen,
            _ => State::MetricsOnly,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// The word: bits 0..8 the state, 8..32 the half-open permits left, 32..64 the generation.
pub(super) const PERMIT: u64 = 1 << 8;
const PERMITS_MASK: u64 = 0xff_ffff << 8;

pub(super) fn pack(state: State, permits: u32, generation: u64) -> u64 {
    state as u64 | (u64::from(permits) << 8) | (generation << 32)
}

pub(super) fn generation(word: u64) -> u64 {
    word >> 32
}

pub(super) fn permits(word: u64) -> u32 {
    ((word & PERMITS_MASK) >> 8) as u32
}

impl CircuitBreaker {
    /// Moves from the state of `from` (same generation) to `to`; false when another thread moved
    /// it first. Events go to subscribers after the move.
    pub(super) fn move_to(&self, from: u64, to: State, why: &'static str) -> bool {
        let now = self.clock.now();
        let previous = State::from_bits(from);
        {
            let mut j = self.judged.lock();
            let current = self.word.load(Ordering::Acquire);
            if generation(current) != generation(from) || State::from_bits(current) != previous {
                return false;
            }
            self.enter(&mut j, current, to, now, None);
        }
        self.events.emit_transition(&self.name, previous, to, why, now);
        true
    }

    /// Sets the state under the judged lock: side effects, then the word.
    pub(super) fn enter(&self, j: &mut Judged, current: u64, to: State, now: Timestamp, open_until: Option<Timestamp>) {
        // resilience4j's metrics start again with every state, the not-permitted count included.
        let c = &self.counters;
        c.not_permitted_base.store(c.not_permitted.load(Ordering::Relaxed), Ordering::Relaxed);
        j.exceeded = false;
        match to {
            State::Open => {
                j.attempts = j.attempts.saturating_add(1);
                let until = open_until.unwrap_or_else(|| now.plus(self.cfg.wait(j.attempts)));
                self.open_until.store(until.as_micros(), Ordering::Release);
                j.moved = Move { open: true, at: now.as_micros(), until: until.as_micros() };
            }
            State::HalfOpen => {
                j.trial = Tally::default();
                self.half_open_since.store(now.as_micros(), Ordering::Release);
            }
            State::Closed => {
                j.moved = Move { open: false, at: now.as_micros(), until: 0 };
                j.outcomes.clear();
                j.attempts = 0;
                self.consecutive.store(0, Ordering::Release);
            }
            State::MetricsOnly => j.outcomes.clear(),
            State::Disabled | State::ForcedOpen => {}
        }
        let permits = if to == State::HalfOpen { self.cfg.half_open_permits } else { 0 };
        // Concurrent permit takers only CAS against the old word; a new generation defeats them.
        let next = pack(to, permits, generation(current).wrapping_add(1) & (u64::MAX >> 32));
        let mut seen = current;
        while let Err(now_word) = self.word.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire) {
            seen = now_word;
        }
        if State::from_bits(seen) == State::HalfOpen {
            self.wake_waiters();
        }
    }

    /// Moves to `to` by hand. A move to the state it is already in starts that state again
    /// (a fresh window, a new open wait) but publishes no transition, as resilience4j's internal
    /// transitions.
    fn force(&self, to: State, open_until: Option<Timestamp>, why: &'static str) {
        let now = self.clock.now();
        let previous = {
            let mut j = self.judged.lock();
            let current = self.word.load(Ordering::Acquire);
            self.enter(&mut j, current, to, now, open_until);
            State::from_bits(current)
        };
        if previous != to {
            self.events.emit_transition(&self.name, previous, to, why, now);
        }
    }

    /// Opens the breaker for `d` (then a trial, as after any opening).
    pub fn open_for(&self, d: Duration) {
        let until = self.clock.now().plus(d);
        self.force(State::Open, Some(until), "opened by hand");
    }

    /// Opens the breaker until `until` on the engine clock.
    pub fn open_until(&self, until: Timestamp) {
        self.force(State::Open, Some(until), "opened by hand");
    }

    /// When an open breaker lets a trial through (engine clock), if it is open.
    pub(crate) fn open_until_time(&self) -> Option<Timestamp> {
        (self.state() == State::Open).then(|| Timestamp::from_micros(self.open_until.load(Ordering::Acquire)))
    }

    /// Moves to half-open now, whatever the wait left (resilience4j's
    /// `transitionToHalfOpenState`): the next `half_open_permits` calls are the trial.
    pub fn half_open(&self) {
        self.force(State::HalfOpen, None, "half-open by hand");
    }

    /// Closes the breaker (its window starts empty).
    pub fn close(&self) {
        self.force(State::Closed, None, "closed by hand");
    }

    /// Closes the breaker and forgets everything it judged (the backoff attempt too).
    /// Publishes a transition when it was not closed, then a reset event.
    pub fn reset(&self) {
        self.force(State::Closed, None, "reset");
        self.events.emit_reset(&self.name, self.clock.now());
    }

    /// Lets everything through and judges nothing until changed by hand.
    pub fn disable(&self) {
        self.force(State::Disabled, None, "disabled by hand");
    }

    /// Rejects everything until changed by hand.
    pub fn force_open(&self) {
        self.force(State::ForcedOpen, None, "forced open by hand");
    }

    /// Lets everything through and counts it, never tripping, until changed by hand.
    pub fn metrics_only(&self) {
        self.force(State::MetricsOnly, None, "metrics only by hand");
    }
}
