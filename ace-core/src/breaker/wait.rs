//! Waiting for a half-open trial's verdict (cockatiel's half-open behaviour,
//! [`HalfOpenBusy::Wait`]): a call that finds every trial permit taken waits, blocking a thread
//! or as a future, until the trial ends or a permit is given back, then tries again.
//! `try_acquire` stays lock-free and never waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::state::permits;
use super::{CircuitBreaker, HalfOpenBusy, OwnedPermit, Permit, Rejected, State};

/// Calls waiting for a half-open verdict: threads on the condvar, futures by their wakers.
#[derive(Default)]
pub(super) struct Waiters {
    wakers: Mutex<Vec<Waker>>,
    threads: Condvar,
}

impl CircuitBreaker {
    /// Whether a waiter must keep waiting: half-open with every permit taken.
    fn busy(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        State::from_bits(word) == State::HalfOpen && permits(word) == 0
    }

    /// Wakes every waiter; called after the word changed (a verdict, or a permit given back).
    pub(super) fn wake_waiters(&self) {
        if self.cfg.half_open_busy != HalfOpenBusy::Wait {
            return;
        }
        let wakers = std::mem::take(&mut *self.waiters.wakers.lock());
        self.waiters.threads.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Leave to make one call. As [`CircuitBreaker::try_acquire`], except that with
    /// [`HalfOpenBusy::Wait`] a call finding every half-open permit taken blocks this thread
    /// until the trial's verdict (or a permit given back), then goes through if the breaker
    /// closed and is rejected if it opened again.
    #[inline]
    pub fn acquire_waiting(&self) -> Result<Permit<'_>, Rejected> {
        if self.cfg.half_open_busy != HalfOpenBusy::Wait {
            return self.try_acquire();
        }
        self.wait_blocking()
    }

    #[cold]
    fn wait_blocking(&self) -> Result<Permit<'_>, Rejected> {
        loop {
            match self.take(self.word.load(Ordering::Acquire)) {
                Ok(p) => return Ok(p),
                Err((State::HalfOpen, _)) => {
                    let mut guard = self.waiters.wakers.lock();
                    // Checked under the lock the wakers take after changing the word: no wake-up
                    // is lost. The longest half-open wait is checked again by the next take.
                    if self.busy() {
                        match self.cfg.max_wait_in_half_open {
                            Some(max) => {
                                self.waiters.threads.wait_for(&mut guard, max.min(Duration::from_secs(1)));
                            }
                            None => self.waiters.threads.wait(&mut guard),
                        }
                    }
                }
                Err((state, left)) => return Err(self.reject(state, left)),
            }
        }
    }

    /// [`CircuitBreaker::acquire_waiting`] as a future: with [`HalfOpenBusy::Wait`] it waits
    /// for the half-open verdict without blocking; otherwise it is ready at once.
    pub async fn acquire_async(&self) -> Result<Permit<'_>, Rejected> {
        if self.cfg.half_open_busy != HalfOpenBusy::Wait {
            return self.try_acquire();
        }
        loop {
            match self.take(self.word.load(Ordering::Acquire)) {
                Ok(p) => return Ok(p),
                Err((State::HalfOpen, _)) => Verdict { breaker: self }.await,
                Err((state, left)) => return Err(self.reject(state, left)),
            }
        }
    }
}

impl CircuitBreaker {
    /// One step of [`CircuitBreaker::acquire_async`] for a binding that runs its own event loop
    /// (Node): a permit, the rejection, or `Pending` with `cx`'s waker registered, woken when a
    /// busy half-open trial ends or gives a permit back (then call again). Only a breaker with
    /// [`HalfOpenBusy::Wait`] is ever pending. A waiter is not counted as not permitted.
    ///
    /// With a `max_wait_in_half_open`, a trial that never reports is moved to open only by the
    /// next acquire: the caller polls again after [`CircuitBreaker::recheck_after`].
    pub fn poll_acquire_owned(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Result<OwnedPermit, Rejected>> {
        if self.cfg.half_open_busy != HalfOpenBusy::Wait {
            return Poll::Ready(self.try_acquire_owned());
        }
        loop {
            match self.take(self.word.load(Ordering::Acquire)) {
                Ok(p) => return Poll::Ready(Ok(p.into_owned(self))),
                Err((State::HalfOpen, _)) => {
                    if Pin::new(&mut Verdict { breaker: self }).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Err((state, left)) => return Poll::Ready(Err(self.reject(state, left))),
            }
        }
    }

    /// How long a waiter of [`CircuitBreaker::poll_acquire_owned`] may go before polling again
    /// on its own: `None` (the wake-up comes) unless a `max_wait_in_half_open` can end the
    /// trial without one, then at most a second.
    #[must_use]
    pub fn recheck_after(&self) -> Option<Duration> {
        self.cfg.max_wait_in_half_open.map(|max| max.min(Duration::from_secs(1)))
    }
}

/// Ready once the breaker is no longer half-open with every permit taken.
struct Verdict<'a> {
    breaker: &'a CircuitBreaker,
}

impl Future for Verdict<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut wakers = self.breaker.waiters.wakers.lock();
        if !self.breaker.busy() {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
