//! `ace._ace.ManualClock`: the core's manual clock, for testing breaker settings without
//! sleeping. An engine built with `clock=` reads it for every time-based rule (a breaker's open
//! wait, time window and half-open limit included); the seconds are checked by the core.

use ace::{Clock, ManualClock};
use pyo3::prelude::*;

use crate::errors::IntoPy;

/// A clock that moves only when told to, in seconds since the Unix epoch.
#[pyclass(module = "ace._ace", name = "ManualClock", frozen)]
pub(crate) struct PyManualClock {
    pub(crate) inner: ManualClock,
}

#[pymethods]
impl PyManualClock {
    /// A clock showing `start` seconds since the epoch (a finite number >= 0; default 0).
    #[new]
    #[pyo3(signature = (start=0.0))]
    fn new(py: Python<'_>, start: f64) -> PyResult<Self> {
        Ok(PyManualClock { inner: ManualClock::from_secs(start).py(py)? })
    }

    /// Moves the time forward by `seconds` (>= 0).
    fn advance(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        self.inner.advance_secs(seconds).py(py)
    }

    /// Sets the time to `seconds` since the epoch (earlier than now is allowed).
    fn set(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        self.inner.set_secs(seconds).py(py)
    }

    /// The time shown, in seconds since the epoch.
    fn now(&self) -> f64 {
        self.inner.now().as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!("ace.ManualClock({})", self.inner.now().as_secs_f64())
    }
}
