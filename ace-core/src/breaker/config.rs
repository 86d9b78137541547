//! A breaker's configuration, validated when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// What a finished call counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed: counts toward opening the breaker.
    Failure,
    /// Neither: not recorded (a half-open permit is given back).
    Ignored,
}

impl Outcome {
    /// The snake_case name (`"success"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Classifies an error by its kind (the error type's name, or an exception class from a
/// binding) and message: which errors count as failures and which are ignored.
pub type ErrorClassifier = Arc<dyn Fn(&str, &str) -> Outcome + Send + Sync>;

/// The sliding window outcomes are judged over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Open after this many failures in a row (a success resets the count); the default, with 5.
    ConsecutiveFailures(u32),
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `n` seconds, in one-second buckets.
    Time(u32),
}

/// Growth of the open wait each time the breaker opens again without having closed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Factor per re-open (at least 1).
    pub multiplier: f64,
    /// The longest wait.
    pub max_wait: Duration,
}

/// How a breaker decides. `BreakerConfig::default()` is the seeds' breaker: open after 5
/// failures in a row, try again after 60 s with one trial call.
#[derive(Clone)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// The window (default: 5 consecutive failures).
    pub window: Window,
    /// Failure rate, in percent (0, 100], at or above which a `Count` or `Time` window opens
    /// the breaker (default 50).
    pub failure_rate_threshold: f64,
    /// Slow-call rate, in percent (0, 100], at or above which it opens (default 100).
    pub slow_call_rate_threshold: f64,
    /// A call strictly longer than this is slow; `None` (the default) times nothing. In a
    /// consecutive-failures window a slow call counts as a failure.
    pub slow_call_duration: Option<Duration>,
    /// Calls in the window before any rate is computed (default 10, clamped to a count window's
    /// size; set explicitly above that size, it is a configuration error).
    pub minimum_calls: u32,
    /// Calls let through in half-open, whose results decide between closing and opening again
    /// (default 1).
    pub half_open_permits: u32,
    /// How long the breaker stays open before a trial (default 60 s).
    pub wait_in_open: Duration,
    /// The longest the breaker may stay half-open waiting for its trial results before it opens
    /// again; `None` (the default) waits for them however long.
    pub max_wait_in_half_open: Option<Duration>,
    /// Exponential growth of the open wait (default none).
    pub backoff: Option<Backoff>,
    /// Which errors are failures and which are ignored (default: every error is a failure).
    pub classify: Option<ErrorClassifier>,
    /// `minimum_calls` was set, not defaulted: a count window smaller than it is an error
    /// rather than a clamp.
    minimum_set: bool,
}

impl fmt::Debug for BreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("window", &self.window)
            .field("failure_rate_threshold", &self.failure_rate_threshold)
            .field("slow_call_rate_threshold", &self.slow_call_rate_threshold)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("minimum_calls", &self.minimum_calls)
            .field("half_open_permits", &self.half_open_permits)
            .field("wait_in_open", &self.wait_in_open)
            .field("max_wait_in_half_open", &self.max_wait_in_half_open)
            .field("backoff", &self.backoff)
            .field("classify", &self.classify.is_some())
            .finish()
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: Window::ConsecutiveFailures(5),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: None,
            minimum_calls: 10,
            half_open_permits: 1,
            wait_in_open: Duration::from_secs(60),
            max_wait_in_half_open: None,
            backoff: None,
            classify: None,
            minimum_set: false,
        }
    }
}

/// Largest window, in calls or seconds.
const MAX_WINDOW: u32 = 1 << 20;
/// Largest number of half-open permits (they share a word with the state).
pub(crate) const MAX_HALF_OPEN_PERMITS: u32 = (1 << 24) - 1;

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder(BreakerConfig::default())
    }

    /// Checks every field; a bad value is an [`Error::Config`] naming it.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, value: String, reason: &str| Err(Error::config(key, &value, reason));
        match self.window {
            Window::ConsecutiveFailures(0) | Window::Count(0) | Window::Time(0) => {
                return bad("window", format!("{:?}", self.window), "must be at least 1");
            }
            Window::Count(n) | Window::Time(n) if n > MAX_WINDOW => {
                return bad("window", format!("{:?}", self.window), "must be at most 1048576");
            }
            _ => {}
        }
        for (key, v) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                return bad(key, v.to_string(), "must be a percentage in (0, 100]");
            }
        }
        if self.minimum_calls == 0 {
            return bad("minimum_calls", "0".into(), "must be at least 1");
        }
        match self.window {
            Window::Count(n) if self.minimum_set && self.minimum_calls > n => {
                return bad(
                    "minimum_calls",
                    self.minimum_calls.to_string(),
                    "must not exceed the count window's size (a rate could never be computed)",
                );
            }
            Window::Time(_) if self.minimum_calls > MAX_WINDOW => {
                return bad("minimum_calls", self.minimum_calls.to_string(), "must be at most 1048576");
            }
            _ => {}
        }
        if self.half_open_permits == 0 || self.half_open_permits > MAX_HALF_OPEN_PERMITS {
            return bad("half_open_permits", self.half_open_permits.to_string(), "must be between 1 and 16777215");
        }
        if self.wait_in_open.is_zero() {
            return bad("wait_in_open", "0".into(), "must be more than 0");
        }
        if self.max_wait_in_half_open.is_some_and(|d| d.is_zero()) {
            return bad("max_wait_in_half_open", "0".into(), "must be more than 0 (or None)");
        }
        if let Some(b) = self.backoff
            && !(b.multiplier.is_finite() && b.multiplier >= 1.0 && b.max_wait >= self.wait_in_open)
        {
            return bad(
                "backoff",
                format!("{b:?}"),
                "multiplier must be finite and at least 1, and max_wait at least wait_in_open",
            );
        }
        Ok(())
    }

    /// The minimum number of calls, clamped to a count window's size.
    pub(crate) fn effective_minimum(&self) -> u32 {
        match self.window {
            Window::Count(n) => self.minimum_calls.min(n),
            _ => self.minimum_calls,
        }
    }

    /// The open wait for the `attempt`-th opening in a row (1 for the first).
    pub(crate) fn wait(&self, attempt: u32) -> Duration {
        match self.backoff {
            None => self.wait_in_open,
            Some(b) => {
                let factor = b.multiplier.powi(attempt.saturating_sub(1).min(1000) as i32);
                let secs = (self.wait_in_open.as_secs_f64() * factor).min(b.max_wait.as_secs_f64());
                Duration::try_from_secs_f64(secs).unwrap_or(b.max_wait)
            }
        }
    }
}

/// Builds a [`BreakerConfig`]; setters are named after the fields.
#[derive(Clone, Debug)]
#[must_use]
pub struct BreakerConfigBuilder(BreakerConfig);

impl BreakerConfigBuilder {
    /// See [`BreakerConfig::window`].
    pub fn window(mut self, window: Window) -> Self {
        self.0.window = window;
        self
    }

    /// See [`BreakerConfig::failure_rate_threshold`].
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.0.failure_rate_threshold = percent;
        self
    }

    /// See [`BreakerConfig::slow_call_rate_threshold`].
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.0.slow_call_rate_threshold = percent;
        self
    }

    /// See [`BreakerConfig::slow_call_duration`].
    pub fn slow_call_duration(mut self, d: Duration) -> Self {
        self.0.slow_call_duration = Some(d);
        self
    }

    /// See [`BreakerConfig::minimum_calls`].
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.0.minimum_calls = n;
        self.0.minimum_set = true;
        self
    }

    /// See [`BreakerConfig::half_open_permits`].
    pub fn half_open_permits(mut self, n: u32) -> Self {
        self.0.half_open_permits = n;
        self
    }

    /// See [`BreakerConfig::wait_in_open`].
    pub fn wait_in_open(mut self, d: Duration) -> Self {
        self.0.wait_in_open = d;
        self
    }

    /// See [`BreakerConfig::max_wait_in_half_open`].
    pub fn max_wait_in_half_open(mut self, d: Duration) -> Self {
        self.0.max_wait_in_half_open = Some(d);
        self
    }

    /// See [`BreakerConfig::backoff`].
    pub fn backoff(mut self, multiplier: f64, max_wait: Duration) -> Self {
        self.0.backoff = Some(Backoff { multiplier, max_wait });
        self
    }

    /// See [`BreakerConfig::classify`].
    pub fn classify(mut self, f: impl Fn(&str, &str) -> Outcome + Send + Sync + 'static) -> Self {
        self.0.classify = Some(Arc::new(f));
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<BreakerConfig> {
        self.0.validate()?;
        Ok(self.0)
    }
}
