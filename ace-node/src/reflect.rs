//! `Engine.reflect(...)` and `Engine.reflectOnFailure(...)`: a JS function as the core's
//! `Reflector`. The core calls it from a thread that is never the recording one (the libuv pool
//! for `reflect`, the engine's reflection thread for `reflectOnFailure`); the call crosses to
//! the JS thread through a threadsafe function, and that thread waits for the Promise the
//! function returns (`ace.js` wraps every reflector so that it returns one). Rate limit,
//! counters and the merge at `shadow` are the core's.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ace::TaskSummary;
use ace::playbook::Insight;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::Value;

use crate::engine::Engine;
use crate::{IntoJs, Job, data, guard};

/// The longest a reflection waits for the JS reflector (an LLM call in practice).
const TIMEOUT: Duration = Duration::from_secs(300);

/// `(summary: string) => Promise<Insight[]>`, weak: a reflector alone keeps no process alive.
type ReflectFn = ThreadsafeFunction<String, Promise<Value>, String, Status, false, true>;

/// A JS function as the core's reflector.
struct JsReflector(Arc<ReflectFn>);

fn failed(reason: String) -> ace::Error {
    ace::Error::InvalidInput { field: "reflector", reason }
}

/// Unparks the thread waiting for a Promise when it settles.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits on this (non-JS) thread for `f`, at most until `deadline`.
fn wait_for<F: Future>(f: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::park_timeout(left);
    }
}

/// The insights a reflector resolved to: an array of `{section, content, provenance?}`.
fn insights(v: Value) -> ace::Result<Vec<Insight>> {
    let Value::Array(items) = v else {
        return Err(failed(format!("the JS reflector must resolve to an array of insights, not {v}")));
    };
    items
        .into_iter()
        .map(|item| {
            let text = |key: &str| item.get(key).and_then(Value::as_str);
            match (text("section"), text("content")) {
                (Some(section), Some(content)) => {
                    let mut insight = Insight::new(section, content);
                    insight.provenance = text("provenance").map(str::to_owned);
                    Ok(insight)
                }
                _ => Err(failed(format!("an insight is {{section, content, provenance?}} with strings, not {item}"))),
            }
        })
        .collect()
}

impl ace::Reflector for JsReflector {
    fn reflect(&self, summary: &TaskSummary) -> ace::Result<Vec<Insight>> {
        let deadline = Instant::now() + TIMEOUT;
        let (tx, rx) = std::sync::mpsc::channel();
        let status = self.0.call_with_return_value(
            summary.text.clone(),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |r: Result<Promise<Value>>, _env| {
                let _ = tx.send(r);
                Ok(())
            },
        );
        if status != Status::Ok {
            return Err(failed(format!("the JS reflector could not be called ({status})")));
        }
        let gone = || failed(format!("the JS reflector gave no answer within {} s", TIMEOUT.as_secs()));
        let left = deadline.saturating_duration_since(Instant::now());
        let promise = rx.recv_timeout(left).map_err(|_| gone())?;
        let promise = promise.map_err(|e| failed(format!("the JS reflector failed: {}", e.reason)))?;
        match wait_for(promise, deadline) {
            Some(Ok(v)) => insights(v),
            Some(Err(e)) => Err(failed(format!("the JS reflector failed: {}", e.reason))),
            None => Err(gone()),
        }
    }
}

fn reflector(f: Function<String, Promise<Value>>) -> Result<JsReflector> {
    let tsfn: ReflectFn = f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
    Ok(JsReflector(Arc::new(tsfn)))
}

#[napi]
impl Engine {
    /// Reflects on `agent`'s `task` on the thread pool: `reflector(summary)` (which must return a
    /// Promise; `ace.js` makes it so) gets the task's summary and resolves to insights, merged
    /// into `domain` (the agent's by default) at shadow. Resolves to `{summary, report}`, or
    /// `null` when `ACE_REFLECT_PER_MINUTE` was reached.
    #[napi(ts_return_type = "Promise<Record<string, unknown> | null>")]
    pub fn reflect(
        &self,
        agent: String,
        task: String,
        #[napi(ts_arg_type = "(summary: string) => Promise<unknown>")] reflector: Function<String, Promise<Value>>,
        domain: Option<String>,
    ) -> Result<AsyncTask<Job>> {
        let f = guard(|| self::reflector(reflector))?;
        let ace = self.ace.clone();
        Ok(Job::new(move || match ace.reflect(&agent, &task, domain.as_deref(), &f).js()? {
            Some(r) => data(&r),
            None => Ok(Value::Null),
        }))
    }

    /// Reflects with `reflector` on every task that ends failed from now on, on a thread of
    /// the engine's; insights go to `domain` (each agent's own by default). A second call
    /// replaces the reflector.
    #[napi]
    pub fn reflect_on_failure(
        &self,
        #[napi(ts_arg_type = "(summary: string) => Promise<unknown>")] reflector: Function<String, Promise<Value>>,
        domain: Option<String>,
    ) -> Result<()> {
        guard(|| {
            let f = self::reflector(reflector)?;
            self.ace.reflect_on_failure(f, domain.as_deref()).js()
        })
    }
}
