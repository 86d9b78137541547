//! Time, injectable.
//!
//! Every time-based rule in ace (batch timeouts aside, which are about real I/O) reads the engine's
//! [`Clock`]. Production uses [`SystemClock`]; tests and `ace replay` use a [`ManualClock`], so a
//! five-minute error window is tested by moving the clock, never by sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// From seconds since the Unix epoch (the trace format's `ts`). Non-finite input gives `None`.
    #[must_use]
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        let micros = secs * 1e6;
        if !(micros.is_finite() && micros.abs() < i64::MAX as f64) {
            return None;
        }
        // `micros.round()`, half away from zero, without the call to libm's `round` (a trace
        // replay converts every event's time): the cast truncates, and the part cut off is exact
        // (an integer and the value it was cut from are within a factor of two of each other).
        let whole = micros as i64;
        let cut = micros - whole as f64;
        Some(Timestamp(if cut >= 0.5 {
            whole + 1
        } else if cut <= -0.5 {
            whole - 1
        } else {
            whole
        }))
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// This time plus `d` (saturating).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// This time minus `d` (saturating).
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    #[must_use]
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with milliseconds (`2026-11-22T10:40:00.123Z`).
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let millis = self.0.rem_euclid(1_000_000) / 1000;
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.as_secs_f64())
    }
}

/// A source of time for the engine.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock: the wall time when the process first read it, plus the monotonic time
/// since. It never goes backwards and costs a monotonic read (24 ns here, against 39 ns for a
/// wall-clock read and conversion); a wall-clock step made while the process runs (an NTP
/// jump) is not followed, so timestamps may drift from the wall clock by what such steps add up
/// to.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The wall time (micros since the epoch) and the monotonic instant it was read at.
fn anchor() -> &'static (i64, Instant) {
    static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 1_000_000).min(i64::MAX / 2_000_000);
        (secs * 1_000_000 + i64::from(since.subsec_micros()), Instant::now())
    })
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Timestamp {
        let (wall, at) = anchor();
        let elapsed = at.elapsed();
        // Seconds and sub-second micros separately: `as_micros` goes through u128 arithmetic.
        let secs = i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX / 2_000_000).min(i64::MAX / 2_000_000);
        Timestamp(wall + secs * 1_000_000 + i64::from(elapsed.subsec_micros()))
    }
}

/// A coarse system clock: [`SystemClock`]'s time read by a background thread once a
/// millisecond, and by the engine from memory (an atomic load, against a monotonic read of
/// 20-60 ns). For engines whose calls must cost the least and whose rules need no finer
/// time: timestamps have millisecond resolution (calls within the same tick share one) and lag
/// the true time by up to a tick, more when the machine is so loaded that the thread is late.
/// Windows, cooldowns and staleness are counted in seconds, so they are unaffected; a stage's
/// duration is the caller's figure, never derived from timestamps.
///
/// The thread is started by the first `CoarseClock::new` and runs for the life of the process
/// (all coarse clocks share it).
#[derive(Clone, Copy, Debug)]
pub struct CoarseClock(&'static AtomicI64);

/// How often the coarse clock's thread reads the system clock.
pub const COARSE_TICK: Duration = Duration::from_millis(1);

impl CoarseClock {
    /// The coarse clock, its thread started if it was not.
    #[must_use]
    pub fn new() -> Self {
        static NOW: OnceLock<&'static AtomicI64> = OnceLock::new();
        CoarseClock(NOW.get_or_init(|| {
            let now: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(SystemClock.now().0)));
            let ticking = std::thread::Builder::new().name("ace-clock".into()).spawn(move || {
                loop {
                    std::thread::sleep(COARSE_TICK);
                    now.fetch_max(SystemClock.now().0, Ordering::Relaxed);
                }
            });
            if let Err(e) = ticking {
                // No thread, no ticks: the clock would stand still. Said loudly; `now` then
                // reads the system clock itself (see `Clock for CoarseClock`).
                tracing::error!(error = %e, "the coarse clock's thread did not start; reading the system clock");
                now.store(i64::MIN, Ordering::Relaxed);
            }
            now
        }))
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Timestamp {
        match self.0.load(Ordering::Relaxed) {
            i64::MIN => SystemClock.now(),
            t => Timestamp(t),
        }
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use ace_core::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_micros(1_000_000));
/// clock.advance(Duration::from_secs(300));
/// assert_eq!(clock.now().as_secs_f64(), 301.0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A manual clock showing `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Sets the time. Moving backwards is allowed (replay of out-of-order traces needs it).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::Relaxed);
    }

    /// Moves the time forward to `t`; a clock already past `t` stays where it is (several
    /// threads driving one clock never move it backwards).
    pub fn advance_to(&self, t: Timestamp) {
        self.0.fetch_max(t.0, Ordering::Relaxed);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The bindings' manual clock, in seconds since the Unix epoch: each value is checked once
/// here, so Python and Node reject the same input with the same `InvalidInput` error.
impl ManualClock {
    /// A manual clock showing `seconds` since the epoch (a finite number >= 0).
    pub fn from_secs(seconds: f64) -> crate::Result<Self> {
        Ok(ManualClock::new(checked_time("start", seconds)?))
    }

    /// Sets the time to `seconds` since the epoch (a finite number >= 0; earlier is allowed).
    pub fn set_secs(&self, seconds: f64) -> crate::Result<()> {
        self.set(checked_time("seconds", seconds)?);
        Ok(())
    }

    /// Moves the time forward by `seconds` (a finite number >= 0).
    pub fn advance_secs(&self, seconds: f64) -> crate::Result<()> {
        let d = Duration::try_from_secs_f64(seconds)
            .map_err(|_| crate::Error::invalid("seconds", "expected a finite number of seconds >= 0"))?;
        self.advance(d);
        Ok(())
    }
}

fn checked_time(field: &'static str, seconds: f64) -> crate::Result<Timestamp> {
    Timestamp::from_secs_f64(seconds)
        .filter(|t| t.0 >= 0)
        .ok_or_else(|| crate::Error::invalid(field, "expected a finite number of seconds since the epoch, >= 0"))
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_to_the_nearest_microsecond_as_round_does() {
        let rounded = |secs: f64| {
            let micros = (secs * 1e6).round();
            (micros.is_finite() && micros.abs() < i64::MAX as f64).then_some(Timestamp(micros as i64))
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = vec![
            0.0,
            -0.0,
            0.5e-6,
            -0.5e-6,
            2.5e-6,
            -2.5e-6,
            f64::from_bits(0.5f64.to_bits() - 1) / 1e6,
            1700000000.0000005,
        ];
        values.extend([f64::NAN, f64::INFINITY, -f64::INFINITY, 9.2e12, -9.2e12, 9.3e12, 4_503_599_627.370_496]);
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Any bit pattern (every sign, magnitude, NaN), and times of the trace's kind.
            values.push(f64::from_bits(x));
            values.push((x % 4_000_000_000_000_000) as f64 / 1e6 + (x >> 60) as f64 * 0.25e-6);
            values.push(-((x % 1_000_000_000) as f64) / 7.0);
        }
        for v in values {
            assert_eq!(Timestamp::from_secs_f64(v), rounded(v), "{v:e}");
        }
    }

    #[test]
    fn rfc3339_is_utc_with_millis() {
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_micros(1_700_000_000_123_456).to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp::from_micros(951_782_400_000_000).to_rfc3339(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Timestamp::from_micros(-1_000_000).to_rfc3339(), "1969-12-31T23:59:59.000Z");
    }

    #[test]
    fn timestamps_round_trip_seconds() {
        let t = Timestamp::from_secs_f64(1_700_000_000.123_456).unwrap();
        assert_eq!(t.as_micros(), 1_700_000_000_123_456);
        assert!(Timestamp::from_secs_f64(f64::NAN).is_none());
        assert!(Timestamp::from_secs_f64(f64::INFINITY).is_none());
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
    }

    #[test]
    fn the_coarse_clock_follows_the_system_clock_by_the_millisecond() {
        let coarse = CoarseClock::new();
        let (a, b) = (coarse.now(), SystemClock.now());
        assert!(a <= b, "{a} after {b}");
        // It ticks: within a second (a loaded machine delays the thread) it has moved on.
        let start = Instant::now();
        while coarse.now() <= b {
            assert!(start.elapsed() < Duration::from_secs(5), "the coarse clock stands still");
            std::thread::yield_now();
        }
        assert!(SystemClock.now().since(coarse.now()) < Duration::from_secs(1));
    }

    #[test]
    fn the_bindings_manual_clock_takes_checked_seconds() {
        let c = ManualClock::from_secs(100.0).unwrap();
        c.advance_secs(2.5).unwrap();
        assert_eq!(c.now().as_secs_f64(), 102.5);
        c.set_secs(50.0).unwrap();
        assert_eq!(c.now().as_secs_f64(), 50.0);
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(matches!(ManualClock::from_secs(bad), Err(crate::Error::InvalidInput { field: "start", .. })));
            assert!(matches!(c.set_secs(bad), Err(crate::Error::InvalidInput { field: "seconds", .. })));
            assert!(matches!(c.advance_secs(bad), Err(crate::Error::InvalidInput { field: "seconds", .. })));
        }
        assert_eq!(c.now().as_secs_f64(), 50.0, "bad input moves nothing");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_secs_f64() > 1_577_836_800.0);
    }
}
