//! The performance monitor: stage outcomes and metrics in, baselines and degradation signals out.
//!
//! State is kept per (agent, stage) in a fixed number of shards, each behind its own lock, so
//! agents recording from different threads rarely meet. One record call takes one shard lock
//! once: it finds the (agent, stage) entry, feeds its detectors (duration, success and each named
//! metric), counts the entry's Prometheus series (plain fields, read at scrape time by
//! `export.rs`) and pushes one compact record into the shard's buffer. It never waits for I/O:
//! the engine's writer thread drains the buffers and completes the records.

mod baseline;
mod export;
mod timer;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::Mutex;

pub use baseline::{BaselineState, Detector, DetectorConfig, Transition, Watch};
pub(crate) use export::MonitorSeries;
pub use timer::StageTimer;

use crate::clock::Timestamp;
use crate::context::{AgentContext, ContextOrgan};
use crate::error::{Error, Result};
use crate::event::{
    MAX_METRICS_PER_EVENT, Severity, metric_names, validate_duration, validate_id, validate_metric_name,
    validate_stage, validate_value,
};
use crate::metrics::Metrics;
use crate::signal::{Direction, Evidence, Signal, SignalKind};
use crate::store::{BaselineRecord, MetricRecord, Record};
use crate::trajectory::{self, Track, TrajectoryOrgan};

const SHARDS: usize = 16;

/// What a buffered record asks of the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing.
    No,
    /// Run soon: at once if it sleeps, at its next poll if it is polling.
    Soon,
    /// Run at once (a shard is half full).
    Now,
}
/// Named metrics tracked with a baseline per (agent, stage); more are stored but not baselined.
const MAX_STREAMS_PER_ENTRY: usize = 64;
/// One record in this many has its computation time measured.
const TIMING_SAMPLE: u32 = 64;

/// A metric record as buffered: the (agent, stage) as an index into the shard's keys and the task
/// only when it changed, so buffering it touches no reference count shared with the writer
/// thread (those atomic operations, and the cache lines they pull across cores, were a quarter of
/// a record's cost). [`Monitor::drain`] turns it into a [`MetricRecord`] on the writer thread.
pub(crate) struct Pending {
    ts: Timestamp,
    key: u32,
    task: Option<Arc<str>>,
    duration_s: Option<f64>,
    success: Option<bool>,
    metrics: Vec<(Arc<str>, f64)>,
}

/// The writer's side of [`Monitor::drain`]: its own copies of the shards' keys (separate
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

/// What a record call reports: a finished stage, or a single metric.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation<'a> {
    pub agent: &'a str,
    pub task: &'a str,
    pub stage: &'a str,
    pub outcome: Option<(f64, bool)>,
    pub metrics: &'a [(&'a str, f64)],
}

/// The shards, shared with the metrics collector that reads them at scrape time.
pub(crate) type Shards = [Padded<Mutex<Shard>>];

pub(crate) struct Monitor {
    shards: Arc<Shards>,
    hasher: DefaultHashBuilder,
    detector: DetectorConfig,
    shard_capacity: usize,
    /// Half of `shard_capacity`: a shard this full wakes the writer at once.
    shard_half: usize,
    batch_size: usize,
    metrics: Metrics,
    context: Arc<ContextOrgan>,
    trajectory: Arc<TrajectoryOrgan>,
    /// Whether records are buffered for the store at all (see `AceBuilder::persist`).
    persist: bool,
    names: SharedNames,
    /// Set by `Ace::close`; checked under the shard lock so nothing enters a buffer after the
    /// final drain.
    pub(crate) closed: AtomicBool,
}

#[repr(align(128))]
pub(crate) struct Padded<T>(T);

#[derive(Default)]
pub(crate) struct Shard {
    entries: Entries,
    /// The stage names of the entries, one copy each (up to [`MAX_SHARED_STAGES`]).
    stages: Vec<Arc<str>>,
    /// This shard's metric records, compact: no reference count is touched on the recording
    /// thread (see [`Pending`]).
    pending: Vec<Pending>,
    /// Records of other organs (errors), as they are.
    others: Vec<Record>,
    recorded: u64,
    dropped: u64,
    signals: u64,
    ops: u32,
}

impl Shard {
    /// The shard's copy of a stage name: stages are few, and every agent's entries share them.
    fn stage_name(&mut self, stage: &str) -> Arc<str> {
        if let Some(s) = self.stages.iter().find(|s| &***s == stage) {
            return s.clone();
        }
        let name: Arc<str> = Arc::from(stage);
        if self.stages.len() < MAX_SHARED_STAGES {
            self.stages.push(name.clone());
        }
        name
    }
}

/// Stage names a shard keeps one copy of; an application with more stages than this pays for
/// a copy per entry of the rest.
const MAX_SHARED_STAGES: usize = 64;

/// Names every entry holds, one copy for all.
struct SharedNames {
    /// The task of an entry that has none yet.
    none: Arc<str>,
    duration: Arc<str>,
    success: Arc<str>,
}

/// Entries per chunk of [`Entries`].
const CHUNK: usize = 128;

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
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn at(&self, i: usize) -> &Entry {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    #[inline]
    fn position(&self, hash: u64, agent: &str, stage: &str) -> Option<usize> {
        let i = self.index.find(hash, |&i| {
            let e = self.at(i as usize);
            &*e.agent == agent && &*e.stage == stage
        })?;
        Some(*i as usize)
    }

    #[inline]
    fn find(&self, hash: u64, agent: &str, stage: &str) -> Option<&Entry> {
        self.position(hash, agent, stage).map(|i| self.at(i))
    }

    #[inline]
    fn find_mut(&mut self, hash: u64, agent: &str, stage: &str) -> Option<&mut Entry> {
        let i = self.position(hash, agent, stage)?;
        Some(&mut self.chunks[i / CHUNK][i % CHUNK])
    }

    /// Adds an entry (whose `key` is [`Entries::len`]) that is not there yet.
    fn insert(&mut self, entry: Entry) -> &mut Entry {
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

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten()
    }
}

pub(crate) struct Entry {
    hash: u64,
    /// Index of the entry in its shard's [`Entries`].
    key: u32,
    agent: Arc<str>,
    stage: Arc<str>,
    last_task: Arc<str>,
    /// `last_task` went out with a buffered record, so later records of the same task can say
    /// "same task" instead of carrying it.
    task_sent: bool,
    updated_at: Timestamp,
    duration: Stream,
    success: Stream,
    named: Vec<Stream>,
    /// The agent's context state (staleness), fetched at the entry's first stage.
    context: Option<Arc<AgentContext>>,
    /// The track of `last_task`, fetched at its first stage here.
    track: Option<Arc<Track>>,
    /// Failures in a row of this stage in `last_task`.
    failures: u32,
    series: export::EntrySeries,
    dirty: bool,
}

struct Stream {
    name: Arc<str>,
    detector: Detector,
}

impl Stream {
    fn new(name: Arc<str>, state: BaselineState) -> Self {
        Stream { name, detector: Detector::from_state(state) }
    }
}

/// Counts summed over the shards.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MonitorCounts {
    pub recorded: u64,
    pub dropped: u64,
    pub signals: u64,
    pub buffered: u64,
    pub entries: u64,
}

impl Monitor {
    pub(crate) fn new(
        detector: DetectorConfig,
        buffer_capacity: usize,
        batch_size: usize,
        metrics: Metrics,
        context: Arc<ContextOrgan>,
        trajectory: Arc<TrajectoryOrgan>,
    ) -> Self {
        let shards: Arc<Shards> = (0..SHARDS).map(|_| Padded(Mutex::new(Shard::default()))).collect();
        metrics.monitor_series.attach(&shards);
        Monitor {
            shards,
            hasher: DefaultHashBuilder::default(),
            detector,
            // Half the capacity for the shards, half for the writer's batch in hand (see batcher).
            shard_capacity: (buffer_capacity / 2).div_ceil(SHARDS).max(1),
            shard_half: ((buffer_capacity / 2).div_ceil(SHARDS) / 2).max(1),
            batch_size: batch_size.div_ceil(SHARDS).min((buffer_capacity / 2).div_ceil(SHARDS)).max(1),
            metrics,
            context,
            trajectory,
            persist: true,
            names: SharedNames {
                none: Arc::from(""),
                duration: Arc::from(metric_names::DURATION),
                success: Arc::from(metric_names::SUCCESS),
            },
            closed: AtomicBool::new(false),
        }
    }

    /// A new entry: `agent` and `stage` are shared names, as are the outcome streams' names.
    fn new_entry(&self, hash: u64, key: u32, agent: Arc<str>, stage: Arc<str>) -> Entry {
        Entry {
            hash,
            key,
            agent,
            stage,
            last_task: self.names.none.clone(),
            task_sent: false,
            updated_at: Timestamp::EPOCH,
            duration: Stream::new(self.names.duration.clone(), BaselineState::default()),
            success: Stream::new(self.names.success.clone(), BaselineState::default()),
            named: Vec::new(),
            context: None,
            track: None,
            failures: 0,
            series: export::EntrySeries::default(),
            dirty: false,
        }
    }

    /// Records nothing for the store from now on (set before the engine is shared).
    pub(crate) fn set_persist(&mut self, persist: bool) {
        self.persist = persist;
    }

    fn shard_of(&self, hash: u64) -> &Mutex<Shard> {
        // Bits 40.. pick the shard: hashbrown uses the low bits for buckets and the top 7 for tags.
        &self.shards[(hash >> 40) as usize % SHARDS].0
    }

    /// Validates, updates baselines, buffers the record. Returns the signals and whether the
    /// shard's buffer reached its share of a batch (the writer should wake).
    pub(crate) fn record(&self, now: Timestamp, obs: &Observation<'_>) -> Result<(Vec<Signal>, Wake)> {
        if let Err(e) = validate(obs) {
            self.metrics.reject(reject_reason(&e));
            return Err(e);
        }
        let hash = self.hasher.hash_one((obs.agent, obs.stage));
        let mut guard = self.shard_of(hash).lock();
        let shard: &mut Shard = &mut guard;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shard.ops = shard.ops.wrapping_add(1);
        let started = shard.ops.is_multiple_of(TIMING_SAMPLE).then(Instant::now);

        let entry = match shard.entries.find_mut(hash, obs.agent, obs.stage) {
            Some(e) => e,
            None => {
                // An existing entry's agent and stage were checked when it was made, so only a
                // new pair pays for their validation.
                if let Err(e) = validate_id("agent", obs.agent).and_then(|()| validate_stage(obs.stage)) {
                    drop(guard);
                    self.metrics.reject(reject_reason(&e));
                    return Err(e);
                }
                // The agent's name comes from its context state, one copy for all its stages
                // (its label too, unless capped); the stage's from the shard's other entries.
                let context = self.context.agent(obs.agent, now);
                let stage = shard.stage_name(obs.stage);
                let mut entry = self.new_entry(hash, shard.entries.len() as u32, context.name().clone(), stage);
                entry.series.agent_label = Some(self.metrics.agent_label(context.name()));
                entry.context = Some(context);
                shard.entries.insert(entry)
            }
        };
        if &*entry.last_task != obs.task {
            // A stage outcome follows the task's track; its name is the track's (one copy for
            // the task's stages, whose entries lie in other shards).
            if obs.outcome.is_some() {
                let track = self.trajectory.track(&entry.agent, obs.task, now);
                entry.last_task = track.task().clone();
                entry.track = Some(track);
            } else {
                entry.last_task = Arc::from(obs.task);
                entry.track = None;
            }
            entry.task_sent = false;
            entry.failures = 0;
        }
        let mut signals = Vec::new();
        entry.observe(now, obs, &self.detector, &self.metrics, &mut signals);
        if let Some((_, success)) = obs.outcome {
            let context = entry.context.get_or_insert_with(|| self.context.agent(obs.agent, now));
            signals.extend(context.observe(now, false, obs.task, obs.stage, &self.context.cfg));
            self.follow(now, entry, success, &mut signals);
        }
        let wake = if !self.persist {
            Wake::No
        } else if shard.pending.len() + shard.others.len() < self.shard_capacity {
            let task = (!entry.task_sent).then(|| entry.last_task.clone());
            entry.task_sent = true;
            let metrics = obs.metrics.iter().map(|&(name, v)| (entry.intern(name), v)).collect();
            shard.pending.push(Pending {
                ts: now,
                key: entry.key,
                task,
                duration_s: obs.outcome.map(|(d, _)| d),
                success: obs.outcome.map(|(_, s)| s),
                metrics,
            });
            self.wake_for(shard.pending.len() + shard.others.len())
        } else {
            self.count_drop(shard);
            Wake::No
        };
        shard.recorded += 1;
        shard.signals += signals.len() as u64;
        if let Some(started) = started {
            self.metrics.time_operation("record", started.elapsed().as_secs_f64());
        }
        drop(guard);
        for s in &signals {
            self.metrics.count_signal(s.kind);
        }
        Ok((signals, wake))
    }

    /// Counts a stage outcome in its task's trajectory: loops of this stage, runs of failures,
    /// the task's length.
    fn follow(&self, now: Timestamp, entry: &mut Entry, success: bool, signals: &mut Vec<Signal>) {
        let cfg = &self.trajectory.cfg;
        let track = match &entry.track {
            Some(t) if !t.ended() => t,
            _ => entry.track.insert(self.trajectory.track(&entry.agent, &entry.last_task, now)),
        };
        track.step(now, success, &entry.stage, cfg, signals);
        if success {
            entry.failures = 0;
        } else {
            entry.failures += 1;
            if cfg.loop_threshold > 0 && entry.failures == cfg.loop_threshold {
                signals.push(trajectory::loop_signal(
                    now,
                    &entry.agent,
                    &entry.last_task,
                    &entry.stage,
                    entry.failures,
                    cfg.loop_threshold,
                ));
            }
        }
    }

    /// Buffers a record of another organ, keyed by `key` (a hash of its agent and task), under
    /// the same capacity and close rules as the monitor's own. Returns whether the writer should
    /// wake.
    pub(crate) fn buffer(&self, key: u64, record: Record) -> Result<Wake> {
        let mut guard = self.shard_of(key).lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(self.push_pending(&mut guard, record))
    }

    fn push_pending(&self, shard: &mut Shard, record: Record) -> Wake {
        if !self.persist {
            Wake::No
        } else if shard.pending.len() + shard.others.len() < self.shard_capacity {
            shard.others.push(record);
            self.wake_for(shard.pending.len() + shard.others.len())
        } else {
            self.count_drop(shard);
            Wake::No
        }
    }

    /// Whether a shard holding `held` records should wake the writer: soon at its share of a
    /// batch, at once at half its capacity (a hot (agent, stage) fills its shard faster than the
    /// writer's poll; waking it then keeps the shard from overflowing).
    #[inline]
    fn wake_for(&self, held: usize) -> Wake {
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
        self.metrics.drop_records("buffer_full", 1);
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

    /// How many shards [`Monitor::dirty_baselines`] walks (saving one shard's baselines at a
    /// time keeps a fleet's save from holding every baseline in memory at once).
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Baselines of shard `index` changed since the last call (all of them with `all`).
    pub(crate) fn dirty_baselines(&self, index: usize, all: bool) -> Vec<BaselineRecord> {
        let mut out = Vec::new();
        {
            let mut shard = self.shards[index].0.lock();
            for e in shard.entries.iter_mut().filter(|e| e.dirty || all) {
                e.dirty = false;
                for s in e.streams() {
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
                if e.duration.detector.state.count < warmup {
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
            let hash = self.hasher.hash_one((b.agent.as_str(), b.stage.as_str()));
            let mut shard = self.shard_of(hash).lock();
            let shard = &mut *shard;
            let entry = match shard.entries.find_mut(hash, &b.agent, &b.stage) {
                Some(e) => e,
                None => {
                    let stage = shard.stage_name(&b.stage);
                    let entry = self.new_entry(hash, shard.entries.len() as u32, Arc::from(b.agent.as_str()), stage);
                    shard.entries.insert(entry)
                }
            };
            if only_fresher && entry.streams().any(|s| *s.name == *b.metric && s.detector.state.count >= b.state.count)
            {
                continue;
            }
            entry.updated_at = entry.updated_at.max(b.updated_at);
            match b.metric.as_str() {
                metric_names::DURATION => entry.duration.detector = Detector::from_state(b.state),
                metric_names::SUCCESS => entry.success.detector = Detector::from_state(b.state),
                name => {
                    let full = entry.named.len() >= MAX_STREAMS_PER_ENTRY;
                    match entry.named.iter_mut().find(|s| &*s.name == name) {
                        Some(s) => s.detector = Detector::from_state(b.state),
                        None if !full => {
                            entry.named.reserve_exact(1);
                            entry.named.push(Stream::new(Arc::from(name), b.state));
                        }
                        None => continue,
                    }
                }
            }
            taken += 1;
        }
        taken
    }

    /// The baseline of one (agent, stage, metric), if any.
    pub(crate) fn baseline(&self, agent: &str, stage: &str, metric: &str) -> Option<BaselineState> {
        let hash = self.hasher.hash_one((agent, stage));
        let shard = self.shard_of(hash).lock();
        let e = shard.entries.find(hash, agent, stage)?;
        e.streams().find(|s| &*s.name == metric).map(|s| s.detector.state)
    }

    pub(crate) fn counts(&self) -> MonitorCounts {
        let mut c = MonitorCounts::default();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            c.recorded += shard.recorded;
            c.dropped += shard.dropped;
            c.signals += shard.signals;
            c.buffered += (shard.pending.len() + shard.others.len()) as u64;
            c.entries += shard.entries.len() as u64;
        }
        c
    }
}

impl Entry {
    fn streams(&self) -> impl Iterator<Item = &Stream> {
        [&self.duration, &self.success].into_iter().chain(self.named.iter())
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        match self.named.iter().find(|s| &*s.name == name) {
            Some(s) => s.name.clone(),
            None => Arc::from(name),
        }
    }

    fn observe(
        &mut self,
        now: Timestamp,
        obs: &Observation<'_>,
        cfg: &DetectorConfig,
        metrics: &Metrics,
        out: &mut Vec<Signal>,
    ) {
        self.dirty = true;
        self.updated_at = now;
        if self.series.agent_label.is_none() {
            self.series.agent_label = Some(metrics.agent_label(&self.agent));
        }
        self.series.updates += 1;
        let ctx = SignalContext { now, agent: &self.agent, task: obs.task, stage: &self.stage, cfg };
        if let Some((duration, success)) = obs.outcome {
            self.series.durations.observe(duration);
            self.series.outcomes += 1;
            ctx.feed(&mut self.duration, duration, Watch::Up, out);
            ctx.feed(&mut self.success, if success { 1.0 } else { 0.0 }, Watch::Rate, out);
        }
        for &(name, value) in obs.metrics {
            let idx = match self.named.iter().position(|s| &*s.name == name) {
                Some(i) => i,
                None if self.named.len() < MAX_STREAMS_PER_ENTRY => {
                    // Most entries have one or two named metrics: no room for four.
                    self.named.reserve_exact(1);
                    self.named.push(Stream::new(Arc::from(name), BaselineState::default()));
                    self.named.len() - 1
                }
                None => continue,
            };
            ctx.feed(&mut self.named[idx], value, Watch::Both, out);
        }
    }
}

struct SignalContext<'a> {
    now: Timestamp,
    agent: &'a Arc<str>,
    task: &'a str,
    stage: &'a Arc<str>,
    cfg: &'a DetectorConfig,
}

impl SignalContext<'_> {
    fn feed(&self, stream: &mut Stream, value: f64, watch: Watch, out: &mut Vec<Signal>) {
        let transition = stream.detector.observe(value, watch, self.cfg);
        let state = &stream.detector.state;
        let Some(transition) = transition else { return };
        let (kind, direction) = match transition {
            Transition::Degraded(d) => (SignalKind::Degradation, d),
            Transition::Recovered => {
                (SignalKind::Recovery, if state.recent >= state.mean { Direction::Up } else { Direction::Down })
            }
        };
        let pct = state.deviation_pct();
        let severity = match kind {
            SignalKind::Recovery => Severity::Low,
            _ if &*stream.name == metric_names::SUCCESS || pct.abs() >= 100.0 => Severity::High,
            _ => Severity::Medium,
        };
        let message = match kind {
            SignalKind::Recovery => format!(
                "{} {} {} is back near its baseline ({} vs {})",
                self.agent,
                self.stage,
                stream.name,
                fmt_num(state.recent),
                fmt_num(state.mean)
            ),
            _ => format!(
                "{} {} {} is {:.0}% {} its baseline ({} vs {}, z={:.1})",
                self.agent,
                self.stage,
                stream.name,
                pct.abs(),
                if direction == Direction::Up { "above" } else { "below" },
                fmt_num(state.recent),
                fmt_num(state.mean),
                state.z_score()
            ),
        };
        out.push(Signal {
            kind,
            severity,
            at: self.now,
            agent: self.agent.clone(),
            task: Some(Arc::from(self.task)),
            stage: Some(self.stage.clone()),
            message,
            evidence: Evidence::BaselineShift {
                metric: stream.name.to_string(),
                direction,
                baseline_mean: state.mean,
                baseline_std: state.std(),
                recent_mean: state.recent,
                deviation_pct: pct,
                z_score: state.z_score(),
                samples: state.count,
            },
        });
    }
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.3}") }
}

/// Checks everything but the agent and stage, which `record` checks only for a new entry.
fn validate(obs: &Observation<'_>) -> Result<()> {
    validate_id("task", obs.task)?;
    if let Some((duration, _)) = obs.outcome {
        validate_duration(duration)?;
    }
    if obs.metrics.len() > MAX_METRICS_PER_EVENT {
        return Err(Error::invalid(
            "metrics",
            format!("at most {MAX_METRICS_PER_EVENT} metrics per event, got {}", obs.metrics.len()),
        ));
    }
    for (i, &(name, value)) in obs.metrics.iter().enumerate() {
        validate_metric_name(name)?;
        if matches!(name, metric_names::DURATION | metric_names::SUCCESS) {
            return Err(Error::invalid("metric name", format!("{name:?} is reserved for the stage outcome")));
        }
        validate_value("metric value", value)?;
        if obs.metrics[..i].iter().any(|&(n, _)| n == name) {
            return Err(Error::invalid("metric name", format!("{name:?} appears twice in one event")));
        }
    }
    Ok(())
}

fn reject_reason(e: &Error) -> &'static str {
    match e {
        Error::InvalidInput { field, .. } => match *field {
            "agent" => "invalid_agent",
            "task" => "invalid_task",
            "stage" => "invalid_stage",
            "duration" => "invalid_duration",
            "metric value" => "non_finite_value",
            _ => "invalid_metric",
        },
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(buffer_capacity: usize) -> Monitor {
        let detector = DetectorConfig { warmup: 20, alpha: 0.01, z: 4.0, min_pct: 20.0, sustain: 3 };
        let metrics = Metrics::new(10);
        let context = ContextOrgan::new(
            crate::context::StalenessConfig::from_config(&crate::AceConfig::default()),
            metrics.clone(),
            Arc::new(crate::ManualClock::default()),
        );
        let trajectory = Arc::new(TrajectoryOrgan::new(crate::trajectory::TrajectoryConfig::from_config(
            &crate::AceConfig::default(),
        )));
        Monitor::new(detector, buffer_capacity, 1000, metrics, context, trajectory)
    }

    fn record(m: &Monitor, task: &str) -> Result<()> {
        let obs = Observation { agent: "a", task, stage: "planning", outcome: Some((1.0, true)), metrics: &[] };
        m.record(Timestamp::from_micros(1), &obs).map(|_| ())
    }

    fn drained_tasks(m: &Monitor, state: &mut DrainState) -> Vec<String> {
        let mut out = Vec::new();
        m.drain(&mut out, state);
        out.iter()
            .map(|r| match r {
                Record::Metric(r) => r.task.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn compact_records_come_back_with_their_tasks_across_drains() {
        let m = monitor(100_000);
        let mut state = DrainState::default();
        for t in ["t1", "t1", "t2", "t2", "t1"] {
            record(&m, t).unwrap();
        }
        assert_eq!(drained_tasks(&m, &mut state), ["t1", "t1", "t2", "t2", "t1"]);
        // "Same task" resolves against the previous drain.
        record(&m, "t1").unwrap();
        assert_eq!(drained_tasks(&m, &mut state), ["t1"]);
    }

    #[test]
    fn a_dropped_task_change_is_carried_by_the_next_record() {
        // Two slots in all: one per shard.
        let m = monitor(2);
        let mut state = DrainState::default();
        record(&m, "t1").unwrap();
        record(&m, "t2").unwrap(); // the shard is full: dropped, with the change of task
        assert_eq!(m.counts().dropped, 1);
        assert_eq!(drained_tasks(&m, &mut state), ["t1"]);
        record(&m, "t2").unwrap();
        record(&m, "t2").unwrap(); // dropped again
        assert_eq!(drained_tasks(&m, &mut state), ["t2"]);
        record(&m, "t2").unwrap();
        assert_eq!(drained_tasks(&m, &mut state), ["t2"]);
    }
}
