//! The engine's health (the `/health` answer) and its activity counters.

use serde::Serialize;

use super::Ace;
use crate::breaker::State;

/// The engine's health, in the shape of the seed runbook's `/health` answer (see
/// [`Ace::health`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `healthy`, `degraded` (the cache unreachable, a breaker open, records dropped, the buffer
    /// over half full) or `unhealthy` (the store does not answer).
    pub status: &'static str,
    /// ace's version.
    pub version: &'static str,
    /// When it was taken (engine clock, RFC 3339 UTC).
    pub timestamp: String,
    /// `connected` or `unreachable`.
    pub database: &'static str,
    /// The store backend (`sqlite`, `postgres`, `memory`).
    pub database_backend: &'static str,
    /// The store's round trip in milliseconds (when connected).
    pub latency_ms: Option<f64>,
    /// Why the store did not answer.
    pub database_error: Option<String>,
    /// The shared cache: `connected`, `unreachable` or `not_configured`.
    pub redis: &'static str,
    /// The cache's backend (`redis`, `memory`), when one is configured.
    pub cache_backend: Option<&'static str>,
    /// The cache's round trip in milliseconds (when connected).
    pub cache_latency_ms: Option<f64>,
    /// Each breaker's state, by name.
    pub circuit_breakers: std::collections::BTreeMap<String, &'static str>,
    /// Records waiting for the store.
    pub buffered: u64,
    /// Records accepted but not stored (should stay 0).
    pub dropped: u64,
}

impl Health {
    /// The health as JSON (what `/health` serves).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"status":"unhealthy"}"#.to_owned())
    }
}

/// Counters of the engine's activity since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Observations recorded (valid calls).
    pub recorded: u64,
    /// Records written to the store.
    pub persisted: u64,
    /// Records waiting to be written.
    pub buffered: u64,
    /// Records accepted but not persisted, whatever the reason: the buffer full without a spill
    /// directory, the spill budget used up, spill files that cannot be read or written, a store
    /// still failing at close (`ace_records_dropped_total`, by reason).
    pub dropped: u64,
    /// Records the store let go by design (the in-memory store's oldest, past
    /// `ACE_MEMORY_MAX_RECORDS`; also in `ace_records_evicted_total`). Not a loss.
    pub evicted: u64,
    /// Signals raised, by every organ (also in `ace_signals_total{kind}`).
    pub signals: u64,
    /// (agent, stage) pairs with baselines.
    pub baselines: u64,
    /// Errors recorded (valid calls).
    pub errors: u64,
    /// Error patterns held by the miner.
    pub patterns: u64,
    /// Tasks followed: with stages or error windows held (released by `end_task`, or once idle:
    /// error windows after a window, stage tracks after an hour).
    pub open_tasks: u64,
    /// Failed batch writes (each retried).
    pub store_failures: u64,
}

impl Ace {
    /// The engine's health: the store's and the cache's round trips (pings, so this call waits
    /// on them), each breaker's state, the buffer. `unhealthy` when the store does not answer,
    /// `degraded` when the cache does not answer, a breaker is open, records were dropped or the
    /// buffer is over half full.
    ///
    /// ```
    /// let ace = ace_core::Ace::builder().build()?;
    /// let health = ace.health();
    /// assert_eq!((health.status, health.database), ("healthy", "connected"));
    /// assert!(health.to_json().starts_with(r#"{"status":"healthy","version":"#));
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    #[must_use]
    pub fn health(&self) -> Health {
        let shared = self.shared();
        let ping = shared.store.ping();
        let stats = self.stats();
        let circuit_breakers: std::collections::BTreeMap<String, &'static str> =
            shared.breakers.all().iter().map(|b| (b.name().to_owned(), b.state().as_str())).collect();
        let open = shared.breakers.all().iter().any(|b| matches!(b.state(), State::Open | State::ForcedOpen));
        let (database, latency_ms, database_error) = match &ping {
            Ok(d) => ("connected", Some(d.as_secs_f64() * 1e3), None),
            Err(e) => ("unreachable", None, Some(e.to_string())),
        };
        let cache_ping = shared.fleet.as_ref().map(|f| (f.cache().backend(), f.cache().ping()));
        let (redis, cache_backend, cache_latency_ms) = match &cache_ping {
            None => ("not_configured", None, None),
            Some((backend, Ok(d))) => ("connected", Some(*backend), Some(d.as_secs_f64() * 1e3)),
            Some((backend, Err(_))) => ("unreachable", Some(*backend), None),
        };
        let status = if ping.is_err() {
            "unhealthy"
        } else if open
            || redis == "unreachable"
            || stats.dropped > 0
            || stats.buffered as usize > shared.config.buffer_capacity / 2
        {
            "degraded"
        } else {
            "healthy"
        };
        Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            timestamp: shared.clock.now().to_rfc3339(),
            database,
            database_backend: shared.store.backend(),
            latency_ms,
            database_error,
            redis,
            cache_backend,
            cache_latency_ms,
            circuit_breakers,
            buffered: stats.buffered,
            dropped: stats.dropped,
        }
    }

    /// Activity counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let c = shared.hot.counts();
        let e = shared.errors.counts();
        let (persisted, carried) = shared.sync.progress();
        Stats {
            recorded: c.recorded,
            persisted,
            buffered: c.buffered + carried,
            dropped: shared.metrics.core.dropped(),
            evicted: shared.store.evicted(),
            signals: c.signals + e.signals,
            baselines: c.entries,
            errors: e.recorded,
            patterns: e.patterns,
            open_tasks: e.tasks.max(shared.trajectory.open_tasks() as u64),
            store_failures: shared.metrics.persist.store_failures.get(),
        }
    }
}
