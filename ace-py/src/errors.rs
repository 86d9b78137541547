//! The core's errors as the exception classes of `ace.exceptions`, and the guard that keeps a
//! Rust panic from reaching Python as anything but an `ace.InternalError`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ace::Error;
use ace::error::{Detail, panic_message};
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
    let details: Vec<(&str, Py<PyAny>)> = e
        .details()
        .into_iter()
        .filter_map(|(name, value)| {
            let value = match value {
                Detail::Text(s) => s.into_pyobject(py).ok()?.into_any(),
                Detail::Seconds(s) => s.into_pyobject(py).ok()?.into_any(),
                _ => return None,
            };
            Some((name, value.unbind()))
        })
        .collect();
    exception(py, class_for(e.code()), &e.to_string(), &details)
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
            let what = panic_message(&*payload);
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
