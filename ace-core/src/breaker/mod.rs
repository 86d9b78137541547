//! Circuit breakers with resilience4j's state machine, at the cost of a function call.
//!
//! A breaker is *closed* (calls go through and their outcomes are judged), *open* (calls are
//! rejected until the wait is over), or *half-open* (exactly `half_open_permits` trial calls go
//! through; their results close it or open it again). Three more states never move on their
//! own: *disabled* (everything goes through, nothing is judged), *forced open* (everything is
//! rejected) and *metrics only* (everything goes through and is counted, nothing trips).
//!
//! The state, a generation and the half-open permits left share one atomic word: a call through
//! a closed breaker is a load to acquire and, in the default consecutive-failures mode, a load
//! (and a store after a failure streak) to complete; no lock is held while the guarded call
//! runs. The open → half-open move happens strictly after the wait, checked lazily by the next
//! acquire, and exactly one thread makes it (a compare-and-swap on the word); permits are taken
//! by compare-and-swap on the same word, so many threads never overshoot them. A call that
//! completes after the state changed (its generation is old) is counted but judges nothing.
//!
//! Windows ([`Window`]): consecutive failures (the default, 5, as the seeds' breaker), the last
//! N calls, or the last N seconds in one-second buckets; a rate is computed once the window holds
//! `minimum_calls`, and the breaker opens at a failure rate or slow-call rate at or above its
//! threshold (or above it, with [`Threshold::Exceeded`]; "slow" is strictly longer than
//! `slow_call_duration`). See [`BreakerConfig`].
//!
//! Where things live: the breaker ([`CircuitBreaker`]) and its figures here; `state.rs` the state
//! machine and its atomic word; `permit.rs` the acquire path, [`Permit`] and guarded calls;
//! `judge.rs` how outcomes are judged; `shared.rs` what a breaker shares with a fleet;
//! `rejected.rs` [`Rejected`] and [`CallError`]; `window.rs` the windows; `config.rs` the
//! configuration; `semantics.rs` the settings where peer libraries disagree; `wait.rs` waiting for
//! a half-open verdict; `limit.rs` the rate limiter and bulkhead; `retry.rs` [`Retry`]; `policy.rs`
//! timeout, fallback and [`Policy`], their composition; `registry.rs` the named breakers
//! ([`Breakers`]), their events and their metrics.

pub mod config;
mod judge;
pub mod limit;
mod permit;
pub mod policy;
mod registry;
mod rejected;
pub mod retry;
pub mod semantics;
mod shared;
mod state;
mod wait;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use config::{Backoff, BreakerConfig, BreakerConfigBuilder, ErrorClassifier, Outcome, Window};
pub use permit::{OwnedPermit, Permit};
pub use policy::{Policy, PolicyBuilder, PolicyError};
pub use registry::{BreakerEvent, BreakerSeries, Breakers, EventKind};
pub use rejected::{CallError, Rejected};
pub use retry::{Retry, RetryConfig, RetryCounts, Sleep, ThreadSleep};
pub use semantics::{HalfOpenBusy, Threshold, TrialVerdict, TrippingCall};
pub(crate) use shared::Shared;
pub use state::State;

use crate::clock::Clock;
use state::pack;
use window::{Outcomes, Tally};

/// Calls and outcomes since the breaker was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Successful calls.
    pub successes: u64,
    /// Failed calls.
    pub failures: u64,
    /// Calls whose error was ignored.
    pub ignored: u64,
    /// Calls slower than `slow_call_duration`.
    pub slow: u64,
    /// Calls not let through.
    pub not_permitted: u64,
}

/// A breaker's state and figures at one moment.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Its state.
    pub state: State,
    /// Counts since it was made (monotonic, as the Prometheus series).
    pub counts: Counts,
    /// Calls not let through since the last state transition (resilience4j's
    /// `numberOfNotPermittedCalls`, which every transition resets).
    pub not_permitted: u64,
    /// Failures in a row (consecutive-failures windows).
    pub consecutive_failures: u32,
    /// Calls in the current window; in half-open, the trial calls completed so far. A time
    /// window read after some of its seconds passed leaves those seconds' calls out.
    pub window_calls: u32,
    /// Failed calls in the window (or the trial).
    pub window_failures: u32,
    /// Slow calls in the window (or the trial) that succeeded.
    pub slow_successes: u32,
    /// Slow calls in the window (or the trial) that failed.
    pub slow_failures: u32,
    /// The window's failure rate in percent (`None` below `minimum_calls`; in half-open, the
    /// trial's, `None` until every permitted trial call completed).
    pub failure_rate: Option<f64>,
    /// The window's slow-call rate in percent (`None` as for `failure_rate`).
    pub slow_call_rate: Option<f64>,
    /// Openings in a row without closing (the backoff attempt).
    pub attempts: u32,
    /// The durations of the window's (or the trial's) calls added up (resilience4j's
    /// `getTotalDuration`); `None` when the breaker times nothing: calls are timed only with a
    /// `slow_call_duration`, as timing costs a clock read per call.
    pub total_duration: Option<Duration>,
    /// `total_duration` over `window_calls` (`None` as `total_duration`, or with no calls).
    pub average_duration: Option<Duration>,
}

#[derive(Default)]
struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    slow: AtomicU64,
    not_permitted: AtomicU64,
    /// `not_permitted` at the last transition (the count since is the difference, so a
    /// rejection adds to one counter only).
    not_permitted_base: AtomicU64,
}

struct Judged {
    outcomes: Outcomes,
    /// Results of the current half-open episode.
    trial: Tally,
    attempts: u32,
    /// A rate-exceeded event was published in this episode (metrics-only publishes it once).
    exceeded: bool,
    /// The last move into open or closed, as shared with other processes (`shared.rs`).
    moved: shared::Move,
}

/// One circuit breaker. Get one from [`Breakers`] (or `Ace::breaker`), or build one
/// alone with [`CircuitBreaker::new`].
pub struct CircuitBreaker {
    name: Arc<str>,
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    word: AtomicU64,
    consecutive: AtomicU32,
    /// When an open breaker may let a trial through (engine-clock micros).
    open_until: AtomicI64,
    /// When the current half-open episode began.
    half_open_since: AtomicI64,
    judged: Mutex<Judged>,
    counters: Counters,
    events: Arc<registry::Sink>,
    waiters: wait::Waiters,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").field("name", &self.name).field("state", &self.state()).finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A breaker named `name` with `cfg` (validated), on `clock`.
    pub fn new(name: &str, cfg: BreakerConfig, clock: Arc<dyn Clock>) -> crate::Result<Self> {
        Self::with_sink(name, cfg, clock, Arc::default())
    }

    /// A breaker on `clock` whose events go to `registry`'s subscribers (register it with
    /// `Breakers::adopt`).
    pub(crate) fn with_sink_of(
        registry: &Breakers,
        name: &str,
        cfg: BreakerConfig,
        clock: Arc<dyn Clock>,
    ) -> crate::Result<Self> {
        Self::with_sink(name, cfg, clock, registry.sink())
    }

    fn with_sink(
        name: &str,
        cfg: BreakerConfig,
        clock: Arc<dyn Clock>,
        events: Arc<registry::Sink>,
    ) -> crate::Result<Self> {
        crate::event::validate_id("breaker", name)?;
        cfg.validate()?;
        Ok(CircuitBreaker {
            name: Arc::from(name),
            judged: Mutex::new(Judged {
                outcomes: Outcomes::new(cfg.window, cfg.slow_call_duration.is_some()),
                trial: Tally::default(),
                attempts: 0,
                exceeded: false,
                moved: shared::Move::NEVER,
            }),
            cfg,
            clock,
            word: AtomicU64::new(pack(State::Closed, 0, 0)),
            consecutive: AtomicU32::new(0),
            open_until: AtomicI64::new(0),
            half_open_since: AtomicI64::new(0),
            counters: Counters::default(),
            events,
            waiters: wait::Waiters::default(),
        })
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// Its state now. An open breaker whose wait is over still reads `open` until the next
    /// acquire moves it, unless `automatic_half_open` is set: then this read moves it.
    #[must_use]
    pub fn state(&self) -> State {
        let word = self.word.load(Ordering::Acquire);
        let state = State::from_bits(word);
        if state == State::Open
            && self.cfg.automatic_half_open
            && self.clock.now().as_micros() > self.open_until.load(Ordering::Acquire)
        {
            self.move_to(word, State::HalfOpen, "the open wait is over");
            return State::from_bits(self.word.load(Ordering::Acquire));
        }
        state
    }

    /// Counts since the breaker was made.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            successes: c.successes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
            slow: c.slow.load(Ordering::Relaxed),
            not_permitted: c.not_permitted.load(Ordering::Relaxed),
        }
    }

    /// The state and figures now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        // Read first: with `automatic_half_open` the read may move the state, which locks.
        let state = self.state();
        let j = self.judged.lock();
        let (tally, enough) = if state == State::HalfOpen {
            (j.trial, j.trial.calls >= self.cfg.half_open_permits)
        } else {
            let second = match self.cfg.window {
                Window::Time(_) => self.clock.now().as_micros().div_euclid(1_000_000),
                _ => 0,
            };
            let tally = j.outcomes.totals(second);
            let rated = !matches!(self.cfg.window, Window::ConsecutiveFailures(_));
            (tally, rated && tally.calls >= self.cfg.effective_minimum())
        };
        let (failure, slow) = tally.rates();
        let total = self.cfg.slow_call_duration.map(|_| Duration::from_micros(tally.micros));
        Snapshot {
            name: self.name.clone(),
            state,
            counts: self.counts(),
            not_permitted: self
                .counters
                .not_permitted
                .load(Ordering::Relaxed)
                .saturating_sub(self.counters.not_permitted_base.load(Ordering::Relaxed)),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            window_calls: tally.calls,
            window_failures: tally.failures,
            slow_successes: tally.slow - tally.slow_failures,
            slow_failures: tally.slow_failures,
            failure_rate: enough.then_some(failure),
            slow_call_rate: enough.then_some(slow),
            attempts: j.attempts,
            total_duration: total,
            average_duration: total.filter(|_| tally.calls > 0).map(|t| t / tally.calls),
        }
    }
}
