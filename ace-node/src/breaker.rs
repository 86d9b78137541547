//! Circuit breakers, rate limiters and bulkheads. A breaker's permits live in a slab here and
//! cross into JS as numbers: building a JS object (let alone an `Error`) per call would cost
//! more than the breaker itself. `tryAcquire()` returns a permit's number (its slot and the
//! slot's generation, so a permit completed twice is an error rather than the completion of
//! the permit that reused the slot), or -1 when the breaker turns the call away (the details
//! are then in `takeRejection()`); the permit is completed with `success`, `failure` or
//! `error`, or given back with `release`.

use std::sync::Arc;

use ace::breaker::config::{BreakerOptions as Options, seconds as seconds_of};
use ace::breaker::limit::{Bulkhead, BulkheadPermit, RateLimiter};
use ace::breaker::{HalfOpenBusy, Outcome, Rejected};
use ace::error::count;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::engine::{Engine, intervention};
use crate::hot::BreakerCore;
use crate::{IntoJs, guard, invalid};

/// Settings of a breaker (applied when it is first made).
#[napi(object)]
pub struct BreakerOptions {
    /// Failures in a row that open it (without a `window`).
    pub failures: Option<f64>,
    /// How long it stays open before a trial, in seconds.
    pub wait_seconds: Option<f64>,
    /// `count:N` or `time:SECONDS` (with `failureRate` and `minimumCalls`).
    pub window: Option<String>,
    /// Failure rate in percent that opens a windowed breaker.
    pub failure_rate: Option<f64>,
    /// Calls in the window before any rate is computed.
    pub minimum_calls: Option<f64>,
    /// A call longer than this (seconds) is slow.
    pub slow_call_seconds: Option<f64>,
    /// Slow-call rate in percent that opens it.
    pub slow_call_rate: Option<f64>,
    /// Trial calls let through when half-open.
    pub half_open_permits: Option<f64>,
    /// The longest it waits half-open for its trials, in seconds.
    pub max_half_open_seconds: Option<f64>,
    /// `reached` (a rate at its threshold trips, resilience4j; the default) or `exceeded`
    /// (only above it, opossum and cockatiel).
    pub threshold: Option<String>,
    /// `reject` (a call finding every half-open permit taken is rejected at once; the default)
    /// or `wait` (`call` waits, without blocking the event loop, for the trial's verdict:
    /// cockatiel).
    pub half_open_busy: Option<String>,
    /// `own_error` (the call that opens the breaker throws its own error; the default) or
    /// `breaker_error` (it throws the breaker's `CircuitOpenError`, its `cause` the call's
    /// error: pybreaker).
    pub tripping_call: Option<String>,
    /// `after_all_permits` (a lost trial re-opens after every permitted call; the default) or
    /// `at_once` (as soon as the failures decide it).
    pub trial_verdict: Option<String>,
    /// Move from open to half-open as soon as the wait is over, seen by any read of the state,
    /// not only by the next call (resilience4j's option; default false).
    pub automatic_half_open: Option<bool>,
    /// Each re-open without a close multiplies the open wait by this (with `maxWaitSeconds`;
    /// resilience4j's exponential open-state wait).
    pub backoff_multiplier: Option<f64>,
    /// The longest open wait, in seconds (with `backoffMultiplier`).
    pub max_wait_seconds: Option<f64>,
}

fn rejection(r: &Rejected) -> Result<Value> {
    Ok(json!({
        "breaker": &*r.breaker,
        "state": r.state.as_str(),
        "retryAfter": r.retry_after.map(|d| d.as_secs_f64()),
        "message": r.to_string(),
        "intervention": r.intervention.as_deref().map(intervention).transpose()?,
    }))
}

/// A circuit breaker of the engine's registry (its hot calls are the plain functions of
/// `hot.rs`, by `id`).
#[napi]
pub struct NativeBreaker {
    core: Arc<BreakerCore>,
    id: u32,
    events: Mutex<Option<crate::breaker_events::Queue>>,
}

impl Drop for NativeBreaker {
    fn drop(&mut self) {
        crate::hot::release_breaker(self.id);
    }
}

#[napi]
impl NativeBreaker {
    /// The breaker `name` of `engine`, made with `options` on first use.
    #[napi(constructor)]
    pub fn new(engine: &Engine, name: String, options: Option<BreakerOptions>) -> Result<Self> {
        guard(|| {
            let ace = engine.ace.clone();
            let options = match options {
                None => Options::default(),
                Some(o) => Options {
                    failures: o.failures.map(|n| count("failures", n)).transpose().js()?,
                    wait_seconds: o.wait_seconds,
                    window: o.window.as_deref().map(str::parse).transpose().js()?,
                    failure_rate: o.failure_rate,
                    minimum_calls: o.minimum_calls.map(|n| count("minimum_calls", n)).transpose().js()?,
                    slow_call_seconds: o.slow_call_seconds,
                    slow_call_rate: o.slow_call_rate,
                    half_open_permits: o.half_open_permits.map(|n| count("half_open_permits", n)).transpose().js()?,
                    max_half_open_seconds: o.max_half_open_seconds,
                    threshold: o.threshold.as_deref().map(str::parse).transpose().js()?,
                    half_open_busy: o.half_open_busy.as_deref().map(str::parse).transpose().js()?,
                    tripping_call: o.tripping_call.as_deref().map(str::parse).transpose().js()?,
                    trial_verdict: o.trial_verdict.as_deref().map(str::parse).transpose().js()?,
                    automatic_half_open: o.automatic_half_open,
                    backoff_multiplier: o.backoff_multiplier,
                    max_wait_seconds: o.max_wait_seconds,
                },
            };
            let breaker = ace::breaker_with(&ace, &name, &options).js()?;
            let core = Arc::new(BreakerCore::new(breaker, ace));
            let id = crate::hot::register_breaker(core.clone());
            Ok(NativeBreaker { core, id, events: Mutex::default() })
        })
    }

    /// A permit's number, or -1 when the breaker turns the call away. Never throws for that: see
    /// `takeRejection()`. With `agent` and `task`, a rejection is a signal for that task and
    /// carries the intervention it warrants.
    #[napi]
    pub fn try_acquire(&self, agent: Option<String>, task: Option<String>) -> Result<f64> {
        let c = &self.core;
        match (agent, task) {
            (None, None) => c.hold(c.breaker.try_acquire_owned()),
            (Some(a), Some(t)) => guard(|| c.hold(c.ace.acquire_owned(&a, &t, &c.breaker))),
            _ => Err(invalid("task", "give both agent and task, or neither")),
        }
    }

    /// The id for the plain-function fast path (`breakerTryAcquire(id)`).
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Starts queueing this breaker's events (once; later calls do nothing).
    #[napi]
    pub fn subscribe(&self) {
        let mut events = self.events.lock();
        if events.is_none() {
            let queue = crate::breaker_events::Queue::default();
            crate::breaker_events::subscribe(&self.core.ace, self.core.breaker.name(), queue.clone());
            *events = Some(queue);
        }
    }

    /// The events queued since the last call, oldest first.
    #[napi(ts_return_type = "Record<string, unknown>[]")]
    pub fn take_events(&self) -> Vec<Value> {
        match &*self.events.lock() {
            Some(q) => q.lock().drain(..).collect(),
            None => Vec::new(),
        }
    }

    /// Why the last `tryAcquire` returned -1 (once), or `null`.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn take_rejection(&self) -> Result<Option<Value>> {
        self.core.take_rejection().as_ref().map(rejection).transpose()
    }

    /// When the last failure opened a breaker made with `trippingCall: 'breaker_error'`, the
    /// rejection to throw instead of that call's error (once), or `null`.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn take_tripped(&self) -> Result<Option<Value>> {
        self.core.take_tripped().as_ref().map(rejection).transpose()
    }

    /// The call worked.
    #[napi]
    pub fn success(&self, permit: f64) -> Result<()> {
        self.core.take(permit)?.record(Outcome::Success);
        Ok(())
    }

    /// The call failed.
    #[napi]
    pub fn failure(&self, permit: f64) -> Result<()> {
        self.core.take(permit)?.record(Outcome::Failure);
        Ok(())
    }

    /// The call ended with a result that counts neither way.
    #[napi]
    pub fn ignore(&self, permit: f64) -> Result<()> {
        self.core.take(permit)?.record(Outcome::Ignored);
        Ok(())
    }

    /// Gives the permit back without a result (a cancelled call).
    #[napi]
    pub fn release(&self, permit: f64) -> Result<()> {
        drop(self.core.take(permit)?);
        Ok(())
    }

    /// Permits taken and not yet completed.
    #[napi(getter)]
    pub fn outstanding(&self) -> u32 {
        self.core.outstanding()
    }

    /// The breaker's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.core.breaker.name().to_owned()
    }

    /// Whether `call` waits for a busy half-open trial's verdict (`halfOpenBusy: 'wait'`).
    #[napi(getter)]
    pub fn waits_for_verdict(&self) -> bool {
        self.core.breaker.config().half_open_busy == HalfOpenBusy::Wait
    }

    /// How long a waiting call may go before asking again on its own, in milliseconds (only
    /// with `maxHalfOpenSeconds`, which can end a trial that never reports).
    #[napi(getter)]
    pub fn recheck_ms(&self) -> Option<f64> {
        self.core.breaker.recheck_after().map(|d| d.as_secs_f64() * 1000.0)
    }

    /// `closed`, `open`, `half_open`, `disabled`, `forced_open` or `metrics_only`.
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.core.breaker.state().as_str()
    }

    /// Counts an attempt that a policy's timeout cut short, as `ace_timeouts_total{name}` of the
    /// breaker's engine (the policy takes the breaker's name).
    #[napi]
    pub fn count_timeout(&self) -> Result<()> {
        self.core.ace.breakers().count_timeout(self.core.breaker.name()).js()
    }

    /// Counts and rates.
    #[napi(ts_return_type = "Record<string, unknown>")]
    pub fn snapshot(&self) -> Value {
        let s = self.core.breaker.snapshot();
        json!({
            "name": &*s.name, "state": s.state.as_str(),
            "successes": s.counts.successes, "failures": s.counts.failures, "ignored": s.counts.ignored,
            "slow": s.counts.slow, "notPermitted": s.not_permitted, "notPermittedTotal": s.counts.not_permitted,
            "consecutiveFailures": s.consecutive_failures, "windowCalls": s.window_calls,
            "windowFailures": s.window_failures, "slowSuccesses": s.slow_successes, "slowFailures": s.slow_failures,
            "failureRate": s.failure_rate, "slowCallRate": s.slow_call_rate, "attempts": s.attempts,
            "totalDuration": s.total_duration.map(|d| d.as_secs_f64()),
            "averageDuration": s.average_duration.map(|d| d.as_secs_f64()),
        })
    }

    /// Opens it for `seconds`.
    #[napi]
    pub fn open_for(&self, seconds: f64) -> Result<()> {
        self.core.breaker.open_for(seconds_of("seconds", seconds).js()?);
        Ok(())
    }

    /// Opens it until `epochSeconds` (seconds since the Unix epoch on the engine's clock); the
    /// first call after that moves it to half-open.
    #[napi]
    pub fn open_until(&self, epoch_seconds: f64) -> Result<()> {
        if !epoch_seconds.is_finite() {
            return Err(invalid("epoch_seconds", "expected a finite number of seconds"));
        }
        self.core.breaker.open_until(ace::Timestamp::from_micros((epoch_seconds * 1e6) as i64));
        Ok(())
    }

    /// Moves it to half-open now: the next `halfOpenPermits` calls are the trial.
    #[napi]
    pub fn half_open(&self) {
        self.core.breaker.half_open();
    }

    /// Closes it.
    #[napi]
    pub fn close(&self) {
        self.core.breaker.close();
    }

    /// Closes it and clears its counts.
    #[napi]
    pub fn reset(&self) {
        self.core.breaker.reset();
    }

    /// Lets every call through, judging nothing.
    #[napi]
    pub fn disable(&self) {
        self.core.breaker.disable();
    }

    /// Turns every call away until changed by hand.
    #[napi]
    pub fn force_open(&self) {
        self.core.breaker.force_open();
    }

    /// Lets every call through and counts them; never trips.
    #[napi]
    pub fn metrics_only(&self) {
        self.core.breaker.metrics_only();
    }
}

/// A token bucket of the engine's registry.
#[napi]
pub struct NativeRateLimiter {
    inner: Arc<RateLimiter>,
}

#[napi]
impl NativeRateLimiter {
    /// The limiter `name`: `perSecond` tokens a second, at most `burst` at once.
    #[napi(constructor)]
    pub fn new(engine: &Engine, name: String, per_second: f64, burst: f64) -> Result<Self> {
        guard(|| {
            let burst = count("burst", burst).js()?;
            Ok(NativeRateLimiter { inner: engine.ace.rate_limiter(&name, per_second, burst).js()? })
        })
    }

    /// Takes a token: 0 when taken, else the seconds until one is there (never waits).
    #[napi]
    pub fn try_acquire(&self) -> f64 {
        match self.inner.try_acquire() {
            Ok(()) => 0.0,
            Err(l) => l.retry_after.map_or(f64::MIN_POSITIVE, |d| d.as_secs_f64().max(f64::MIN_POSITIVE)),
        }
    }

    /// The limiter's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Calls turned away so far.
    #[napi(getter)]
    pub fn rejected(&self) -> f64 {
        self.inner.rejected() as f64
    }
}

/// A concurrency limit of the engine's registry.
#[napi]
pub struct NativeBulkhead {
    inner: Arc<Bulkhead>,
    held: Mutex<Vec<BulkheadPermit>>,
}

#[napi]
impl NativeBulkhead {
    /// The bulkhead `name`, letting `maxConcurrent` calls run at once.
    #[napi(constructor)]
    pub fn new(engine: &Engine, name: String, max_concurrent: f64) -> Result<Self> {
        guard(|| {
            let max_concurrent = count("max_concurrent", max_concurrent).js()?;
            Ok(NativeBulkhead { inner: engine.ace.bulkhead(&name, max_concurrent).js()?, held: Mutex::default() })
        })
    }

    /// Takes a place: true, or false when full (never waits).
    #[napi]
    pub fn try_enter(&self) -> bool {
        match self.inner.try_enter() {
            Ok(p) => {
                self.held.lock().push(p);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives a place back.
    #[napi]
    pub fn leave(&self) -> Result<()> {
        self.held.lock().pop().map(drop).ok_or_else(|| invalid("bulkhead", "no place is held"))
    }

    /// The bulkhead's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Calls running now.
    #[napi(getter)]
    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// Calls turned away so far.
    #[napi(getter)]
    pub fn rejected(&self) -> f64 {
        self.inner.rejected() as f64
    }
}
