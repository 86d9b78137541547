//! The caller's side of a breaker, which is its hot path: taking leave to make a call (lock-free),
//! the permits that carry a call's outcome back to the breaker, and the guarded calls built on
//! them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::{PERMIT, generation, permits};
use super::{CallError, CircuitBreaker, Outcome, Rejected, State, TrippingCall};
use crate::clock::Timestamp;

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

    /// [`Permit::record`], returning the breaker's rejection when this outcome opened the
    /// breaker and its `tripping_call` is `breaker_error` (see [`OwnedPermit::settle`]).
    pub fn settle(mut self, outcome: Outcome) -> Option<Rejected> {
        let tripped = self.finish(outcome);
        (tripped && self.breaker.cfg.tripping_call == TrippingCall::BreakerError).then(|| self.breaker.tripped())
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

    /// True when this call opened the breaker.
    fn finish(&mut self, outcome: Outcome) -> bool {
        self.done = true;
        self.breaker.complete(self.word, self.started, outcome)
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
    pub fn record(self, outcome: Outcome) {
        self.settle(outcome);
    }

    /// [`OwnedPermit::record`], returning the breaker's rejection when this outcome opened the
    /// breaker and its `tripping_call` is `breaker_error` (what a host raises instead of the
    /// call's own error, pybreaker's way).
    pub fn settle(mut self, outcome: Outcome) -> Option<Rejected> {
        self.done = true;
        let tripped = self.breaker.complete(self.word, self.started, outcome);
        (tripped && self.breaker.cfg.tripping_call == TrippingCall::BreakerError).then(|| self.breaker.tripped())
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
    /// [`CircuitBreaker::try_acquire`], for a permit that outlives the borrow.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        self.try_acquire().map(|p| p.into_owned(self))
    }

    /// [`CircuitBreaker::acquire_waiting`], for a permit that outlives the borrow.
    pub fn acquire_waiting_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        self.acquire_waiting().map(|p| p.into_owned(self))
    }

    /// The rejection a call that just opened the breaker reports instead of its own error.
    fn tripped(&self) -> Rejected {
        let now = self.clock.now();
        let retry_after = self.open_until_time().map(|until| until.since(now));
        Rejected { breaker: self.name.clone(), state: State::Open, retry_after, intervention: None }
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
    fn acquire_slow(&self, word: u64) -> Result<Permit<'_>, Rejected> {
        self.take(word).map_err(|(state, left)| self.reject(state, left))
    }

    /// A permit, or the state that refused it (and how long until a trial), counting nothing.
    #[inline(always)]
    pub(super) fn take(&self, mut word: u64) -> Result<Permit<'_>, (State, Option<Duration>)> {
        loop {
            match State::from_bits(word) {
                State::Closed | State::MetricsOnly | State::Disabled => return Ok(self.permit(word)),
                State::ForcedOpen => return Err((State::ForcedOpen, None)),
                State::Open => {
                    let now = self.clock.now().as_micros();
                    let until = self.open_until.load(Ordering::Acquire);
                    if now <= until {
                        let left = Duration::from_micros(until.saturating_sub(now).max(0) as u64);
                        return Err((State::Open, Some(left)));
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
                        return Err((State::HalfOpen, None));
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

    pub(super) fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.counters.not_permitted.fetch_add(1, Ordering::Relaxed);
        self.events.emit_rejection(&self.name, state);
        Rejected { breaker: self.name.clone(), state, retry_after, intervention: None }
    }

    /// Runs `f` if the breaker lets it through; every `Err` counts as a failure (or as the
    /// classifier says, by the error's type name and text). With
    /// [`HalfOpenBusy::Wait`](super::HalfOpenBusy::Wait), a call finding every trial permit
    /// taken blocks the thread until the trial's verdict.
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
        let permit = self.acquire_waiting().map_err(CallError::Rejected)?;
        let result = f();
        let tripped = self.settle(permit, &result, failed);
        self.returned(result, tripped)
    }

    /// Awaits `fut` if the breaker lets it through (waiting for a half-open verdict as
    /// [`CircuitBreaker::call`] does, without blocking). A future dropped before it finishes
    /// records nothing and gives its permit back.
    pub async fn call_async<T, E: std::fmt::Display>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        let permit = self.acquire_async().await.map_err(CallError::Rejected)?;
        let result = fut.await;
        let tripped = self.settle(permit, &result, |_| false);
        self.returned(result, tripped)
    }

    /// What a guarded call returns: its own result, or, when its error opened the breaker and
    /// `tripping_call` says so, the breaker's rejection carrying that error (pybreaker).
    fn returned<T, E>(&self, result: Result<T, E>, tripped: bool) -> Result<T, CallError<E>> {
        match result {
            Err(error) if tripped && self.cfg.tripping_call == TrippingCall::BreakerError => {
                let now = self.clock.now();
                let retry_after = self.open_until_time().map(|until| until.since(now));
                let rejected =
                    Rejected { breaker: self.name.clone(), state: State::Open, retry_after, intervention: None };
                Err(CallError::Tripped { rejected, error })
            }
            r => r.map_err(CallError::Failed),
        }
    }

    /// Completes `permit` with the outcome of `result`; true when it opened the breaker.
    fn settle<T, E: std::fmt::Display>(
        &self,
        mut permit: Permit<'_>,
        result: &Result<T, E>,
        failed: impl FnOnce(&T) -> bool,
    ) -> bool {
        let outcome = match result {
            Ok(v) if failed(v) => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(e) => match &self.cfg.classify {
                None => Outcome::Failure,
                Some(c) => {
                    let kind = std::any::type_name::<E>().rsplit("::").next().unwrap_or_default();
                    c(kind, &e.to_string())
                }
            },
        };
        permit.finish(outcome)
    }

    pub(super) fn give_back(&self, word: u64) {
        if State::from_bits(word) != State::HalfOpen {
            return;
        }
        // Only into the episode it came from.
        let given = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (generation(now) == generation(word) && State::from_bits(now) == State::HalfOpen).then(|| now + PERMIT)
        });
        if given.is_ok() {
            self.wake_waiters();
        }
    }
}
