//! Persistence: why a store outage loses nothing.
//!
//! Recording calls never touch the store. They leave records in buffers that a [`Source`]
//! exposes; one writer thread ([`writer`]) drains the source and appends to the store in
//! batches, through the engine's own breaker in front of the store. A failed write keeps its
//! records and is retried with exponential backoff; meanwhile records go to spill files
//! ([`spill`]) and come back, oldest first, once the store answers; so do records that find the
//! buffers full while the store falls behind ([`overflow`]). In durable mode a journal holds
//! every accepted record until it is stored or spilled. Callers of `flush` wait on a
//! ticket ([`flush`]).
//!
//! The writer knows the engine only through [`Source`] (what to write) and [`Periodic`] (work to
//! run between writes, such as the fleet's cache sync, or [`retain`]: deleting old records when
//! `ACE_RETAIN_DAYS` is set), so this module names nothing above it.

mod appender;
mod flush;
pub mod fork;
mod metrics;
mod orphans;
pub(crate) mod overflow;
mod owner;
mod retain;
pub(crate) mod spill;
mod spill_codec;
mod spilling;
mod writer;

pub(crate) use flush::WriterSync;
pub(crate) use metrics::PersistSeries;
pub(crate) use retain::{Retention, retain_now};
pub(crate) use writer::{Parts, Writer, WriterConfig};

use crate::record::{BaselineRecord, PatternRecord, Record};

/// What a buffered record asks of the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing.
    No,
    /// Run soon: at once if it sleeps, at its next poll if it is polling.
    Soon,
    /// Run at once (a buffer is half full).
    Now,
    /// The record was not buffered: its buffer is full. The caller writes it to an overflow
    /// segment, stored later like a spill file: the journal's in durable mode, otherwise the
    /// spill directory's ([`overflow`]). Without a spill directory it was dropped and counted
    /// ([`Wake::Dropped`], [`Wake::No`]).
    Full,
    /// The record was dropped (its buffer full, no overflow) and counted; this is the
    /// `n`-th drop of its shard, a power of two, so the caller warns. The warning is the
    /// caller's, made once the shard lock is released: a log record can reach Python's
    /// `logging`, which lets other threads run, and one of them may be waiting on that lock
    /// while holding the GIL.
    Dropped(u64),
}

/// Where the writer finds what to persist. Called on the writer thread only.
pub(crate) trait Source: Send + Sync {
    /// Moves every buffered record into `out`. The records count against the buffer's capacity
    /// until [`Source::settle`] says they are gone.
    fn drain(&self, out: &mut Vec<Record>);

    /// The writer holds `held` of the records it drained (in hand or being written); the others
    /// were stored, spilled or dropped, and their room goes back to the buffers.
    fn settle(&self, held: usize);

    /// Records still buffered (not yet drained).
    fn buffered(&self) -> u64;

    /// How many parts [`Source::dirty_baselines`] reads baselines in.
    fn parts(&self) -> usize;

    /// Baselines of part `index` changed since the last call.
    fn dirty_baselines(&self, index: usize) -> Vec<BaselineRecord>;

    /// Error patterns changed since the last call.
    fn changed_patterns(&self) -> Vec<PatternRecord>;

    /// Called with each batch of baselines before it is saved (the fleet shares them).
    fn saving_baselines(&self, batch: &[BaselineRecord]) {
        let _ = batch;
    }
}

/// Work the writer runs on each turn of its loop, never on a caller's thread.
pub(crate) trait Periodic: Send {
    /// Does whatever is due; cheap when nothing is.
    fn tick(&mut self);

    /// The engine is closing: does what must not wait for the next turn.
    fn finish(&mut self) {}
}
