//! `ace._ace.Ace`: the engine handle. Recording calls hold the GIL (they never wait); anything
//! that may wait (building, flush, close, health, the playbook's store work) releases it.
//!
//! Fork: a child process cannot use its parent's engine (its writer thread did not survive the
//! fork). `ace` registers `_after_fork_child` with `os.register_at_fork`; the first call in the
//! child then builds a fresh engine from the same settings, on the same store, and leaks the
//! parent's (whose threads are gone and whose locks may be held).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ace::{Ace, Intervention};
use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::args::{digest_of, metrics_of, text};
use crate::convert::{self, PyErrorReport, PyReport, to_data};
use crate::embed::{ArcEmbedder, PyEmbedder, SharedModel, call_reflector, load_model};
use crate::errors::{IntoPy, guard, invalid};
use crate::text::{Text, utf8};

/// Bumped in a child process after `fork()`.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called by `os.register_at_fork(before=...)`: waits (without the GIL) until every writer
/// thread stands still and no thread is inside SQLite, so that the child inherits no lock held
/// mid-operation (see `ace_core::fork`).
#[pyfunction]
pub(crate) fn _before_fork(py: Python<'_>) {
    py.detach(|| {
        ace::fork::before_fork();
        ace::stores::sqlite_fork::before_fork();
    });
}

/// Called by `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
pub(crate) fn _after_fork_parent() {
    ace::stores::sqlite_fork::after_fork();
    ace::fork::after_fork_parent();
}

/// Called by `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub(crate) fn _after_fork_child() {
    ace::stores::sqlite_fork::after_fork();
    ace::fork::after_fork_child();
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    crate::hooks::after_fork_child();
}

/// What an engine is built from, kept to build it again in a forked child.
struct Recipe {
    spec: ace::EngineSpec,
    persist: bool,
    embedder: Option<Arc<PyEmbedder>>,
    /// The built-in sentence model (`embedder="minilm"` or a model directory), loaded once.
    model: Option<Arc<ace::playbook::MiniLm>>,
    judge: Option<Arc<Py<PyAny>>>,
    subscribers: Arc<Mutex<Vec<Py<PyAny>>>>,
    /// `clock=`: a manual clock the engine reads instead of the system's.
    clock: Option<ace::ManualClock>,
}

impl Recipe {
    fn build(&self) -> ace::Result<Ace> {
        let mut builder = self.spec.builder()?.persist(self.persist);
        if let Some(c) = &self.clock {
            builder = builder.clock(c.clone());
        }
        if let Some(e) = &self.embedder {
            builder = builder.embedder(ArcEmbedder(e.clone()));
        }
        if let Some(m) = &self.model {
            builder = builder.embedder(SharedModel(m.clone()));
        }
        if let Some(j) = &self.judge {
            let j = j.clone();
            builder = builder.judge(move |i: &Intervention| crate::hooks::judge(&j, i));
        }
        let ace = builder.build()?;
        let subscribers = self.subscribers.clone();
        ace.subscribe(move |i| deliver(&subscribers, i));
        Ok(ace)
    }
}

/// Hands an intervention to the Python subscribers; an exception in one is reported through
/// `sys.unraisablehook` and does not fail the recording call.
fn deliver(subscribers: &Mutex<Vec<Py<PyAny>>>, i: &Intervention) {
    crate::hooks::attach(|py| {
        let callbacks: Vec<Py<PyAny>> = subscribers.lock().iter().map(|c| c.clone_ref(py)).collect();
        if callbacks.is_empty() {
            return;
        }
        match convert::intervention(py, i) {
            Ok(obj) => {
                for cb in callbacks {
                    if let Err(e) = cb.call1(py, (obj.clone_ref(py),)) {
                        e.write_unraisable(py, Some(cb.bind(py)));
                    }
                }
            }
            Err(e) => e.write_unraisable(py, None),
        }
    });
}

/// The engine.
#[pyclass(module = "ace._ace", name = "Ace", subclass, frozen)]
pub(crate) struct PyAce {
    /// The engine in use: the one built, or the one built again in a forked child. Not behind a
    /// lock: a recording call can let the GIL go (a log handler or a subscriber it calls runs
    /// Python code), another thread can fork meanwhile, and a lock held at that moment would
    /// be held forever in the child, whose first call would then hang rebuilding.
    ace: ArcSwap<Ace>,
    generation: AtomicU64,
    /// Set while a forked child's first call builds the engine again.
    rebuilding: AtomicBool,
    recipe: Recipe,
    servers: crate::live::Servers,
}

impl PyAce {
    /// The engine, built again first if this is a forked child.
    #[inline]
    pub(crate) fn engine(&self) -> PyResult<Guard<Arc<Ace>>> {
        let now = FORK_GENERATION.load(Ordering::Relaxed);
        if self.generation.load(Ordering::Acquire) != now {
            self.rebuild(now)?;
        }
        Ok(self.ace.load())
    }

    #[cold]
    fn rebuild(&self, generation: u64) -> PyResult<()> {
        Python::attach(|py| {
            // One thread of the child builds; the others wait without the GIL (building may
            // log, and logging needs it).
            while self.rebuilding.swap(true, Ordering::AcqRel) {
                py.detach(std::thread::yield_now);
            }
            let built = if self.generation.load(Ordering::Acquire) == generation {
                Ok(())
            } else {
                self.recipe.build().py(py).map(|fresh| {
                    // The parent's engine is leaked: its threads are gone, and dropping it would
                    // wait for its writer forever.
                    std::mem::forget(self.ace.swap(Arc::new(fresh)));
                    // The parent's listeners too (their threads are gone; the child serves nothing).
                    self.servers.forget_all();
                    self.generation.store(generation, Ordering::Release);
                })
            };
            self.rebuilding.store(false, Ordering::Release);
            built
        })
    }

    pub(crate) fn handle(&self) -> PyResult<Ace> {
        let engine = self.engine()?;
        Ok(Ace::clone(&engine))
    }

    /// Runs a recording call. With a Python judge it runs detached from the interpreter: the
    /// judge is asked on its own thread and needs the GIL the caller would otherwise hold.
    #[inline]
    pub(crate) fn recording<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Ace) -> T + Send) -> PyResult<T> {
        let ace = self.engine()?;
        if self.recipe.judge.is_some() {
            let ace = ace.clone();
            return Ok(py.detach(|| f(&ace)));
        }
        Ok(f(&ace))
    }
}

#[pymethods]
impl PyAce {
    #[new]
    #[pyo3(signature = (url=None, *, cache=None, config=None, persist=true, embedder=None, embedder_dim=None, judge=None, from_env=false, clock=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: Option<String>,
        cache: Option<String>,
        config: Option<&Bound<'_, PyDict>>,
        persist: bool,
        embedder: Option<Py<PyAny>>,
        embedder_dim: Option<usize>,
        judge: Option<Py<PyAny>>,
        from_env: bool,
        clock: Option<PyRef<'_, crate::clock::PyManualClock>>,
    ) -> PyResult<Self> {
        guard(py, || {
            let model = match embedder.as_ref().map(|e| e.bind(py).extract::<String>()) {
                Some(Ok(spec)) => Some(Arc::new(load_model(py, &spec)?)),
                _ => None,
            };
            let embedder = if model.is_some() { None } else { embedder };
            for (field, f) in [("embedder", &embedder), ("judge", &judge)] {
                if f.as_ref().is_some_and(|f| !f.bind(py).is_callable()) {
                    let what = if field == "embedder" {
                        "must be callable, 'minilm' or a model directory"
                    } else {
                        "must be callable"
                    };
                    return Err(invalid(py, field, what));
                }
            }
            let settings = convert::settings(config)?;
            let spec = ace::EngineSpec::new(url.as_deref(), cache.as_deref(), settings, from_env).py(py)?;
            let embedder = match (embedder, embedder_dim) {
                (Some(f), Some(dim)) => Some(Arc::new(PyEmbedder { f, dim })),
                (Some(_), None) => return Err(invalid(py, "embedder_dim", "give the embedder's vector dimension")),
                (None, _) => None,
            };
            let clock = clock.map(|c| c.inner.clone());
            let recipe = Recipe {
                spec,
                persist,
                embedder,
                model,
                judge: judge.map(Arc::new),
                subscribers: Arc::default(),
                clock,
            };
            let ace = py.detach(|| recipe.build()).py(py)?;
            Ok(PyAce {
                ace: ArcSwap::from_pointee(ace),
                generation: AtomicU64::new(FORK_GENERATION.load(Ordering::Relaxed)),
                rebuilding: AtomicBool::new(false),
                recipe,
                servers: crate::live::Servers::default(),
            })
        })
    }

    /// Records a finished stage.
    #[pyo3(signature = (agent, task, stage, duration_s, success=true, metrics=None))]
    fn record_stage(
        &self,
        py: Python<'_>,
        agent: &Bound<'_, PyString>,
        task: &Bound<'_, PyString>,
        stage: &Bound<'_, PyString>,
        duration_s: f64,
        success: bool,
        metrics: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyReport>> {
        guard(py, || {
            let (agent, task, stage) = (utf8(py, "agent", agent)?, utf8(py, "task", task)?, utf8(py, "stage", stage)?);
            let r = match metrics {
                None => self.recording(py, |ace| ace.record_stage(agent, task, stage, duration_s, success))?,
                Some(m) => {
                    let owned = metrics_of(py, Some(m))?;
                    let pairs: Vec<(&str, f64)> = owned.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    self.recording(py, |ace| ace.record_stage_with(agent, task, stage, duration_s, success, &pairs))?
                }
            }
            .py(py)?;
            convert::report(py, &r)
        })
    }

    /// Records a tool call: `tool` called in `stage` (`"tool"` by default), with the digest of
    /// its arguments: computed from `args` (any JSON-able value), or given as `args_digest`, or
    /// none. The arguments themselves are never kept.
    #[pyo3(signature = (agent_id, task_id, tool, duration_s, success=true, *, args=None, args_digest=None, stage=None))]
    fn record_tool(
        &self,
        py: Python<'_>,
        agent_id: &Bound<'_, PyString>,
        task_id: &Bound<'_, PyString>,
        tool: &Bound<'_, PyString>,
        duration_s: f64,
        success: bool,
        args: Option<&Bound<'_, PyAny>>,
        args_digest: Option<&Bound<'_, PyString>>,
        stage: Option<&Bound<'_, PyString>>,
    ) -> PyResult<Py<PyReport>> {
        guard(py, || {
            let (agent, task) = (utf8(py, "agent_id", agent_id)?, utf8(py, "task_id", task_id)?);
            let tool = utf8(py, "tool", tool)?;
            let stage = match stage {
                Some(s) => utf8(py, "stage", s)?,
                None => ace::tool::TOOL_STAGE,
            };
            let computed = match (args, args_digest) {
                (Some(_), Some(_)) => return Err(invalid(py, "args", "give args or args_digest, not both")),
                (Some(a), None) => Some(digest_of(py, a)?),
                (None, _) => None,
            };
            let args_digest = match (&computed, args_digest) {
                (Some(d), _) => Some(d.as_str()),
                (None, Some(d)) => Some(utf8(py, "args_digest", d)?),
                (None, None) => None,
            };
            let call = ace::ToolCall { agent, task, stage, tool, args_digest, duration_s, success };
            let r = self.recording(py, |ace| ace.record_tool_call(&call))?.py(py)?;
            convert::report(py, &r)
        })
    }

    /// Records one named metric of a stage without an outcome.
    fn record_metric(
        &self,
        py: Python<'_>,
        agent: &Bound<'_, PyString>,
        task: &Bound<'_, PyString>,
        stage: &Bound<'_, PyString>,
        name: &Bound<'_, PyString>,
        value: f64,
    ) -> PyResult<Py<PyReport>> {
        guard(py, || {
            let (agent, task, stage) = (utf8(py, "agent", agent)?, utf8(py, "task", task)?, utf8(py, "stage", stage)?);
            let name = utf8(py, "name", name)?;
            let r = self.recording(py, |ace| ace.record_metric(agent, task, stage, name, value))?.py(py)?;
            convert::report(py, &r)
        })
    }

    /// Records an error: `error` is an exception (its class name is the kind, its text the
    /// message) or a kind name with `message`.
    #[pyo3(signature = (agent, task, stage, error, message=None, severity=None))]
    fn record_error(
        &self,
        py: Python<'_>,
        agent: &Bound<'_, PyString>,
        task: &Bound<'_, PyString>,
        stage: &Bound<'_, PyString>,
        error: &Bound<'_, PyAny>,
        message: Option<&Bound<'_, PyAny>>,
        severity: Option<&str>,
    ) -> PyResult<Py<PyErrorReport>> {
        guard(py, || {
            let (agent, task, stage) = (utf8(py, "agent", agent)?, utf8(py, "task", task)?, utf8(py, "stage", stage)?);
            let severity = crate::args::severity(py, severity)?;
            // The kind and message are borrowed from their `str` objects where they are some.
            // A kind name (the usual call) is checked first: a `str` is no exception.
            let (kind, default_message) = if error.is_exact_instance_of::<PyString>()
                || !error.is_instance_of::<pyo3::exceptions::PyBaseException>()
            {
                (text(py, "error", error)?, None)
            } else {
                let kind = std::borrow::Cow::Owned(error.get_type().name()?.to_string());
                (kind, Some(error.str()?.to_string_lossy().into_owned()))
            };
            let message = match message {
                Some(m) => text(py, "message", m)?,
                None => std::borrow::Cow::Owned(default_message.unwrap_or_default()),
            };
            let r =
                self.recording(py, |ace| ace.record_error(agent, task, stage, &kind, &message, severity))?.py(py)?;
            convert::error_report(py, &r)
        })
    }

    /// Says a task has ended, and whether it succeeded when known; returns whether the engine
    /// knew it.
    #[pyo3(signature = (agent, task, success=None))]
    fn end_task(&self, py: Python<'_>, agent: Text, task: Text, success: Option<bool>) -> PyResult<bool> {
        guard(py, || self.engine()?.end_task_with(&agent, &task, success).py(py))
    }

    /// Reflects on a task: `reflector(summary)` gets a bounded text summary of what the engine saw
    /// of it and returns insights (dicts or `(section, content)` tuples), merged into `domain`
    /// (the agent's name by default) at shadow. Returns `{summary, report}`, or None when
    /// `ACE_REFLECT_PER_MINUTE` was reached. Blocks on the store and the reflector (the GIL is
    /// released meanwhile): call it from a worker, not from the code that records.
    #[pyo3(signature = (agent, task, reflector, domain=None))]
    fn reflect<'py>(
        &self,
        py: Python<'py>,
        agent: Text,
        task: Text,
        reflector: Py<PyAny>,
        domain: Option<Text>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        guard(py, || {
            if !reflector.bind(py).is_callable() {
                return Err(invalid(py, "reflector", "must be callable"));
            }
            let ace = self.engine()?.clone();
            let reflect = |s: &ace::TaskSummary| call_reflector(&reflector, s);
            let domain = domain.as_deref();
            let done = py.detach(|| ace.reflect(&agent, &task, domain, &reflect)).py(py)?;
            done.map(|r| to_data(py, &r)).transpose()
        })
    }

    /// Reflects with `reflector(summary)` on every task that ends failed from now on
    /// (`end_task(..., success=False)`), on a thread of the engine's; insights go to `domain` (each
    /// agent's own by default). A second call replaces the reflector.
    #[pyo3(signature = (reflector, domain=None))]
    fn reflect_on_failure(&self, py: Python<'_>, reflector: Py<PyAny>, domain: Option<Text>) -> PyResult<()> {
        guard(py, || {
            if !reflector.bind(py).is_callable() {
                return Err(invalid(py, "reflector", "must be callable"));
            }
            let f = move |s: &ace::TaskSummary| call_reflector(&reflector, s);
            self.engine()?.reflect_on_failure(f, domain.as_deref()).py(py)
        })
    }

    /// Says the agent's context was rebuilt.
    fn refresh_context(&self, py: Python<'_>, agent: Text) -> PyResult<()> {
        guard(py, || self.engine()?.refresh_context(&agent).py(py))
    }

    /// The agent's context staleness in [0, 1], or None for an agent never seen.
    fn context_staleness(&self, py: Python<'_>, agent: Text) -> PyResult<Option<f64>> {
        guard(py, || Ok(self.engine()?.context_staleness(&agent)))
    }

    /// Calls `callback(intervention)` for every intervention the engine issues.
    fn subscribe(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(invalid(py, "callback", "not callable"));
        }
        self.recipe.subscribers.lock().push(callback);
        Ok(())
    }

    /// Reports whether an intervention worked.
    fn report_outcome(&self, py: Python<'_>, intervention: &Bound<'_, PyAny>, success: bool) -> PyResult<()> {
        guard(py, || {
            let id: u64 = match intervention.cast::<convert::PyIntervention>() {
                Ok(i) => i.getattr("id")?.extract()?,
                Err(_) => intervention
                    .extract()
                    .map_err(|_| invalid(py, "intervention", "expected an Intervention or its id"))?,
            };
            self.engine()?.report_outcome(ace::InterventionId(id), success).py(py)
        })
    }

    /// The baseline of one (agent, stage, metric), as a dict, or None.
    #[pyo3(signature = (agent, stage, metric="duration_s"))]
    fn baseline<'py>(
        &self,
        py: Python<'py>,
        agent: Text,
        stage: Text,
        metric: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        guard(py, || self.engine()?.baseline(&agent, &stage, metric).map(|b| to_data(py, &b)).transpose())
    }

    /// The error patterns the live miner holds, most frequent first, as dicts.
    fn patterns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::live::patterns(py, self.handle()?, false)
    }

    /// The error patterns the store holds (other processes' too, on a shared store).
    fn stored_patterns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::live::patterns(py, self.handle()?, true)
    }

    /// The newest signals this engine raised (newest first, held in memory), as dicts.
    #[pyo3(signature = (agent=None, limit=None))]
    fn recent_signals<'py>(
        &self,
        py: Python<'py>,
        agent: Option<Text>,
        limit: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit.map_or(Ok(100), |n| crate::convert::count_arg(py, "limit", n))? as usize;
        crate::live::signals(py, self.handle()?, agent.map(|a| a.to_string()), limit)
    }

    /// Serves the live page (`/`), its JSON (`/api/`), `/metrics` and `/health` of this engine
    /// on `addr` (loopback by default; port 0 picks one) on a background thread, until
    /// `Server.stop()` or `close()`. With `token`, every request needs `Authorization: Bearer`.
    #[pyo3(signature = (addr="127.0.0.1:9464", *, token=None))]
    fn serve(&self, py: Python<'_>, addr: &str, token: Option<String>) -> PyResult<crate::live::PyServer> {
        crate::live::serve(py, &self.handle()?, &self.servers, addr, token)
    }

    /// The newest interventions the store holds (newest first) as dicts: `since` in Unix
    /// seconds, `agent`, at most `limit` (100 when `None`; 0: up to 100,000).
    #[pyo3(signature = (since=None, agent=None, limit=None))]
    fn interventions<'py>(
        &self,
        py: Python<'py>,
        since: Option<f64>,
        agent: Option<Text>,
        limit: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit.map_or(Ok(100), |n| crate::convert::count_arg(py, "limit", n))? as usize;
        crate::live::interventions(py, self.handle()?, since, agent.map(|a| a.to_string()), limit)
    }

    /// The newest errors the store holds (newest first) as dicts; arguments as `interventions`.
    #[pyo3(signature = (since=None, agent=None, limit=None))]
    fn errors<'py>(
        &self,
        py: Python<'py>,
        since: Option<f64>,
        agent: Option<Text>,
        limit: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit.map_or(Ok(100), |n| crate::convert::count_arg(py, "limit", n))? as usize;
        crate::live::errors(py, self.handle()?, since, agent.map(|a| a.to_string()), limit)
    }

    /// All metrics as OpenMetrics text.
    fn metrics_text(&self, py: Python<'_>) -> PyResult<String> {
        guard(py, || Ok(self.engine()?.metrics_text()))
    }

    /// Store, cache and breaker status, as a dict in the runbook's `/health` shape.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(py, || {
            let ace = self.handle()?;
            let h = py.detach(|| ace.health());
            to_data(py, &h)
        })
    }

    /// Counters since the engine started, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(py, || {
            let s = self.engine()?.stats();
            let d = PyDict::new(py);
            for (k, v) in [
                ("recorded", s.recorded),
                ("persisted", s.persisted),
                ("buffered", s.buffered),
                ("dropped", s.dropped),
                ("evicted", s.evicted),
                ("signals", s.signals),
                ("baselines", s.baselines),
                ("errors", s.errors),
                ("patterns", s.patterns),
                ("open_tasks", s.open_tasks),
                ("store_failures", s.store_failures),
            ] {
                d.set_item(k, v)?;
            }
            Ok(d.into_any())
        })
    }

    /// Blocks (without the GIL) until every accepted record is stored.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, || {
            let ace = self.handle()?;
            py.detach(|| ace.flush()).py(py)
        })
    }

    /// Deletes the metric, error and intervention records older than `days` days (engine clock)
    /// from the store, now, without the GIL; returns how many went. `days` is 1 to 36,500.
    fn retain(&self, py: Python<'_>, days: &Bound<'_, PyAny>) -> PyResult<u64> {
        guard(py, || {
            let days = crate::convert::count_arg(py, "days", days)?;
            let ace = self.handle()?;
            py.detach(|| ace.retain(days)).py(py)
        })
    }

    /// Flushes and stops the engine (and the listeners `serve` started); later calls raise
    /// `ClosedError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, || {
            let ace = self.handle()?;
            py.detach(|| self.servers.stop_all());
            py.detach(|| ace.close()).py(py)
        })
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.engine()?.is_closed())
    }

    /// The playbooks, one per domain.
    #[getter]
    fn playbooks(slf: Py<Self>) -> crate::playbook::PyPlaybooks {
        crate::playbook::PyPlaybooks { engine: slf }
    }

    /// Every breaker's state, `{name: state}`.
    fn breaker_states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, || crate::breaker::states(py, &self.handle()?))
    }

    /// The store backend (`memory`, `sqlite`, `postgres`).
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        Ok(self.engine()?.store().backend())
    }
}
