//! The entry table: one [`Entry`] per (agent, stage), in a shard's chunks, found through a table
//! of indexes.

use std::sync::Arc;

use hashbrown::HashTable;

use super::buffer::{Named, Pending, ShardRoom};
use super::export::EntrySeries;
use crate::clock::Timestamp;
use crate::context::AgentContext;
use crate::event::same_name;
use crate::monitor::Streams;
use crate::record::Record;
use crate::trajectory::Track;

/// Entries per chunk of [`Entries`].
const CHUNK: usize = 128;

/// Stage names a shard keeps one copy of; an application with more stages than this pays for
/// a copy per entry of the rest.
const MAX_SHARED_STAGES: usize = 64;

/// One shard of the table: its entries and the records buffered for the store.
#[derive(Default)]
pub(crate) struct Shard {
    pub(super) entries: Entries,
    /// The stage names of the entries, one copy each (up to [`MAX_SHARED_STAGES`]).
    stages: Vec<Arc<str>>,
    /// This shard's metric records, compact: no reference count is touched on the recording
    /// thread (see [`Pending`]).
    pub(super) pending: Vec<Pending>,
    /// The named metrics of `pending`'s records, one after the other (see [`Pending`]).
    pub(super) metrics: Vec<Named>,
    /// Records of other organs (errors, interventions, outcomes), as they are.
    pub(super) others: Vec<Record>,
    /// Slots lent to the shard since its last drain (see `buffer.rs`).
    pub(super) room: ShardRoom,
    pub(super) recorded: u64,
    pub(super) dropped: u64,
    pub(super) signals: u64,
    pub(super) ops: u32,
}

impl Shard {
    /// The shard's copy of a stage name: stages are few, and every agent's entries share them.
    pub(super) fn stage_name(&mut self, stage: &str) -> Arc<str> {
        if let Some(s) = self.stages.iter().find(|s| &***s == stage) {
            return s.clone();
        }
        let name: Arc<str> = Arc::from(stage);
        if self.stages.len() < MAX_SHARED_STAGES {
            self.stages.push(name.clone());
        }
        name
    }

    /// Records held for the store.
    #[inline]
    pub(super) fn held(&self) -> usize {
        self.pending.len() + self.others.len()
    }
}

/// A shard's entries, append-only (entries are never removed), in chunks of [`CHUNK`] that never
/// move or grow once made, found through a table of their indexes.
///
/// Entries are large (about 400 bytes) and a fleet has tens of thousands; a hash table of them
/// would hold up to twice their number in slots (it doubles when 7/8 full, 16 shards grow in
/// step), and a `Vec` of them would too. Here the slack is at most one chunk per shard, and the
/// table holds 4-byte indexes.
#[derive(Default)]
pub(crate) struct Entries {
    index: HashTable<u32>,
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Entries {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(super) fn at(&self, i: usize) -> &Entry {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    #[inline]
    fn position(&self, hash: u64, agent: &str, stage: &str) -> Option<usize> {
        let i = self.index.find(hash, |&i| {
            let e = self.at(i as usize);
            same_name(&e.agent, agent) && same_name(&e.stage, stage)
        })?;
        Some(*i as usize)
    }

    #[inline]
    pub(super) fn find(&self, hash: u64, agent: &str, stage: &str) -> Option<&Entry> {
        self.position(hash, agent, stage).map(|i| self.at(i))
    }

    #[inline]
    pub(super) fn find_mut(&mut self, hash: u64, agent: &str, stage: &str) -> Option<&mut Entry> {
        let i = self.position(hash, agent, stage)?;
        Some(&mut self.chunks[i / CHUNK][i % CHUNK])
    }

    /// Adds an entry (whose `key` is [`Entries::len`]) that is not there yet.
    pub(super) fn insert(&mut self, entry: Entry) -> &mut Entry {
        let i = self.len;
        debug_assert_eq!(entry.key as usize, i);
        let hash = entry.hash;
        if i.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[i / CHUNK].push(entry);
        self.len += 1;
        let chunks = &self.chunks;
        self.index.insert_unique(hash, i as u32, |&j| chunks[j as usize / CHUNK][j as usize % CHUNK].hash);
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten()
    }
}

/// What the engine keeps per (agent, stage): the monitor's streams, and beside them the other
/// organs' state for the pair (the agent's context, the task's track, the run of failures), so
/// that one lock serves a record.
pub(crate) struct Entry {
    pub(super) hash: u64,
    /// Index of the entry in its shard's [`Entries`].
    pub(super) key: u32,
    pub(crate) agent: Arc<str>,
    pub(crate) stage: Arc<str>,
    pub(super) last_task: Arc<str>,
    /// `last_task` went out with a buffered record, so later records of the same task can say
    /// "same task" instead of carrying it.
    pub(super) task_sent: bool,
    pub(crate) updated_at: Timestamp,
    pub(crate) streams: Streams,
    /// The agent's context state (staleness), fetched at the entry's first stage.
    pub(super) context: Option<Arc<AgentContext>>,
    /// The track of `last_task`, fetched at its first stage here.
    pub(super) track: Option<Arc<Track>>,
    /// Failures in a row of this stage in `last_task` (the trajectory's loop counter).
    pub(super) failures: u32,
    pub(crate) series: EntrySeries,
    pub(super) dirty: bool,
}
