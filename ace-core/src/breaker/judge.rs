//! The verdict side of a breaker: what a finished call's outcome does to the counts and, through
//! the window (when closed) or the trial calls (when half-open), to the state.

use std::sync::atomic::Ordering;

use super::state::generation;
use super::window::Tally;
use super::{CircuitBreaker, Outcome, State, TrialVerdict, Window};
use crate::clock::Timestamp;

impl CircuitBreaker {
    /// Whether [`CircuitBreaker::record_successes`] can stand for completed permits: a closed
    /// breaker whose window is consecutive failures, timing no slow calls. There a success only
    /// counts and resets the run of failures, so successes may be handed over in batches, as
    /// long as each batch comes before the next failure.
    #[must_use]
    pub fn takes_batched_successes(&self) -> bool {
        self.state() == State::Closed
            && matches!(self.cfg.window, Window::ConsecutiveFailures(_))
            && self.cfg.slow_call_duration.is_none()
    }

    /// Records `n` successful calls made without permits while
    /// [`CircuitBreaker::takes_batched_successes`] held, for a binding that counts them on its
    /// side of a costly boundary. They are counted; in a closed breaker they end the run of
    /// failures, as `n` completed permits would.
    pub fn record_successes(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.counters.successes.fetch_add(n, Ordering::Relaxed);
        if self.state() == State::Closed && self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Records a finished call; true when this call opened the breaker.
    #[inline]
    pub(super) fn complete(&self, word: u64, started: Option<Timestamp>, outcome: Outcome) -> bool {
        // A permit carries its start only when the breaker times calls (`slow_call_duration`).
        let took = started.map(|t| self.clock.now().since(t));
        let slow = match (took, self.cfg.slow_call_duration) {
            (Some(took), Some(limit)) => took > limit,
            _ => false,
        };
        let micros = took.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let c = &self.counters;
        match outcome {
            Outcome::Success => c.successes.fetch_add(1, Ordering::Relaxed),
            Outcome::Failure => c.failures.fetch_add(1, Ordering::Relaxed),
            Outcome::Ignored => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
                self.events.emit_ignored(&self.name);
                self.give_back(word);
                return false;
            }
        };
        if slow {
            c.slow.fetch_add(1, Ordering::Relaxed);
        }
        let state = State::from_bits(word);
        if state == State::Disabled {
            return false;
        }
        let failed = outcome == Outcome::Failure;
        // Judged only within the episode the permit came from.
        let now_word = self.word.load(Ordering::Acquire);
        if generation(now_word) != generation(word) {
            return false;
        }
        match (state, self.cfg.window) {
            (State::Closed, Window::ConsecutiveFailures(n)) => {
                if failed || slow {
                    if self.consecutive.fetch_add(1, Ordering::AcqRel) + 1 >= n {
                        return self.move_to(word, State::Open, "failures in a row reached the threshold");
                    }
                } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                false
            }
            (State::Closed | State::MetricsOnly, _) => self.judge_window(word, failed, slow, micros),
            (State::HalfOpen, _) => self.judge_trial(word, failed, slow, micros),
            _ => false,
        }
    }

    fn judge_window(&self, word: u64, failed: bool, slow: bool, micros: u64) -> bool {
        // Only a time window needs the clock.
        let second = match self.cfg.window {
            Window::Time(_) => self.clock.now().as_micros().div_euclid(1_000_000),
            _ => 0,
        };
        let exceeded = {
            let mut j = self.judged.lock();
            let tally = j.outcomes.push(second, failed, slow, micros);
            if tally.calls < self.cfg.effective_minimum() || j.exceeded {
                return false;
            }
            let (f, s) = self.exceeds(tally);
            if !(f || s) {
                return false;
            }
            // Published once per episode: a closed breaker opens now, a metrics-only one carries on.
            j.exceeded = true;
            let (failure, slow) = tally.rates();
            (f.then_some(failure), s.then_some(slow))
        };
        let now = self.clock.now();
        self.events.emit_rate_exceeded(&self.name, exceeded.0, exceeded.1, now);
        State::from_bits(word) == State::Closed
            && self.move_to(word, State::Open, "the failure or slow-call rate reached its threshold")
    }

    /// Whether the failure rate and the slow-call rate of `t` trip the breaker.
    pub(super) fn exceeds(&self, t: Tally) -> (bool, bool) {
        let (failure, slow) = t.rates();
        let rule = self.cfg.threshold;
        (rule.trips(failure, self.cfg.failure_rate_threshold), rule.trips(slow, self.cfg.slow_call_rate_threshold))
    }

    fn judge_trial(&self, word: u64, failed: bool, slow: bool, micros: u64) -> bool {
        let verdict = {
            let mut j = self.judged.lock();
            j.trial.add(failed, slow, micros);
            let permits = self.cfg.half_open_permits;
            let lost = |t: Tally| match self.cfg.window {
                Window::ConsecutiveFailures(_) => t.failures > 0 || t.slow > 0,
                _ => {
                    let (f, s) = self.exceeds(t);
                    f || s
                }
            };
            if j.trial.calls >= permits {
                Some(lost(j.trial))
            } else if self.cfg.trial_verdict == TrialVerdict::AtOnce {
                // The best the trial can still do: every call left succeeds, none slow.
                lost(Tally { calls: permits, ..j.trial }).then_some(true)
            } else {
                None
            }
        };
        match verdict {
            Some(true) => self.move_to(word, State::Open, "trial calls failed"),
            Some(false) => {
                self.move_to(word, State::Closed, "trial calls succeeded");
                false
            }
            None => false,
        }
    }
}
