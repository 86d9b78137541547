//! Rate limiters and bulkheads (`ace.RateLimiter`, `ace.Bulkhead` wrap these; the waiting
//! variants are written in Python on top of the non-waiting calls here).

use std::sync::Arc;

use ace::breaker::limit::{Bulkhead, BulkheadPermit, Limited, RateLimiter};
use ace::error::count;
use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::engine::PyAce;
use crate::errors::{IntoPy, exception, guard};
use crate::text::Text;

fn limited(py: Python<'_>, l: &Limited) -> PyErr {
    let mut details: Vec<(&str, Py<PyAny>)> =
        vec![("limiter", pyo3::types::PyString::new(py, &l.name).into_any().unbind())];
    if let Some(d) = l.retry_after
        && let Ok(v) = d.as_secs_f64().into_pyobject(py)
    {
        details.push(("retry_after", v.into_any().unbind()));
    }
    exception(py, "LimitedError", &l.to_string(), &details)
}

/// A token bucket of the engine's registry.
#[pyclass(module = "ace._ace", name = "RateLimiter", frozen)]
pub(crate) struct PyRateLimiter {
    inner: Arc<RateLimiter>,
}

#[pymethods]
impl PyRateLimiter {
    /// The limiter `name` of `engine`: `per_second` tokens a second, at most `burst` at once
    /// (an existing limiter keeps its own settings).
    #[new]
    fn new(py: Python<'_>, engine: Py<PyAce>, name: Text, per_second: f64, burst: f64) -> PyResult<Self> {
        guard(py, || {
            let ace = engine.get().handle()?;
            let burst = count("burst", burst).py(py)?;
            let inner = ace.rate_limiter(&name, per_second, burst).py(py)?;
            Ok(PyRateLimiter { inner })
        })
    }

    /// Takes a token now, or raises `LimitedError` with `retry_after` (seconds). Never waits.
    fn try_acquire(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.try_acquire().map_err(|l| limited(py, &l))
    }

    /// The limiter's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Calls turned away so far.
    #[getter]
    fn rejected(&self) -> u64 {
        self.inner.rejected()
    }
}

/// A concurrency limit of the engine's registry.
#[pyclass(module = "ace._ace", name = "Bulkhead", frozen)]
pub(crate) struct PyBulkhead {
    inner: Arc<Bulkhead>,
}

#[pymethods]
impl PyBulkhead {
    /// The bulkhead `name` of `engine`, letting `max_concurrent` calls run at once.
    #[new]
    fn new(py: Python<'_>, engine: Py<PyAce>, name: Text, max_concurrent: f64) -> PyResult<Self> {
        guard(py, || {
            let ace = engine.get().handle()?;
            let max_concurrent = count("max_concurrent", max_concurrent).py(py)?;
            let inner = ace.bulkhead(&name, max_concurrent).py(py)?;
            Ok(PyBulkhead { inner })
        })
    }

    /// A place now (a `BulkheadPermit`: release it, or use it with `with`), or `LimitedError`.
    fn try_enter(&self, py: Python<'_>) -> PyResult<PyBulkheadPermit> {
        match self.inner.try_enter() {
            Ok(p) => Ok(PyBulkheadPermit { permit: Mutex::new(Some(p)) }),
            Err(l) => Err(limited(py, &l)),
        }
    }

    /// The bulkhead's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Calls running now.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// Calls turned away so far.
    #[getter]
    fn rejected(&self) -> u64 {
        self.inner.rejected()
    }
}

/// A place in a bulkhead, held until released.
#[pyclass(module = "ace._ace", name = "BulkheadPermit", frozen)]
pub(crate) struct PyBulkheadPermit {
    permit: Mutex<Option<BulkheadPermit>>,
}

#[pymethods]
impl PyBulkheadPermit {
    /// Gives the place back (again is harmless).
    fn release(&self) {
        drop(self.permit.lock().take());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type=None, exc=None, tb=None))]
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let _ = (exc_type, exc, tb);
        self.release();
        false
    }
}
