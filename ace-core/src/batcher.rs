//! The writer thread: drains the monitor's buffers into the store in batches.
//!
//! It wakes when a buffer reaches its share of `batch_size`, when `batch_timeout` has passed, or
//! when `flush()` asks; it writes everything buffered in one `Store::append` call. A failed write
//! keeps its records and is retried with exponential backoff (100 ms doubling to 30 s). While it
//! backs off, records go to the spill directory (`ACE_SPILL_DIR`, see [`crate::spill`]) instead
//! of piling up in memory, and are stored, oldest first, before anything newer once a write
//! succeeds; without a spill directory at most `buffer_capacity` records are held (half in the
//! shards, half in the writer's hands) and newer ones are dropped and counted, never silently. Baselines and changed error patterns are saved every ten seconds and at
//! every flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::{Condvar, Mutex};

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::errors::PatternRecord;
use crate::monitor::{DrainState, Wake};
use crate::spill::Spill;
use crate::store::{BaselineRecord, Record};

const BASELINE_INTERVAL: Duration = Duration::from_secs(10);
/// How often breaker openings are exchanged through the shared cache.
const BREAKER_SYNC: Duration = Duration::from_secs(1);
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
const SPILL_BATCH: usize = 2_000;
/// ...or this long after the last spill.
const SPILL_EVERY: Duration = Duration::from_millis(250);

/// Coordination between recorders, flushers and the writer thread.
#[derive(Default)]
pub(crate) struct WriterSync {
    state: Mutex<State>,
    done: Condvar,
    wake: AtomicBool,
    /// The writer is polling (see [`POLL_INTERVAL`]): recorders need not wake it.
    polling: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

#[derive(Default)]
struct State {
    requested: u64,
    completed: u64,
    result: Option<String>,
    shutdown: bool,
    dead: bool,
    persisted: u64,
    carried: u64,
}

impl WriterSync {
    /// Asks the writer to run: `Soon` wakes it if it sleeps and otherwise leaves it to its next
    /// poll; `Now` wakes it in any case.
    #[inline]
    pub(crate) fn wake(&self, wake: Wake) {
        // The flag is set before `polling` is read, and the writer clears `polling` before it
        // reads the flag (both SeqCst): one of the two sees the other, so no wake-up is lost.
        match wake {
            Wake::No => {}
            Wake::Soon => {
                if !self.wake.swap(true, Ordering::SeqCst) && !self.polling.load(Ordering::SeqCst) {
                    self.unpark();
                }
            }
            Wake::Now => {
                self.wake.store(true, Ordering::SeqCst);
                self.unpark();
            }
        }
    }

    fn unpark(&self) {
        if let Some(t) = &*self.thread.lock() {
            t.unpark();
        }
    }

    /// Blocks until the writer has written everything buffered before this call.
    pub(crate) fn flush(&self, backend: &'static str) -> Result<()> {
        let mut st = self.state.lock();
        if st.dead || st.shutdown {
            return Err(Error::Closed);
        }
        st.requested += 1;
        let ticket = st.requested;
        self.unpark();
        while st.completed < ticket && !st.dead {
            self.done.wait(&mut st);
        }
        if st.dead {
            return Err(Error::Internal("the ace writer thread stopped unexpectedly".into()));
        }
        match &st.result {
            None => Ok(()),
            Some(message) => Err(Error::Store { backend, operation: "flush", source: message.clone().into() }),
        }
    }

    pub(crate) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.unpark();
    }

    /// (records persisted, records held by the writer for a retry)
    pub(crate) fn progress(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.persisted, st.carried)
    }
}

/// A write to the store through the engine's own breaker (`ace-store` in the registry): while
/// it is open the store is not called at all (records are spilled instead), and its half-open
/// trial is the next write. `retry` counts the attempt in `ace_store_retries_total`.
fn guarded_append(shared: &Shared, records: &[Record], retry: bool) -> std::result::Result<(), String> {
    let permit = shared.store_breaker.try_acquire().map_err(|r| r.to_string())?;
    if retry {
        shared.metrics.store_retries.inc();
    }
    match shared.store.append(records) {
        Ok(()) => {
            permit.success();
            Ok(())
        }
        Err(e) => {
            permit.failure();
            Err(e.to_string())
        }
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    carry: Vec<Record>,
    drain: DrainState,
    baselines: HashMap<(String, String, String), BaselineRecord>,
    /// Changed patterns not yet saved (kept across failed saves).
    patterns: HashMap<(String, String), PatternRecord>,
    last_baselines: Instant,
    retry_at: Option<Instant>,
    backoff: Duration,
    spill: Option<Spill>,
    last_spill: Instant,
    /// Journal segments finished before the last drain: deleted once the hand is empty.
    rotated: Vec<std::path::PathBuf>,
    last_breaker_sync: Instant,
    last_state_sync: Instant,
    /// (agent, stage) pairs whose fleet baseline was asked for, and when: asked again after
    /// [`BASELINE_ASK_AGAIN`].
    asked: HashMap<(Arc<str>, Arc<str>), Instant>,
}

/// How often the writer shares context refreshes and warming baselines through the cache.
const STATE_SYNC: Duration = Duration::from_secs(1);
/// The most keys one sync reads from the cache, for baselines and for refreshes each.
const SYNC_READS: usize = 64;
/// How long before a warming (agent, stage) asks the cache for the fleet's baseline again.
const BASELINE_ASK_AGAIN: Duration = Duration::from_secs(10);

/// A baseline as shared through the cache (`baseline:{stage}:{agent}`: every stream of the pair).
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedStream {
    metric: String,
    state: crate::monitor::BaselineState,
    updated_at: i64,
}

fn baseline_key(agent: &str, stage: &str) -> String {
    format!("baseline:{stage}:{agent}")
}

/// A journal segment is finished (and can go once stored) after this long.
const ROTATE_EVERY: Duration = Duration::from_millis(200);

impl Writer {
    pub(crate) fn spawn(shared: Arc<Shared>, spill: Option<Spill>) -> Result<JoinHandle<()>> {
        let writer = Writer {
            shared: shared.clone(),
            carry: Vec::new(),
            drain: DrainState::default(),
            baselines: HashMap::new(),
            patterns: HashMap::new(),
            last_baselines: Instant::now(),
            retry_at: None,
            backoff: FIRST_BACKOFF,
            spill,
            last_spill: Instant::now(),
            rotated: Vec::new(),
            last_breaker_sync: Instant::now(),
            last_state_sync: Instant::now(),
            asked: HashMap::new(),
        };
        let handle = std::thread::Builder::new()
            .name("ace-writer".into())
            .spawn(move || {
                let sync_owner = writer.shared.clone();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || writer.run()));
                if outcome.is_err() {
                    tracing::error!("the ace writer thread panicked; records can no longer be persisted");
                    let mut st = sync_owner.sync.state.lock();
                    st.dead = true;
                    sync_owner.sync.done.notify_all();
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the ace writer thread: {e}")))?;
        *shared.sync.thread.lock() = Some(handle.thread().clone());
        Ok(handle)
    }

    fn run(mut self) {
        let timeout = self.shared.config.batch_timeout;
        let shared = self.shared.clone();
        let sync = &shared.sync;
        let mut last_cycle = Instant::now();
        let mut last_records = Instant::now();
        let mut poll = POLL_INTERVAL;
        let batch = self.shared.config.batch_size as u64;
        loop {
            let (requested, completed, shutdown) = {
                let st = sync.state.lock();
                (st.requested, st.completed, st.shutdown)
            };
            let flushing = requested > completed || shutdown;
            let woke = sync.wake.swap(false, Ordering::SeqCst);
            let polling = sync.polling.load(Ordering::Relaxed);
            self.sync_breakers();
            self.sync_state();
            if woke || flushing || polling || last_cycle.elapsed() >= timeout {
                last_cycle = Instant::now();
                let persisted_before = sync.state.lock().persisted;
                let result = self.cycle(flushing);
                let wrote = sync.state.lock().persisted - persisted_before;
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
                let mut st = self.shared.sync.state.lock();
                st.carried = self.carry.len() as u64;
                if requested > st.completed {
                    st.completed = requested;
                    st.result = result.err();
                    self.shared.sync.done.notify_all();
                }
                if shutdown {
                    drop(st);
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
                && self.spill.is_none()
            {
                wait = wait.max(at.saturating_duration_since(Instant::now()));
            }
            std::thread::park_timeout(wait);
        }
    }

    /// One pass: drain, write records, save baselines when due. `force` (a flush, or shutdown)
    /// ignores the backoff and also writes what could not be drained while the writer held a
    /// full buffer of retries, so everything accepted before the flush is written.
    fn cycle(&mut self, force: bool) -> std::result::Result<(), String> {
        let shared = self.shared.clone();
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            // Backing off: only move records out of the shards, so they can take new ones; with
            // a spill directory, on to disk.
            if self.spill.is_some() {
                self.take();
                if self.carry.len() >= SPILL_BATCH || self.last_spill.elapsed() >= SPILL_EVERY {
                    self.spill_carry();
                    self.forget_journal();
                }
            } else if self.carry.is_empty() {
                self.take();
            }
            shared.sync.state.lock().carried = self.carry.len() as u64;
            return Ok(());
        }
        if let Err(message) = self.replay_spilled() {
            return self.failed(message);
        }
        let rounds = if force { 2 } else { 1 };
        let mut result = Ok(());
        for _ in 0..rounds {
            // The writer takes a new drain only with empty hands: the shards hold at most half
            // of `buffer_capacity` and so does one drain, so memory stays within the capacity.
            let held_back = !self.carry.is_empty();
            if !held_back {
                self.take();
                // Published before the write, so `stats().buffered` counts what is in hand
                // while the store is busy (hosts pace themselves on it).
                shared.sync.state.lock().carried = self.carry.len() as u64;
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
                let buffered = shared.monitor.counts().buffered + self.carry.len() as u64;
                shared.metrics.buffered.set(i64::try_from(buffered).unwrap_or(i64::MAX));
                Ok(())
            }
            Err(message) => self.failed(message),
        }
    }

    /// Publishes breakers that opened here and opens those another process saw open (through
    /// the shared cache, at most every [`BREAKER_SYNC`]). A cache failure is logged and the next
    /// sync tries again.
    fn sync_breakers(&mut self) {
        let shared = self.shared.clone();
        let Some(cache) = &shared.cache else { return };
        if self.last_breaker_sync.elapsed() < BREAKER_SYNC {
            return;
        }
        self.last_breaker_sync = Instant::now();
        let now = shared.clock.now().as_micros();
        let opened: Vec<(Arc<str>, i64)> = std::mem::take(&mut *shared.opened.lock());
        for (name, until) in opened {
            let ttl = Duration::from_micros(u64::try_from(until - now).unwrap_or(0).max(1000));
            if let Err(e) = cache.set(&format!("breaker:{name}"), &until.to_string(), ttl) {
                tracing::warn!(breaker = &*name, error = %e, "cannot publish a breaker opening through the cache");
            }
        }
        for b in shared.breakers.all() {
            if b.name() == "ace-store" {
                continue;
            }
            match cache.get(&format!("breaker:{}", b.name())) {
                Ok(Some(v)) => {
                    if let Ok(until) = v.parse::<i64>()
                        && b.open_from_peer(crate::clock::Timestamp::from_micros(until))
                    {
                        tracing::info!(breaker = b.name(), "opened: another process saw the dependency fail");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read breaker states from the cache");
                    return;
                }
            }
        }
    }

    /// Shares state through the cache, at most every [`STATE_SYNC`], never on a caller's path:
    /// publishes this process's context refreshes; applies refreshes other processes made to
    /// agents whose context is getting stale here; and gives (agent, stage) pairs still warming
    /// up the baseline the fleet has learned, when it has seen more. Baselines are published as
    /// they are saved (see `save_baselines`). A cache failure is logged; the next sync retries.
    fn sync_state(&mut self) {
        let shared = self.shared.clone();
        let Some(cache) = &shared.cache else { return };
        if self.last_state_sync.elapsed() < STATE_SYNC {
            return;
        }
        self.last_state_sync = Instant::now();
        let ttl = shared.config.cache_ttl;
        let now = shared.clock.now();
        let refreshed: Vec<(Arc<str>, i64)> = std::mem::take(&mut *shared.refreshed.lock());
        for (agent, at) in refreshed {
            if let Err(e) = cache.set(&format!("refresh:{agent}"), &at.to_string(), ttl) {
                tracing::warn!(agent = &*agent, error = %e, "cannot publish a context refresh through the cache");
                return;
            }
        }
        let threshold = shared.context.cfg.threshold;
        for agent in shared.context.staler_than(threshold / 2.0, now, SYNC_READS) {
            match cache.get(&format!("refresh:{agent}")) {
                Ok(Some(v)) => {
                    if let Ok(at) = v.parse::<i64>()
                        && shared.context.refresh_from_peer(&agent, crate::clock::Timestamp::from_micros(at))
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
        let warmup = u64::from(shared.config.baseline_warmup);
        let mut reads = 0;
        for (agent, stage) in shared.monitor.warming(warmup, SYNC_READS * 4) {
            if reads >= SYNC_READS {
                break;
            }
            let key = (agent.clone(), stage.clone());
            if self.asked.get(&key).is_some_and(|t| t.elapsed() < BASELINE_ASK_AGAIN) {
                continue;
            }
            self.asked.insert(key, Instant::now());
            reads += 1;
            match cache.get(&baseline_key(&agent, &stage)) {
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
                            updated_at: crate::clock::Timestamp::from_micros(s.updated_at),
                        })
                        .collect();
                    let taken = shared.monitor.adopt(records);
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

    /// Publishes baselines through the cache, one key per (agent, stage) with every stream.
    fn publish_baselines(&self, batch: &[BaselineRecord]) {
        let shared = &self.shared;
        let Some(cache) = &shared.cache else { return };
        let warmup = u64::from(shared.config.baseline_warmup);
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
            if let Err(e) = cache.set(&baseline_key(agent, stage), &json, shared.config.cache_ttl) {
                tracing::warn!(error = %e, "cannot publish baselines through the cache");
                return;
            }
        }
    }

    /// Moves the buffers into hand. In durable mode the journal segment is finished first, so
    /// every record it holds is in hand (or stored) after this drain.
    fn take(&mut self) {
        if let Some(journal) = &self.shared.journal
            && let Some(old) = journal.rotate(ROTATE_EVERY)
        {
            self.rotated.push(old);
        }
        self.shared.monitor.drain(&mut self.carry, &mut self.drain);
    }

    /// Deletes finished journal segments once nothing is in hand (all stored or spilled).
    fn forget_journal(&mut self) {
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
    fn failed(&mut self, message: String) -> std::result::Result<(), String> {
        let shared = self.shared.clone();
        shared.metrics.store_failures.inc();
        tracing::warn!(store = shared.store.backend(), error = %message, retry_in = ?self.backoff, "ace store write failed; will retry");
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if self.spill.is_some() {
            self.spill_carry();
        }
        self.forget_journal();
        let buffered = shared.monitor.counts().buffered + self.carry.len() as u64;
        shared.metrics.buffered.set(i64::try_from(buffered).unwrap_or(i64::MAX));
        Err(message)
    }

    /// Moves the records in hand to a spill file (kept in hand if the file cannot be written).
    fn spill_carry(&mut self) {
        self.last_spill = Instant::now();
        let Some(spill) = &mut self.spill else { return };
        if self.carry.is_empty() {
            return;
        }
        match spill.write(&self.carry) {
            Ok(n) => {
                self.shared.metrics.records_spilled.inc_by(n);
                self.carry.clear();
                self.shared.sync.state.lock().carried = 0;
            }
            Err(e) => {
                self.shared.metrics.spill_failures.inc();
                tracing::error!(error = %e, records = self.carry.len(), "cannot write a spill file; records stay in memory")
            }
        }
    }

    /// Stores spilled files, oldest first; stops at the first failure (the file stays spilled).
    fn replay_spilled(&mut self) -> std::result::Result<(), String> {
        let Some(spill) = &self.spill else { return Ok(()) };
        for file in spill.pending() {
            let Some(spill) = &self.spill else { break };
            let Some(claimed) = spill.claim(&file) else { continue };
            let records = match Spill::read(&claimed) {
                Ok(r) => r,
                Err(e) => {
                    // Unreadable: set aside for a person, never deleted.
                    let aside = file.with_extension("unreadable");
                    let _ = std::fs::rename(&claimed, &aside);
                    tracing::error!(file = %aside.display(), error = %e, "a spill file cannot be read; it was set aside");
                    continue;
                }
            };
            let started = Instant::now();
            if let Err(e) = guarded_append(&self.shared, &records, self.retry_at.is_some()) {
                spill.release(&claimed, &file);
                return Err(e);
            }
            self.shared.metrics.time_query("append", started.elapsed().as_secs_f64());
            if let Err(e) = std::fs::remove_file(&claimed) {
                tracing::error!(file = %claimed.display(), error = %e, "a replayed spill file could not be removed");
            }
            let n = records.len() as u64;
            self.shared.metrics.records_replayed.inc_by(n);
            self.shared.metrics.records_persisted.inc_by(n);
            self.shared.sync.state.lock().persisted += n;
            // Keep the buffers from filling while the backlog is written: what came in meanwhile
            // goes into hand, and to a newer spill file (replayed after this one) if it piles up.
            self.take();
            if self.carry.len() >= SPILL_BATCH {
                self.spill_carry();
            }
        }
        Ok(())
    }

    fn write_records(&mut self) -> std::result::Result<(), String> {
        if self.carry.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let started = Instant::now();
        guarded_append(shared, &self.carry, self.retry_at.is_some())?;
        let seconds = started.elapsed().as_secs_f64();
        shared.metrics.time_query("append", seconds);
        shared.metrics.time_operation("flush", seconds);
        let n = self.carry.len() as u64;
        shared.metrics.records_persisted.inc_by(n);
        self.shared.sync.state.lock().persisted += n;
        self.carry.clear();
        Ok(())
    }

    fn save_baselines(&mut self) -> std::result::Result<(), String> {
        for p in self.shared.errors.changed_patterns() {
            self.patterns.insert((p.kind.clone(), p.template.clone()), p);
        }
        if !self.patterns.is_empty() {
            let batch: Vec<PatternRecord> = self.patterns.values().cloned().collect();
            let started = Instant::now();
            self.shared.store.save_patterns(&batch).map_err(|e| e.to_string())?;
            self.shared.metrics.time_query("save_patterns", started.elapsed().as_secs_f64());
            self.patterns.clear();
        }
        self.last_baselines = Instant::now();
        // Baselines a failed save left behind go first, merged with their shards' newer states.
        let mut pending = std::mem::take(&mut self.baselines);
        for index in 0..self.shared.monitor.shard_count() {
            // One shard at a time: a fleet's worth of baselines (10,000 agents: 120,000) is
            // never held at once. The leftover map is dropped, not cleared, once saved.
            let dirty = self.shared.monitor.dirty_baselines(index, false);
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
            self.publish_baselines(&batch);
            let started = Instant::now();
            if let Err(e) = self.shared.store.save_baselines(&batch) {
                // Keep this batch, and mark the rest to be read again next time.
                for b in batch {
                    self.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                }
                for rest in index + 1..self.shared.monitor.shard_count() {
                    for b in self.shared.monitor.dirty_baselines(rest, false) {
                        self.baselines.insert((b.agent.clone(), b.stage.clone(), b.metric.clone()), b);
                    }
                }
                return Err(e.to_string());
            }
            self.shared.metrics.time_query("save_baselines", started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// At shutdown after the final flush: anything still held could not be stored. With a spill
    /// directory it goes there, to be stored by the next engine on the directory.
    fn give_up(&mut self) {
        if self.spill.is_some() {
            self.take();
            if !self.carry.is_empty() {
                let n = self.carry.len();
                self.spill_carry();
                if self.carry.is_empty() {
                    tracing::warn!(
                        records = n,
                        store = self.shared.store.backend(),
                        "ace closed while the store was failing: records spilled to disk"
                    );
                }
            }
        }
        let lost = self.carry.len() as u64 + self.shared.monitor.counts().buffered;
        if lost == 0
            && let Some(journal) = &self.shared.journal
        {
            // A clean close: everything is stored or spilled, the journal is not needed.
            self.rotated.push(journal.current());
            self.forget_journal();
        }
        if lost > 0 {
            self.shared.metrics.drop_records("store_failed_at_close", lost);
            tracing::error!(
                records = lost,
                store = self.shared.store.backend(),
                "ace closed while the store was failing: records not persisted"
            );
        }
    }
}
