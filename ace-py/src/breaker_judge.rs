//! Which Python outcomes count, and how (resilience4j's `recordExceptions`,
//! `ignoreExceptions`, `recordFailurePredicate` and `recordResult`): the exception classes a
//! breaker ignores, the classes it records (any other exception counts as a success), a
//! predicate on the exception, and a predicate on the returned value.

use std::sync::Arc;

use ace::breaker::Outcome;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A breaker's Python-side classification; shared by its guarded functions and permits.
#[derive(Default)]
pub(crate) struct Judge {
    /// Exception classes that count neither way.
    pub ignore: Option<Py<PyTuple>>,
    /// When given, only these exception classes are failures; any other is a success.
    pub record: Option<Py<PyTuple>>,
    /// `is_failure(exc) -> bool`: a failure when true, a success when false.
    pub is_failure: Option<Py<PyAny>>,
    /// `failure_result(value) -> bool`: a returned value that is a failure.
    pub failure_result: Option<Py<PyAny>>,
}

/// Calls a predicate; one that raises counts as `fallback`, its exception reported through
/// `sys.unraisablehook` (the guarded call's own result still reaches the caller).
fn ask(py: Python<'_>, predicate: &Py<PyAny>, arg: &Bound<'_, PyAny>, fallback: bool) -> bool {
    match predicate.bind(py).call1((arg,)).and_then(|v| v.is_truthy()) {
        Ok(b) => b,
        Err(e) => {
            e.write_unraisable(py, Some(predicate.bind(py)));
            fallback
        }
    }
}

impl Judge {
    /// What an exception says about the call: nothing at all (`None`: the permit is given back)
    /// for a `BaseException` that is not an `Exception` (a cancellation or an interrupt is not
    /// the dependency failing); ignored for an ignored class; a success for a class outside
    /// `record` or one `is_failure` rejects; a failure otherwise.
    pub fn error(&self, py: Python<'_>, err: &PyErr) -> Option<Outcome> {
        if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
            return None;
        }
        let is = |types: &Option<Py<PyTuple>>| types.as_ref().map(|t| err.is_instance(py, t.bind(py).as_any()));
        if is(&self.ignore) == Some(true) {
            return Some(Outcome::Ignored);
        }
        if is(&self.record) == Some(false) {
            return Some(Outcome::Success);
        }
        match &self.is_failure {
            Some(p) if !ask(py, p, err.value(py).as_any(), true) => Some(Outcome::Success),
            _ => Some(Outcome::Failure),
        }
    }

    /// What a returned value says about the call.
    pub fn result(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> Outcome {
        match &self.failure_result {
            Some(p) if ask(py, p, value, false) => Outcome::Failure,
            _ => Outcome::Success,
        }
    }

    /// Whether returned values need looking at.
    pub fn checks_results(&self) -> bool {
        self.failure_result.is_some()
    }
}

/// Checks that each given predicate is callable and each class list a tuple of classes.
pub(crate) fn judge(
    py: Python<'_>,
    ignore: Option<Py<PyTuple>>,
    record: Option<Py<PyTuple>>,
    is_failure: Option<Py<PyAny>>,
    failure_result: Option<Py<PyAny>>,
) -> PyResult<Arc<Judge>> {
    for (field, p) in [("is_failure", &is_failure), ("failure_result", &failure_result)] {
        if p.as_ref().is_some_and(|p| !p.bind(py).is_callable()) {
            return Err(crate::errors::invalid(py, field, "expected a callable"));
        }
    }
    Ok(Arc::new(Judge { ignore, record, is_failure, failure_result }))
}
