//! The record buffer inside the entry table's shards: what a record call leaves for the writer
//! thread, and how the writer takes it.
//!
//! A metric record is buffered compact ([`Pending`]): its (agent, stage) as an index into the
//! shard's entries, its task only when it changed and its named metrics in the shard's one
//! buffer of metrics (no allocation per record), so buffering touches no reference count
//! shared with the writer thread but those of metric names (those atomic operations, and the cache lines they pull across
//! cores, were a quarter of a record's cost). [`Hot::drain`] completes them on the writer thread.
//!
//! Room ([`Room`]): `buffer_capacity` slots, one per record held in memory, whether it waits in
//! a shard or is in the writer's hands (drained, being written). A shard borrows slots from a
//! pool a chunk at a time ([`ShardRoom`]) and holds at most what it borrowed; a drain moves the
//! slots of the records it takes into the writer's hands and gives the shard's unused slots
//! back; the writer gives slots back as records leave its hands (stored, spilled, dropped:
//! [`Hot::settle`]). So one busy (agent, stage) can use the whole capacity while the writer's
//! hands are empty, and a burst no larger than the capacity is never dropped, however fast it
//! comes. Only a shard past what it borrowed touches the pool (one atomic operation per chunk);
//! the common record costs a comparison under the shard lock it already holds.
//!
//! Why the bound holds, under any interleaving: the free slots of the pool, the slots lent to
//! the shards and the slots of the writer's hands always add up to the capacity. Every move is
//! a transfer between two of them: a borrow from the pool to a shard (an atomic
//! read-modify-write, so racing borrowers never take the same slot twice), a drain from a shard
//! to the hands and the pool (under the shard lock), a settle from the hands to the pool (only
//! the writer drains and settles, holding its `DrainState`). A shard holds at most what it was
//! lent ([`Hot::admit`] checks it under the shard lock before every push), and the writer holds
//! at most the slots it was given, so the records in memory never exceed the capacity. (Records
//! the writer takes back from a spill file it failed to write re-enter its hands only with slots
//! from the pool, or, when it has none, uncounted until they leave again: a disk error is the one
//! way past the bound, and only by what was gathered for that file.)
//!
//! Stranded slots: a shard keeps up to a chunk it did not fill across drains. Chunks are small
//! (1/512 of the capacity, smaller as the pool empties), and a shard that finds the
//! pool empty first takes back, once per drain, the unused slots of every shard whose lock is
//! free ([`Hot::reclaim`]), so a hot key is not starved by idle ones.
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

/// A spare buffer (see [`DrainState`]) up to four times this many records is kept whatever the
/// drain took; a larger one only while drains take at least a quarter of it.
const SPARE_MIN: usize = 64;

/// A named metric of a buffered record.
pub(super) type Named = (Arc<str>, f64);

/// A metric record as buffered (see the module's comment).
pub(crate) struct Pending {
    pub(super) ts: Timestamp,
    pub(super) key: u32,
    pub(super) task: Option<Arc<str>>,
    pub(super) duration_s: Option<f64>,
    pub(super) success: Option<bool>,
    /// How many named metrics the record has: they are the next ones in the shard's
    /// `metrics`, in the order of the records (one buffer per shard, not an allocation per
    /// record, which a recording thread pays dearly for when the writer thread frees it).
    pub(super) metrics: u8,
}

/// The slots for records in memory (see the module's comment).
pub(crate) struct Room {
    /// Free slots: neither lent to a shard nor in the writer's hands.
    pool: AtomicUsize,
    capacity: usize,
    /// Slots a shard borrows at a time while the pool is well stocked.
    chunk: usize,
}

impl Room {
    /// `capacity` slots, all free.
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Room { pool: AtomicUsize::new(capacity), capacity, chunk: (capacity / (SHARDS * 32)).max(1) }
    }

    /// Takes up to a chunk from the pool (less as it empties, so that what idle shards strand
    /// shrinks with it): how much was taken (0: the pool is empty), and whether the pool is now
    /// less than half full.
    fn borrow(&self) -> (usize, bool) {
        let mut available = self.pool.load(Ordering::Relaxed);
        loop {
            if available == 0 {
                return (0, true);
            }
            let take = self.chunk.min(available / SHARDS).max(1);
            match self.pool.compare_exchange_weak(available, available - take, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return (take, (available - take) * 2 < self.capacity),
                Err(now) => available = now,
            }
        }
    }

    /// Takes up to `wanted` slots, as many as are free: how many were taken.
    fn take(&self, wanted: usize) -> usize {
        let before = self.pool.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |free| Some(free - free.min(wanted)));
        before.map_or(0, |free| free.min(wanted))
    }

    /// Gives slots back.
    fn give_back(&self, slots: usize) {
        if slots > 0 {
            self.pool.fetch_add(slots, Ordering::AcqRel);
        }
    }
}

/// A shard's part of the room: the slots lent to it since its last drain.
#[derive(Default)]
pub(crate) struct ShardRoom {
    /// Records the shard may hold.
    lent: usize,
    /// Whether the shard took back idle shards' slots since its last drain ([`Hot::reclaim`]).
    reclaimed: bool,
}

/// The writer's side of [`Hot::drain`]: its own copies of the shards' keys (separate
/// allocations, so the writer's reference counting never touches a cache line the recorders
/// read), and the last task of each key.
#[derive(Default)]
pub(crate) struct DrainState {
    keys: Vec<Vec<WriterKey>>,
    /// Each shard's second buffers (metric records, their named metrics, other organs'
    /// records): a drain swaps them with the shard's full ones and empties those here, on the
    /// writer thread, so the shard gets back buffers of the capacity it used (a recording call
    /// grows its shard's buffers only while the writer's pace changes).
    spare: Vec<(Vec<Pending>, Vec<Named>, Vec<Record>)>,
    /// One copy of each agent and stage name for all the keys that share it.
    names: Names,
    no_task: Arc<str>,
    /// Slots of the records drained and not yet settled (see [`Hot::settle`]).
    pub(super) in_hand: usize,
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
    /// wake, and the record itself when it found the buffer full ([`Wake::Full`]: the caller
    /// writes it to an overflow).
    pub(crate) fn buffer(&self, key: u64, record: Record) -> Result<(Wake, Option<Record>)> {
        let mut guard = self.shards.of(key).lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(self.push_other(&mut guard, record))
    }

    fn push_other(&self, shard: &mut Shard, record: Record) -> (Wake, Option<Record>) {
        if !self.persist {
            (Wake::No, None)
        } else if let Some(wake) = self.admit(shard.held(), &mut shard.room) {
            shard.others.push(record);
            (wake, None)
        } else {
            match self.full(shard) {
                Wake::Full => (Wake::Full, Some(record)),
                wake => (wake, None),
            }
        }
    }

    /// Whether a shard holding `held` records has room for one more, borrowing from the pool if
    /// need be, and what the record asks of the writer; `None`: the buffer is full.
    #[inline]
    pub(super) fn admit(&self, held: usize, room: &mut ShardRoom) -> Option<Wake> {
        if held < room.lent {
            return Some(if held + 1 == self.batch_size { Wake::Soon } else { Wake::No });
        }
        self.borrow(room)
    }

    #[cold]
    fn borrow(&self, room: &mut ShardRoom) -> Option<Wake> {
        let (mut taken, mut low) = self.room.borrow();
        if taken == 0 && !room.reclaimed {
            room.reclaimed = true;
            self.reclaim();
            (taken, low) = self.room.borrow();
        }
        if taken == 0 {
            return None;
        }
        room.lent += taken;
        Some(if low { Wake::Now } else { Wake::Soon })
    }

    /// The pool is empty: takes back the slots other shards were lent and left unused, from
    /// every shard whose lock is free (never waiting: the caller holds its own shard's lock,
    /// which `try_lock` simply finds taken).
    #[cold]
    fn reclaim(&self) {
        for shard in self.shards.iter() {
            if let Some(mut shard) = shard.0.try_lock() {
                let unused = shard.room.lent.saturating_sub(shard.held());
                shard.room.lent -= unused;
                self.room.give_back(unused);
            }
        }
    }

    /// A record found its shard's buffer full: handed back when there is an overflow, else
    /// dropped and counted (nothing is logged here, under the shard lock: see [`Wake::Dropped`]).
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

    /// Takes every buffered record, shard by shard, into the writer's hands: their slots go
    /// with them (given back by [`Hot::settle`]), each shard's unused slots back to the pool but
    /// for a chunk.
    /// The shard lock is held only to swap the buffers out (and copy keys new since the last
    /// drain); the records are completed after.
    pub(crate) fn drain(&self, out: &mut Vec<Record>, state: &mut DrainState) {
        state.keys.resize_with(self.shards.len(), Vec::new);
        state.spare.resize_with(self.shards.len(), Default::default);
        for ((shard, keys), (pending, metrics, others)) in self.shards.iter().zip(&mut state.keys).zip(&mut state.spare)
        {
            {
                let mut shard = shard.0.lock();
                let held = shard.held();
                // The shard keeps up to a chunk of what it did not use (most shards need about
                // that much before the next drain), the rest goes back to the pool.
                let unused = shard.room.lent.saturating_sub(held);
                let kept = unused.min(self.room.chunk);
                self.room.give_back(unused - kept);
                shard.room = ShardRoom { lent: kept, reclaimed: false };
                state.in_hand += held;
                if held == 0 {
                    continue;
                }
                std::mem::swap(pending, &mut shard.pending);
                std::mem::swap(metrics, &mut shard.metrics);
                std::mem::swap(others, &mut shard.others);
                for i in keys.len()..shard.entries.len() {
                    let e = shard.entries.at(i);
                    keys.push((state.names.intern(&e.agent), state.names.intern(&e.stage), state.no_task.clone()));
                }
            }
            let (used, used_metrics, used_others) = (pending.len(), metrics.len(), others.len());
            out.reserve(pending.len() + others.len());
            let mut named = metrics.drain(..);
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
                    metrics: named.by_ref().take(usize::from(p.metrics)).collect(),
                }));
            }
            drop(named);
            out.append(others);
            // A burst's buffer is not kept: one of twice this drain's records is.
            if pending.capacity() > 4 * used.max(SPARE_MIN) {
                *pending = Vec::with_capacity(2 * used);
            }
            if metrics.capacity() > 4 * used_metrics.max(SPARE_MIN) {
                *metrics = Vec::with_capacity(2 * used_metrics);
            }
            if others.capacity() > 4 * used_others.max(SPARE_MIN) {
                *others = Vec::with_capacity(2 * used_others);
            }
        }
    }

    /// The writer now holds `held` of the records it drained (in hand or being written): the
    /// slots of the others, stored, spilled or dropped since, go back to the pool. Records taken
    /// back into its hands (a spill file it could not write) take slots again, as far as the
    /// pool has them.
    pub(crate) fn settle(&self, held: usize, state: &mut DrainState) {
        if held < state.in_hand {
            self.room.give_back(state.in_hand - held);
            state.in_hand = held;
        } else if held > state.in_hand {
            state.in_hand += self.room.take(held - state.in_hand);
        }
    }
}
