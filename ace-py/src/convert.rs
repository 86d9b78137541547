//! Values between the core and Python: the result classes (`Report`, `Intervention`, `Signal`,
//! `ErrorReport`), plain data as dicts and lists, and settings given as a mapping (as text; the
//! core reads them).

use ace::{Intervention, Report, Signal};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::Serialize;
use serde_json::Value;

use crate::errors::exception;

/// A JSON value as the Python object it reads as.
pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items = a.iter().map(|x| json_to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// Any serialisable core value as plain Python data (dicts, lists, numbers, strings).
pub(crate) fn to_data<'py>(py: Python<'py>, v: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(v).map_err(|e| exception(py, "InternalError", &e.to_string(), &[]))?;
    json_to_py(py, &value)
}

/// A signal an organ raised. Its evidence becomes a Python dict when first read (most callers
/// look at the kind and message only; building the dict was most of a signal's cost).
#[pyclass(module = "ace._ace", name = "Signal", frozen)]
pub(crate) struct PySignal {
    /// What was found (`latency_degradation`, `error_accumulation`, ...).
    #[pyo3(get)]
    kind: &'static str,
    /// `low`, `medium`, `high` or `critical`.
    #[pyo3(get)]
    severity: &'static str,
    /// When, in seconds since the Unix epoch (engine clock).
    #[pyo3(get)]
    at: f64,
    #[pyo3(get)]
    agent: String,
    #[pyo3(get)]
    task: Option<String>,
    #[pyo3(get)]
    stage: Option<String>,
    #[pyo3(get)]
    message: String,
    evidence: ace::Evidence,
    evidence_py: PyOnceLock<Py<PyAny>>,
}

#[pymethods]
impl PySignal {
    /// The numbers behind it, as a dict (its `type` key names the kind of evidence); the same
    /// dict on every read.
    #[getter]
    fn evidence(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = self.evidence_py.get_or_try_init(py, || to_data(py, &self.evidence).map(Bound::unbind))?;
        Ok(d.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "Signal(kind={:?}, severity={:?}, agent={:?}, message={:?})",
            self.kind, self.severity, self.agent, self.message
        )
    }
}

pub(crate) fn signal(py: Python<'_>, s: &Signal) -> PyResult<Py<PySignal>> {
    Py::new(
        py,
        PySignal {
            kind: s.kind.as_str(),
            severity: s.severity.as_str(),
            at: s.at.as_secs_f64(),
            agent: s.agent.to_string(),
            task: s.task.as_deref().map(str::to_owned),
            stage: s.stage.as_deref().map(str::to_owned),
            message: s.message.clone(),
            evidence: s.evidence.clone(),
            evidence_py: PyOnceLock::new(),
        },
    )
}

fn signals<'py>(py: Python<'py>, list: &[Signal]) -> PyResult<Bound<'py, PyTuple>> {
    if list.is_empty() {
        // Most calls raise none: the shared empty tuple, without building a list first.
        return Ok(PyTuple::empty(py));
    }
    let items = list.iter().map(|s| signal(py, s)).collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

/// What the engine tells the agent to do.
#[pyclass(module = "ace._ace", name = "Intervention", frozen, get_all)]
pub(crate) struct PyIntervention {
    /// Its id, for `report_outcome`.
    id: u64,
    /// When it was decided, in seconds since the Unix epoch.
    at: f64,
    agent: String,
    task: String,
    /// `refresh_context`, `replan`, `reflect`, `verify`, `escalate`, `backoff` or `terminate`.
    strategy: &'static str,
    severity: &'static str,
    reason: String,
    signals: Py<PyTuple>,
    /// The posterior probability that `strategy` works better than the runner-up (1.0 without
    /// another candidate); `ACE_JUDGE_BELOW` sends decisions under it to the judge.
    confidence: f64,
    /// The runner-up strategy, if any.
    runner_up: Option<&'static str>,
    /// Outcomes reported so far for this kind of signal.
    outcomes: u64,
    /// Fewer than 5 outcomes: the confidence rests mostly on the rule's prior.
    novel: bool,
    /// The background judge's verdict on an intervention delivered again (`accepted`,
    /// `vetoed`, `picked`), or None on a first delivery.
    amended: Option<&'static str>,
}

#[pymethods]
impl PyIntervention {
    fn __repr__(&self) -> String {
        format!(
            "Intervention(id={}, strategy={:?}, agent={:?}, task={:?}, reason={:?})",
            self.id, self.strategy, self.agent, self.task, self.reason
        )
    }
}

pub(crate) fn intervention(py: Python<'_>, i: &Intervention) -> PyResult<Py<PyIntervention>> {
    Py::new(
        py,
        PyIntervention {
            id: i.id.0,
            at: i.at.as_secs_f64(),
            agent: i.agent.to_string(),
            task: i.task.to_string(),
            strategy: i.strategy.as_str(),
            severity: i.severity.as_str(),
            reason: i.reason.clone(),
            signals: signals(py, &i.signals)?.unbind(),
            confidence: i.confidence.score,
            runner_up: i.confidence.runner_up.map(ace::Strategy::as_str),
            outcomes: i.confidence.outcomes,
            novel: i.confidence.novel,
            amended: i.amended.map(ace::Amendment::as_str),
        },
    )
}

/// What a recording call found: its signals and, when they warrant one, the intervention. Falsy
/// when the call raised nothing.
#[pyclass(module = "ace._ace", name = "Report", frozen, get_all)]
pub(crate) struct PyReport {
    signals: Py<PyTuple>,
    intervention: Option<Py<PyIntervention>>,
}

#[pymethods]
impl PyReport {
    fn __bool__(&self, py: Python<'_>) -> bool {
        !self.signals.bind(py).is_empty()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let i = self.intervention.as_ref().map(|i| i.get().__repr__()).unwrap_or_else(|| "None".to_owned());
        format!("Report(signals={}, intervention={i})", self.signals.bind(py).len())
    }
}

/// The report of a call; the empty one is shared.
pub(crate) fn report(py: Python<'_>, r: &Report) -> PyResult<Py<PyReport>> {
    static EMPTY: PyOnceLock<Py<PyReport>> = PyOnceLock::new();
    if r.signals.is_empty() && r.intervention.is_none() {
        return EMPTY
            .get_or_try_init(py, || Py::new(py, PyReport { signals: PyTuple::empty(py).unbind(), intervention: None }))
            .map(|e| e.clone_ref(py));
    }
    let intervention = r.intervention.as_deref().map(|i| intervention(py, i)).transpose()?;
    Py::new(py, PyReport { signals: signals(py, &r.signals)?.unbind(), intervention })
}

/// What recording an error found. The pattern's id and template become Python strings when
/// read, not on every call.
#[pyclass(module = "ace._ace", name = "ErrorReport", frozen)]
pub(crate) struct PyErrorReport {
    pattern: ace::PatternId,
    template: std::sync::Arc<str>,
    severity: &'static str,
    occurrences: u32,
    truncated: bool,
    signals: Py<PyTuple>,
    intervention: Option<Py<PyIntervention>>,
}

#[pymethods]
impl PyErrorReport {
    /// The pattern's id (16 hex digits).
    #[getter]
    fn pattern(&self) -> String {
        self.pattern.to_string()
    }

    /// The pattern's template (`connection to <*> refused`).
    #[getter]
    fn template(&self) -> &str {
        &self.template
    }

    #[getter]
    fn severity(&self) -> &'static str {
        self.severity
    }

    /// Occurrences of the pattern in this task within the window.
    #[getter]
    fn occurrences(&self) -> u32 {
        self.occurrences
    }

    /// The message was cut.
    #[getter]
    fn truncated(&self) -> bool {
        self.truncated
    }

    #[getter]
    fn signals(&self, py: Python<'_>) -> Py<PyTuple> {
        self.signals.clone_ref(py)
    }

    #[getter]
    fn intervention(&self, py: Python<'_>) -> Option<Py<PyIntervention>> {
        self.intervention.as_ref().map(|i| i.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "ErrorReport(pattern={:?}, template={:?}, severity={:?}, occurrences={})",
            self.pattern.to_string(),
            self.template,
            self.severity,
            self.occurrences
        )
    }
}

pub(crate) fn error_report(py: Python<'_>, r: &ace::ErrorReport) -> PyResult<Py<PyErrorReport>> {
    let intervention = r.intervention.as_deref().map(|i| intervention(py, i)).transpose()?;
    Py::new(
        py,
        PyErrorReport {
            pattern: r.pattern,
            template: r.template.clone(),
            severity: r.severity.as_str(),
            occurrences: r.occurrences,
            truncated: r.truncated,
            signals: signals(py, &r.signals)?.unbind(),
            intervention,
        },
    )
}

/// A setting's value as the text its environment variable would hold.
fn setting_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_owned());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return crate::text::utf8(v.py(), "config", s).map(str::to_owned);
    }
    if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        return Ok(v.str()?.to_cow()?.into_owned());
    }
    if let Ok(items) = v.cast::<PyList>() {
        let parts = items.iter().map(|x| setting_text(&x)).collect::<PyResult<Vec<_>>>()?;
        return Ok(parts.join(","));
    }
    Err(PyTypeError::new_err(format!("a setting is a str, int, float, bool or list, not {}", v.get_type().name()?)))
}

/// The settings of a mapping as `(name, text)` pairs for the core, which knows every setting's
/// names and reads their values (`AceConfig::from_settings`).
pub(crate) fn settings(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    let Some(d) = settings else { return Ok(Vec::new()) };
    d.iter()
        .map(|(k, v)| {
            let key: String = k.extract().map_err(|_| PyTypeError::new_err("setting names are str"))?;
            Ok((key, setting_text(&v)?))
        })
        .collect()
}

/// A count argument (`k`, `token_budget`): a whole number from 0 to `u32::MAX`, given as an
/// int or a whole float. Out of range (huge, negative, NaN, fractional) is `InvalidInputError`
/// naming `field`, never `OverflowError`; another type is `TypeError`.
pub(crate) fn count_arg(py: Python<'_>, field: &'static str, v: &Bound<'_, PyAny>) -> PyResult<u32> {
    use crate::errors::IntoPy;
    if let Ok(i) = v.cast::<pyo3::types::PyInt>() {
        return match i.extract::<i64>() {
            Ok(n) => u32::try_from(n).map_err(|_| {
                crate::errors::invalid(py, field, &format!("expected a whole number from 0 to {}, got {n}", u32::MAX))
            }),
            Err(_) => {
                Err(crate::errors::invalid(py, field, &format!("expected a whole number from 0 to {}", u32::MAX)))
            }
        };
    }
    if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
        return ace::error::count(field, f.value()).py(py);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!("{field} must be an int, not {}", v.get_type().name()?)))
}
