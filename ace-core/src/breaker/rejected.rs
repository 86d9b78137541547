//! The errors a guarded call returns (a breaker's rejection, or the call's own failure), apart
//! from the breaker so that hosts and the engine can name them without its internals.

use std::sync::Arc;
use std::time::Duration;

use super::State;

/// A call the breaker did not let through.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rejected {
    /// The breaker.
    pub breaker: Arc<str>,
    /// Its state (`open`, `half_open` with no permit left, or `forced_open`).
    pub state: State,
    /// How long until it lets a trial through, when known.
    pub retry_after: Option<Duration>,
    /// What the agent should do, when the rejection came through `Ace::acquire`.
    pub intervention: Option<Box<crate::Intervention>>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "circuit breaker '{}' is {}", self.breaker, self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {:.3} s)", d.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

impl From<Rejected> for crate::Error {
    fn from(r: Rejected) -> Self {
        crate::Error::CircuitOpen { breaker: r.breaker.to_string(), retry_after: r.retry_after }
    }
}

/// Why a guarded call did not return its value.
#[derive(Debug, PartialEq)]
pub enum CallError<E> {
    /// The breaker did not let it through.
    Rejected(Rejected),
    /// It ran and failed with its own error.
    Failed(E),
    /// It ran and its error opened the breaker, which says so instead of the error
    /// (`tripping_call = breaker_error`, pybreaker's default).
    Tripped {
        /// The breaker, now open.
        rejected: Rejected,
        /// The call's own error.
        error: E,
    },
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
            CallError::Tripped { rejected, error } => write!(f, "{rejected}, opened by: {error}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for CallError<E> {}
