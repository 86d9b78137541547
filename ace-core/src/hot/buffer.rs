//! The record buffer inside the entry table's shards: what a record call leaves for the writer
//! thread, and how the writer takes it.
//!
//! A metric record is buffered compact ([`Pending`]): its (agent, stage) as an index into the
//! shard's entries and its task only when it changed, so buffering touches no reference count
//! shared with the writer thread (those atomic operations, and the cache lines they pull across
//! cores, were a quarter of a record's cost). [`Hot::drain`] completes them on the writer thread.
//!
//! Room ([`Room`]): the shards share half of `buffer_capacity` (the writer's hand holds the
//! other half). Each shard has a small reserve of its own (a quarter of an even split) and takes
//! more from a pool they share, a chunk at a time, so one busy (agent, stage) can use nearly the
//! whole half instead of a sixteenth of it. Only a shard past its reserve touches the pool (one
//! atomic operation per chunk); the common record costs a comparison under the shard lock it
//! already holds.
//!
//! Why the bound holds, under any interleaving. Write `R` for the reserves (`reserve` times
//! [`SHARDS`]) and `P` for the pool's size, `R + P <= half` (except when `half < SHARDS`: a
//! shard always has room for one). Three facts:
//! - A shard holds at most `reserve + borrowed` records: [`Hot::admit`] checks it, under the
//!   shard lock, before every push, and a drain empties the shard and zeroes `borrowed` under the
//!   same lock.
//! - Room is conserved: the pool, the shards' `borrowed` and the room a drain pass has taken back
//!   but not yet returned always add up to `P`. Borrowing moves room from the pool to one shard
//!   (an atomic read-modify-write, so racing borrowers never take the same room twice); a drain
//!   moves a shard's `borrowed` into its pass's `freed`; [`Room::give_back`] returns `freed` to
//!   the pool once the whole pass is done. Only one pass runs at a time (only the writer drains,
//!   holding its `DrainState`).
//! - So the shards together hold at most `R + P <= half` at any moment.
//!
//! A pass takes from each shard at most `reserve` plus the room that shard had borrowed when it
//! was drained. During a pass the pool only shrinks, so room borrowed before the pass, or taken
//! from the pool during it, can reach only one shard before that shard's turn: the borrowed room
//! the pass takes adds up to at most `P`, and the pass to at most `R + P <= half`. A shard drained
//! early in a pass may fill again, but only with room still in the pool, which is then no longer
//! there for a shard drained later. (Giving room back shard by shard broke this: a shard drained
//! later could borrow room freed earlier in the same pass, and one pass could hold more than the
//! half.) So the shards and one drain never hold more than `buffer_capacity` between them; the
//! writer takes a new drain only with empty hands, or, during a slow write with a spill
//! directory, one drain at a time straight to disk (`persist::writer`).
//!
//! Waking: a shard asks the writer to run soon at its share of a batch, and at once whenever a
//! borrow leaves the pool less than half full, so a hot key is drained long before the pool runs
//! dry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Hot;
use super::table::Shard;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::persist::Wake;
use crate::record::{MetricRecord, Record};
use crate::shard::SHARDS;

/// A metric record as buffered (see the module's comment).
pub(crate) struct Pending {
    pub(super) ts: Timestamp,
    pub(super) key: u32,
    pub(super) task: Option<Arc<str>>,
    pub(super) duration_s: Option<f64>,
    pub(super) success: Option<bool>,
    pub(super) metrics: Vec<(Arc<str>, f64)>,
}

/// The shards' room for buffered records (see the module's comment).
pub(crate) struct Room {
    /// Records every shard may hold without borrowing.
    pub(super) reserve: usize,
    /// Room not reserved nor lent: taken by shards past their reserve, given back by drains.
    pool: AtomicUsize,
    /// The pool's size when every loan is back.
    pool_size: usize,
    /// Room a shard borrows at a time.
    chunk: usize,
}

impl Room {
    /// `half` records shared by [`SHARDS`] shards.
    pub(super) fn new(half: usize) -> Self {
        let reserve = (half / SHARDS / 4).max(1);
        let pool_size = half.saturating_sub(reserve * SHARDS);
        Room { reserve, pool: AtomicUsize::new(pool_size), pool_size, chunk: (pool_size / 64).max(reserve) }
    }

    /// Takes up to a chunk from the pool: how much was taken (0: the pool is empty), and whether
    /// the pool is now less than half full.
    fn borrow(&self) -> (usize, bool) {
        let mut available = self.pool.load(Ordering::Relaxed);
        loop {
            if available == 0 {
                return (0, true);
            }
            let take = available.min(self.chunk);
            match self.pool.compare_exchange_weak(available, available - take, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return (take, (available - take) * 2 < self.pool_size),
                Err(now) => available = now,
            }
        }
    }

    /// Gives room back (the writer, after a whole drain pass).
    fn give_back(&self, room: usize) {
        if room > 0 {
            self.pool.fetch_add(room, Ordering::AcqRel);
        }
    }
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
        } else if let Some(wake) = self.admit(shard.held(), &mut shard.borrowed) {
            shard.others.push(record);
            wake
        } else {
            self.full(shard)
        }
    }

    /// Whether a shard holding `held` records (and `borrowed` past its reserve) has room for one
    /// more, borrowing from the pool if need be, and what the record asks of the writer; `None`:
    /// the buffer is full.
    #[inline]
    pub(super) fn admit(&self, held: usize, borrowed: &mut usize) -> Option<Wake> {
        if held < self.room.reserve + *borrowed {
            return Some(if held + 1 == self.batch_size { Wake::Soon } else { Wake::No });
        }
        self.borrow(borrowed)
    }

    #[cold]
    fn borrow(&self, borrowed: &mut usize) -> Option<Wake> {
        let (taken, low) = self.room.borrow();
        if taken == 0 {
            return None;
        }
        *borrowed += taken;
        Some(if low { Wake::Now } else { Wake::Soon })
    }

    /// A record found its shard's buffer full: handed back in durable mode, else dropped and
    /// counted (nothing is logged here, under the shard lock: see [`Wake::Dropped`]).
    #[cold]
    pub(super) fn full(&self, shard: &mut Shard) -> Wake {
        if self.overflow {
            return Wake::Full;
        }
        shard.dropped += 1;
        self.series.drop_records("buffer_full", 1);
        if shard.dropped.is_power_of_two() { Wake::Dropped(shard.dropped) } else { Wake::No }
    }

    /// Takes and releases every shard lock once (see `closed`).
    pub(crate) fn barrier(&self) {
        for shard in self.shards.iter() {
            drop(shard.0.lock());
        }
    }

    /// Takes every buffered record, shard by shard. The shard lock is held only to swap the
    /// buffers out (and copy keys new since the last drain); the records are completed after.
    /// Room the shards borrowed goes back to the pool once the whole pass is done (see the
    /// module's comment).
    pub(crate) fn drain(&self, out: &mut Vec<Record>, state: &mut DrainState) {
        state.keys.resize_with(self.shards.len(), Vec::new);
        let mut pending = Vec::new();
        let mut freed = 0;
        for (shard, keys) in self.shards.iter().zip(&mut state.keys) {
            let mut others = Vec::new();
            {
                let mut shard = shard.0.lock();
                freed += std::mem::take(&mut shard.borrowed);
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
        self.room.give_back(freed);
    }
}
