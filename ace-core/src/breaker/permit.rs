//! The caller's side of a breaker, which is its hot path: taking leave to make a call (lock-free),
//! the permits that carry a call's outcome back to the breaker, and the guarded calls built on
//! them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::{PERMIT, generation, permits};
use super::{CallError, CircuitBreaker, Outcome, Rejected, State};
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
    /// [`CircuitBreaker::try_acquire`], for a permit that outlives the borrow.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        self.try_acquire().map(|p| p.into_owned(self))
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

    pub(super) fn give_back(&self, word: u64) {
        if State::from_bits(word) != State::HalfOpen {
            return;
        }
        // Only into the episode it came from.
        let _ = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (generation(now) == generation(word) && State::from_bits(now) == State::HalfOpen).then(|| now + PERMIT)
        });
    }
}
