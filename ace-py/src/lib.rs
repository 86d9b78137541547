//! `ace._ace`, the extension module under the `ace` Python package: a thin layer that converts
//! arguments, calls the Rust core and converts its errors (see `python/ace/` for the idioms on
//! top: context managers, decorators, adapters).

// Methods take the arguments their Python signatures list.
#![allow(clippy::too_many_arguments)]

mod args;
mod breaker;
mod breaker_events;
mod breaker_judge;
mod breaker_wait;
mod clock;
mod convert;
mod embed;
mod engine;
mod errors;
mod hooks;
mod limit;
mod live;
mod logging;
mod playbook;
mod retry;
mod text;

use std::io::BufReader;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::to_data;
use crate::errors::{IntoPy, guard, invalid};

/// Replays a recorded trace file (see TRACE_FORMAT.md) through a fresh in-memory engine with
/// `config` and returns the scores as a dict. Releases the GIL while it runs.
#[pyfunction]
#[pyo3(signature = (path, *, name=None, config=None))]
fn replay<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    name: Option<String>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    guard(py, || {
        let cfg = ace::AceConfig::from_settings(convert::settings(config)?).py(py)?;
        let file = std::fs::File::open(&path).map_err(|e| invalid(py, "path", &format!("{}: {e}", path.display())))?;
        let name =
            name.unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let score = py.detach(|| ace::replay::replay(BufReader::new(file), &name, cfg)).py(py)?;
        to_data(py, &score)
    })
}

/// The digest of a tool call's arguments, as `Ace.record_tool(..., args=args)` computes it
/// (16 hex digits; see docs/python.md).
#[pyfunction]
fn args_digest(py: Python<'_>, args: &Bound<'_, PyAny>) -> PyResult<String> {
    guard(py, || args::digest_of(py, args))
}

/// The digest of a tool call's arguments given as JSON text in any formatting (an
/// OpenTelemetry `gen_ai.tool.call.arguments` attribute, say): equal to `args_digest` of the
/// parsed value.
#[pyfunction]
fn args_digest_json(py: Python<'_>, text: &str) -> PyResult<String> {
    guard(py, || ace::tool::digest_json(text).py(py))
}

#[pymodule]
fn _ace(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyAce>()?;
    m.add_class::<breaker::PyBreaker>()?;
    m.add_class::<breaker::PyPermit>()?;
    m.add_class::<breaker::Guarded>()?;
    m.add_class::<playbook::PyPlaybooks>()?;
    m.add_class::<live::PyServer>()?;
    m.add_class::<limit::PyRateLimiter>()?;
    m.add_class::<limit::PyBulkhead>()?;
    m.add_class::<limit::PyBulkheadPermit>()?;
    m.add_class::<retry::PyRetry>()?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<convert::PyReport>()?;
    m.add_class::<convert::PyErrorReport>()?;
    m.add_class::<convert::PyIntervention>()?;
    m.add_class::<convert::PySignal>()?;
    m.add_function(wrap_pyfunction!(replay, m)?)?;
    m.add_function(wrap_pyfunction!(args_digest, m)?)?;
    m.add_function(wrap_pyfunction!(args_digest_json, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_after_fork_parent, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(hooks::_before_exit, m)?)?;
    m.add_class::<hooks::JudgeReply>()?;
    m.add_function(wrap_pyfunction!(logging::sync_log_level, m)?)?;
    logging::install(m.py());
    Ok(())
}
