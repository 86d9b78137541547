//! The writer thread: drains the engine's buffers into the store in batches.
//!
//! It wakes when a buffer reaches its share of `batch_size`, when `batch_timeout` has passed, or
//! when `flush()` asks; it writes everything buffered in one `Store::append` call, made on the
//! appender thread ([`super::appender`]). While that call takes long (the store is slow, not
//! down: a locked SQLite file, a slow disk), the writer keeps draining the buffers into spill
//! files instead of waiting, and stores them, oldest first, once the store has caught up; so a
//! slow store costs disk, not records, up to `ACE_SPILL_MAX_BYTES`. A failed write
//! keeps its records and is retried with exponential backoff (100 ms doubling to 30 s). While it
//! backs off, records go to the spill directory (`ACE_SPILL_DIR`, see [`super::spill`]) instead
//! of piling up in memory, and are stored, oldest first, before anything newer once a write
//! succeeds; without a spill directory at most `buffer_capacity` records are held (in the shards
//! and the writer's hands together: it tells the buffers as records leave its hands, see
//! `Writer::settle`) and newer ones are dropped and counted, never silently. A
//! failed batch is sent again alone, as it was (see `Store::append`). Spill files are written and
//! replayed in `spilling.rs`. Baselines and changed error patterns are saved every ten seconds
//! and at every flush.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::appender::Appender;
use super::overflow::Overflow;
use super::spill::{Gathered, Journal, Spill};
use super::{Periodic, PersistSeries, Source, WriterSync};
use crate::breaker::CircuitBreaker;
use crate::error::{Error, Result};
use crate::record::{BaselineRecord, PatternRecord, Record};
use crate::store::Store;
use crate::telemetry::CoreSeries;

const BASELINE_INTERVAL: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While records keep coming, the writer looks for them this often instead of being woken:
/// waking a parked thread is a system call (several microseconds) that would otherwise land on
/// the recording thread whenever a buffer reaches its share of a batch.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// The poll interval stretches up to this while each poll finds little (a small fleet): a
/// wake-up costs the writer a few microseconds and a store transaction, whatever it carries.
/// Buffers half full still wake the writer at once, so a burst never waits this long.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The writer goes back to sleeping until woken after this long without records.
const IDLE_AFTER: Duration = Duration::from_millis(100);
/// While backing off, records in hand are spilled once this many have gathered (small files
/// replay in short writes, between which the writer keeps draining the buffers)...
pub(super) const SPILL_BATCH: usize = 2_000;
/// ...or this long after the last spill.
pub(super) const SPILL_EVERY: Duration = Duration::from_millis(250);
/// While a write is in flight the writer looks at the buffers this often (at 1.5 M records/s,
/// a tight Python loop, 3,000 records come in meanwhile)...
const WRITE_SLICE: Duration = Duration::from_millis(2);
/// ...and once the write has taken this long, or the buffers hold an eighth of
/// `buffer_capacity`, it drains them to a spill file every [`SPILL_EVERY`] instead of waiting.
const SLOW_WRITE: Duration = Duration::from_millis(500);
/// Rounds of replay a flush makes while newer spill files keep appearing (the store is slower
/// than the records coming in); what is left then waits on disk for the next pass.
const FLUSH_ROUNDS: usize = 16;

/// What the writer needs of the engine's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterConfig {
    /// A batch is written at most this long after its first record.
    pub batch_timeout: Duration,
    /// Records per batch.
    pub batch_size: usize,
    /// `buffer_capacity`: past an eighth of it buffered, a slow write no longer holds records
    /// back (they are spilled).
    pub buffer_capacity: usize,
}

/// Everything the writer thread works with.
pub(crate) struct Parts {
    pub source: Arc<dyn Source>,
    pub periodic: Vec<Box<dyn Periodic>>,
    pub store: Arc<dyn Store>,
    /// The engine's own breaker in front of the store (`ace-store` in the registry): while it is
    /// open the store is not called at all (records are spilled instead), and its half-open
    /// trial is the next write.
    pub store_breaker: Arc<CircuitBreaker>,
    pub sync: Arc<WriterSync>,
    pub series: PersistSeries,
    pub core: CoreSeries,
    pub journal: Option<Arc<Journal>>,
    /// The spill directory's overflow (records that found the buffers full), finished into a
    /// spill file at each turn.
    pub overflow: Option<Arc<Overflow>>,
    pub spill: Option<Spill>,
    pub config: WriterConfig,
}

pub(crate) struct Writer {
    pub(super) p: Parts,
    pub(super) appender: Appender,
    pub(super) carry: Vec<Record>,
    /// Drained records on their way to the store (a batch out of `carry`, being written).
    pub(super) in_flight: usize,
    /// The first `unit` records in hand are a batch whose write failed: the store may have
    /// stored it all the same (a commit whose reply was lost), so it is written again, or
    /// spilled, as that batch alone, which the store recognises (PostgreSQL's batch digests).
    pub(super) unit: usize,
    pub(super) baselines: HashMap<(String, String, String), BaselineRecord>,
    /// Changed patterns not yet saved (kept across failed saves).
    pub(super) patterns: HashMap<(String, String), PatternRecord>,
    pub(super) last_baselines: Instant,
    pub(super) retry_at: Option<Instant>,
    pub(super) backoff: Duration,
    pub(super) last_spill: Instant,
    /// Journal segments finished before the last drain: deleted once the hand is empty.
    pub(super) rotated: Vec<std::path::PathBuf>,
}

/// A journal segment is finished (and can go once stored) after this long.
const ROTATE_EVERY: Duration = Duration::from_millis(200);

impl Writer {
    pub(crate) fn spawn(parts: Parts) -> Result<JoinHandle<()>> {
        let sync = parts.sync.clone();
        let appender = Appender::spawn(parts.store.clone(), parts.store_breaker.clone(), parts.series.clone())?;
        let writer = Writer {
            p: parts,
            appender,
            carry: Vec::new(),
            in_flight: 0,
            unit: 0,
            baselines: HashMap::new(),
            patterns: HashMap::new(),
            last_baselines: Instant::now(),
            retry_at: None,
            backoff: FIRST_BACKOFF,
            last_spill: Instant::now(),
            rotated: Vec::new(),
        };
        let owner = sync.clone();
        let handle = std::thread::Builder::new()
            .name("ace-writer".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || writer.run()));
                if outcome.is_err() {
                    tracing::error!("the ace writer thread panicked; records can no longer be persisted");
                    owner.died();
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the ace writer thread: {e}")))?;
        *sync.thread.lock() = Some(handle.thread().clone());
        super::fork::register(&sync);
        Ok(handle)
    }

    fn run(mut self) {
        let timeout = self.p.config.batch_timeout;
        let sync = self.p.sync.clone();
        let mut last_cycle = Instant::now();
        let mut last_records = Instant::now();
        let mut poll = POLL_INTERVAL;
        let batch = self.p.config.batch_size as u64;
        loop {
            sync.hold_for_fork();
            let (requested, completed, shutdown) = {
                let st = sync.state();
                (st.requested, st.completed, st.shutdown)
            };
            let flushing = requested > completed || shutdown;
            let woke = sync.wake.swap(false, Ordering::SeqCst);
            let polling = sync.polling.load(Ordering::Relaxed);
            for periodic in &mut self.p.periodic {
                periodic.tick();
            }
            if woke || flushing || polling || last_cycle.elapsed() >= timeout {
                last_cycle = Instant::now();
                let persisted_before = sync.state().persisted;
                let result = self.cycle(flushing);
                let wrote = sync.state().persisted - persisted_before;
                // Poll often under a heavy flow, seldom under a trickle.
                if wrote < batch / 8 {
                    poll = (poll * 2).min(MAX_POLL_INTERVAL);
                } else if wrote > batch / 2 {
                    poll = (poll / 2).max(POLL_INTERVAL);
                }
                if !self.carry.is_empty() || wrote > 0 {
                    last_records = Instant::now();
                    sync.polling.store(true, Ordering::SeqCst);
                } else if polling && last_records.elapsed() >= IDLE_AFTER {
                    // Back to sleeping until woken; a wake that raced with this is seen below.
                    sync.polling.store(false, Ordering::SeqCst);
                }
                self.settle();
                let mut st = sync.state();
                st.carried = self.carry.len() as u64;
                if requested > st.completed {
                    st.completed = requested;
                    st.result = result.err();
                    sync.done.notify_all();
                }
                if shutdown {
                    drop(st);
                    for periodic in &mut self.p.periodic {
                        periodic.finish();
                    }
                    self.give_up();
                    return;
                }
            }
            if sync.wake.load(Ordering::SeqCst) {
                continue;
            }
            let mut wait =
                if sync.polling.load(Ordering::Relaxed) { poll } else { timeout.saturating_sub(last_cycle.elapsed()) };
            // Backing off without a spill directory, the writer sleeps until the retry; with
            // one it keeps draining the buffers to disk meanwhile.
            if let Some(at) = self.retry_at
                && self.p.spill.is_none()
            {
                wait = wait.max(at.saturating_duration_since(Instant::now()));
            }
            std::thread::park_timeout(wait);
        }
    }

    /// One pass: drain, write records, save baselines when due. `force` (a flush, or shutdown)
    /// ignores the backoff and also writes what could not be drained while the writer held a
    /// full buffer of retries, so everything accepted before the flush is written.
    fn cycle(&mut self, force: bool) -> std::result::Result<(), Arc<Error>> {
        let sync = self.p.sync.clone();
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            // Backing off: only move records out of the shards, so they can take new ones; with
            // a spill directory, on to disk.
            if self.p.spill.is_some() {
                self.take();
                if self.carry.len() >= SPILL_BATCH || self.last_spill.elapsed() >= SPILL_EVERY {
                    self.spill_carry();
                    self.forget_journal();
                }
            } else if self.carry.is_empty() {
                self.take();
            }
            self.settle();
            sync.state().carried = self.carry.len() as u64;
            return Ok(());
        }
        // Records that found the buffers full are stored, in order, as a spill file.
        self.finish_overflow();
        let mut replays = 0;
        loop {
            if let Err(e) = self.replay_spilled() {
                return self.failed(e);
            }
            replays += 1;
            if !self.p.spill.as_ref().is_some_and(Spill::has_pending) {
                break;
            }
            // Files were spilled while the backlog was written (the store is behind): what is
            // in hand and in the buffers is newer still, so it goes after them, to disk.
            if !force || replays >= FLUSH_ROUNDS {
                if self.carry.is_empty() {
                    self.take();
                }
                self.spill_carry();
                sync.state().carried = self.carry.len() as u64;
                self.forget_journal();
                self.publish_buffered();
                return Ok(());
            }
        }
        let rounds = if force { 2 } else { 1 };
        let mut result = Ok(());
        for _ in 0..rounds {
            // A batch that failed is written again, alone, before anything newer is drained.
            let held_back = !self.carry.is_empty();
            if !held_back {
                self.take();
                // Published before the write, so `stats().buffered` counts what is in hand
                // while the store is busy (hosts pace themselves on it).
                sync.state().carried = self.carry.len() as u64;
            }
            result = self.write_records();
            if result.is_err() || !held_back {
                break;
            }
        }
        if result.is_ok() && (force || self.last_baselines.elapsed() >= BASELINE_INTERVAL) {
            result = self.save_baselines();
        }
        match result {
            Ok(()) => {
                self.retry_at = None;
                self.backoff = FIRST_BACKOFF;
                self.forget_journal();
                self.publish_buffered();
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    /// Moves the buffers into hand. In durable mode the journal segment is finished first, so
    /// every record it holds is in hand (or stored) after this drain.
    pub(super) fn take(&mut self) {
        if let Some(journal) = &self.p.journal
            && let Some(old) = journal.rotate(ROTATE_EVERY)
        {
            self.rotated.push(old);
        }
        self.p.source.drain(&mut self.carry);
    }

    /// Deletes finished journal segments once nothing is in hand (all stored or spilled).
    pub(super) fn forget_journal(&mut self) {
        if !self.carry.is_empty() {
            return;
        }
        for path in self.rotated.drain(..) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a journal segment");
            }
        }
    }

    /// A failed write: back off, and spill what is in hand.
    fn failed(&mut self, error: Arc<Error>) -> std::result::Result<(), Arc<Error>> {
        self.p.series.store_failures.inc();
        tracing::warn!(store = self.p.store.backend(), error = %error, retry_in = ?self.backoff, "ace store write failed; will retry");
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if self.p.spill.is_some() {
            self.spill_carry();
        }
        self.forget_journal();
        self.publish_buffered();
        Err(error)
    }

    /// Tells the buffers how many of the records drained are still in hand, so the room of
    /// those stored, spilled or dropped since is theirs again.
    pub(super) fn settle(&self) {
        self.p.source.settle(self.carry.len() + self.in_flight);
    }

    /// `ace_buffered_records`: what the buffers and the writer's hands hold.
    fn publish_buffered(&self) {
        self.settle();
        let buffered = self.p.source.buffered() + self.carry.len() as u64;
        self.p.series.buffered.set(i64::try_from(buffered).unwrap_or(i64::MAX));
    }

    /// Writes a batch on the appender thread and waits for it, draining the buffers to spill
    /// files meanwhile once the write proves slow (see the module's comment). Returns the batch
    /// and the outcome. Files spilled meanwhile hold newer records than the batch: a batch that
    /// fails after some were written is spilled under a name taken before them, so replay keeps
    /// the order. A batch replayed from a spill file (`from_spill`) is never spilled again: its
    /// file is still there, and is released for the next replay (spilling it anew would store it
    /// twice).
    pub(super) fn store_batch(
        &mut self,
        records: Vec<Record>,
        retry: bool,
        from_spill: bool,
    ) -> (Vec<Record>, std::result::Result<(), Arc<Error>>) {
        let started = Instant::now();
        let before = if from_spill { None } else { self.p.spill.as_mut().map(Spill::reserve) };
        let mut overflowed = false;
        let pressure = (self.p.config.buffer_capacity / 8).max(self.p.config.batch_size) as u64;
        // Encoded, a record takes about a third of its size in memory.
        let gather = self.p.config.buffer_capacity.max(self.p.config.batch_size) as u64;
        let mut gathered = None;
        self.appender.submit(records, retry);
        let (records, outcome) = loop {
            if let Some(done) = self.appender.collect(WRITE_SLICE) {
                break done;
            }
            if self.p.spill.is_none() {
                continue;
            }
            let slow = started.elapsed() >= SLOW_WRITE && self.last_spill.elapsed() >= SPILL_EVERY;
            let pressed = slow || self.p.source.buffered() >= pressure;
            // One drain at a time, straight to a spill file (gathered, encoded, until it is large
            // enough to be worth its `fsync`); once encoded, the records' room is the buffers'
            // again (`settle`), so a burst flows to disk while the batch is written.
            if pressed && self.carry.is_empty() {
                self.p.source.drain(&mut self.carry);
            }
            if pressed && !self.carry.is_empty() {
                overflowed = true;
                self.gather_hand(&mut gathered, gather);
            } else if gathered.as_ref().is_some_and(|g| g.age() >= SPILL_EVERY) {
                // What was gathered goes to disk within 250 ms (`gather_hand` sees to it while
                // records keep coming), without waiting for the write, which may take seconds.
                self.write_gathered(&mut gathered);
            } else {
                continue;
            }
            self.settle();
            let gathered = gathered.as_ref().map_or(0, Gathered::count);
            self.p.sync.state().carried = self.carry.len() as u64 + gathered;
        };
        self.write_gathered(&mut gathered);
        if outcome.is_err()
            && overflowed
            && let (Some(spill), Some(name)) = (&mut self.p.spill, before)
        {
            match spill.write_as(&name, &records) {
                Ok(n) => {
                    self.p.series.spilled.inc_by(n);
                    return (Vec::new(), outcome);
                }
                Err(e) => self.spill_failed(&e, records.len()),
            }
        }
        (records, outcome)
    }

    /// Records buffered past which a slow write no longer holds them back (see [`SLOW_WRITE`]).
    pub(super) fn pressure(&self) -> u64 {
        (self.p.config.buffer_capacity / 8).max(self.p.config.batch_size) as u64
    }

    pub(super) fn write_records(&mut self) -> std::result::Result<(), Arc<Error>> {
        if self.carry.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // A batch that failed before is written alone, as it was.
        let rest =
            if self.unit > 0 && self.unit < self.carry.len() { self.carry.split_off(self.unit) } else { Vec::new() };
        let batch = std::mem::replace(&mut self.carry, rest);
        self.in_flight = batch.len();
        let (mut batch, outcome) = self.store_batch(batch, self.retry_at.is_some(), false);
        self.in_flight = 0;
        if let Err(e) = outcome {
            // Back in front of whatever came in meanwhile (nothing, unless the spill failed).
            self.unit = batch.len();
            batch.append(&mut self.carry);
            self.carry = batch;
            self.settle();
            return Err(e);
        }
        self.unit = 0;
        self.settle();
        let seconds = started.elapsed().as_secs_f64();
        self.p.core.time_query("append", seconds);
        self.p.core.time_operation("flush", seconds);
        let n = batch.len() as u64;
        self.p.series.persisted.inc_by(n);
        self.p.sync.state().persisted += n;
        Ok(())
    }

    fn save_baselines(&mut self) -> std::result::Result<(), Arc<Error>> {
        for p in self.p.source.changed_patterns() {
            self.patterns.insert((p.kind.clone(), p.template.clone()), p);
        }
        if !self.patterns.is_empty() {
            let batch: Vec<PatternRecord> = self.patterns.values().cloned().collect();
            let started = Instant::now();
            self.p.store.save_patterns(&batch).map_err(Arc::new)?;
            self.p.core.time_query("save_patterns", started.elapsed().as_secs_f64());
            self.patterns.clear();
        }
        self.last_baselines = Instant::now();
        // Baselines a failed save left behind go first, merged with their shards' newer states.
        let mut pending = std::mem::take(&mut self.baselines);
        for index in 0..self.p.source.parts() {
            // One shard at a time: a fleet's worth of baselines (10,000 agents: 120,000) is
            // never held at once. The leftover map is dropped, not cleared, once saved.
            let dirty = self.p.source.dirty_baselines(index);
            let batch: Vec<BaselineRecord> = if pending.is_empty() {
                dirty
            } else {
                for b in dirty {
                    pending.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                }
                std::mem::take(&mut pending).into_values().collect()
            };
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = self.between_parts() {
                // This part is kept for the next save; the later parts are still marked changed.
                for b in batch {
                    self.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                }
                return Err(e);
            }
            self.p.source.saving_baselines(&batch);
            let started = Instant::now();
            if let Err(e) = self.p.store.save_baselines(&batch) {
                // Keep this batch, and mark the rest to be read again next time.
                for b in batch {
                    self.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                }
                for rest in index + 1..self.p.source.parts() {
                    for b in self.p.source.dirty_baselines(rest) {
                        self.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                    }
                }
                return Err(Arc::new(e));
            }
            self.p.core.time_query("save_baselines", started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// At shutdown after the final flush: anything still held could not be stored. With a spill
    /// directory it goes there, to be stored by the next engine on the directory.
    fn give_up(&mut self) {
        if self.p.spill.is_some() {
            self.take();
            if !self.carry.is_empty() {
                let n = self.carry.len();
                self.spill_carry();
                if self.carry.is_empty() {
                    tracing::warn!(
                        records = n,
                        store = self.p.store.backend(),
                        "ace closed while the store was failing: records spilled to disk"
                    );
                }
            }
        }
        // Left for the next engine on the directory, like any spill file.
        self.finish_overflow();
        let lost = self.carry.len() as u64 + self.p.source.buffered();
        if lost == 0
            && let Some(journal) = &self.p.journal
        {
            // A clean close: everything is stored or spilled, the journal is not needed.
            self.rotated.push(journal.current());
            self.forget_journal();
        }
        if lost > 0 {
            self.p.core.drop_records("store_failed_at_close", lost);
            tracing::error!(
                records = lost,
                store = self.p.store.backend(),
                "ace closed while the store was failing: records not persisted"
            );
        }
    }
}
