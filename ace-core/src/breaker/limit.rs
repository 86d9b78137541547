//! Rate limits (a token bucket) and concurrency limits (a bulkhead), alone or with a breaker.
//!
//! The seeds' LLM calls run at 60 per minute with bursts of 10:
//! `breakers.rate_limiter("llm", 1.0, 10)`. Both have a non-waiting `try_*` and an async wait
//! that is cancelled by dropping its future (a rate-limit reservation is then given back). The
//! async waits need no runtime: a rate wait sleeps on a short-lived timer thread, a bulkhead
//! wait is woken by the permit released before it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use super::registry::Sink;
use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result};

/// A call a limiter turned away.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limited {
    /// The limiter.
    pub name: Arc<str>,
    /// When a token will be there (rate limiters).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "limiter '{}' is at its limit", self.name)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {:.3} s)", d.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Limited {}

struct Bucket {
    /// Tokens now; below zero when waiters have reserved tokens not yet refilled.
    tokens: f64,
    at: Timestamp,
}

/// A token bucket: `per_second` tokens refill continuously up to `burst`.
pub struct RateLimiter {
    name: Arc<str>,
    per_second: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    bucket: Mutex<Bucket>,
    rejected: AtomicU64,
    sink: Arc<Sink>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter of `per_second` tokens a second (finite, > 0) and bursts of `burst` (>= 1),
    /// starting full.
    pub fn new(name: &str, per_second: f64, burst: u32, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::with_sink(name, per_second, burst, clock, Arc::default())
    }

    pub(crate) fn with_sink(
        name: &str,
        per_second: f64,
        burst: u32,
        clock: Arc<dyn Clock>,
        sink: Arc<Sink>,
    ) -> Result<Self> {
        crate::event::validate_id("limiter", name)?;
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(Error::config("per_second", &per_second.to_string(), "must be a finite number above 0"));
        }
        if burst == 0 {
            return Err(Error::config("burst", "0", "must be at least 1"));
        }
        let now = clock.now();
        Ok(RateLimiter {
            name: Arc::from(name),
            per_second,
            burst: f64::from(burst),
            clock,
            bucket: Mutex::new(Bucket { tokens: f64::from(burst), at: now }),
            rejected: AtomicU64::new(0),
            sink,
        })
    }

    /// The limiter's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls turned away by [`RateLimiter::try_acquire`].
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn refill(&self, b: &mut Bucket) {
        let now = self.clock.now();
        let elapsed = now.since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
    }

    /// Takes a token now, or says when one will be there. Never waits.
    pub fn try_acquire(&self) -> std::result::Result<(), Limited> {
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = wait_for(1.0 - b.tokens, self.per_second);
        drop(b);
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.sink.emit_limited(&self.name);
        Err(Limited { name: self.name.clone(), retry_after: Some(wait) })
    }

    /// Waits for a token. The token is reserved at the first poll; dropping the future before
    /// it is ready gives the reservation back.
    pub fn acquire(self: &Arc<Self>) -> Acquire {
        Acquire { limiter: self.clone(), state: None }
    }

    /// Reserves a token and returns how long until it is there.
    fn reserve(&self) -> Duration {
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 { Duration::ZERO } else { wait_for(-b.tokens, self.per_second) }
    }

    fn unreserve(&self) {
        let mut b = self.bucket.lock();
        b.tokens = (b.tokens + 1.0).min(self.burst);
    }
}

/// The longest wait a limiter names: about a century. A tiny rate (`1e-300` a second) would
/// otherwise ask for a wait no `Duration` holds, and a deadline no clock can add.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How long until `tokens` more are there at `per_second`, at most [`MAX_WAIT`].
fn wait_for(tokens: f64, per_second: f64) -> Duration {
    Duration::try_from_secs_f64(tokens / per_second).map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
}

/// The future of [`RateLimiter::acquire`].
pub struct Acquire {
    limiter: Arc<RateLimiter>,
    state: Option<Arc<Timer>>,
}

struct Timer {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Future for Acquire {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timer) = &self.state {
            if timer.fired.load(Ordering::Acquire) {
                self.state = None;
                return Poll::Ready(());
            }
            *timer.waker.lock() = Some(cx.waker().clone());
            // Fired between the check and storing the waker.
            if timer.fired.load(Ordering::Acquire) {
                self.state = None;
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        let wait = self.limiter.reserve();
        if wait.is_zero() {
            return Poll::Ready(());
        }
        let timer = Arc::new(Timer { fired: AtomicBool::new(false), waker: Mutex::new(Some(cx.waker().clone())) });
        let t = timer.clone();
        let spawned = std::thread::Builder::new().name("ace-rate-wait".into()).spawn(move || {
            std::thread::sleep(wait);
            t.fired.store(true, Ordering::Release);
            if let Some(w) = t.waker.lock().take() {
                w.wake();
            }
        });
        if spawned.is_err() {
            // No thread to wait with: the reservation stands and the caller goes now.
            return Poll::Ready(());
        }
        self.state = Some(timer);
        Poll::Pending
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(timer) = &self.state
            && !timer.fired.load(Ordering::Acquire)
        {
            self.limiter.unreserve();
        }
    }
}

/// A concurrency limit: at most `max_concurrent` calls run at once.
pub struct Bulkhead {
    name: Arc<str>,
    max: u32,
    in_flight: AtomicU32,
    rejected: AtomicU64,
    waiters: Mutex<VecDeque<Waker>>,
    sink: Arc<Sink>,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead").field("name", &self.name).field("max", &self.max).finish_non_exhaustive()
    }
}

/// A place in a bulkhead, freed when dropped.
#[must_use = "the place is freed when the permit is dropped"]
pub struct BulkheadPermit {
    bulkhead: Arc<Bulkhead>,
}

impl std::fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadPermit").field("bulkhead", &self.bulkhead.name).finish()
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.bulkhead.in_flight.fetch_sub(1, Ordering::AcqRel);
        // Wake every waiter: one takes the place, the others wait again (no wake-up is lost
        // when a woken waiter has been dropped meanwhile).
        let waiters: Vec<Waker> = self.bulkhead.waiters.lock().drain(..).collect();
        waiters.into_iter().for_each(Waker::wake);
    }
}

impl Bulkhead {
    /// A bulkhead letting `max_concurrent` (>= 1) calls run at once.
    pub fn new(name: &str, max_concurrent: u32) -> Result<Self> {
        Self::with_sink(name, max_concurrent, Arc::default())
    }

    pub(crate) fn with_sink(name: &str, max_concurrent: u32, sink: Arc<Sink>) -> Result<Self> {
        crate::event::validate_id("bulkhead", name)?;
        if max_concurrent == 0 {
            return Err(Error::config("max_concurrent", "0", "must be at least 1"));
        }
        Ok(Bulkhead {
            name: Arc::from(name),
            max: max_concurrent,
            in_flight: AtomicU32::new(0),
            rejected: AtomicU64::new(0),
            waiters: Mutex::new(VecDeque::new()),
            sink,
        })
    }

    /// The bulkhead's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls running now.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Calls turned away by [`Bulkhead::try_enter`].
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn take(self: &Arc<Self>) -> Option<BulkheadPermit> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| BulkheadPermit { bulkhead: self.clone() })
    }

    /// A place now, or why not. Never waits.
    pub fn try_enter(self: &Arc<Self>) -> std::result::Result<BulkheadPermit, Limited> {
        self.take().ok_or_else(|| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            self.sink.emit_limited(&self.name);
            Limited { name: self.name.clone(), retry_after: None }
        })
    }

    /// Waits for a place; dropping the future gives up waiting.
    pub fn enter(self: &Arc<Self>) -> Enter {
        Enter { bulkhead: self.clone() }
    }
}

/// The future of [`Bulkhead::enter`].
pub struct Enter {
    bulkhead: Arc<Bulkhead>,
}

impl Future for Enter {
    type Output = BulkheadPermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BulkheadPermit> {
        if let Some(p) = self.bulkhead.take() {
            return Poll::Ready(p);
        }
        self.bulkhead.waiters.lock().push_back(cx.waker().clone());
        // A place freed between the attempt and the registration.
        match self.bulkhead.take() {
            Some(p) => Poll::Ready(p),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};

    #[test]
    fn a_tiny_rate_names_a_long_wait_instead_of_panicking() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(0)));
        for rate in [1e-300, f64::MIN_POSITIVE, 1e-12] {
            let limiter = RateLimiter::new("tiny", rate, 1, clock.clone()).unwrap();
            limiter.try_acquire().unwrap();
            let limited = limiter.try_acquire().unwrap_err();
            let wait = limited.retry_after.unwrap();
            assert!(wait > Duration::from_secs(86_400) && wait <= MAX_WAIT, "{rate}: {wait:?}");
            // A reservation's deadline can be added to the clock's time.
            let reserved = limiter.reserve();
            assert!(reserved <= MAX_WAIT);
            assert!(std::time::Instant::now().checked_add(reserved).is_some());
        }
    }
}
