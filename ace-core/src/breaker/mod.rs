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
//! threshold ("slow" is strictly longer than `slow_call_duration`). See [`BreakerConfig`].

pub mod config;
pub mod limit;
mod registry;
mod window;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use config::{Backoff, BreakerConfig, BreakerConfigBuilder, ErrorClassifier, Outcome, Window};
pub use registry::{BreakerEvent, BreakerSeries, Breakers, EventKind};

use crate::clock::{Clock, Timestamp};
use window::{Outcomes, Tally};

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

    fn from_bits(bits: u64) -> State {
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

/// Why a breaker opened because another process's did (not published again).
pub(crate) const FROM_PEER: &str = "opened by another process";

// The word: bits 0..8 the state, 8..32 the half-open permits left, 32..64 the generation.
const PERMIT: u64 = 1 << 8;
const PERMITS_MASK: u64 = 0xff_ffff << 8;

fn pack(state: State, permits: u32, generation: u64) -> u64 {
    state as u64 | (u64::from(permits) << 8) | (generation << 32)
}

fn generation(word: u64) -> u64 {
    word >> 32
}

fn permits(word: u64) -> u32 {
    ((word & PERMITS_MASK) >> 8) as u32
}

/// A call the breaker did not let through.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rejected {
    /// The breaker.
    pub breaker: Arc<str>,
    /// Its state (`open`, `half_open` with no permit left, or `forced_open`).
    pub state: State,
    /// How long until it lets a trial through, when known.
    pub retry_after: Option<Duration>,
    /// What the agent should do, when the rejection came through `Ace::acquire`.
    pub intervention: Option<Box<crate::Intervention>>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "circuit breaker '{}' is {}", self.breaker, self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {:.3} s)", d.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

impl From<Rejected> for crate::Error {
    fn from(r: Rejected) -> Self {
        crate::Error::CircuitOpen { breaker: r.breaker.to_string(), retry_after: r.retry_after }
    }
}

/// Why a guarded call did not return its value.
#[derive(Debug, PartialEq)]
pub enum CallError<E> {
    /// The breaker did not let it through.
    Rejected(Rejected),
    /// It ran and failed with its own error.
    Failed(E),
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for CallError<E> {}

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
    /// Counts since it was made.
    pub counts: Counts,
    /// Failures in a row (consecutive-failures windows).
    pub consecutive_failures: u32,
    /// Calls in the current window.
    pub window_calls: u32,
    /// The window's failure rate in percent (`None` below `minimum_calls`).
    pub failure_rate: Option<f64>,
    /// The window's slow-call rate in percent (`None` below `minimum_calls`).
    pub slow_call_rate: Option<f64>,
    /// Openings in a row without closing (the backoff attempt).
    pub attempts: u32,
}

#[derive(Default)]
struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    slow: AtomicU64,
    not_permitted: AtomicU64,
}

struct Judged {
    outcomes: Outcomes,
    last: Tally,
    /// Results of the current half-open episode.
    trial: Tally,
    attempts: u32,
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
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").field("name", &self.name).field("state", &self.state()).finish_non_exhaustive()
    }
}

/// Leave to make one call; complete it with its outcome. Dropped without an outcome, it is given
/// back (a half-open trial permit becomes available again).
#[must_use = "a permit records nothing unless completed"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    word: u64,
    started: Option<Timestamp>,
    done: bool,
}

impl std::fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("breaker", &self.breaker.name).finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// The call worked.
    pub fn success(mut self) {
        self.finish(Outcome::Success);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.finish(Outcome::Failure);
    }

    /// The call failed with an error of `kind` (a type or exception class name): the breaker's
    /// classifier decides whether it counts as a failure or is ignored.
    pub fn error(mut self, kind: &str, message: &str) {
        let outcome = self.breaker.cfg.classify.as_ref().map_or(Outcome::Failure, |c| c(kind, message));
        self.finish(outcome);
    }

    /// The call ended with `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    /// The same permit, holding `breaker` (the breaker it came from) instead of a borrow.
    ///
    /// # Panics
    /// If `breaker` is not the breaker this permit was taken from.
    pub fn into_owned(mut self, breaker: &Arc<CircuitBreaker>) -> OwnedPermit {
        assert!(std::ptr::eq(self.breaker, &**breaker), "a permit can only own the breaker it came from");
        self.done = true;
        OwnedPermit { breaker: breaker.clone(), word: self.word, started: self.started, done: false }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.complete(self.word, self.started, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.give_back(self.word);
        }
    }
}

/// A [`Permit`] that owns a handle on its breaker, for hosts that cannot hold a borrow across
/// the call (a binding's `with` block or `await`). Same rules: complete it with its outcome;
/// dropped without one, it is given back.
#[must_use = "a permit records nothing unless completed"]
pub struct OwnedPermit {
    breaker: Arc<CircuitBreaker>,
    word: u64,
    started: Option<Timestamp>,
    done: bool,
}

impl std::fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedPermit").field("breaker", &self.breaker.name).finish_non_exhaustive()
    }
}

impl OwnedPermit {
    /// The breaker it was taken from.
    #[must_use]
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The call ended with `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.complete(self.word, self.started, outcome);
    }

    /// The call failed with an error of `kind`: the breaker's classifier decides whether it
    /// counts as a failure or is ignored.
    pub fn error(self, kind: &str, message: &str) {
        let outcome = self.breaker.cfg.classify.as_ref().map_or(Outcome::Failure, |c| c(kind, message));
        self.record(outcome);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.give_back(self.word);
        }
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
                outcomes: Outcomes::new(cfg.window),
                last: Tally::default(),
                trial: Tally::default(),
                attempts: 0,
            }),
            cfg,
            clock,
            word: AtomicU64::new(pack(State::Closed, 0, 0)),
            consecutive: AtomicU32::new(0),
            open_until: AtomicI64::new(0),
            half_open_since: AtomicI64::new(0),
            counters: Counters::default(),
            events,
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

    /// Its state now (an open breaker whose wait is over still reads `open` until the next
    /// acquire moves it).
    #[must_use]
    pub fn state(&self) -> State {
        State::from_bits(self.word.load(Ordering::Acquire))
    }

    /// [`CircuitBreaker::try_acquire`], for a permit that outlives the borrow.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        self.try_acquire().map(|p| p.into_owned(self))
    }

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

    /// Leave to make one call, or why not. Never blocks.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let word = self.word.load(Ordering::Acquire);
        match State::from_bits(word) {
            State::Closed | State::MetricsOnly | State::Disabled => Ok(self.permit(word)),
            _ => self.acquire_slow(word),
        }
    }

    #[inline]
    fn permit(&self, word: u64) -> Permit<'_> {
        let started = self.cfg.slow_call_duration.map(|_| self.clock.now());
        Permit { breaker: self, word, started, done: false }
    }

    #[cold]
    fn acquire_slow(&self, mut word: u64) -> Result<Permit<'_>, Rejected> {
        loop {
            match State::from_bits(word) {
                State::Closed | State::MetricsOnly | State::Disabled => return Ok(self.permit(word)),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.clock.now().as_micros();
                    let until = self.open_until.load(Ordering::Acquire);
                    if now <= until {
                        let left = Duration::from_micros(until.saturating_sub(now).max(0) as u64);
                        return Err(self.reject(State::Open, Some(left)));
                    }
                    self.move_to(word, State::HalfOpen, "the open wait is over");
                }
                State::HalfOpen => {
                    if let Some(max) = self.cfg.max_wait_in_half_open {
                        let now = self.clock.now();
                        let since = Timestamp::from_micros(self.half_open_since.load(Ordering::Acquire));
                        if now.since(since) > max {
                            self.move_to(word, State::Open, "no verdict within the longest half-open wait");
                            word = self.word.load(Ordering::Acquire);
                            continue;
                        }
                    }
                    if permits(word) == 0 {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    match self.word.compare_exchange_weak(word, word - PERMIT, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(self.permit(word - PERMIT)),
                        Err(now) => {
                            word = now;
                            continue;
                        }
                    }
                }
            }
            word = self.word.load(Ordering::Acquire);
        }
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.counters.not_permitted.fetch_add(1, Ordering::Relaxed);
        self.events.emit_rejection(&self.name, state);
        Rejected { breaker: self.name.clone(), state, retry_after, intervention: None }
    }

    /// Runs `f` if the breaker lets it through; every `Err` counts as a failure (or as the
    /// classifier says, by the error's type name and text).
    pub fn call<T, E: std::fmt::Display>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_checked(f, |_| false)
    }

    /// [`CircuitBreaker::call`], where `failed(&value)` says whether a returned value is a
    /// failure too (a "200 OK" with an empty answer).
    pub fn call_checked<T, E: std::fmt::Display>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = f();
        self.settle(permit, &result, failed);
        result.map_err(CallError::Failed)
    }

    /// Awaits `fut` if the breaker lets it through. A future dropped before it finishes records
    /// nothing and gives its permit back.
    pub async fn call_async<T, E: std::fmt::Display>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = fut.await;
        self.settle(permit, &result, |_| false);
        result.map_err(CallError::Failed)
    }

    fn settle<T, E: std::fmt::Display>(
        &self,
        permit: Permit<'_>,
        result: &Result<T, E>,
        failed: impl FnOnce(&T) -> bool,
    ) {
        match result {
            Ok(v) if failed(v) => permit.failure(),
            Ok(_) => permit.success(),
            Err(e) => match &self.cfg.classify {
                None => permit.failure(),
                Some(c) => {
                    let kind = std::any::type_name::<E>().rsplit("::").next().unwrap_or_default();
                    let outcome = c(kind, &e.to_string());
                    permit.record(outcome);
                }
            },
        }
    }

    fn give_back(&self, word: u64) {
        if State::from_bits(word) != State::HalfOpen {
            return;
        }
        // Only into the episode it came from.
        let _ = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (generation(now) == generation(word) && State::from_bits(now) == State::HalfOpen).then(|| now + PERMIT)
        });
    }

    #[inline]
    fn complete(&self, word: u64, started: Option<Timestamp>, outcome: Outcome) {
        let slow = match (started, self.cfg.slow_call_duration) {
            (Some(t), Some(limit)) => self.clock.now().since(t) > limit,
            _ => false,
        };
        let c = &self.counters;
        match outcome {
            Outcome::Success => c.successes.fetch_add(1, Ordering::Relaxed),
            Outcome::Failure => c.failures.fetch_add(1, Ordering::Relaxed),
            Outcome::Ignored => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
                self.give_back(word);
                return;
            }
        };
        if slow {
            c.slow.fetch_add(1, Ordering::Relaxed);
        }
        let state = State::from_bits(word);
        if state == State::Disabled {
            return;
        }
        let failed = outcome == Outcome::Failure;
        // Judged only within the episode the permit came from.
        let now_word = self.word.load(Ordering::Acquire);
        if generation(now_word) != generation(word) {
            return;
        }
        match (state, self.cfg.window) {
            (State::Closed, Window::ConsecutiveFailures(n)) => {
                if failed || slow {
                    if self.consecutive.fetch_add(1, Ordering::AcqRel) + 1 >= n {
                        self.move_to(word, State::Open, "failures in a row reached the threshold");
                    }
                } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
            }
            (State::Closed | State::MetricsOnly, _) => self.judge_window(word, failed, slow),
            (State::HalfOpen, _) => self.judge_trial(word, failed, slow),
            _ => {}
        }
    }

    fn judge_window(&self, word: u64, failed: bool, slow: bool) {
        // Only a time window needs the clock.
        let second = match self.cfg.window {
            Window::Time(_) => self.clock.now().as_micros().div_euclid(1_000_000),
            _ => 0,
        };
        let trip = {
            let mut j = self.judged.lock();
            let tally = j.outcomes.push(second, failed, slow);
            j.last = tally;
            State::from_bits(word) == State::Closed
                && tally.calls >= self.cfg.effective_minimum()
                && self.exceeds(tally)
        };
        if trip {
            self.move_to(word, State::Open, "the failure or slow-call rate reached its threshold");
        }
    }

    fn exceeds(&self, t: Tally) -> bool {
        let (failure, slow) = t.rates();
        failure >= self.cfg.failure_rate_threshold || slow >= self.cfg.slow_call_rate_threshold
    }

    fn judge_trial(&self, word: u64, failed: bool, slow: bool) {
        let verdict = {
            let mut j = self.judged.lock();
            j.trial.calls += 1;
            j.trial.failures += u32::from(failed);
            j.trial.slow += u32::from(slow);
            (j.trial.calls >= self.cfg.half_open_permits).then(|| match self.cfg.window {
                Window::ConsecutiveFailures(_) => j.trial.failures > 0 || j.trial.slow > 0,
                _ => self.exceeds(j.trial),
            })
        };
        match verdict {
            Some(true) => {
                self.move_to(word, State::Open, "trial calls failed");
            }
            Some(false) => {
                self.move_to(word, State::Closed, "trial calls succeeded");
            }
            None => {}
        }
    }

    /// Moves from the state of `from` (same generation) to `to`; false when another thread moved
    /// it first. Events go to subscribers after the move.
    fn move_to(&self, from: u64, to: State, why: &'static str) -> bool {
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
    fn enter(&self, j: &mut Judged, current: u64, to: State, now: Timestamp, open_until: Option<Timestamp>) {
        match to {
            State::Open => {
                j.attempts = j.attempts.saturating_add(1);
                let until = open_until.unwrap_or_else(|| now.plus(self.cfg.wait(j.attempts)));
                self.open_until.store(until.as_micros(), Ordering::Release);
            }
            State::HalfOpen => {
                j.trial = Tally::default();
                self.half_open_since.store(now.as_micros(), Ordering::Release);
            }
            State::Closed => {
                j.outcomes.clear();
                j.last = Tally::default();
                j.attempts = 0;
                self.consecutive.store(0, Ordering::Release);
            }
            State::Disabled | State::ForcedOpen | State::MetricsOnly => {}
        }
        let permits = if to == State::HalfOpen { self.cfg.half_open_permits } else { 0 };
        // Concurrent permit takers only CAS against the old word; a new generation defeats them.
        let next = pack(to, permits, generation(current).wrapping_add(1) & (u64::MAX >> 32));
        let mut seen = current;
        while let Err(now_word) = self.word.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire) {
            seen = now_word;
        }
    }

    fn force(&self, to: State, open_until: Option<Timestamp>, why: &'static str) {
        let now = self.clock.now();
        let previous = {
            let mut j = self.judged.lock();
            let current = self.word.load(Ordering::Acquire);
            self.enter(&mut j, current, to, now, open_until);
            State::from_bits(current)
        };
        self.events.emit_transition(&self.name, previous, to, why, now);
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

    /// Another process saw this dependency fail: open until `until` unless already open.
    /// Returns whether it moved.
    pub(crate) fn open_from_peer(&self, until: Timestamp) -> bool {
        if self.state() != State::Closed || until <= self.clock.now() {
            return false;
        }
        self.force(State::Open, Some(until), FROM_PEER);
        true
    }

    /// When an open breaker lets a trial through (engine clock), if it is open.
    pub(crate) fn open_until_time(&self) -> Option<Timestamp> {
        (self.state() == State::Open).then(|| Timestamp::from_micros(self.open_until.load(Ordering::Acquire)))
    }

    /// Closes the breaker (its window starts empty).
    pub fn close(&self) {
        self.force(State::Closed, None, "closed by hand");
    }

    /// Closes the breaker and forgets everything it judged (the backoff attempt too).
    pub fn reset(&self) {
        self.force(State::Closed, None, "reset");
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
        let j = self.judged.lock();
        let enough =
            j.last.calls >= self.cfg.effective_minimum() && !matches!(self.cfg.window, Window::ConsecutiveFailures(_));
        let (failure, slow) = j.last.rates();
        Snapshot {
            name: self.name.clone(),
            state: self.state(),
            counts: self.counts(),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            window_calls: j.last.calls,
            failure_rate: enough.then_some(failure),
            slow_call_rate: enough.then_some(slow),
            attempts: j.attempts,
        }
    }
}
