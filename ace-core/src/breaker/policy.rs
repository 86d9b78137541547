//! Resilience policies composed in one fixed order, resilience4j's decorators and cockatiel's
//! `wrap`: fallback ( retry ( breaker ( timeout ( the call ) ) ) ). The retry sees each attempt's
//! outcome after the breaker judged it, so a breaker that opens stops the retries (its rejection
//! is not retried unless the retry says so); a timed-out attempt counts as a failure for the
//! breaker; the fallback sees only what is left after every attempt.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::retry::{Retry, Retryable, Sleep};
use super::{CallError, CircuitBreaker, Rejected};

/// Why a call through a [`Policy`] did not return its value.
#[derive(Debug, PartialEq)]
pub enum PolicyError<E> {
    /// A breaker turned it away.
    Rejected(Rejected),
    /// It failed with its own error.
    Failed(E),
    /// Its error opened the breaker, which says so (`tripping_call = breaker_error`).
    Tripped {
        /// The breaker, now open.
        rejected: Rejected,
        /// The call's own error.
        error: E,
    },
    /// It took longer than the policy's timeout (it was dropped).
    TimedOut(Duration),
}

impl<E: std::fmt::Display> std::fmt::Display for PolicyError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Rejected(r) => r.fmt(f),
            PolicyError::Failed(e) => e.fmt(f),
            PolicyError::Tripped { rejected, error } => write!(f, "{rejected}, opened by: {error}"),
            PolicyError::TimedOut(d) => write!(f, "timed out after {:.3} s", d.as_secs_f64()),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for PolicyError<E> {}

impl<E: std::fmt::Display> Retryable for PolicyError<E> {
    fn describe(&self) -> Option<(String, String)> {
        match self {
            PolicyError::Rejected(_) | PolicyError::Tripped { .. } => None,
            PolicyError::Failed(e) => {
                Some((std::any::type_name::<E>().rsplit("::").next().unwrap_or_default().to_owned(), e.to_string()))
            }
            PolicyError::TimedOut(_) => Some(("TimedOut".to_owned(), self.to_string())),
        }
    }
}

impl<E> From<CallError<PolicyError<E>>> for PolicyError<E> {
    fn from(e: CallError<PolicyError<E>>) -> Self {
        match e {
            CallError::Rejected(r) => PolicyError::Rejected(r),
            CallError::Failed(inner) => inner,
            CallError::Tripped { rejected, error: PolicyError::Failed(error) } => {
                PolicyError::Tripped { rejected, error }
            }
            CallError::Tripped { rejected, .. } => PolicyError::Rejected(rejected),
        }
    }
}

/// The time ran out before the future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `fut` until it finishes or `sleep` (the host's timer for the limit) does first; a
/// future that loses is dropped.
pub async fn timeout<F: Future, S: Future<Output = ()>>(sleep: S, fut: F) -> Result<F::Output, Elapsed> {
    let (mut fut, mut sleep) = (pin!(fut), pin!(sleep));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// Retry, breaker and timeout around a call, each optional, always in the same order. Build one
/// with [`Policy::builder`]; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    retry: Option<Arc<Retry>>,
    breaker: Option<Arc<CircuitBreaker>>,
    timeout: Option<Duration>,
}

/// Builds a [`Policy`]; the order the parts are given in does not matter.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PolicyBuilder(Policy);

impl PolicyBuilder {
    /// Retries (outermost but the fallback).
    pub fn retry(mut self, retry: Arc<Retry>) -> Self {
        self.0.retry = Some(retry);
        self
    }

    /// A breaker judging each attempt.
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.0.breaker = Some(breaker);
        self
    }

    /// The longest one attempt may take ([`Policy::call_async`] only: a blocking call cannot be
    /// interrupted, and [`Policy::call`] ignores it).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.0.timeout = Some(d);
        self
    }

    /// The policy.
    pub fn build(self) -> Policy {
        self.0
    }
}

impl Policy {
    /// A builder with no parts (a policy that only calls).
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Calls `f` through the breaker, retrying as the retry says (waiting on `sleep`).
    pub fn call<T, E: std::fmt::Display>(
        &self,
        sleep: &dyn Sleep,
        mut f: impl FnMut() -> Result<T, E>,
    ) -> Result<T, PolicyError<E>> {
        let mut attempt = || match &self.breaker {
            Some(b) => b.call(|| f().map_err(PolicyError::Failed)).map_err(PolicyError::from),
            None => f().map_err(PolicyError::Failed),
        };
        match &self.retry {
            Some(r) => r.call(sleep, attempt),
            None => attempt(),
        }
    }

    /// [`Policy::call`], and when it fails, `fallback(error)` decides what to return instead
    /// (a cached answer, a default; or the error again).
    pub fn call_or_else<T, E: std::fmt::Display>(
        &self,
        sleep: &dyn Sleep,
        f: impl FnMut() -> Result<T, E>,
        fallback: impl FnOnce(PolicyError<E>) -> Result<T, PolicyError<E>>,
    ) -> Result<T, PolicyError<E>> {
        self.call(sleep, f).or_else(fallback)
    }

    /// Awaits `f()` through the timeout and the breaker, retrying as the retry says; `sleep(d)`
    /// is the host's timer, for the timeout and the retry's waits.
    pub async fn call_async<T, E: std::fmt::Display, F, S>(
        &self,
        sleep: impl Fn(Duration) -> S,
        mut f: impl FnMut() -> F,
    ) -> Result<T, PolicyError<E>>
    where
        F: Future<Output = Result<T, E>>,
        S: Future<Output = ()>,
    {
        let sleep = &sleep;
        let mut attempt = || {
            let fut = f();
            async move {
                let limited = async {
                    match self.timeout {
                        Some(d) => match timeout(sleep(d), fut).await {
                            Ok(r) => r.map_err(PolicyError::Failed),
                            Err(Elapsed) => Err(PolicyError::TimedOut(d)),
                        },
                        None => fut.await.map_err(PolicyError::Failed),
                    }
                };
                match &self.breaker {
                    Some(b) => b.call_async(limited).await.map_err(PolicyError::from),
                    None => limited.await,
                }
            }
        };
        match &self.retry {
            Some(r) => r.call_async(sleep, attempt).await,
            None => attempt().await,
        }
    }

    /// [`Policy::call_async`] with a fallback, as [`Policy::call_or_else`].
    pub async fn call_async_or_else<T, E: std::fmt::Display, F, S>(
        &self,
        sleep: impl Fn(Duration) -> S,
        f: impl FnMut() -> F,
        fallback: impl FnOnce(PolicyError<E>) -> Result<T, PolicyError<E>>,
    ) -> Result<T, PolicyError<E>>
    where
        F: Future<Output = Result<T, E>>,
        S: Future<Output = ()>,
    {
        self.call_async(sleep, f).await.or_else(fallback)
    }
}
