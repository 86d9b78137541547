//! Circuit breakers: `ace._ace.CircuitBreaker` (the pure-Python `ace.Breaker` adds `with`,
//! `async with` and the decorator's async half), its `Permit`, and `Guarded`, the sync decorator,
//! whose whole call (permit, call, verdict) runs here.

use std::sync::Arc;

use ace::breaker::config::{BreakerOptions, seconds as seconds_of};
use ace::breaker::{CircuitBreaker, HalfOpenBusy, Outcome, OwnedPermit, Rejected};
use ace::error::count;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::breaker_judge::{Judge, judge};
use crate::convert;
use crate::engine::PyAce;
use crate::errors::{IntoPy, exception, guard, invalid};
use crate::text::Text;

/// `CircuitOpenError` for a rejection, with its breaker, wait and intervention.
fn rejected(py: Python<'_>, r: &Rejected) -> PyErr {
    let mut details: Vec<(&str, Py<PyAny>)> = Vec::new();
    details.push(("breaker", pyo3::types::PyString::new(py, &r.breaker).into_any().unbind()));
    details.push(("state", pyo3::types::PyString::new(py, r.state.as_str()).into_any().unbind()));
    if let Some(d) = r.retry_after
        && let Ok(v) = d.as_secs_f64().into_pyobject(py)
    {
        details.push(("retry_after", v.into_any().unbind()));
    }
    if let Some(i) = r.intervention.as_deref()
        && let Ok(v) = convert::intervention(py, i)
    {
        details.push(("intervention", v.into_any()));
    }
    exception(py, "CircuitOpenError", &r.to_string(), &details)
}

/// A circuit breaker of the engine's registry.
#[pyclass(module = "ace._ace", name = "CircuitBreaker", subclass, frozen)]
pub(crate) struct PyBreaker {
    breaker: Arc<CircuitBreaker>,
    engine: Py<PyAce>,
    judge: Arc<Judge>,
}

#[pymethods]
impl PyBreaker {
    /// The breaker `name` of `engine` (made with these settings on first use; an existing one
    /// keeps its own). `window` is `"count:N"` or `"time:SECONDS"`; without one, `failures` in a
    /// row open it. `ignore` is a tuple of exception classes that count neither way; `record`,
    /// when given, the only classes that are failures (any other exception is a success);
    /// `is_failure(exc)` says whether an exception is a failure (else a success);
    /// `failure_result(value)` whether a returned value is a failure.
    #[new]
    #[pyo3(signature = (engine, name, *, failures=None, wait_seconds=None, window=None, failure_rate=None, minimum_calls=None, slow_call_seconds=None, slow_call_rate=None, half_open_permits=None, max_half_open_seconds=None, ignore=None, record=None, is_failure=None, failure_result=None, threshold=None, half_open_busy=None, tripping_call=None, trial_verdict=None, automatic_half_open=None, backoff_multiplier=None, max_wait_seconds=None))]
    fn new(
        py: Python<'_>,
        engine: Py<PyAce>,
        name: Text,
        failures: Option<f64>,
        wait_seconds: Option<f64>,
        window: Option<&str>,
        failure_rate: Option<f64>,
        minimum_calls: Option<f64>,
        slow_call_seconds: Option<f64>,
        slow_call_rate: Option<f64>,
        half_open_permits: Option<f64>,
        max_half_open_seconds: Option<f64>,
        ignore: Option<Py<PyTuple>>,
        record: Option<Py<PyTuple>>,
        is_failure: Option<Py<PyAny>>,
        failure_result: Option<Py<PyAny>>,
        threshold: Option<&str>,
        half_open_busy: Option<&str>,
        tripping_call: Option<&str>,
        trial_verdict: Option<&str>,
        automatic_half_open: Option<bool>,
        backoff_multiplier: Option<f64>,
        max_wait_seconds: Option<f64>,
    ) -> PyResult<Self> {
        guard(py, || {
            let ace = engine.get().handle()?;
            let options = BreakerOptions {
                failures: failures.map(|n| count("failures", n)).transpose().py(py)?,
                wait_seconds,
                window: window.map(str::parse).transpose().py(py)?,
                failure_rate,
                minimum_calls: minimum_calls.map(|n| count("minimum_calls", n)).transpose().py(py)?,
                slow_call_seconds,
                slow_call_rate,
                half_open_permits: half_open_permits.map(|n| count("half_open_permits", n)).transpose().py(py)?,
                max_half_open_seconds,
                threshold: threshold.map(str::parse).transpose().py(py)?,
                half_open_busy: half_open_busy.map(str::parse).transpose().py(py)?,
                tripping_call: tripping_call.map(str::parse).transpose().py(py)?,
                trial_verdict: trial_verdict.map(str::parse).transpose().py(py)?,
                automatic_half_open,
                backoff_multiplier,
                max_wait_seconds,
            };
            let breaker = ace::breaker_with(&ace, &name, &options).py(py)?;
            let judge = judge(py, ignore, record, is_failure, failure_result)?;
            Ok(PyBreaker { breaker, engine, judge })
        })
    }

    /// For asyncio with `half_open_busy="wait"` (`ace.Breaker` awaits it): a `Permit`, or `None`
    /// when a busy half-open trial holds every permit, after arranging for `wake()` (if given) to
    /// be called, from another thread, once the trial ends (then ask again); `CircuitOpenError`
    /// when turned away. Without `"wait"`, as `acquire()`.
    #[pyo3(signature = (wake))]
    fn _poll_acquire(&self, py: Python<'_>, wake: Option<Py<PyAny>>) -> PyResult<Option<PyPermit>> {
        let waker = match wake {
            Some(wake) => std::task::Waker::from(Arc::new(crate::breaker_wait::LoopWake(Mutex::new(Some(wake))))),
            None => std::task::Waker::noop().clone(),
        };
        match self.breaker.poll_acquire_owned(&mut std::task::Context::from_waker(&waker)) {
            std::task::Poll::Ready(Ok(p)) => {
                Ok(Some(PyPermit { permit: Mutex::new(Some(p)), judge: self.judge.clone() }))
            }
            std::task::Poll::Ready(Err(r)) => Err(rejected(py, &r)),
            std::task::Poll::Pending => Ok(None),
        }
    }

    /// Seconds a waiter of `_poll_acquire` may go before asking again on its own (a
    /// `max_half_open_seconds` can end a trial that never reports); `None`: the wake-up comes.
    #[getter]
    fn _recheck_seconds(&self) -> Option<f64> {
        self.breaker.recheck_after().map(|d| d.as_secs_f64())
    }

    /// The breaker's name.
    #[getter]
    fn name(&self) -> &str {
        self.breaker.name()
    }

    /// `closed`, `open`, `half_open`, `disabled`, `forced_open` or `metrics_only`.
    #[getter]
    fn state(&self) -> &'static str {
        self.breaker.state().as_str()
    }

    /// Leave to make one call: a `Permit` to complete with its outcome (or use with `with`).
    /// Raises `CircuitOpenError` when the breaker turns the call away; given `agent` and `task`,
    /// the rejection is a signal for that task and the error carries the intervention it warrants.
    #[pyo3(signature = (agent=None, task=None))]
    fn acquire(&self, py: Python<'_>, agent: Option<&str>, task: Option<&str>) -> PyResult<PyPermit> {
        guard(py, || {
            let permit = match (agent, task) {
                (Some(a), Some(t)) => self.engine.get().recording(py, |ace| ace.acquire_owned(a, t, &self.breaker))?,
                (None, None) => self.breaker.try_acquire_owned(),
                _ => return Err(invalid(py, "task", "give both agent and task, or neither")),
            };
            match permit {
                Ok(p) => Ok(PyPermit { permit: Mutex::new(Some(p)), judge: self.judge.clone() }),
                Err(r) => Err(rejected(py, &r)),
            }
        })
    }

    /// Calls `fn(*args, **kwargs)` through the breaker: its exception counts as a failure (unless
    /// ignored) and is raised again; `CircuitOpenError` when the breaker turns it away.
    #[pyo3(signature = (fn_, *args, **kwargs))]
    fn call(
        &self,
        py: Python<'_>,
        fn_: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        guarded_call(py, &self.breaker, &self.judge, fn_, args, kwargs)
    }

    /// `fn` wrapped so that every call goes through the breaker (for sync functions).
    fn guard(&self, fn_: Py<PyAny>) -> Guarded {
        Guarded { breaker: self.breaker.clone(), judge: self.judge.clone(), f: fn_ }
    }

    /// Counts an attempt that a policy's timeout cut short, as `ace_timeouts_total{name}` of the
    /// breaker's engine (the policy takes the breaker's name).
    fn count_timeout(&self, py: Python<'_>) -> PyResult<()> {
        let ace = self.engine.get().handle()?;
        ace.breakers().count_timeout(self.breaker.name()).py(py)
    }

    /// Counts and rates, as a dict.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.breaker.snapshot();
        let d = PyDict::new(py);
        d.set_item("name", s.name.as_ref())?;
        d.set_item("state", s.state.as_str())?;
        d.set_item("successes", s.counts.successes)?;
        d.set_item("failures", s.counts.failures)?;
        d.set_item("ignored", s.counts.ignored)?;
        d.set_item("slow", s.counts.slow)?;
        d.set_item("not_permitted", s.not_permitted)?;
        d.set_item("not_permitted_total", s.counts.not_permitted)?;
        d.set_item("consecutive_failures", s.consecutive_failures)?;
        d.set_item("window_calls", s.window_calls)?;
        d.set_item("window_failures", s.window_failures)?;
        d.set_item("slow_successes", s.slow_successes)?;
        d.set_item("slow_failures", s.slow_failures)?;
        d.set_item("failure_rate", s.failure_rate)?;
        d.set_item("slow_call_rate", s.slow_call_rate)?;
        d.set_item("attempts", s.attempts)?;
        d.set_item("total_duration", s.total_duration.map(|t| t.as_secs_f64()))?;
        d.set_item("average_duration", s.average_duration.map(|t| t.as_secs_f64()))?;
        Ok(d)
    }

    /// Opens it for `seconds` (then a trial decides).
    fn open_for(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        self.breaker.open_for(seconds_of("seconds", seconds).py(py)?);
        Ok(())
    }

    /// Opens it until `epoch_seconds` (seconds since the Unix epoch on the engine's clock); the
    /// first call after that moves it to half-open.
    fn open_until(&self, py: Python<'_>, epoch_seconds: f64) -> PyResult<()> {
        if !epoch_seconds.is_finite() {
            return Err(invalid(py, "epoch_seconds", "expected a finite number of seconds"));
        }
        self.breaker.open_until(ace::Timestamp::from_micros((epoch_seconds * 1e6) as i64));
        Ok(())
    }

    /// Calls `callback(event)` with each of this breaker's events, a dict whose `kind` is
    /// `transition` (`from`, `to`, `why`), `not_permitted` (`state`), `failure_rate_exceeded` or
    /// `slow_call_rate_exceeded` (`rate`), `ignored_error` or `reset`; on the thread that caused
    /// it. Subscriptions last as long as the engine.
    fn subscribe(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(invalid(py, "callback", "expected a callable"));
        }
        let ace = self.engine.get().handle()?;
        crate::breaker_events::subscribe(&ace, self.breaker.name(), callback);
        Ok(())
    }

    /// Moves it to half-open now: the next `half_open_permits` calls are the trial.
    fn half_open(&self) {
        self.breaker.half_open();
    }

    /// Closes it (counts start again).
    fn close(&self) {
        self.breaker.close();
    }

    /// Closes it and clears its counts.
    fn reset(&self) {
        self.breaker.reset();
    }

    /// Lets every call through, judging nothing.
    fn disable(&self) {
        self.breaker.disable();
    }

    /// Turns every call away until changed by hand.
    fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Lets every call through and counts them; never trips.
    fn metrics_only(&self) {
        self.breaker.metrics_only();
    }

    fn __repr__(&self) -> String {
        format!("CircuitBreaker(name={:?}, state={:?})", self.breaker.name(), self.breaker.state().as_str())
    }
}

fn guarded_call(
    py: Python<'_>,
    breaker: &CircuitBreaker,
    judge: &Judge,
    f: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let permit = if breaker.config().half_open_busy == HalfOpenBusy::Wait {
        // Waiting for a half-open verdict blocks this thread, never the interpreter.
        py.detach(|| breaker.acquire_waiting())
    } else {
        breaker.try_acquire()
    };
    let permit = permit.map_err(|r| rejected(py, &r))?;
    match f.call(args, kwargs) {
        Ok(v) => {
            if judge.checks_results() {
                permit.record(judge.result(py, &v));
            } else {
                permit.success();
            }
            Ok(v.unbind())
        }
        Err(e) => match judge.error(py, &e).and_then(|outcome| permit.settle(outcome)) {
            Some(r) => Err(instead(py, &r, e)),
            None => Err(e),
        },
    }
}

/// The breaker's `CircuitOpenError` raised instead of `cause`, the error that opened it
/// (`tripping_call="breaker_error"`), with `cause` as its `__cause__`.
fn instead(py: Python<'_>, r: &Rejected, cause: PyErr) -> PyErr {
    let err = rejected(py, r);
    err.set_cause(py, Some(cause));
    err
}

/// A function whose calls go through a breaker.
#[pyclass(module = "ace._ace", name = "Guarded", frozen)]
pub(crate) struct Guarded {
    breaker: Arc<CircuitBreaker>,
    judge: Arc<Judge>,
    f: Py<PyAny>,
}

#[pymethods]
impl Guarded {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        guarded_call(py, &self.breaker, &self.judge, self.f.bind(py), args, kwargs)
    }

    /// The wrapped function.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.f.clone_ref(py)
    }

    /// The wrapped function's name.
    #[getter]
    fn __name__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.f.bind(py).getattr("__name__")?.unbind())
    }

    /// Bound as a method, like the function it wraps.
    fn __get__(slf: Py<Self>, py: Python<'_>, obj: Option<Py<PyAny>>, owner: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let _ = owner;
        match obj {
            None => Ok(slf.into_any()),
            Some(o) => Ok(py.import("types")?.getattr("MethodType")?.call1((slf, o))?.unbind()),
        }
    }
}

/// Leave for one call. Complete it with `success()`, `failure()` or `error(exc)`; as a context
/// manager it completes itself (an exception is a failure unless ignored). Dropped without an
/// outcome, it is given back.
#[pyclass(module = "ace._ace", name = "Permit", frozen)]
pub(crate) struct PyPermit {
    permit: Mutex<Option<OwnedPermit>>,
    judge: Arc<Judge>,
}

impl PyPermit {
    /// Completes the permit; the rejection to raise instead when it opened the breaker and the
    /// breaker's `tripping_call` is `breaker_error`.
    fn finish(&self, py: Python<'_>, outcome: Outcome) -> PyResult<Option<Rejected>> {
        match self.permit.lock().take() {
            Some(p) => Ok(p.settle(outcome)),
            None => Err(invalid(py, "permit", "already completed")),
        }
    }

    /// What `exc` does to the permit, and the `CircuitOpenError` to raise instead of it, if any.
    fn settle_error(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<Option<PyErr>> {
        let e = PyErr::from_value(exc.clone());
        match self.judge.error(py, &e) {
            Some(outcome) => Ok(self.finish(py, outcome)?.map(|r| instead(py, &r, e))),
            None => {
                drop(self.permit.lock().take());
                Ok(None)
            }
        }
    }
}

#[pymethods]
impl PyPermit {
    /// The call worked.
    fn success(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, Outcome::Success).map(drop)
    }

    /// The call returned `value`: a success, or a failure when the breaker's `failure_result`
    /// says so.
    fn result(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let outcome = self.judge.result(py, value);
        self.finish(py, outcome).map(drop)
    }

    /// The call failed.
    fn failure(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, Outcome::Failure).map(drop)
    }

    /// The call raised `exc`: a failure unless the breaker ignores its class; a `BaseException`
    /// that is not an `Exception` (a cancellation) gives the permit back. Returns the
    /// `CircuitOpenError` to raise instead of `exc` when `exc` opened a breaker made with
    /// `tripping_call="breaker_error"`, else `None`.
    fn error(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.settle_error(py, exc)?.map(|e| e.into_value(py).into_any()))
    }

    /// Whether it was completed.
    #[getter]
    fn done(&self) -> bool {
        self.permit.lock().is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type=None, exc=None, tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let _ = (exc_type, tb);
        if self.permit.lock().is_none() {
            return Ok(false);
        }
        match exc {
            Some(e) if !e.is_none() => {
                if let Some(instead) = self.settle_error(py, e)? {
                    return Err(instead);
                }
            }
            _ => self.success(py)?,
        }
        Ok(false)
    }
}

/// Registry states as `{name: state}`.
pub(crate) fn states<'py>(py: Python<'py>, ace: &ace::Ace) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for b in ace.breakers().all() {
        d.set_item(b.name(), b.state().as_str())?;
    }
    Ok(d)
}
