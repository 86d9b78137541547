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
mod breaker_events;
mod clock;
mod engine;
mod hot;
mod live;
mod playbook;
mod raw;
mod raw_record;
mod raw_str;
mod reflect;
mod retry;

use std::panic::{AssertUnwindSafe, catch_unwind};

use ace::error::{Detail, panic_message};
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

/// The native error for a core error, its details with camelCase names (`retryAfter`).
pub(crate) fn to_js(e: &ace::Error) -> Error {
    let details: Map<String, Value> = e
        .details()
        .into_iter()
        .filter_map(|(name, value)| {
            let value = match value {
                Detail::Text(s) => Value::from(s),
                Detail::Seconds(s) => s.map_or(Value::Null, Value::from),
                _ => return None,
            };
            Some((name.to_owned(), value))
        })
        .collect();
    coded(e.code(), &e.to_string(), camel(Value::Object(details)))
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
            let what = panic_message(&*payload);
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

/// The settings of an object as `(name, text)` pairs for the core, which knows every setting's
/// names (`ACE_BATCH_SIZE`, `batchSize`, `batch_size`) and reads their values
/// (`AceConfig::from_settings`).
pub(crate) fn settings(settings: Option<&Value>) -> Result<Vec<(String, String)>> {
    let m = match settings {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("config", "expected an object of settings")),
    };
    m.iter()
        .map(|(k, v)| {
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
            Ok((k.clone(), text))
        })
        .collect()
}

/// Replays a recorded trace file through a fresh in-memory engine; resolves to the scores.
#[napi(ts_return_type = "Promise<Record<string, unknown>>")]
pub fn replay(path: String, config: Option<Value>) -> Result<AsyncTask<Job>> {
    let cfg = ace::AceConfig::from_settings(settings(config.as_ref())?).js()?;
    Ok(Job::new(move || {
        let file = std::fs::File::open(&path).map_err(|e| invalid("path", &format!("{path}: {e}")))?;
        let name =
            std::path::Path::new(&path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let score = ace::replay::replay(std::io::BufReader::new(file), &name, cfg).js()?;
        data(&score)
    }))
}

/// The digest of a tool call's arguments given as JSON text in any formatting (16 hex digits;
/// see `ace_core::tool`): what `recordTool(..., { args })` computes from `JSON.stringify(args)`.
#[napi]
pub fn args_digest_json(text: String) -> Result<String> {
    guard(|| ace::tool::digest_json(&text).js())
}

/// The package version.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
