//! A breaker's events delivered to a Python callable, as dicts: transitions, calls not permitted,
//! rates over their thresholds, ignored errors and resets.

use ace::Ace;
use ace::breaker::{BreakerEvent, EventKind};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn event_dict<'py>(py: Python<'py>, e: &BreakerEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("breaker", &*e.name)?;
    let at = e.at.as_micros();
    d.set_item("at", (at != 0).then(|| at as f64 / 1e6))?;
    let kind = match &e.kind {
        EventKind::Transition { from, to, why } => {
            d.set_item("from", from.as_str())?;
            d.set_item("to", to.as_str())?;
            d.set_item("why", *why)?;
            "transition"
        }
        EventKind::Rejected { state } => {
            d.set_item("state", state.as_str())?;
            "not_permitted"
        }
        EventKind::FailureRateExceeded { rate } => {
            d.set_item("rate", rate)?;
            "failure_rate_exceeded"
        }
        EventKind::SlowCallRateExceeded { rate } => {
            d.set_item("rate", rate)?;
            "slow_call_rate_exceeded"
        }
        EventKind::IgnoredError => "ignored_error",
        EventKind::Reset => "reset",
        _ => "other",
    };
    d.set_item("kind", kind)?;
    Ok(d)
}

/// Calls `callback(event)` for every event of the breaker `name` of `ace`, on the thread that
/// caused it; an exception in the callback goes to `sys.unraisablehook` and the call carries on.
pub(crate) fn subscribe(ace: &Ace, name: &str, callback: Py<PyAny>) {
    let name = name.to_owned();
    ace.breakers().subscribe(move |e| {
        if *e.name != *name {
            return;
        }
        Python::attach(|py| match event_dict(py, e).and_then(|d| callback.call1(py, (d,))) {
            Ok(_) => {}
            Err(err) => err.write_unraisable(py, Some(callback.bind(py))),
        });
    });
}
