//! The fleet's periodic exchange through the cache, run by the writer thread between writes:
//! breakers (see [`super::breakers`]), context refreshes, and the baselines of (agent, stage)
//! pairs still warming up here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::breakers::BreakerExchange;
use super::{Fleet, SharedStream, baseline_key};
use crate::breaker::Breakers;
use crate::clock::{Clock, Timestamp};
use crate::context::ContextOrgan;
use crate::hot::Hot;
use crate::persist::Periodic;
use crate::record::BaselineRecord;

/// How often context refreshes and warming baselines are exchanged through the cache.
const STATE_SYNC: Duration = Duration::from_secs(1);
/// The most keys one sync reads from the cache, for baselines and for refreshes each.
const SYNC_READS: usize = 64;
/// How long before a warming (agent, stage) asks the cache for the fleet's baseline again.
const BASELINE_ASK_AGAIN: Duration = Duration::from_secs(10);

/// The writer's periodic fleet work.
pub(crate) struct FleetSync {
    fleet: Arc<Fleet>,
    breakers: Arc<Breakers>,
    context: Arc<ContextOrgan>,
    hot: Arc<Hot>,
    clock: Arc<dyn Clock>,
    breaker_exchange: BreakerExchange,
    last_state_sync: Instant,
    /// (agent, stage) pairs whose fleet baseline was asked for, and when: asked again after
    /// [`BASELINE_ASK_AGAIN`].
    asked: HashMap<(Arc<str>, Arc<str>), Instant>,
}

impl FleetSync {
    pub(crate) fn new(
        fleet: Arc<Fleet>,
        breakers: Arc<Breakers>,
        context: Arc<ContextOrgan>,
        hot: Arc<Hot>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        FleetSync {
            fleet,
            breakers,
            context,
            hot,
            clock,
            breaker_exchange: BreakerExchange::new(),
            last_state_sync: Instant::now(),
            asked: HashMap::new(),
        }
    }

    /// Shares state through the cache, at most every [`STATE_SYNC`], never on a caller's path:
    /// publishes this process's context refreshes; applies refreshes other processes made to
    /// agents whose context is getting stale here; and gives (agent, stage) pairs still warming
    /// up the baseline the fleet has learned, when it has seen more. Baselines are published as
    /// they are saved (see `save_baselines`). A cache failure is logged; the next sync retries.
    fn sync_state(&mut self) {
        let cache = &self.fleet.cache;
        if self.last_state_sync.elapsed() < STATE_SYNC {
            return;
        }
        self.last_state_sync = Instant::now();
        let ttl = self.fleet.cfg.cache_ttl;
        let now = self.clock.now();
        let refreshed: Vec<(Arc<str>, i64)> = std::mem::take(&mut *self.fleet.refreshed.lock());
        for (agent, at) in refreshed {
            if let Err(e) = cache.set(&format!("refresh:{agent}"), &at.to_string(), ttl) {
                tracing::warn!(agent = &*agent, error = %e, "cannot publish a context refresh through the cache");
                return;
            }
        }
        let threshold = self.context.cfg.threshold;
        for agent in self.context.staler_than(threshold / 2.0, now, SYNC_READS) {
            match self.fleet.get(&format!("refresh:{agent}")) {
                Ok(Some(v)) => {
                    if let Ok(at) = v.parse::<i64>()
                        && self.context.refresh_from_peer(&agent, Timestamp::from_micros(at))
                    {
                        tracing::debug!(agent = &*agent, "context refreshed by another process");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read context refreshes from the cache");
                    return;
                }
            }
        }
        if self.asked.len() > 100_000 {
            self.asked.clear();
        }
        let warmup = self.fleet.cfg.baseline_warmup;
        let mut reads = 0;
        for (agent, stage) in self.hot.warming(warmup, SYNC_READS * 4) {
            if reads >= SYNC_READS {
                break;
            }
            let key = (agent.clone(), stage.clone());
            if self.asked.get(&key).is_some_and(|t| t.elapsed() < BASELINE_ASK_AGAIN) {
                continue;
            }
            self.asked.insert(key, Instant::now());
            reads += 1;
            match self.fleet.get(&baseline_key(&agent, &stage)) {
                Ok(Some(v)) => {
                    let Ok(streams) = serde_json::from_str::<Vec<SharedStream>>(&v) else {
                        tracing::warn!(agent = &*agent, stage = &*stage, "ignoring a malformed shared baseline");
                        continue;
                    };
                    let records = streams
                        .into_iter()
                        .map(|s| BaselineRecord {
                            agent: agent.to_string(),
                            stage: stage.to_string(),
                            metric: s.metric,
                            state: s.state,
                            updated_at: Timestamp::from_micros(s.updated_at),
                        })
                        .collect();
                    let taken = self.hot.adopt(records);
                    if taken > 0 {
                        tracing::debug!(agent = &*agent, stage = &*stage, taken, "took the fleet's baseline");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read shared baselines from the cache");
                    return;
                }
            }
        }
    }
}

impl Periodic for FleetSync {
    fn tick(&mut self) {
        self.breaker_exchange.run(&self.fleet, &self.breakers, &self.clock);
        self.sync_state();
    }
}
