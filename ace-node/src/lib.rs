//! The native half of the `agent-ace` npm package: a thin layer that converts arguments, calls
//! the Rust core and converts its errors. `ace.js` on top gives it the JS idiom (error classes,
//! `stage()` callbacks, events, breakers' `call`, adapters).
//!
//! Errors cross as a plain `Error` whose message is `ace:` followed by a JSON object with the
//! core's `code`, the message and the error's details; `ace.js` turns it into the matching error
//! class. Every entry point runs under `catch_unwind`: a panic becomes an `internal` error.

// Methods take the arguments their JS signatures list.
#![allow(clippy::too_many_arguments)]
// napi-rs registers nothing in a test build, so everything looks unused there.
#![cfg_attr(test, allow(dead_code))]

mod breaker;
mod engine;
mod hot;
mod playbook;
mod raw;

use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A native error carrying the core's code and details for `ace.js`.
pub(crate) fn coded(code: &str, message: &str, details: Value) -> Error {
    let mut body = Map::new();
    body.insert("code".into(), Value::from(code));
    body.insert("message".into(), Value::from(message));
    if let Value::Object(d) = details {
        body.extend(d);
    }
    Error::new(Status::GenericFailure, format!("ace:{}", Value::Object(body)))
}

/// The native error for a core error.
pub(crate) fn to_js(e: &ace::Error) -> Error {
    let details = match e {
        ace::Error::Config { key, .. } => json!({ "key": key }),
        ace::Error::InvalidInput { field, .. } => json!({ "field": field }),
        ace::Error::StoreUnavailable { backend, .. } | ace::Error::Store { backend, .. } => {
            json!({ "backend": backend })
        }
        ace::Error::CircuitOpen { breaker, retry_after } => {
            json!({ "breaker": breaker, "retryAfter": retry_after.map(|d| d.as_secs_f64()) })
        }
        _ => Value::Null,
    };
    coded(e.code(), &e.to_string(), details)
}

/// An `invalid_input` error for an argument the binding rejects before the core sees it.
pub(crate) fn invalid(field: &str, reason: &str) -> Error {
    coded("invalid_input", &format!("invalid {field}: {reason}"), json!({ "field": field }))
}

/// Converts a core result.
pub(crate) trait IntoJs<T> {
    /// The value, or the core error as a native error.
    fn js(self) -> Result<T>;
}

impl<T> IntoJs<T> for ace::Result<T> {
    fn js(self) -> Result<T> {
        self.map_err(|e| to_js(&e))
    }
}

/// Runs `f`, turning a panic into an `internal` error.
#[inline]
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(coded("internal", &format!("internal error in ace (please report it): {what}"), Value::Null))
        }
    }
}

/// `snake_case` object keys as `camelCase`, all the way down (data crossing into JS).
pub(crate) fn camel(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let mut out = String::with_capacity(k.len());
                    let mut up = false;
                    for c in k.chars() {
                        if c == '_' && !out.is_empty() {
                            up = true;
                        } else if up {
                            out.extend(c.to_uppercase());
                            up = false;
                        } else {
                            out.push(c);
                        }
                    }
                    // Engine timestamps (microseconds) cross as seconds, as in Python.
                    let v = match (out.as_str(), &v) {
                        ("at" | "createdAt" | "updatedAt", Value::Number(n)) => {
                            n.as_i64().map_or(v.clone(), |us| Value::from(us as f64 / 1e6))
                        }
                        _ => camel(v),
                    };
                    (out, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(camel).collect()),
        other => other,
    }
}

/// A serialisable core value as JS data (camelCase keys; 64-bit ids as strings).
pub(crate) fn data(v: &impl Serialize) -> Result<Value> {
    serde_json::to_value(v).map(camel).map_err(|e| coded("internal", &e.to_string(), Value::Null))
}

/// Work for the libuv thread pool whose result crosses as JS data: the Promise-returning
/// calls (store I/O, flush, health, replay, playbooks).
pub struct Job {
    work: Option<Box<dyn FnOnce() -> Result<Value> + Send>>,
}

impl Job {
    pub(crate) fn new(f: impl FnOnce() -> Result<Value> + Send + 'static) -> AsyncTask<Job> {
        AsyncTask::new(Job { work: Some(Box::new(f)) })
    }
}

/// JS data from a Job (a JSON value: napi converts it, this names its type).
pub struct Data(Value);

impl TypeName for Data {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Data {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        // SAFETY: called by napi with its own live `env`, as `Value`'s conversion expects.
        unsafe { Value::to_napi_value(env, val.0) }
    }
}

impl Task for Job {
    type Output = Value;
    type JsValue = Data;

    fn compute(&mut self) -> Result<Value> {
        let work = self.work.take().ok_or_else(|| coded("internal", "a job ran twice", Value::Null))?;
        guard(work)
    }

    fn resolve(&mut self, _env: Env, output: Value) -> Result<Data> {
        Ok(Data(output))
    }
}

/// The settings as an `AceConfig`: keys as environment variable names (`ACE_BATCH_SIZE`) or
/// camelCase or snake_case without the prefix (`batchSize`, `batch_size`); over the environment
/// when `env`, over the defaults otherwise. A key that names no setting is a `config` error.
pub(crate) fn config(
    settings: Option<&Value>,
    overrides: &[(&str, Option<String>)],
    env: bool,
) -> Result<ace::AceConfig> {
    const PLAIN: [&str; 5] =
        ["DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URLS", "POSTGRES_MAX_CONNECTIONS", "REDIS_MAX_CONNECTIONS"];
    let mut given: Vec<(String, String)> = Vec::new();
    match settings {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let mut snake = String::new();
                for c in k.chars() {
                    if c.is_ascii_uppercase() && !snake.is_empty() && !k.contains('_') {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_uppercase());
                }
                let name = if snake.starts_with("ACE_") || PLAIN.contains(&snake.as_str()) {
                    snake
                } else {
                    format!("ACE_{snake}")
                };
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => {
                        return Err(invalid(
                            "config",
                            &format!("the value of {k} is {other}; use a string, number, boolean or array"),
                        ));
                    }
                };
                given.push((name, text));
            }
        }
        Some(_) => return Err(invalid("config", "expected an object of settings")),
    }
    for (name, v) in overrides {
        if let Some(v) = v {
            given.push(((*name).to_owned(), v.clone()));
        }
    }
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let cfg = ace::AceConfig::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        given
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| if env { std::env::var(name).ok() } else { None })
    })
    .js()?;
    let asked = asked.into_inner();
    if let Some((unknown, value)) = given.iter().find(|(k, _)| !asked.contains(k)) {
        return Err(to_js(&ace::Error::Config {
            key: unknown.clone(),
            value: ace::error::redact_url(value),
            reason: "no such setting (see docs/configuration.md)".into(),
        }));
    }
    Ok(cfg)
}

/// Replays a recorded trace file through a fresh in-memory engine; resolves to the scores.
#[napi(ts_return_type = "Promise<Record<string, unknown>>")]
pub fn replay(path: String, config: Option<Value>) -> Result<AsyncTask<Job>> {
    let cfg = self::config(config.as_ref(), &[], false)?;
    Ok(Job::new(move || {
        let file = std::fs::File::open(&path).map_err(|e| invalid("path", &format!("{path}: {e}")))?;
        let name =
            std::path::Path::new(&path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let score = ace::replay::replay(std::io::BufReader::new(file), &name, cfg).js()?;
        data(&score)
    }))
}

/// The package version.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
