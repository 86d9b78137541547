//! `Engine.serve(...)` and the read-back calls (`interventions`, `errors`, `storedPatterns`,
//! `recentSignals`): argument conversion
//! around `ace::serve_with` and `ace::readback`. The listener runs on Rust threads and is
//! stopped by `Server.stop()` or the engine's `close()`.

use std::sync::Arc;

use ace::readback::{error_json, intervention_json, list, signal_json};
use ace::{ErrorQuery, InterventionQuery, ServeOptions, Timestamp};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::Value;

use crate::engine::Engine;
use crate::{IntoJs, Job, camel, data, guard, invalid, to_js};

type Slot = Arc<Mutex<Option<ace::Server>>>;

/// The listeners an engine started, stopped when it closes.
#[derive(Clone, Default)]
pub(crate) struct Servers(Arc<Mutex<Vec<Slot>>>);

impl Servers {
    /// Stops every listener (the engine is closing).
    pub(crate) fn stop_all(&self) {
        let all: Vec<Slot> = self.0.lock().drain(..).collect();
        for s in all {
            if let Some(server) = s.lock().take() {
                server.stop();
            }
        }
    }
}

/// A running listener: `/`, `/api/`, `/metrics` and `/health` of one engine.
#[napi]
pub struct Server {
    slot: Slot,
    addr: std::net::SocketAddr,
}

#[napi]
impl Server {
    /// `host:port` it listens on (the port chosen when 0 was asked for).
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The port it listens on.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.addr.port())
    }

    /// The page's URL.
    #[napi(getter)]
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Whether it still listens.
    #[napi(getter)]
    pub fn running(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// Stops listening. Harmless twice.
    #[napi]
    pub fn stop(&self) {
        let server = self.slot.lock().take();
        if let Some(s) = server {
            s.stop();
        }
    }
}

/// Options of `serve`.
#[napi(object)]
pub struct ServeConfig {
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
}

fn since_ts(since: Option<f64>) -> Result<Option<Timestamp>> {
    since
        .map(|s| Timestamp::from_secs_f64(s).ok_or_else(|| invalid("since", "must be finite Unix seconds")))
        .transpose()
}

fn limit_or_default(limit: Option<f64>) -> Result<usize> {
    Ok(limit.map(|n| ace::error::count("limit", n)).transpose().js()?.map_or(100, |n| n as usize))
}

#[napi]
impl Engine {
    /// Serves the live page, `/api/`, `/metrics` and `/health` of this engine on `addr`
    /// (default `127.0.0.1:9464`; port 0 picks one) until `stop()` or `close()`.
    #[napi]
    pub fn serve(&self, addr: Option<String>, options: Option<ServeConfig>) -> Result<Server> {
        guard(|| {
            if self.ace.is_closed() {
                return Err(to_js(&ace::Error::Closed));
            }
            let mut opts = ServeOptions::default();
            if let Some(token) = options.and_then(|o| o.token) {
                if token.is_empty() {
                    return Err(invalid("token", "an empty token would let anyone in; leave it out for no token"));
                }
                opts = opts.token(token);
            }
            let addr = addr.unwrap_or_else(|| "127.0.0.1:9464".to_owned());
            let server = ace::serve_with(&self.ace, addr.as_str(), opts).js()?;
            let addr = server.local_addr();
            let slot = Arc::new(Mutex::new(Some(server)));
            self.servers.0.lock().push(slot.clone());
            Ok(Server { slot, addr })
        })
    }

    /// The newest interventions the store holds, newest first: `since` in Unix seconds, at most
    /// `limit` (default 100; 0: up to 100,000).
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn interventions(
        &self,
        since: Option<f64>,
        agent: Option<String>,
        limit: Option<f64>,
    ) -> Result<AsyncTask<Job>> {
        let mut q = InterventionQuery::all().limit(limit_or_default(limit)?);
        (q.agent, q.since) = (agent, since_ts(since)?);
        let ace = self.ace.clone();
        Ok(Job::new(move || {
            let rows = ace.interventions(&q).js()?;
            let mut v = camel(list(&rows, intervention_json));
            // The id as interventions carry it elsewhere in Node (a decimal string), for reportOutcome.
            for (item, r) in v.as_array_mut().into_iter().flatten().zip(&rows) {
                item["id"] = r.id.0.to_string().into();
            }
            Ok(v)
        }))
    }

    /// The newest errors the store holds, newest first (arguments as `interventions`).
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn errors(&self, since: Option<f64>, agent: Option<String>, limit: Option<f64>) -> Result<AsyncTask<Job>> {
        let mut q = ErrorQuery::all().limit(limit_or_default(limit)?);
        (q.agent, q.since) = (agent, since_ts(since)?);
        let ace = self.ace.clone();
        Ok(Job::new(move || Ok(camel(list(&ace.errors(&q).js()?, error_json)))))
    }

    /// The error patterns the store holds (with other processes' on a shared store), most
    /// frequent first; `patterns()` is the live miner's.
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn stored_patterns(&self) -> AsyncTask<Job> {
        let ace = self.ace.clone();
        Job::new(move || data(&ace.stored_patterns().js()?))
    }

    /// The newest signals this engine raised (newest first, held in memory), of `agent` if
    /// given, at most `limit` (default 100; 0: all kept).
    #[napi(ts_return_type = "Array<Record<string, unknown>>")]
    pub fn recent_signals(&self, agent: Option<String>, limit: Option<f64>) -> Result<Value> {
        guard(|| {
            let limit = limit_or_default(limit)?;
            Ok(camel(list(&self.ace.recent_signals(agent.as_deref(), limit).js()?, signal_json)))
        })
    }
}
