//! `NativeRetry`: the core's retry decisions (whether to retry, how long to wait, the counts) for
//! `Retry` in `ace.js`, which runs the attempts and the waits on the event loop.

use std::sync::Arc;

use ace::breaker::config::seconds;
use ace::breaker::{Breakers, Retry, RetryConfig};
use ace::error::count;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{Value, json};

use crate::{IntoJs, guard};

/// Settings of a retry.
#[napi(object)]
pub struct RetryOptions {
    /// Attempts in all, the first included (3).
    pub max_attempts: Option<f64>,
    /// The first wait, in seconds (0.5).
    pub wait_seconds: Option<f64>,
    /// Growth of the wait per retry (2).
    pub multiplier: Option<f64>,
    /// The longest wait, in seconds (30).
    pub max_wait_seconds: Option<f64>,
    /// Spread of each wait, a fraction in [0, 1) (0.5).
    pub jitter: Option<f64>,
    /// Retry a call a breaker turned away (false).
    pub retry_rejected: Option<bool>,
}

/// A retry policy with exponential backoff and jitter, and its counts.
#[napi]
pub struct NativeRetry {
    inner: Arc<Retry>,
    /// The engine's registry it belongs to (`eng.retry(...)`): its counts are series there.
    registry: Option<Arc<Breakers>>,
}

#[napi]
impl NativeRetry {
    /// The retry `name` with `options`; with `engine`, that engine's retry `name` (made with
    /// these options on first use), whose counts are its series.
    #[napi(constructor)]
    pub fn new(name: String, options: Option<RetryOptions>, engine: Option<&crate::engine::Engine>) -> Result<Self> {
        guard(|| {
            let mut cfg = RetryConfig::default();
            if let Some(o) = options {
                if let Some(n) = o.max_attempts {
                    cfg.max_attempts = count("max_attempts", n).js()?;
                }
                if let Some(s) = o.wait_seconds {
                    cfg.wait = seconds("wait_seconds", s).js()?;
                }
                if let Some(m) = o.multiplier {
                    cfg.multiplier = m;
                }
                if let Some(s) = o.max_wait_seconds {
                    cfg.max_wait = seconds("max_wait_seconds", s).js()?;
                }
                if let Some(j) = o.jitter {
                    cfg.jitter = j;
                }
                if let Some(r) = o.retry_rejected {
                    cfg.retry_rejected = r;
                }
            }
            match engine {
                None => Ok(NativeRetry { inner: Arc::new(Retry::new(&name, cfg).js()?), registry: None }),
                Some(e) => {
                    e.ace.ensure_open().js()?;
                    let registry = e.ace.breakers().clone();
                    Ok(NativeRetry { inner: registry.retry(&name, cfg).js()?, registry: Some(registry) })
                }
            }
        })
    }

    /// Its name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// The wait before retry number `retry` (1 for the first), in seconds, jitter applied.
    #[napi]
    pub fn wait(&self, retry: f64) -> Result<f64> {
        Ok(self.inner.wait(count("retry", retry).js()?).as_secs_f64())
    }

    /// Attempt `attempt` failed: with an error of `kind` and `message`, or (`kind` null) a
    /// breaker's rejection; `retryable` false when the caller's filter does not retry it. The
    /// seconds to wait before the next attempt, or null when the call is over.
    #[napi]
    pub fn after_failure(
        &self,
        kind: Option<String>,
        message: String,
        attempt: f64,
        retryable: bool,
    ) -> Result<Option<f64>> {
        let attempt = count("attempt", attempt).js()?;
        if !retryable {
            self.inner.gave_up(attempt);
            return Ok(None);
        }
        Ok(self.inner.after_failure(kind.as_deref().map(|k| (k, message.as_str())), attempt).map(|d| d.as_secs_f64()))
    }

    /// Attempt `attempt` succeeded.
    #[napi]
    pub fn after_success(&self, attempt: f64) -> Result<()> {
        self.inner.after_success(count("attempt", attempt).js()?);
        Ok(())
    }

    /// Counts an attempt that a policy's timeout cut short, as `ace_timeouts_total{name}` of its
    /// engine (nothing for a retry made without one).
    #[napi]
    pub fn count_timeout(&self) -> Result<()> {
        match &self.registry {
            Some(r) => r.count_timeout(self.inner.name()).js(),
            None => Ok(()),
        }
    }

    /// What it has done: succeeded / failed, without / with retry, and the retries made.
    #[napi(ts_return_type = "Record<string, number>")]
    pub fn counts(&self) -> Value {
        let c = self.inner.counts();
        json!({
            "succeededWithoutRetry": c.succeeded_without_retry, "succeededWithRetry": c.succeeded_with_retry,
            "failedWithoutRetry": c.failed_without_retry, "failedWithRetry": c.failed_with_retry,
            "retries": c.retries,
        })
    }
}
