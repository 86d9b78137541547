//! The record buffer inside the entry table's shards: what a record call leaves for the writer
//! thread, and how the writer takes it.
//!
//! A metric record is buffered compact ([`Pending`]): its (agent, stage) as an index into the
//! shard's entries and its task only when it changed, so buffering touches no reference count
//! shared with the writer thread (those atomic operations, and the cache lines they pull across
//! cores, were a quarter of a record's cost). [`Hot::drain`] completes them on the writer thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Hot;
use super::table::Shard;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::persist::Wake;
use crate::record::{MetricRecord, Record};

/// A metric record as buffered (see the module's comment).
pub(crate) struct Pending {
    pub(super) ts: Timestamp,
    pub(super) key: u32,
    pub(super) task: Option<Arc<str>>,
    pub(super) duration_s: Option<f64>,
    pub(super) success: Option<bool>,
    pub(super) metrics: Vec<(Arc<str>, f64)>,
}

/// The writer's side of [`Hot::drain`]: its own copies of the shards' keys (separate
/// allocations, so the writer's reference counting never touches a cache line the recorders
/// read), and the last task of each key.
#[derive(Default)]
pub(crate) struct DrainState {
    keys: Vec<Vec<WriterKey>>,
    /// One copy of each agent and stage name for all the keys that share it.
    names: Names,
    no_task: Arc<str>,
}

/// A set of shared names: the first copy of a name is kept and handed out for the others.
#[derive(Default)]
struct Names(hashbrown::HashSet<Arc<str>>);

impl Names {
    fn intern(&mut self, name: &str) -> Arc<str> {
        match self.0.get(name) {
            Some(n) => n.clone(),
            None => {
                let n: Arc<str> = Arc::from(name);
                self.0.insert(n.clone());
                n
            }
        }
    }
}

/// The writer's copy of a key: agent, stage, and the task of its latest record.
type WriterKey = (Arc<str>, Arc<str>, Arc<str>);

impl Hot {
    /// Buffers a record of another organ, keyed by `key` (a hash of its agent and task), under
    /// the same capacity and close rules as the table's own. Returns whether the writer should
    /// wake.
    pub(crate) fn buffer(&self, key: u64, record: Record) -> Result<Wake> {
        let mut guard = self.shards.of(key).lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(self.push_other(&mut guard, record))
    }

    fn push_other(&self, shard: &mut Shard, record: Record) -> Wake {
        if !self.persist {
            Wake::No
        } else if shard.held() < self.shard_capacity {
            shard.others.push(record);
            self.wake_for(shard.held())
        } else {
            self.full(shard)
        }
    }

    /// A record found its shard's buffer full: handed back in durable mode, else dropped.
    #[cold]
    pub(super) fn full(&self, shard: &mut Shard) -> Wake {
        if self.overflow {
            return Wake::Full;
        }
        self.count_drop(shard);
        Wake::No
    }

    /// Whether a shard holding `held` records should wake the writer: soon at its share of a
    /// batch, at once at half its capacity (a hot (agent, stage) fills its shard faster than the
    /// writer's poll; waking it then keeps the shard from overflowing).
    #[inline]
    pub(super) fn wake_for(&self, held: usize) -> Wake {
        if held == self.shard_half {
            Wake::Now
        } else if held == self.batch_size {
            Wake::Soon
        } else {
            Wake::No
        }
    }

    fn count_drop(&self, shard: &mut Shard) {
        shard.dropped += 1;
        let dropped = shard.dropped;
        self.series.drop_records("buffer_full", 1);
        if dropped.is_power_of_two() {
            tracing::warn!(
                dropped,
                "ace record buffer is full: records are not being persisted (store too slow or down)"
            );
        }
    }

    /// Takes and releases every shard lock once (see `closed`).
    pub(crate) fn barrier(&self) {
        for shard in self.shards.iter() {
            drop(shard.0.lock());
        }
    }

    /// Takes every buffered record, shard by shard. The shard lock is held only to swap the
    /// buffers out (and copy keys new since the last drain); the records are completed after.
    pub(crate) fn drain(&self, out: &mut Vec<Record>, state: &mut DrainState) {
        state.keys.resize_with(self.shards.len(), Vec::new);
        let mut pending = Vec::new();
        for (shard, keys) in self.shards.iter().zip(&mut state.keys) {
            let mut others = Vec::new();
            {
                let mut shard = shard.0.lock();
                if shard.pending.is_empty() && shard.others.is_empty() {
                    continue;
                }
                std::mem::swap(&mut pending, &mut shard.pending);
                std::mem::swap(&mut others, &mut shard.others);
                for i in keys.len()..shard.entries.len() {
                    let e = shard.entries.at(i);
                    keys.push((state.names.intern(&e.agent), state.names.intern(&e.stage), state.no_task.clone()));
                }
            }
            out.reserve(pending.len() + others.len());
            for p in pending.drain(..) {
                let (agent, stage, last_task) = &mut keys[p.key as usize];
                if let Some(task) = p.task {
                    *last_task = Arc::from(&*task);
                }
                out.push(Record::Metric(MetricRecord {
                    ts: p.ts,
                    agent: agent.clone(),
                    task: last_task.clone(),
                    stage: stage.clone(),
                    duration_s: p.duration_s,
                    success: p.success,
                    metrics: p.metrics,
                }));
            }
            out.append(&mut others);
        }
    }
}
