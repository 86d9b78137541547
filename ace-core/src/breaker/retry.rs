//! Retry with exponential backoff and jitter (resilience4j's `Retry`, tenacity, cockatiel's
//! `retry`): a failed call is tried again after a wait that grows by `multiplier` each time, up to
//! `max_wait`, spread by `jitter` so that many clients do not retry in step. A call a breaker
//! turned away is never retried unless `retry_rejected` says so: retrying into an open breaker
//! only spends the attempts. Waiting is the caller's: a [`Sleep`] for blocking calls (a manual
//! clock's in tests), a function returning a future for async ones, so the core needs no runtime.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::CallError;
use super::config::seconds;
use crate::error::{Error, Result};

/// Blocks the calling thread for a while (the real [`ThreadSleep`], or a test's manual clock).
pub trait Sleep: Send + Sync {
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// [`Sleep`] by `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSleep;

impl Sleep for ThreadSleep {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Says, from an error's kind and message, whether it is retried.
pub type RetryIf = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How a [`Retry`] retries. `RetryConfig::default()`: 3 attempts in all, waits of 0.5 s then 1 s
/// (doubling, at most 30 s), each spread by ±50% (resilience4j's randomization factor), every
/// error retried except a breaker's rejection.
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the first retry.
    pub wait: Duration,
    /// Growth of the wait per retry (1 keeps it fixed).
    pub multiplier: f64,
    /// The longest wait.
    pub max_wait: Duration,
    /// Spread of each wait, a fraction in [0, 1): a wait `w` becomes uniform in
    /// `[w (1 - jitter), w (1 + jitter)]`.
    pub jitter: f64,
    /// Retry a call that a breaker turned away (default false).
    pub retry_rejected: bool,
    /// Which errors are retried, by kind (type or exception class name) and message; `None`
    /// (the default) retries every error.
    pub retry_if: Option<RetryIf>,
}

impl std::fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryConfig")
            .field("max_attempts", &self.max_attempts)
            .field("wait", &self.wait)
            .field("multiplier", &self.multiplier)
            .field("max_wait", &self.max_wait)
            .field("jitter", &self.jitter)
            .field("retry_rejected", &self.retry_rejected)
            .field("retry_if", &self.retry_if.is_some())
            .finish()
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            wait: Duration::from_millis(500),
            multiplier: 2.0,
            max_wait: Duration::from_secs(30),
            jitter: 0.5,
            retry_rejected: false,
            retry_if: None,
        }
    }
}

impl RetryConfig {
    /// Checks every field; a bad value is an [`Error::Config`] naming it.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, value: String, reason: &str| Err(Error::config(key, &value, reason));
        if self.max_attempts == 0 {
            return bad("max_attempts", "0".into(), "must be at least 1");
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return bad("multiplier", self.multiplier.to_string(), "must be finite and at least 1");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return bad("jitter", self.jitter.to_string(), "must be in [0, 1)");
        }
        if self.max_wait < self.wait {
            return bad("max_wait", format!("{:?}", self.max_wait), "must be at least wait");
        }
        Ok(())
    }

    /// The wait before retry number `retry` (1 for the first), before jitter.
    #[must_use]
    pub fn base_wait(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(retry.saturating_sub(1).min(1000) as i32);
        let secs = (self.wait.as_secs_f64() * factor).min(self.max_wait.as_secs_f64());
        seconds("wait", secs).unwrap_or(self.max_wait)
    }
}

/// What a [`Retry`] has done, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryCounts {
    /// Calls that succeeded at the first attempt.
    pub succeeded_without_retry: u64,
    /// Calls that succeeded after one retry or more.
    pub succeeded_with_retry: u64,
    /// Calls that failed without being retried (the error was not retryable).
    pub failed_without_retry: u64,
    /// Calls that failed after retrying (every attempt spent).
    pub failed_with_retry: u64,
    /// Retries made (attempts after the first).
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    succeeded_without_retry: AtomicU64,
    succeeded_with_retry: AtomicU64,
    failed_without_retry: AtomicU64,
    failed_with_retry: AtomicU64,
    retries: AtomicU64,
}

/// A named retry policy and its counts. Cheap to share (`Arc`).
pub struct Retry {
    name: Arc<str>,
    cfg: RetryConfig,
    counters: Counters,
    seed: AtomicU64,
}

impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry").field("name", &self.name).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Whether an error may be retried: a breaker's rejection only when asked.
pub trait Retryable {
    /// The error's kind (a type name) and message, for `retry_if`; `None` for a breaker's
    /// rejection.
    fn describe(&self) -> Option<(String, String)>;
}

impl<E: std::fmt::Display> Retryable for CallError<E> {
    fn describe(&self) -> Option<(String, String)> {
        match self {
            CallError::Rejected(_) | CallError::Tripped { .. } => None,
            CallError::Failed(e) => {
                Some((std::any::type_name::<E>().rsplit("::").next().unwrap_or_default().to_owned(), e.to_string()))
            }
        }
    }
}

impl Retry {
    /// A retry policy named `name` with `cfg` (validated).
    pub fn new(name: &str, cfg: RetryConfig) -> Result<Self> {
        crate::event::validate_id("retry", name)?;
        cfg.validate()?;
        // A random seed per retry (std's hash keys are random per process and per state).
        let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), name);
        Ok(Retry { name: Arc::from(name), cfg, counters: Counters::default(), seed: AtomicU64::new(seed) })
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    #[must_use]
    pub fn config(&self) -> &RetryConfig {
        &self.cfg
    }

    /// What it has done so far.
    #[must_use]
    pub fn counts(&self) -> RetryCounts {
        let c = &self.counters;
        RetryCounts {
            succeeded_without_retry: c.succeeded_without_retry.load(Ordering::Relaxed),
            succeeded_with_retry: c.succeeded_with_retry.load(Ordering::Relaxed),
            failed_without_retry: c.failed_without_retry.load(Ordering::Relaxed),
            failed_with_retry: c.failed_with_retry.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// The wait before retry number `retry` (1 for the first), jitter applied.
    #[must_use]
    pub fn wait(&self, retry: u32) -> Duration {
        let base = self.cfg.base_wait(retry);
        if self.cfg.jitter == 0.0 {
            return base;
        }
        // splitmix64: a uniform draw in [0, 1) without a dependency; quality is ample for jitter.
        let mut z = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let unit = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        let spread = 1.0 + self.cfg.jitter * (2.0 * unit - 1.0);
        seconds("wait", base.as_secs_f64() * spread).unwrap_or(base)
    }

    /// Whether `e`, the error of attempt `attempt` (1 for the first), is retried.
    fn again<E: Retryable>(&self, e: &E, attempt: u32) -> bool {
        let described = e.describe();
        self.retries(described.as_ref().map(|(k, m)| (k.as_str(), m.as_str())), attempt)
    }

    fn retries(&self, error: Option<(&str, &str)>, attempt: u32) -> bool {
        if attempt >= self.cfg.max_attempts {
            return false;
        }
        match error {
            None => self.cfg.retry_rejected,
            Some((kind, message)) => self.cfg.retry_if.as_ref().is_none_or(|f| f(kind, message)),
        }
    }

    /// For a host that runs the attempts itself (a binding's decorator, sync or async): attempt
    /// `attempt` (1 for the first) failed with an error of `kind` and `message`, or was a
    /// breaker's rejection (`None`). Returns the wait before the next attempt (a retry, counted),
    /// or `None` when the call is over (counted as failed).
    pub fn after_failure(&self, error: Option<(&str, &str)>, attempt: u32) -> Option<Duration> {
        if self.retries(error, attempt) {
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            Some(self.wait(attempt))
        } else {
            self.finished::<(), ()>(&Err(()), attempt);
            None
        }
    }

    /// For a host that runs the attempts itself: attempt `attempt` failed with an error its
    /// own filter does not retry (an exception class outside `retry_on`); counted as failed.
    pub fn gave_up(&self, attempt: u32) {
        self.finished::<(), ()>(&Err(()), attempt);
    }

    /// For a host that runs the attempts itself: attempt `attempt` succeeded (counted).
    pub fn after_success(&self, attempt: u32) {
        self.finished::<(), ()>(&Ok(()), attempt);
    }

    fn finished<T, E>(&self, result: &std::result::Result<T, E>, attempt: u32) {
        let c = &self.counters;
        let counter = match (result.is_ok(), attempt > 1) {
            (true, false) => &c.succeeded_without_retry,
            (true, true) => &c.succeeded_with_retry,
            (false, false) => &c.failed_without_retry,
            (false, true) => &c.failed_with_retry,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls `f` until it succeeds, its error is not retried, or the attempts are spent, waiting
    /// on `sleep` between attempts. Returns the last result.
    pub fn call<T, E: Retryable>(
        &self,
        sleep: &dyn Sleep,
        mut f: impl FnMut() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut attempt = 1;
        loop {
            let result = f();
            match &result {
                Err(e) if self.again(e, attempt) => {
                    sleep.sleep(self.wait(attempt));
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                }
                _ => {
                    self.finished(&result, attempt);
                    return result;
                }
            }
        }
    }

    /// [`Retry::call`] for futures: `f()` makes each attempt, `sleep(d)` each wait (the host's
    /// timer: `tokio::time::sleep`, a JS timer, an event loop's).
    pub async fn call_async<T, E: Retryable, F, S>(
        &self,
        sleep: impl Fn(Duration) -> S,
        mut f: impl FnMut() -> F,
    ) -> std::result::Result<T, E>
    where
        F: Future<Output = std::result::Result<T, E>>,
        S: Future<Output = ()>,
    {
        let mut attempt = 1;
        loop {
            let result = f().await;
            match &result {
                Err(e) if self.again(e, attempt) => {
                    sleep(self.wait(attempt)).await;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                }
                _ => {
                    self.finished(&result, attempt);
                    return result;
                }
            }
        }
    }
}
