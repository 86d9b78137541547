//! `ace._ace.Playbooks`: the engine's playbooks, one per domain. Calls that embed, search or
//! write the store release the GIL (a Python embedder takes it back for its own call).

use ace::error::count;
use ace::playbook::{Feedback, Insight, Stage, Trust};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{count_arg, to_data};
use crate::engine::PyAce;
use crate::errors::{IntoPy, guard, invalid};
use crate::text::Text;

fn stage(py: Python<'_>, s: &str) -> PyResult<Stage> {
    s.parse::<Stage>().py(py)
}

/// An insight from a dict (`section`, `content`, optional `provenance`) or a
/// `(section, content)` tuple.
pub(crate) fn insight(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Insight> {
    if let Ok(d) = v.cast::<PyDict>() {
        let get = |k: &str| -> PyResult<Option<String>> {
            match d.get_item(k)? {
                Some(x) if !x.is_none() => {
                    Ok(Some(x.extract().map_err(|_| invalid(py, "insights", &format!("{k} must be a str")))?))
                }
                _ => Ok(None),
            }
        };
        let section = get("section")?.ok_or_else(|| invalid(py, "insights", "an insight needs a section"))?;
        let content = get("content")?.ok_or_else(|| invalid(py, "insights", "an insight needs content"))?;
        let mut i = Insight::new(&section, &content);
        i.provenance = get("provenance")?;
        return Ok(i);
    }
    if let Ok(t) = v.cast::<PyTuple>()
        && let Ok((section, content)) = t.extract::<(String, String)>()
    {
        return Ok(Insight::new(&section, &content));
    }
    Err(invalid(py, "insights", "each insight is a dict with section and content, or a (section, content) tuple"))
}

/// The engine's playbooks.
#[pyclass(module = "ace._ace", name = "Playbooks", frozen)]
pub(crate) struct PyPlaybooks {
    pub(crate) engine: Py<PyAce>,
}

impl PyPlaybooks {
    /// Runs `f` on the engine without the GIL (`ClosedError` once the engine is closed).
    fn run<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&ace::Ace) -> ace::Result<T> + Send) -> PyResult<T> {
        guard(py, || {
            let ace = self.engine.get().handle()?;
            if ace.is_closed() {
                return Err(ace::Error::Closed).py(py);
            }
            py.detach(|| f(&ace)).py(py)
        })
    }
}

#[pymethods]
impl PyPlaybooks {
    /// Adds one bullet; returns its id.
    #[pyo3(signature = (domain, section, content, provenance=None))]
    fn add(
        &self,
        py: Python<'_>,
        domain: Text,
        section: Text,
        content: Text,
        provenance: Option<Text>,
    ) -> PyResult<String> {
        self.run(py, |a| a.playbooks().add(&domain, &section, &content, provenance.as_deref()))
    }

    /// Changes a bullet's section or content.
    #[pyo3(signature = (domain, id, *, section=None, content=None))]
    fn update(
        &self,
        py: Python<'_>,
        domain: Text,
        id: Text,
        section: Option<Text>,
        content: Option<Text>,
    ) -> PyResult<()> {
        self.run(py, |a| a.playbooks().update(&domain, &id, section.as_deref(), content.as_deref()))
    }

    /// Removes a bullet.
    fn remove(&self, py: Python<'_>, domain: Text, id: Text) -> PyResult<()> {
        self.run(py, |a| a.playbooks().remove(&domain, &id))
    }

    /// Records `helpful`, `harmful` or `neutral` feedback; returns the bullet's stage afterwards.
    fn feedback(&self, py: Python<'_>, domain: Text, id: Text, feedback: Text) -> PyResult<&'static str> {
        let f = feedback.parse::<Feedback>().py(py)?;
        self.run(py, |a| a.playbooks().feedback(&domain, &id, f)).map(Stage::as_str)
    }

    /// Merges insights with write-time de-dup; returns what happened to each, as a dict.
    fn merge<'py>(&self, py: Python<'py>, domain: Text, insights: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let list = insights.try_iter()?.map(|x| insight(py, &x?)).collect::<PyResult<Vec<_>>>()?;
        let r = self.run(py, |a| a.playbooks().merge(&domain, &list))?;
        to_data(py, &r)
    }

    /// The `k` best bullets for `query` from `min_stage` up: a list of `{bullet, score}` dicts.
    #[pyo3(signature = (domain, query, k=None, min_stage=None))]
    fn retrieve<'py>(
        &self,
        py: Python<'py>,
        domain: Text,
        query: Text,
        k: Option<&Bound<'py, PyAny>>,
        min_stage: Option<Text>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = k.map_or(Ok(5), |k| count_arg(py, "k", k))? as usize;
        let s = stage(py, min_stage.as_deref().unwrap_or("staging"))?;
        let r = self.run(py, |a| a.playbooks().retrieve(&domain, &query, k, s))?;
        to_data(py, &r)
    }

    /// Bullets as prompt text within `token_budget`: `{text, ids, tokens}`.
    #[pyo3(signature = (domain, query=None, k=None, min_stage=None, token_budget=None))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        domain: Text,
        query: Option<Text>,
        k: Option<&Bound<'py, PyAny>>,
        min_stage: Option<Text>,
        token_budget: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = k.map_or(Ok(20), |k| count_arg(py, "k", k))? as usize;
        let token_budget = token_budget.map_or(Ok(2000), |b| count_arg(py, "token_budget", b))? as usize;
        let s = stage(py, min_stage.as_deref().unwrap_or("staging"))?;
        let r = self.run(py, |a| a.playbooks().render(&domain, query.as_deref(), k, s, token_budget))?;
        to_data(py, &r)
    }

    /// Every bullet of the domain, as dicts.
    fn bullets<'py>(&self, py: Python<'py>, domain: Text) -> PyResult<Bound<'py, PyAny>> {
        let r = self.run(py, |a| a.playbooks().bullets(&domain))?;
        to_data(py, &r)
    }

    /// One bullet, as a dict.
    fn bullet<'py>(&self, py: Python<'py>, domain: Text, id: Text) -> PyResult<Bound<'py, PyAny>> {
        let r = self.run(py, |a| a.playbooks().bullet(&domain, &id))?;
        to_data(py, &r)
    }

    /// The domain's version, hash and counts by stage and section.
    fn stats<'py>(&self, py: Python<'py>, domain: Text) -> PyResult<Bound<'py, PyAny>> {
        let r = self.run(py, |a| a.playbooks().stats(&domain))?;
        to_data(py, &r)
    }

    /// Restores the domain as it was at `version` (recorded as a new version).
    fn rollback<'py>(&self, py: Python<'py>, domain: Text, version: f64) -> PyResult<Bound<'py, PyAny>> {
        let version = u64::from(count("version", version).py(py)?);
        let r = self.run(py, |a| a.playbooks().rollback(&domain, version))?;
        to_data(py, &r)
    }

    /// The domain in the ACE text format.
    fn export_text(&self, py: Python<'_>, domain: Text) -> PyResult<String> {
        self.run(py, |a| a.playbooks().export_text(&domain))
    }

    /// The domain as JSON.
    fn export_json(&self, py: Python<'_>, domain: Text) -> PyResult<String> {
        self.run(py, |a| a.playbooks().export_json(&domain))
    }

    /// Replaces the domain with a JSON export; returns the bullets imported. Unless `trusted`,
    /// the export's digest must match (`CorruptError`) and its bullets enter at `shadow`.
    #[pyo3(signature = (domain, json, *, trusted=false))]
    fn import_json(&self, py: Python<'_>, domain: Text, json: Text, trusted: bool) -> PyResult<usize> {
        self.run(py, |a| a.playbooks().import_json(&domain, &json, Trust::from_flag(trusted)))
    }

    /// Replaces the domain with bullets in the ACE text format; returns the bullets imported.
    /// Unless `trusted`, they enter at `shadow` with their counters ignored.
    #[pyo3(signature = (domain, text, *, trusted=false))]
    fn import_text(&self, py: Python<'_>, domain: Text, text: Text, trusted: bool) -> PyResult<usize> {
        self.run(py, |a| a.playbooks().import_text(&domain, &text, Trust::from_flag(trusted)))
    }

    /// Every version of the domain's log (chain verified): `{version, at, op, note}` dicts.
    fn history<'py>(&self, py: Python<'py>, domain: Text) -> PyResult<Bound<'py, PyAny>> {
        let r = self.run(py, |a| a.playbooks().history(&domain))?;
        to_data(py, &r)
    }
}
