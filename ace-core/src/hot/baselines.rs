//! The baselines held in the entry table: saved by the writer a shard at a time, restored at
//! start, adopted from the fleet, read back by the API.

use std::sync::Arc;

use super::Hot;
use crate::event::{validate_id, validate_stage};
use crate::monitor::BaselineState;
use crate::record::BaselineRecord;

impl Hot {
    /// How many shards [`Hot::dirty_baselines`] walks (saving one shard's baselines at a time
    /// keeps a fleet's save from holding every baseline in memory at once).
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Baselines of shard `index` changed since the last call (all of them with `all`).
    pub(crate) fn dirty_baselines(&self, index: usize, all: bool) -> Vec<BaselineRecord> {
        let mut out = Vec::new();
        let mut shard = self.shards[index].0.lock();
        for e in shard.entries.iter_mut().filter(|e| e.dirty || all) {
            e.dirty = false;
            for s in e.streams.iter() {
                if s.detector.state.count > 0 {
                    out.push(BaselineRecord {
                        agent: e.agent.to_string(),
                        stage: e.stage.to_string(),
                        metric: s.name.to_string(),
                        state: s.detector.state,
                        updated_at: e.updated_at,
                    });
                }
            }
        }
        out
    }

    /// Restores persisted baselines (at start, before any record).
    pub(crate) fn load(&self, baselines: Vec<BaselineRecord>) {
        self.set_baselines(baselines, false);
    }

    /// Takes baselines another process published (through the shared cache) for streams that
    /// have seen fewer observations here; how many it took.
    pub(crate) fn adopt(&self, baselines: Vec<BaselineRecord>) -> usize {
        self.set_baselines(baselines, true)
    }

    /// Up to `limit` (agent, stage) pairs whose duration baseline has fewer than `warmup`
    /// observations.
    pub(crate) fn warming(&self, warmup: u64, limit: usize) -> Vec<(Arc<str>, Arc<str>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for e in shard.entries.iter() {
                if out.len() >= limit {
                    return out;
                }
                if e.streams.duration.detector.state.count < warmup {
                    out.push((e.agent.clone(), e.stage.clone()));
                }
            }
        }
        out
    }

    fn set_baselines(&self, baselines: Vec<BaselineRecord>, only_fresher: bool) -> usize {
        let mut taken = 0;
        for b in baselines {
            if validate_id("agent", &b.agent).is_err() || validate_stage(&b.stage).is_err() {
                tracing::warn!(agent = %b.agent, stage = %b.stage, "skipping a stored baseline with an invalid key");
                continue;
            }
            let hash = self.hasher_hash(&b.agent, &b.stage);
            let mut shard = self.shards.of(hash).lock();
            let shard = &mut *shard;
            let entry = match shard.entries.find_mut(hash, &b.agent, &b.stage) {
                Some(e) => e,
                None => {
                    let stage = shard.stage_name(&b.stage);
                    let entry = self.new_entry(hash, shard.entries.len() as u32, Arc::from(b.agent.as_str()), stage);
                    shard.entries.insert(entry)
                }
            };
            if only_fresher && entry.streams.has_seen(&b.metric, b.state.count) {
                continue;
            }
            entry.updated_at = entry.updated_at.max(b.updated_at);
            if entry.streams.set(&b.metric, b.state) {
                taken += 1;
            }
        }
        taken
    }

    /// The baseline of one (agent, stage, metric), if any.
    pub(crate) fn baseline(&self, agent: &str, stage: &str, metric: &str) -> Option<BaselineState> {
        let hash = self.hasher_hash(agent, stage);
        let shard = self.shards.of(hash).lock();
        shard.entries.find(hash, agent, stage)?.streams.state(metric)
    }
}
