//! The core's errors as the exception classes of `ace.exceptions`, and the guard that keeps a
//! Rust panic from reaching Python as anything but an `ace.InternalError`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ace::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// The exception class for a core error code (`ace.exceptions.<Class>`).
fn class_for(code: &str) -> &'static str {
    match code {
        "config" => "ConfigError",
        "invalid_input" => "InvalidInputError",
        "closed" => "ClosedError",
        "store_unavailable" => "StoreUnavailableError",
        "store" => "StoreError",
        "corrupt" => "CorruptError",
        "circuit_open" => "CircuitOpenError",
        _ => "InternalError",
    }
}

/// Looks up an exception class of `ace.exceptions` (imported once).
fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || Ok::<_, PyErr>(py.import("ace.exceptions")?.unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into()?)
}

/// Builds the exception `ace.exceptions.<name>(message, **details)`.
pub(crate) fn exception(py: Python<'_>, name: &str, message: &str, details: &[(&str, Py<PyAny>)]) -> PyErr {
    let built = (|| -> PyResult<PyErr> {
        let class = exception_class(py, name)?;
        let kwargs = PyDict::new(py);
        for (k, v) in details {
            kwargs.set_item(*k, v)?;
        }
        let exc = class.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    })();
    built.unwrap_or_else(|e| e)
}

/// The exception for a core error, its details as attributes.
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let message = e.to_string();
    let mut details: Vec<(&str, Py<PyAny>)> = Vec::new();
    let s = |v: &str| v.into_pyobject(py).map(|o| o.into_any().unbind()).ok();
    match e {
        Error::Config { key, .. } => details.extend(s(key).map(|v| ("key", v))),
        Error::InvalidInput { field, .. } => details.extend(s(field).map(|v| ("field", v))),
        Error::StoreUnavailable { backend, .. } | Error::Store { backend, .. } => {
            details.extend(s(backend).map(|v| ("backend", v)));
        }
        Error::CircuitOpen { breaker, retry_after } => {
            details.extend(s(breaker).map(|v| ("breaker", v)));
            if let Some(d) = retry_after {
                details.extend(d.as_secs_f64().into_pyobject(py).ok().map(|v| ("retry_after", v.into_any().unbind())));
            }
        }
        _ => {}
    }
    exception(py, class_for(e.code()), &message, &details)
}

/// Converts a core result.
pub(crate) trait IntoPy<T> {
    /// The value, or the core error as its exception.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for ace::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}

/// Runs `f`, turning a panic into `ace.InternalError` (a Rust panic would otherwise reach Python
/// as `pyo3_runtime.PanicException`, which is not an `Exception`).
#[inline]
pub(crate) fn guard<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(exception(py, "InternalError", &format!("internal error in ace (please report it): {what}"), &[]))
        }
    }
}

/// `ace.InvalidInputError` for an argument the binding rejects before the core sees it.
pub(crate) fn invalid(py: Python<'_>, field: &str, reason: &str) -> PyErr {
    let f = field.into_pyobject(py).map(|o| o.into_any().unbind()).ok();
    exception(
        py,
        "InvalidInputError",
        &format!("invalid {field}: {reason}"),
        &f.map(|v| vec![("field", v)]).unwrap_or_default(),
    )
}
