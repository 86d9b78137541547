//! The fleet: how ten replicas share what one learns, through the shared [`Cache`].
//!
//! - Breakers, in full: the latest opening or closing, the windows' counts added up, and one
//!   replica's trial calls at a time ([`breakers`]).
//! - Context refreshes: an agent refreshed on one replica is fresh on the others ([`sync`]).
//! - Baselines: saved baselines are published per (agent, stage); a replica where the pair is
//!   still warming up takes the fleet's ([`Fleet::publish_baselines`], [`sync`]).
//! - Intervention gates: a lease on each task, held by the replica that acts on it, carries
//!   the task's cooldown and cap fleet-wide ([`gates`]).
//! - What was learnt (outcome counts per signal kind and strategy): saved through the store and
//!   added up in the cache ([`learnt`]; runs with or without a cache).
//!
//! Every exchange with the cache runs on the writer thread (as a [`Periodic`]
//! (crate::persist::Periodic)), never on a caller's: a caller decides on what its replica knows.

mod breakers;
mod gates;
mod learnt;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub(crate) use gates::LeaseSync;
pub(crate) use learnt::LearntSync;
pub(crate) use sync::FleetSync;

use crate::cache::Cache;
use crate::monitor::BaselineState;
use crate::record::BaselineRecord;
use crate::telemetry::{Instrumented, ResultLabel};

/// What the fleet needs of the engine's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FleetConfig {
    /// How long shared state lives in the cache (`ACE_CACHE_TTL_SECONDS`).
    pub cache_ttl: Duration,
    /// Observations before a baseline is shared, or taken from the fleet.
    pub baseline_warmup: u64,
    /// The task's cooldown between interventions, claimed fleet-wide.
    pub cooldown: Duration,
    /// Interventions per task, counted fleet-wide.
    pub max_per_task: u32,
}

/// A baseline as shared through the cache (`baseline:{stage}:{agent}`: every stream of the pair).
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedStream {
    metric: String,
    state: BaselineState,
    updated_at: i64,
}

fn baseline_key(agent: &str, stage: &str) -> String {
    format!("baseline:{stage}:{agent}")
}

/// The fleet's shared state: the cache and what waits to be published through it.
pub(crate) struct Fleet {
    cache: Arc<dyn Cache>,
    cfg: FleetConfig,
    /// This replica's id in leases and batches (random at start).
    owner: String,
    /// The leases on tasks proposed on here (see [`gates`]).
    leases: Mutex<gates::Leases>,
    /// Leases of ended tasks, to release.
    released: Mutex<Vec<gates::TaskKey>>,
    /// Context refreshes made here, to publish: (agent, micros).
    refreshed: Mutex<Vec<(Arc<str>, i64)>>,
    series: FleetSeries,
}

/// The fleet's series, registered whether or not a cache is configured:
/// `ace_cache_requests_total{result}` counts reads of shared state (`hit`: the key was there,
/// `miss`: it was not, `error`: the cache failed), so `hit / (hit + miss)` is a hit rate;
/// `ace_fleet_claims_total{result}` counts the fleet-wide intervention gates (`won`: this replica
/// may act, `lost`: another replica acted or the cap is reached, `error`: decided locally).
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetSeries {
    requests: Family<ResultLabel, Counter>,
    claims: Family<ResultLabel, Counter>,
}

impl Fleet {
    pub(crate) fn new(cache: Arc<dyn Cache>, cfg: FleetConfig, series: FleetSeries) -> Arc<Self> {
        Arc::new(Fleet {
            cache,
            cfg,
            owner: replica_id(),
            leases: Mutex::new(HashMap::new()),
            released: Mutex::new(Vec::new()),
            refreshed: Mutex::new(Vec::new()),
            series,
        })
    }

    /// The shared cache.
    pub(crate) fn cache(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    /// Reads shared state, counted in `ace_cache_requests_total`.
    fn get(&self, key: &str) -> crate::error::Result<Option<String>> {
        self.read(|| self.cache.get(key))
    }

    /// Reads shared state with `read`, counted in `ace_cache_requests_total`: a hit when
    /// something was there.
    fn read<T: Found>(&self, read: impl FnOnce() -> crate::error::Result<T>) -> crate::error::Result<T> {
        let got = read();
        self.count_read(got.as_ref().map(Found::found));
        got
    }

    /// Counts a read of shared state in `ace_cache_requests_total`: whether something was
    /// there, or the cache's failure.
    fn count_read<E>(&self, found: std::result::Result<bool, E>) {
        let result = match found {
            Ok(true) => "hit",
            Ok(false) => "miss",
            Err(_) => "error",
        };
        self.series.requests.get_or_create(&ResultLabel { result }).inc();
    }

    /// Queues a context refresh made here at `micros`, to publish.
    pub(crate) fn refreshed(&self, agent: &str, micros: i64) {
        self.refreshed.lock().push((Arc::from(agent), micros));
    }

    /// Publishes baselines through the cache, one key per (agent, stage) with every stream.
    pub(crate) fn publish_baselines(&self, batch: &[BaselineRecord]) {
        let warmup = self.cfg.baseline_warmup;
        let mut pairs: HashMap<(&str, &str), Vec<SharedStream>> = HashMap::new();
        for b in batch.iter().filter(|b| b.state.count >= warmup) {
            pairs.entry((b.agent.as_str(), b.stage.as_str())).or_default().push(SharedStream {
                metric: b.metric.clone(),
                state: b.state,
                updated_at: b.updated_at.as_micros(),
            });
        }
        for ((agent, stage), streams) in pairs {
            let Ok(json) = serde_json::to_string(&streams) else { continue };
            if let Err(e) = self.cache.set(&baseline_key(agent, stage), &json, self.cfg.cache_ttl) {
                tracing::warn!(error = %e, "cannot publish baselines through the cache");
                return;
            }
        }
    }
}

/// Whether a read found something.
trait Found {
    fn found(&self) -> bool;
}

impl<T> Found for Option<T> {
    fn found(&self) -> bool {
        self.is_some()
    }
}

impl<T> Found for Vec<T> {
    fn found(&self) -> bool {
        !self.is_empty()
    }
}

/// A replica's id: random enough that two processes never share one (time, process, address).
fn replica_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = hashbrown::DefaultHashBuilder::default().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    let here = std::ptr::from_ref(&h).addr();
    h.write_usize(here);
    format!("{:016x}", h.finish())
}

impl Instrumented for FleetSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "ace_cache_requests",
            "Reads of state shared through the cache, by result: hit (found), miss (absent), error (the cache failed)",
            self.requests.clone(),
        );
        registry.register(
            "ace_fleet_claims",
            "Fleet-wide intervention gates, decided on the task's lease, by result: won (this replica acts), lost (another replica holds the task, its lease is being asked for, or its cooldown or cap holds), error (the cache failed: decided locally)",
            self.claims.clone(),
        );
    }
}
