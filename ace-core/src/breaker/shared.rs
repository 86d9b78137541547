//! What a breaker shares with the breakers of the same name in other processes, and how it takes
//! theirs. The exchange itself (the cache, how often) belongs to the fleet; this is the
//! breaker's side of it:
//!
//! - its last *move* into open or closed (by its own verdict, by hand, or taken from a peer),
//!   with when it happened and, for an opening, until when. Across the fleet the latest move
//!   wins ([`CircuitBreaker::adopt`]): a peer's opening opens a closed or half-open breaker here
//!   until the same time, and a peer's closing (its trial calls succeeded, or a hand closed it)
//!   closes an open or half-open one. States set by hand and never left on their own (disabled,
//!   forced open, metrics only) are this process's choice: they are neither shared nor replaced.
//! - what its window holds while closed (calls, failures, slow calls; a consecutive-failures
//!   breaker its run of failures). The fleet adds the windows up and a closed breaker opens when
//!   the sum trips it ([`CircuitBreaker::judge_fleet`]), so five replicas that each saw two
//!   failures open a breaker that trips at five, as one process would.
//! - whether its open wait is nearly over, so that one replica of the fleet runs the trial calls
//!   while the others stay open until its verdict ([`CircuitBreaker::hold_open`]).

use std::sync::atomic::Ordering;

use super::window::Tally;
use super::{CircuitBreaker, State, Window};
use crate::clock::Timestamp;

/// Why a breaker opened because another process's did.
pub(crate) const FROM_PEER: &str = "opened by another process";
/// Why a breaker closed because another process's did.
pub(crate) const CLOSED_BY_PEER: &str = "closed by another process";
/// Why a breaker opened because the fleet's windows, added up, trip it.
const OPENED_BY_FLEET: &str = "the fleet's calls, added up, reached the threshold";

/// A move into open or closed, as shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    /// Into open (else closed).
    pub open: bool,
    /// When (engine-clock micros; 0: the breaker never moved).
    pub at: i64,
    /// Open until (engine-clock micros; 0 for a closing).
    pub until: i64,
}

impl Move {
    pub(crate) const NEVER: Move = Move { open: false, at: 0, until: 0 };
}

/// A breaker's part of the fleet's picture: its last move and what its window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shared {
    pub moved: Move,
    /// Calls in the window (closed only; 0 otherwise).
    pub calls: u32,
    /// Failures in the window, or the run of failures of a consecutive-failures breaker.
    pub failures: u32,
    /// Slow calls in the window.
    pub slow: u32,
}

impl Shared {
    /// The form posted to the cache: `o|at|until|calls|failures|slow` (`c` for a closing).
    pub(crate) fn encode(&self) -> String {
        let m = self.moved;
        format!(
            "{}|{}|{}|{}|{}|{}",
            if m.open { 'o' } else { 'c' },
            m.at,
            m.until,
            self.calls,
            self.failures,
            self.slow
        )
    }

    /// Parses [`Shared::encode`]'s form; `None` when malformed (a peer of another version).
    pub(crate) fn parse(s: &str) -> Option<Shared> {
        let mut parts = s.split('|');
        let open = match parts.next()? {
            "o" => true,
            "c" => false,
            _ => return None,
        };
        let mut num = || parts.next()?.parse::<i64>().ok();
        let (at, until) = (num()?, num()?);
        let mut count = || u32::try_from(num()?).ok();
        let (calls, failures, slow) = (count()?, count()?, count()?);
        if parts.next().is_some() || at < 0 || until < 0 {
            return None;
        }
        Some(Shared { moved: Move { open, at, until }, calls, failures, slow })
    }
}

impl CircuitBreaker {
    /// What this breaker shares now (its window only while closed).
    pub(crate) fn shared(&self) -> Shared {
        let word = self.word.load(Ordering::Acquire);
        let j = self.judged.lock();
        let mut out = Shared { moved: j.moved, calls: 0, failures: 0, slow: 0 };
        if State::from_bits(word) == State::Closed {
            match self.cfg.window {
                Window::ConsecutiveFailures(_) => out.failures = self.consecutive.load(Ordering::Acquire),
                Window::Count(_) | Window::Time(_) => {
                    let t = j.outcomes.totals(self.clock.now().as_micros().div_euclid(1_000_000));
                    (out.calls, out.failures, out.slow) = (t.calls, t.failures, t.slow);
                }
            }
        }
        out
    }

    /// Takes a peer's move when it is later than this breaker's own last move: an opening opens
    /// a closed or half-open breaker until the same time (unless that time has passed), a
    /// closing closes an open or half-open one. The move is remembered as this breaker's own, so
    /// the fleet agrees on the latest. Returns whether the state changed.
    pub(crate) fn adopt(&self, peer: Move) -> bool {
        let now = self.clock.now();
        let (previous, to) = {
            let mut j = self.judged.lock();
            if peer.at <= j.moved.at {
                return false;
            }
            let current = self.word.load(Ordering::Acquire);
            let previous = State::from_bits(current);
            let to = match (peer.open, previous) {
                (true, State::Closed | State::HalfOpen) if peer.until > now.as_micros() => State::Open,
                (false, State::Open | State::HalfOpen) => State::Closed,
                (_, State::Disabled | State::ForcedOpen | State::MetricsOnly) => return false,
                _ => {
                    // Already where the peer is (or its opening is over): agree on the move.
                    j.moved = peer;
                    return false;
                }
            };
            let until = peer.open.then(|| Timestamp::from_micros(peer.until));
            self.enter(&mut j, current, to, now, until);
            j.moved = peer;
            (previous, to)
        };
        let why = if to == State::Open { FROM_PEER } else { CLOSED_BY_PEER };
        self.events.emit_transition(&self.name, previous, to, why, now);
        true
    }

    /// Opens a closed breaker when the fleet's windows added up (`total`, this breaker's own
    /// included) trip it. Returns whether it opened.
    pub(crate) fn judge_fleet(&self, total: Shared) -> bool {
        let word = self.word.load(Ordering::Acquire);
        if State::from_bits(word) != State::Closed {
            return false;
        }
        let trips = match self.cfg.window {
            Window::ConsecutiveFailures(n) => total.failures >= n,
            Window::Count(_) | Window::Time(_) => {
                let t = Tally { calls: total.calls, failures: total.failures, slow: total.slow, ..Tally::default() };
                let (f, s) = self.exceeds(t);
                t.calls >= self.cfg.effective_minimum() && (f || s)
            }
        };
        trips && self.move_to(word, State::Open, OPENED_BY_FLEET)
    }

    /// Microseconds until an open breaker lets a trial through (negative: the wait is over but
    /// no call came yet); `None` when it is not open.
    pub(crate) fn open_left(&self) -> Option<i64> {
        let word = self.word.load(Ordering::Acquire);
        (State::from_bits(word) == State::Open)
            .then(|| self.open_until.load(Ordering::Acquire) - self.clock.now().as_micros())
    }

    /// Keeps an open breaker open until at least `until` (another replica runs the trial calls).
    /// No transition: it is still the same opening. Returns whether the wait grew.
    pub(crate) fn hold_open(&self, until: Timestamp) -> bool {
        let _j = self.judged.lock();
        if State::from_bits(self.word.load(Ordering::Acquire)) != State::Open {
            return false;
        }
        self.open_until.fetch_max(until.as_micros(), Ordering::AcqRel) < until.as_micros()
    }

    /// Whether this breaker is in its half-open trial.
    pub(crate) fn in_trial(&self) -> bool {
        State::from_bits(self.word.load(Ordering::Acquire)) == State::HalfOpen
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::breaker::BreakerConfig;
    use crate::clock::{Clock, ManualClock};

    fn breaker(cfg: BreakerConfig) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_micros(1_000_000_000));
        (CircuitBreaker::new("llm", cfg, Arc::new(clock.clone())).unwrap(), clock)
    }

    fn fail(b: &CircuitBreaker, n: usize) {
        for _ in 0..n {
            b.try_acquire().unwrap().failure();
        }
    }

    #[test]
    fn the_latest_move_wins_an_older_one_changes_nothing() {
        let (b, clock) = breaker(BreakerConfig::default());
        let now = clock.now().as_micros();
        assert_eq!(b.shared().moved, Move::NEVER, "a new breaker never moved");
        let opening = Move { open: true, at: now - 5, until: now + 30_000_000 };
        assert!(b.adopt(opening));
        assert_eq!(b.state(), State::Open);
        let rejected = b.try_acquire().unwrap_err();
        assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)), "open until the peer's time");
        assert_eq!(b.shared().moved, opening, "taken as its own, so the fleet agrees on it");
        assert!(!b.adopt(Move { open: false, at: now - 10, until: 0 }), "an older closing");
        assert_eq!(b.state(), State::Open);
        assert!(b.adopt(Move { open: false, at: now - 1, until: 0 }), "a later closing");
        assert_eq!(b.state(), State::Closed);
        assert!(!b.adopt(Move { open: true, at: now, until: now - 1 }), "an opening already over");
        assert_eq!(b.state(), State::Closed);
        clock.advance(Duration::from_secs(1));
        b.open_for(Duration::from_secs(10));
        let mine = b.shared().moved;
        assert_eq!((mine.open, mine.at), (true, clock.now().as_micros()), "a hand's opening is shared");
        assert!(!b.adopt(Move { open: false, at: mine.at - 1, until: 0 }), "older than the hand's");
    }

    #[test]
    fn states_set_by_hand_are_neither_shared_nor_replaced() {
        let (b, clock) = breaker(BreakerConfig::default());
        let now = clock.now().as_micros();
        b.disable();
        assert!(!b.adopt(Move { open: true, at: now, until: now + 1_000_000 }));
        assert_eq!(b.state(), State::Disabled);
        b.force_open();
        assert!(!b.adopt(Move { open: false, at: now + 1, until: 0 }));
        assert_eq!(b.state(), State::ForcedOpen);
        assert_eq!(b.shared().moved, Move::NEVER, "disable and force_open are not moves the fleet takes");
    }

    #[test]
    fn the_fleets_windows_added_up_open_a_closed_breaker() {
        let cfg = BreakerConfig::builder()
            .window(Window::Count(20))
            .failure_rate_threshold(50.0)
            .minimum_calls(10)
            .build()
            .unwrap();
        let (b, _) = breaker(cfg);
        fail(&b, 4);
        let mine = b.shared();
        assert_eq!((mine.calls, mine.failures), (4, 4), "four calls: below the minimum here");
        assert_eq!(b.state(), State::Closed);
        let below = Shared { calls: 9, failures: 9, ..mine };
        assert!(!b.judge_fleet(below), "nine calls fleet-wide: still below the minimum");
        let healthy = Shared { calls: 20, failures: 9, ..mine };
        assert!(!b.judge_fleet(healthy), "45% failures: under the threshold");
        assert!(b.judge_fleet(Shared { calls: 12, failures: 10, ..mine }));
        assert_eq!(b.state(), State::Open);
        let open = b.shared();
        assert_eq!((open.moved.open, open.calls, open.failures), (true, 0, 0), "an open breaker shares no window");
        assert!(!b.judge_fleet(Shared { calls: 12, failures: 12, ..mine }), "already open");
    }

    #[test]
    fn a_run_of_failures_counts_across_the_fleet() {
        let (b, _) = breaker(BreakerConfig::default());
        fail(&b, 2);
        assert_eq!(b.shared().failures, 2, "the run so far");
        assert!(!b.judge_fleet(Shared { failures: 4, ..b.shared() }));
        assert!(b.judge_fleet(Shared { failures: 5, ..b.shared() }), "five in a row, across replicas");
    }

    #[test]
    fn a_breaker_held_open_waits_for_the_trial_elsewhere() {
        let cfg = BreakerConfig::builder().wait_in_open(Duration::from_secs(10)).build().unwrap();
        let (b, clock) = breaker(cfg);
        assert_eq!(b.open_left(), None);
        assert!(!b.hold_open(clock.now().plus(Duration::from_secs(100))), "a closed breaker is not held");
        fail(&b, 5);
        assert_eq!(b.open_left(), Some(10_000_000));
        clock.advance(Duration::from_secs(9));
        assert!(b.hold_open(clock.now().plus(Duration::from_secs(2))));
        assert!(!b.hold_open(clock.now().plus(Duration::from_secs(1))), "never shortened");
        clock.advance(Duration::from_millis(1_500));
        assert!(b.try_acquire().is_err(), "still open past its own wait");
        assert!(!b.in_trial());
        clock.advance(Duration::from_secs(1));
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), State::Closed, "the trial went through once the hold ended");
    }

    #[test]
    fn the_shared_form_reads_back_and_refuses_anything_else() {
        let s = Shared { moved: Move { open: true, at: 12, until: 34 }, calls: 5, failures: 3, slow: 1 };
        assert_eq!(s.encode(), "o|12|34|5|3|1");
        assert_eq!(Shared::parse(&s.encode()), Some(s));
        let c = Shared { moved: Move { open: false, at: 7, until: 0 }, calls: 0, failures: 0, slow: 0 };
        assert_eq!(Shared::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "x|1|2|3|4|5",
            "o|1|2|3|4",
            "o|1|2|3|4|5|6",
            "o|-1|2|3|4|5",
            "o|1|2|-3|4|5",
            "o|a|2|3|4|5",
            "1700000000000000",
        ] {
            assert_eq!(Shared::parse(bad), None, "{bad:?}");
        }
    }
}
