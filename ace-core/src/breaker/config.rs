//! A breaker's configuration, validated when it is built, and [`BreakerOptions`], the form the
//! bindings take it in (every field optional, seconds as numbers, the window as text).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::semantics::{HalfOpenBusy, Threshold, TrialVerdict, TrippingCall};
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

impl fmt::Display for Window {
    /// `consecutive:N`, `count:N` or `time:SECONDS`, the form [`Window::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::ConsecutiveFailures(n) => write!(f, "consecutive:{n}"),
            Window::Count(n) => write!(f, "count:{n}"),
            Window::Time(n) => write!(f, "time:{n}"),
        }
    }
}

impl FromStr for Window {
    type Err = Error;

    /// `count:N`, `time:SECONDS` or `consecutive:N`; anything else is an
    /// [`Error::InvalidInput`] for `window` (a size of 0 is refused later, by
    /// [`BreakerConfig::validate`]).
    fn from_str(w: &str) -> Result<Self> {
        let bad =
            || Error::invalid("window", format!("{w:?}: expected \"count:N\", \"time:SECONDS\" or \"consecutive:N\""));
        let (kind, n) = w.split_once(':').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        match kind.trim() {
            "count" => Ok(Window::Count(n)),
            "time" => Ok(Window::Time(n)),
            "consecutive" => Ok(Window::ConsecutiveFailures(n)),
            _ => Err(bad()),
        }
    }
}

/// A number of seconds as a [`Duration`]; NaN, infinite or negative is an
/// [`Error::InvalidInput`] naming `field`.
pub fn seconds(field: &'static str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| Error::invalid(field, "expected a finite number of seconds >= 0"))
}

/// A breaker's settings as the bindings take them: each one optional, durations in seconds.
/// [`BreakerOptions::config`] turns them into a [`BreakerConfig`].
///
/// ```
/// use ace_core::breaker::config::BreakerOptions;
///
/// let options = BreakerOptions { window: Some("count:20".parse()?), failure_rate: Some(25.0), ..Default::default() };
/// let config = options.config(5, std::time::Duration::from_secs(60))?;
/// assert_eq!(config.failure_rate_threshold, 25.0);
/// # Ok::<(), ace_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BreakerOptions {
    /// Failures in a row that open it (without a `window`).
    pub failures: Option<u32>,
    /// How long it stays open before a trial, in seconds ([`BreakerConfig::wait_in_open`]).
    pub wait_seconds: Option<f64>,
    /// The window ([`BreakerConfig::window`]); it replaces `failures`.
    pub window: Option<Window>,
    /// [`BreakerConfig::failure_rate_threshold`], in percent.
    pub failure_rate: Option<f64>,
    /// [`BreakerConfig::minimum_calls`].
    pub minimum_calls: Option<u32>,
    /// [`BreakerConfig::slow_call_duration`], in seconds.
    pub slow_call_seconds: Option<f64>,
    /// [`BreakerConfig::slow_call_rate_threshold`], in percent.
    pub slow_call_rate: Option<f64>,
    /// [`BreakerConfig::half_open_permits`].
    pub half_open_permits: Option<u32>,
    /// [`BreakerConfig::max_wait_in_half_open`], in seconds.
    pub max_half_open_seconds: Option<f64>,
    /// [`BreakerConfig::threshold`].
    pub threshold: Option<Threshold>,
    /// [`BreakerConfig::half_open_busy`].
    pub half_open_busy: Option<HalfOpenBusy>,
    /// [`BreakerConfig::tripping_call`].
    pub tripping_call: Option<TrippingCall>,
    /// [`BreakerConfig::trial_verdict`].
    pub trial_verdict: Option<TrialVerdict>,
    /// [`BreakerConfig::automatic_half_open`].
    pub automatic_half_open: Option<bool>,
    /// [`BreakerConfig::backoff`]'s multiplier: each re-open without a close multiplies the
    /// open wait by it (given with `max_wait_seconds`).
    pub backoff_multiplier: Option<f64>,
    /// [`BreakerConfig::backoff`]'s longest open wait, in seconds (given with
    /// `backoff_multiplier`).
    pub max_wait_seconds: Option<f64>,
}

impl BreakerOptions {
    /// Whether no option is set (the breaker is then made with the registry's defaults).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == BreakerOptions::default()
    }

    /// The configuration these options describe, over a breaker that opens after `failures` in
    /// a row and waits `wait` (the engine's `ACE_BREAKER_FAILURES` and `ACE_BREAKER_WAIT_SECONDS`).
    /// Bad seconds are an [`Error::InvalidInput`] naming the option; out-of-range values an
    /// [`Error::Config`], as from [`BreakerConfig::validate`].
    pub fn config(&self, failures: u32, wait: Duration) -> Result<BreakerConfig> {
        let mut b = BreakerConfig::builder()
            .wait_in_open(wait)
            .window(self.window.unwrap_or(Window::ConsecutiveFailures(self.failures.unwrap_or(failures))));
        if let Some(s) = self.wait_seconds {
            b = b.wait_in_open(seconds("wait_seconds", s)?);
        }
        if let Some(r) = self.failure_rate {
            b = b.failure_rate_threshold(r);
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        if let Some(s) = self.slow_call_seconds {
            b = b.slow_call_duration(seconds("slow_call_seconds", s)?);
        }
        if let Some(r) = self.slow_call_rate {
            b = b.slow_call_rate_threshold(r);
        }
        if let Some(n) = self.half_open_permits {
            b = b.half_open_permits(n);
        }
        if let Some(s) = self.max_half_open_seconds {
            b = b.max_wait_in_half_open(seconds("max_half_open_seconds", s)?);
        }
        if let Some(t) = self.threshold {
            b = b.threshold(t);
        }
        if let Some(h) = self.half_open_busy {
            b = b.half_open_busy(h);
        }
        if let Some(t) = self.tripping_call {
            b = b.tripping_call(t);
        }
        if let Some(v) = self.trial_verdict {
            b = b.trial_verdict(v);
        }
        if let Some(a) = self.automatic_half_open {
            b = b.automatic_half_open(a);
        }
        match (self.backoff_multiplier, self.max_wait_seconds) {
            (Some(m), Some(max)) => b = b.backoff(m, seconds("max_wait_seconds", max)?),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::invalid("max_wait_seconds", "give the longest open wait with backoff_multiplier"));
            }
            (None, Some(_)) => {
                return Err(Error::invalid("backoff_multiplier", "give the multiplier with max_wait_seconds"));
            }
        }
        b.build()
    }
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
    /// size as resilience4j does).
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
    /// How a rate meets its threshold (default `>=`, resilience4j).
    pub threshold: Threshold,
    /// What a call finds in half-open when every permit is taken (default rejected at once).
    pub half_open_busy: HalfOpenBusy,
    /// What a guarded call that opens the breaker returns (default its own error).
    pub tripping_call: TrippingCall,
    /// When a half-open trial that can no longer close the breaker ends (default after every
    /// permitted call).
    pub trial_verdict: TrialVerdict,
    /// Move from open to half-open as soon as the wait is over, seen by any read of the state
    /// (`state()`, a snapshot, a metrics scrape), not only by the next call: resilience4j's
    /// `automaticTransitionFromOpenToHalfOpenEnabled` (default false, as there).
    pub automatic_half_open: bool,
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
            .field("threshold", &self.threshold)
            .field("half_open_busy", &self.half_open_busy)
            .field("tripping_call", &self.tripping_call)
            .field("trial_verdict", &self.trial_verdict)
            .field("automatic_half_open", &self.automatic_half_open)
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
            threshold: Threshold::default(),
            half_open_busy: HalfOpenBusy::default(),
            tripping_call: TrippingCall::default(),
            trial_verdict: TrialVerdict::default(),
            automatic_half_open: false,
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
        if matches!(self.window, Window::Time(_)) && self.minimum_calls > MAX_WINDOW {
            return bad("minimum_calls", self.minimum_calls.to_string(), "must be at most 1048576");
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

    /// See [`BreakerConfig::threshold`].
    pub fn threshold(mut self, rule: Threshold) -> Self {
        self.0.threshold = rule;
        self
    }

    /// See [`BreakerConfig::half_open_busy`].
    pub fn half_open_busy(mut self, busy: HalfOpenBusy) -> Self {
        self.0.half_open_busy = busy;
        self
    }

    /// See [`BreakerConfig::tripping_call`].
    pub fn tripping_call(mut self, returns: TrippingCall) -> Self {
        self.0.tripping_call = returns;
        self
    }

    /// See [`BreakerConfig::trial_verdict`].
    pub fn trial_verdict(mut self, when: TrialVerdict) -> Self {
        self.0.trial_verdict = when;
        self
    }

    /// See [`BreakerConfig::automatic_half_open`].
    pub fn automatic_half_open(mut self, on: bool) -> Self {
        self.0.automatic_half_open = on;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<BreakerConfig> {
        self.0.validate()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_and_print_alike() {
        for (text, w) in [
            ("count:10", Window::Count(10)),
            ("time:30", Window::Time(30)),
            ("consecutive:5", Window::ConsecutiveFailures(5)),
            (" count : 7 ", Window::Count(7)),
        ] {
            assert_eq!(text.parse::<Window>().unwrap(), w);
            assert_eq!(w.to_string().parse::<Window>().unwrap(), w);
        }
        assert_eq!(Window::Time(30).to_string(), "time:30");
        for bad in ["sometimes:3", "count", "count:-1", "count:NaN", "time:1.5", "", ":3"] {
            let err = bad.parse::<Window>().unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "window", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn options_make_the_config_they_name() {
        let wait = Duration::from_secs(60);
        assert!(BreakerOptions::default().is_empty());
        let c = BreakerOptions::default().config(5, wait).unwrap();
        assert_eq!((c.window, c.wait_in_open), (Window::ConsecutiveFailures(5), wait));
        let c = BreakerOptions { failures: Some(2), wait_seconds: Some(1.5), ..Default::default() }
            .config(5, wait)
            .unwrap();
        assert_eq!((c.window, c.wait_in_open), (Window::ConsecutiveFailures(2), Duration::from_millis(1500)));
        let o = BreakerOptions {
            window: Some(Window::Count(20)),
            failure_rate: Some(30.0),
            minimum_calls: Some(4),
            slow_call_seconds: Some(2.0),
            slow_call_rate: Some(80.0),
            half_open_permits: Some(3),
            max_half_open_seconds: Some(10.0),
            ..Default::default()
        };
        assert!(!o.is_empty());
        let c = o.config(5, wait).unwrap();
        assert_eq!(c.window, Window::Count(20));
        assert_eq!((c.failure_rate_threshold, c.slow_call_rate_threshold), (30.0, 80.0));
        assert_eq!((c.minimum_calls, c.half_open_permits), (4, 3));
        assert_eq!(c.slow_call_duration, Some(Duration::from_secs(2)));
        assert_eq!(c.max_wait_in_half_open, Some(Duration::from_secs(10)));
        let c = BreakerOptions { backoff_multiplier: Some(2.0), max_wait_seconds: Some(300.0), ..Default::default() }
            .config(5, wait)
            .unwrap();
        assert_eq!(c.backoff, Some(Backoff { multiplier: 2.0, max_wait: Duration::from_secs(300) }));
        assert_eq!((c.wait(1), c.wait(2), c.wait(3), c.wait(9)), (wait, 2 * wait, 4 * wait, Duration::from_secs(300)));
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let wait = Duration::from_secs(60);
        for (o, field) in [
            (BreakerOptions { wait_seconds: Some(f64::NAN), ..Default::default() }, "wait_seconds"),
            (BreakerOptions { slow_call_seconds: Some(-1.0), ..Default::default() }, "slow_call_seconds"),
            (
                BreakerOptions { max_half_open_seconds: Some(f64::INFINITY), ..Default::default() },
                "max_half_open_seconds",
            ),
            (BreakerOptions { backoff_multiplier: Some(2.0), ..Default::default() }, "max_wait_seconds"),
            (BreakerOptions { max_wait_seconds: Some(60.0), ..Default::default() }, "backoff_multiplier"),
            (
                BreakerOptions {
                    backoff_multiplier: Some(2.0),
                    max_wait_seconds: Some(f64::NAN),
                    ..Default::default()
                },
                "max_wait_seconds",
            ),
        ] {
            let err = o.config(5, wait).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: f, .. } if f == field), "{err}");
        }
        for (o, key) in [
            (
                BreakerOptions { failure_rate: Some(150.0), window: Some(Window::Count(10)), ..Default::default() },
                "failure_rate_threshold",
            ),
            (BreakerOptions { failure_rate: Some(f64::NAN), ..Default::default() }, "failure_rate_threshold"),
            (BreakerOptions { failures: Some(0), ..Default::default() }, "window"),
            (BreakerOptions { half_open_permits: Some(0), ..Default::default() }, "half_open_permits"),
            (BreakerOptions { wait_seconds: Some(0.0), ..Default::default() }, "wait_in_open"),
            (
                BreakerOptions { backoff_multiplier: Some(0.5), max_wait_seconds: Some(600.0), ..Default::default() },
                "backoff",
            ),
            (
                BreakerOptions { backoff_multiplier: Some(2.0), max_wait_seconds: Some(1.0), ..Default::default() },
                "backoff",
            ),
        ] {
            let err = o.config(5, wait).unwrap_err();
            assert!(matches!(&err, Error::Config { key: k, .. } if k == key), "{err}");
        }
        assert_eq!(seconds("seconds", -0.5).unwrap_err().code(), "invalid_input");
    }
}
