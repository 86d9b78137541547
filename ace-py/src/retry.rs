//! `ace._ace.Retry`: the core's retry decisions (whether to retry, how long to wait, the counts)
//! for `ace.Retry`, whose sync and async decorators run the attempts and the waits in Python.

use std::sync::Arc;

use ace::breaker::config::seconds;
use ace::breaker::{Breakers, Retry, RetryConfig};
use ace::error::count;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{IntoPy, guard};
use crate::text::Text;

/// A retry policy with exponential backoff and jitter, and its counts.
#[pyclass(module = "ace._ace", name = "Retry", frozen, subclass)]
pub(crate) struct PyRetry {
    inner: Arc<Retry>,
    /// The engine's registry it belongs to (made with `engine=`): its counts are series there.
    registry: Option<Arc<Breakers>>,
}

#[pymethods]
impl PyRetry {
    /// `max_attempts` in all (the first included), waits of `wait_seconds` growing by
    /// `multiplier` up to `max_wait_seconds`, each spread by `jitter` (a fraction in [0, 1));
    /// a breaker's rejection is retried only with `retry_rejected`. With `engine`, the engine's
    /// retry `name` (made with these settings on first use), whose counts are its series.
    #[new]
    #[pyo3(signature = (name, *, max_attempts=None, wait_seconds=None, multiplier=None, max_wait_seconds=None, jitter=None, retry_rejected=None, engine=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Text,
        max_attempts: Option<f64>,
        wait_seconds: Option<f64>,
        multiplier: Option<f64>,
        max_wait_seconds: Option<f64>,
        jitter: Option<f64>,
        retry_rejected: Option<bool>,
        engine: Option<PyRef<'_, crate::engine::PyAce>>,
    ) -> PyResult<Self> {
        guard(py, || {
            let mut cfg = RetryConfig::default();
            if let Some(n) = max_attempts {
                cfg.max_attempts = count("max_attempts", n).py(py)?;
            }
            if let Some(s) = wait_seconds {
                cfg.wait = seconds("wait_seconds", s).py(py)?;
            }
            if let Some(m) = multiplier {
                cfg.multiplier = m;
            }
            if let Some(s) = max_wait_seconds {
                cfg.max_wait = seconds("max_wait_seconds", s).py(py)?;
            }
            if let Some(j) = jitter {
                cfg.jitter = j;
            }
            if let Some(r) = retry_rejected {
                cfg.retry_rejected = r;
            }
            match engine {
                None => Ok(PyRetry { inner: Arc::new(Retry::new(&name, cfg).py(py)?), registry: None }),
                Some(e) => {
                    let ace = e.handle()?;
                    ace.ensure_open().py(py)?;
                    let registry = ace.breakers().clone();
                    Ok(PyRetry { inner: registry.retry(&name, cfg).py(py)?, registry: Some(registry) })
                }
            }
        })
    }

    /// Its name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The wait before retry number `retry` (1 for the first), in seconds, jitter applied.
    fn wait(&self, py: Python<'_>, retry: f64) -> PyResult<f64> {
        Ok(self.inner.wait(count("retry", retry).py(py)?).as_secs_f64())
    }

    /// Attempt `attempt` failed: with an exception of class `kind` and text `message`, or, with
    /// `kind=None`, a breaker's rejection; `retryable=False` when the caller's own filter does not
    /// retry it. The seconds to wait before the next attempt, or `None` when the call is over.
    #[pyo3(signature = (kind, message, attempt, retryable=true))]
    fn after_failure(
        &self,
        py: Python<'_>,
        kind: Option<&str>,
        message: &str,
        attempt: f64,
        retryable: bool,
    ) -> PyResult<Option<f64>> {
        let attempt = count("attempt", attempt).py(py)?;
        if !retryable {
            self.inner.gave_up(attempt);
            return Ok(None);
        }
        Ok(self.inner.after_failure(kind.map(|k| (k, message)), attempt).map(|d| d.as_secs_f64()))
    }

    /// Attempt `attempt` succeeded.
    fn after_success(&self, py: Python<'_>, attempt: f64) -> PyResult<()> {
        self.inner.after_success(count("attempt", attempt).py(py)?);
        Ok(())
    }

    /// Counts an attempt that a policy's timeout cut short, as `ace_timeouts_total{name}` of its
    /// engine (nothing for a retry made without one).
    fn count_timeout(&self, py: Python<'_>) -> PyResult<()> {
        match &self.registry {
            Some(r) => r.count_timeout(self.inner.name()).py(py),
            None => Ok(()),
        }
    }

    /// What it has done: succeeded / failed, without / with retry, and the retries made.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.counts();
        let d = PyDict::new(py);
        d.set_item("succeeded_without_retry", c.succeeded_without_retry)?;
        d.set_item("succeeded_with_retry", c.succeeded_with_retry)?;
        d.set_item("failed_without_retry", c.failed_without_retry)?;
        d.set_item("failed_with_retry", c.failed_with_retry)?;
        d.set_item("retries", c.retries)?;
        Ok(d)
    }
}
