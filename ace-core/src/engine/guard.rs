//! Guarded calls: breakers from the engine's registry, and what a rejection tells the agent.

use std::sync::Arc;

use super::Ace;
use crate::breaker::limit::{Bulkhead, RateLimiter};
use crate::breaker::{Breakers, CircuitBreaker, OwnedPermit, Permit, Rejected};
use crate::error::{Error, Result};
use crate::event::{Severity, validate_id};
use crate::signal::{Evidence, Signal, SignalKind};

impl Ace {
    /// The engine's named circuit breakers, rate limiters and bulkheads (see [`crate::breaker`]).
    #[must_use]
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.shared().breakers
    }

    /// The circuit breaker named `name`, made with the registry's default configuration on
    /// first use: `ACE_BREAKER_FAILURES` (5) failures in a row open it for
    /// `ACE_BREAKER_WAIT_SECONDS` (60 s), then one trial call decides.
    /// [`Error::Closed`] once the engine is closed.
    pub fn breaker(&self, name: &str) -> Result<Arc<CircuitBreaker>> {
        self.ensure_open()?;
        self.shared().breakers.get(name)
    }

    /// The rate limiter named `name` of the engine's registry, made with `per_second` and
    /// `burst` on first use; [`Error::Closed`] once the engine is closed.
    pub fn rate_limiter(&self, name: &str, per_second: f64, burst: u32) -> Result<Arc<RateLimiter>> {
        self.ensure_open()?;
        self.shared().breakers.rate_limiter(name, per_second, burst)
    }

    /// The bulkhead named `name` of the engine's registry, letting `max_concurrent` calls run at
    /// once, made on first use; [`Error::Closed`] once the engine is closed.
    pub fn bulkhead(&self, name: &str, max_concurrent: u32) -> Result<Arc<Bulkhead>> {
        self.ensure_open()?;
        self.shared().breakers.bulkhead(name, max_concurrent)
    }

    /// [`Error::Closed`] once the engine is closed: breakers, limiters and bulkheads are not
    /// handed out by a closed engine.
    pub fn ensure_open(&self) -> Result<()> {
        if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    /// Leave for `agent`'s call in `task` through `breaker`. A rejection raises a
    /// `breaker_open` signal for the task and carries the intervention it warrants (by rule,
    /// `backoff`; once per breaker and task, within the task's gates) in
    /// [`Rejected::intervention`].
    ///
    /// ```
    /// use ace_core::{Ace, Strategy};
    ///
    /// let ace = Ace::builder().build()?;
    /// let llm = ace.breaker("llm")?;
    /// for _ in 0..5 {
    ///     ace.acquire("agent-1", "task-1", &llm).unwrap().failure();
    /// }
    /// let rejected = ace.acquire("agent-1", "task-1", &llm).unwrap_err();
    /// assert_eq!(rejected.intervention.unwrap().strategy, Strategy::Backoff);
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn acquire<'b>(
        &self,
        agent: &str,
        task: &str,
        breaker: &'b CircuitBreaker,
    ) -> std::result::Result<Permit<'b>, Rejected> {
        match breaker.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(rejected) => Err(self.breaker_rejected(agent, task, rejected)),
        }
    }

    #[cold]
    /// [`Ace::acquire`] for a permit that owns a handle on its breaker (see
    /// [`crate::breaker::OwnedPermit`]).
    pub fn acquire_owned(
        &self,
        agent: &str,
        task: &str,
        breaker: &Arc<CircuitBreaker>,
    ) -> std::result::Result<OwnedPermit, Rejected> {
        match breaker.try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(rejected) => Err(self.breaker_rejected(agent, task, rejected)),
        }
    }

    fn breaker_rejected(&self, agent: &str, task: &str, mut rejected: Rejected) -> Rejected {
        if self.is_closed() || validate_id("agent", agent).is_err() || validate_id("task", task).is_err() {
            return rejected;
        }
        let shared = self.shared();
        let now = shared.clock.now();
        let retry = rejected.retry_after.map(|d| format!(", retry after {:.1} s", d.as_secs_f64())).unwrap_or_default();
        let signal = Signal {
            kind: SignalKind::BreakerOpen,
            severity: Severity::High,
            at: now,
            agent: Arc::from(agent),
            task: Some(Arc::from(task)),
            stage: None,
            message: format!(
                "{agent}: circuit breaker '{}' is {} and turned the call away{retry}",
                rejected.breaker, rejected.state
            ),
            evidence: Evidence::Breaker {
                breaker: rejected.breaker.to_string(),
                state: rejected.state.as_str().to_owned(),
                retry_after_s: rejected.retry_after.map(|d| d.as_secs_f64()),
            },
        };
        self.saw(std::slice::from_ref(&signal));
        rejected.intervention = self.decide(now, agent, task, std::slice::from_ref(&signal));
        rejected
    }
}
