//! `Ace.serve(...)` and the read-back calls (`interventions`, `errors`, `patterns`,
//! `recent_signals`): argument
//! conversion around `ace::serve_with` and `ace::readback`; the listener runs on Rust threads,
//! never holding the GIL, and is stopped by `Server.stop()` or the engine's `close()`.

use std::sync::Arc;

use ace::readback::{error_json, intervention_json, list, signal_json};
use ace::{Ace, ErrorQuery, InterventionQuery, ServeOptions, Timestamp};
use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::convert::{json_to_py, to_data};
use crate::errors::{IntoPy, guard, invalid};

/// The listeners an engine started, stopped when it closes.
#[derive(Default)]
pub(crate) struct Servers(Mutex<Vec<Arc<Mutex<Option<ace::Server>>>>>);

impl Servers {
    /// Leaks every listener without stopping it: in a forked child, whose copy of a listener's
    /// thread does not exist (joining it would wait for ever). The parent keeps serving.
    pub(crate) fn forget_all(&self) {
        for s in self.0.lock().drain(..) {
            if let Some(server) = s.lock().take() {
                std::mem::forget(server);
            }
        }
    }

    /// Stops every listener (the engine is closing).
    pub(crate) fn stop_all(&self) {
        for s in self.0.lock().drain(..) {
            if let Some(server) = s.lock().take() {
                server.stop();
            }
        }
    }
}

/// A running listener: `/`, `/api/`, `/metrics` and `/health` of one engine.
#[pyclass(module = "ace._ace", name = "Server", frozen)]
pub(crate) struct PyServer {
    server: Arc<Mutex<Option<ace::Server>>>,
    addr: std::net::SocketAddr,
}

#[pymethods]
impl PyServer {
    /// `host:port` it listens on (the port chosen when 0 was asked for).
    #[getter]
    fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The port it listens on.
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The page's URL.
    #[getter]
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Whether it still listens.
    #[getter]
    fn running(&self) -> bool {
        self.server.lock().is_some()
    }

    /// Stops listening (waits for the listener's thread, without the GIL). Harmless twice.
    fn stop(&self, py: Python<'_>) {
        let server = self.server.lock().take();
        if let Some(s) = server {
            py.detach(|| s.stop());
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: Py<PyAny>, _v: Py<PyAny>, _tb: Py<PyAny>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("Server(url={:?}, running={})", self.url(), self.running())
    }
}

/// `Ace.serve(addr, token=None)`.
pub(crate) fn serve(
    py: Python<'_>,
    ace: &Ace,
    servers: &Servers,
    addr: &str,
    token: Option<String>,
) -> PyResult<PyServer> {
    guard(py, || {
        if ace.is_closed() {
            return Err(crate::errors::to_py(py, &ace::Error::Closed));
        }
        let mut options = ServeOptions::default();
        if let Some(t) = token {
            if t.is_empty() {
                return Err(invalid(py, "token", "an empty token would let anyone in; pass None for no token"));
            }
            options = options.token(t);
        }
        let server = ace::serve_with(ace, addr, options).py(py)?;
        let addr = server.local_addr();
        let server = Arc::new(Mutex::new(Some(server)));
        servers.0.lock().push(server.clone());
        Ok(PyServer { server, addr })
    })
}

fn since(py: Python<'_>, since: Option<f64>) -> PyResult<Option<Timestamp>> {
    since
        .map(|s| Timestamp::from_secs_f64(s).ok_or_else(|| invalid(py, "since", "must be finite Unix seconds")))
        .transpose()
}

/// `Ace.interventions(since=None, agent=None, limit=100)`.
pub(crate) fn interventions<'py>(
    py: Python<'py>,
    ace: Ace,
    since_s: Option<f64>,
    agent: Option<String>,
    limit: usize,
) -> PyResult<Bound<'py, PyAny>> {
    guard(py, || {
        let mut q = InterventionQuery::all().limit(limit);
        (q.agent, q.since) = (agent, since(py, since_s)?);
        let rows = py.detach(|| ace.interventions(&q)).py(py)?;
        let mut v = list(&rows, intervention_json);
        // The id as `Intervention.id` has it (an int), for `report_outcome`.
        for (item, r) in v.as_array_mut().into_iter().flatten().zip(&rows) {
            item["id"] = r.id.0.into();
        }
        json_to_py(py, &v)
    })
}

/// `Ace.errors(since=None, agent=None, limit=100)`.
pub(crate) fn errors<'py>(
    py: Python<'py>,
    ace: Ace,
    since_s: Option<f64>,
    agent: Option<String>,
    limit: usize,
) -> PyResult<Bound<'py, PyAny>> {
    guard(py, || {
        let mut q = ErrorQuery::all().limit(limit);
        (q.agent, q.since) = (agent, since(py, since_s)?);
        let rows = py.detach(|| ace.errors(&q)).py(py)?;
        json_to_py(py, &list(&rows, error_json))
    })
}

/// `Ace.patterns()`, the live miner's patterns, or `Ace.stored_patterns()`, the store's.
pub(crate) fn patterns(py: Python<'_>, ace: Ace, stored: bool) -> PyResult<Bound<'_, PyAny>> {
    guard(py, || {
        let rows = if stored { py.detach(|| ace.stored_patterns()).py(py)? } else { ace.patterns() };
        to_data(py, &rows)
    })
}

/// `Ace.recent_signals(agent=None, limit=100)`.
pub(crate) fn signals(py: Python<'_>, ace: Ace, agent: Option<String>, limit: usize) -> PyResult<Bound<'_, PyAny>> {
    guard(py, || json_to_py(py, &list(&ace.recent_signals(agent.as_deref(), limit).py(py)?, signal_json)))
}
