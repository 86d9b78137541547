//! The per-call path: why a record costs one lock.
//!
//! A record touches four organs: the monitor's streams of its (agent, stage), the agent's
//! context, the task's trajectory, and the buffer of records for the store. Kept apart, each
//! would take its own lock and its own hash lookups on every call. Here they are fused: state is
//! kept per (agent, stage) in [`SHARDS`](crate::shard::SHARDS) shards, each behind its own lock,
//! so agents recording from different threads rarely meet, and one [`Entry`] holds the
//! monitor's [`Streams`] beside a handle on the agent's context, the track of its current task
//! and the loop counter. One record call takes one shard lock once: it finds the entry, feeds
//! its streams, counts the entry's Prometheus series (plain fields, read at scrape time by
//! `export.rs`) and pushes one compact record into the shard's buffer (`buffer.rs`). It never
//! waits for I/O: the writer thread (`persist`) drains the buffers and completes the records.
//!
//! The organs stay ignorant of each other: this module, above them, is the only place that
//! knows a record feeds all four.
//!
//! Memory: entries sit in fixed chunks behind a table of 4-byte indexes (`table.rs`); agent,
//! stage and task names are shared, one copy each across organs (the agent's from its context,
//! the stage's from the shard, the task's from its track).

mod baselines;
mod buffer;
mod export;
mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hashbrown::DefaultHashBuilder;

pub(crate) use buffer::DrainState;
use buffer::{Pending, Room};
pub(crate) use export::EntrySeriesCollector;
use table::{Entry, Shard};

use crate::clock::Timestamp;
use crate::context::ContextOrgan;
use crate::error::{Error, Result};
use crate::event::{
    MAX_METRICS_PER_EVENT, metric_names, same_name, validate_duration, validate_id, validate_metric_name,
    validate_stage, validate_value,
};
use crate::monitor::{DetectorConfig, NO_STREAM, Sample, Streams};
use crate::persist::Wake;
use crate::shard::{SHARDS, Sharded, hash_pair};
use crate::signal::Signal;
use crate::telemetry::CoreSeries;
use crate::tool::{validate_digest, validate_tool};
use crate::trajectory::{self, TrajectoryOrgan};

// A buffered record counts its named metrics in a byte (see `Pending`).
const _: () = assert!(MAX_METRICS_PER_EVENT <= u8::MAX as usize);

/// One record in this many has its computation time measured.
const TIMING_SAMPLE: u32 = 64;

/// What a record call reports: a finished stage, or a single metric.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation<'a> {
    pub agent: &'a str,
    pub task: &'a str,
    pub stage: &'a str,
    pub outcome: Option<(f64, bool)>,
    pub metrics: &'a [(&'a str, f64)],
    /// The tool called, and its arguments digest when known (a stage outcome only).
    pub tool: Option<(&'a str, Option<&'a str>)>,
}

/// The shards, shared with the metrics collector that reads them at scrape time.
pub(crate) type Shards = Sharded<Shard>;

/// Names every entry holds, one copy for all.
struct SharedNames {
    /// The task of an entry that has none yet.
    none: Arc<str>,
    duration: Arc<str>,
    success: Arc<str>,
}

/// The entry table with its record buffer, its closed flag and its drain.
pub(crate) struct Hot {
    shards: Arc<Shards>,
    hasher: DefaultHashBuilder,
    detector: DetectorConfig,
    /// The slots for records in memory: the pool the shards borrow from (see `buffer.rs`).
    room: Room,
    /// Records a shard holds when it asks the writer to run soon (its share of a batch).
    batch_size: usize,
    series: CoreSeries,
    context: Arc<ContextOrgan>,
    trajectory: Arc<TrajectoryOrgan>,
    /// Whether records are buffered for the store at all (see `AceBuilder::persist`).
    persist: bool,
    /// Whether the entries' series and the timings are kept (not in a replay).
    keep_series: bool,
    /// A record that finds its buffer full is handed back ([`Wake::Full`]) for an overflow
    /// (the durable journal's, or the spill directory's), not dropped.
    overflow: bool,
    /// Records handed back for an overflow that could not take them (for the drop warning's
    /// count; `stats().dropped` sums `ace_records_dropped_total`).
    overflow_dropped: AtomicU64,
    names: SharedNames,
    /// Set by `Ace::close`; checked under the shard lock so nothing enters a buffer after the
    /// final drain.
    pub(crate) closed: AtomicBool,
}

/// Counts summed over the shards.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HotCounts {
    pub recorded: u64,
    pub dropped: u64,
    pub signals: u64,
    pub buffered: u64,
    pub entries: u64,
}

impl Hot {
    pub(crate) fn new(
        detector: DetectorConfig,
        buffer_capacity: usize,
        batch_size: usize,
        series: CoreSeries,
        context: Arc<ContextOrgan>,
        trajectory: Arc<TrajectoryOrgan>,
    ) -> Self {
        let room = Room::new(buffer_capacity);
        Hot {
            shards: Arc::new(Sharded::default()),
            hasher: DefaultHashBuilder::default(),
            detector,
            batch_size: batch_size.div_ceil(SHARDS).min(buffer_capacity / SHARDS).max(1),
            room,
            series,
            context,
            trajectory,
            persist: true,
            keep_series: true,
            overflow: false,
            overflow_dropped: AtomicU64::new(0),
            names: SharedNames {
                none: Arc::from(""),
                duration: Arc::from(metric_names::DURATION),
                success: Arc::from(metric_names::SUCCESS),
            },
            closed: AtomicBool::new(false),
        }
    }

    /// The collector of the entries' series, to register.
    pub(crate) fn series(&self) -> EntrySeriesCollector {
        EntrySeriesCollector::new(&self.shards)
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
            streams: Streams::new(self.names.duration.clone(), self.names.success.clone()),
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

    /// Whether records are buffered for the store (see `AceBuilder::persist`).
    pub(crate) fn persists(&self) -> bool {
        self.persist
    }

    /// Keeps the entries' series and timings or not (set before the engine is shared).
    pub(crate) fn set_series(&mut self, keep: bool) {
        self.keep_series = keep;
    }

    /// Hands records that find their buffer full back to the caller instead of dropping them
    /// (durable mode, or a spill directory; set before the engine is shared).
    pub(crate) fn set_overflow(&mut self, overflow: bool) {
        self.overflow = overflow;
    }

    /// A record handed back for an overflow that could not take it: dropped after all. Returns
    /// how many have been.
    pub(crate) fn overflow_dropped(&self) -> u64 {
        self.overflow_dropped.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The buffer key of a stage record of `agent` and `stage` (its shard).
    pub(crate) fn key(&self, agent: &str, stage: &str) -> u64 {
        self.hasher_hash(agent, stage)
    }

    #[inline]
    fn hasher_hash(&self, agent: &str, stage: &str) -> u64 {
        hash_pair(&self.hasher, agent, stage)
    }

    /// Validates, updates baselines, buffers the record. Returns the signals and whether the
    /// writer should wake. Inlined into its one caller (`Ace::observe`): left to the compiler,
    /// it was or was not as the crate's other code changed, 40-50 instructions a call apart.
    #[inline]
    pub(crate) fn record(&self, now: Timestamp, obs: &Observation<'_>) -> Result<(Vec<Signal>, Wake)> {
        validate(obs)?;
        let hash = self.hasher_hash(obs.agent, obs.stage);
        let mut guard = self.shards.of(hash).lock();
        let shard: &mut Shard = &mut guard;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        shard.ops = shard.ops.wrapping_add(1);
        let started = (self.keep_series && shard.ops.is_multiple_of(TIMING_SAMPLE)).then(Instant::now);

        // Each metric's named stream in the entry, found once for the checks, the baselines and
        // the buffer (at most `MAX_METRICS_PER_EVENT`, checked by `validate`).
        let mut slots = [NO_STREAM; MAX_METRICS_PER_EVENT];
        let slots = slots.get_mut(..obs.metrics.len()).unwrap_or_default();
        let entry = match shard.entries.find_mut(hash, obs.agent, obs.stage) {
            Some(e) => {
                if !obs.metrics.is_empty() {
                    check_metrics(obs, Some(&e.streams), slots)?;
                }
                e
            }
            None => {
                if !obs.metrics.is_empty() {
                    check_metrics(obs, None, slots)?;
                }
                // An existing entry's agent and stage were checked when it was made, so only a
                // new pair pays for their validation (the task first, as `validate` would).
                validate_id("task", obs.task)
                    .and_then(|()| validate_id("agent", obs.agent))
                    .and_then(|()| validate_stage(obs.stage))?;
                // The agent's name comes from its context state, one copy for all its stages
                // (its label too, unless capped); the stage's from the shard's other entries.
                let context = self.context.agent(obs.agent, now);
                let stage = shard.stage_name(obs.stage);
                let mut entry = self.new_entry(hash, shard.entries.len() as u32, context.name().clone(), stage);
                // The label names the entry's series, which a scoring-only engine does not keep.
                if self.keep_series {
                    entry.series.agent_label = Some(self.series.labels.label(context.name()));
                }
                entry.context = Some(context);
                shard.entries.insert(entry)
            }
        };
        if !same_name(&entry.last_task, obs.task) {
            // `last_task` holds a checked task (or none, which is no valid task), so only a
            // change of task pays for its validation; nothing has changed yet.
            validate_id("task", obs.task)?;
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
        self.observe(entry, now, obs, slots, &mut signals);
        if let Some((_, success)) = obs.outcome {
            let context = entry.context.get_or_insert_with(|| self.context.agent(obs.agent, now));
            // Pushed only when there is one: `extend` copied the whole `Option<Signal>` first.
            if let Some(signal) = context.observe(now, false, obs.task, obs.stage, &self.context.cfg) {
                signals.push(signal);
            }
            self.follow(now, entry, success, obs.tool, &mut signals);
        }
        let wake = if !self.persist {
            Wake::No
        } else if let Some(wake) = self.admit(shard.pending.len() + shard.others.len(), &mut shard.room) {
            let task = (!entry.task_sent).then(|| entry.last_task.clone());
            entry.task_sent = true;
            if !obs.metrics.is_empty() {
                let streams = &entry.streams;
                let named = obs.metrics.iter().zip(&*slots).map(|(&(name, v), &slot)| (streams.name_at(slot, name), v));
                shard.metrics.extend(named);
            }
            shard.pending.push(Pending {
                ts: now,
                key: entry.key,
                task,
                duration_s: obs.outcome.map(|(d, _)| d),
                success: obs.outcome.map(|(_, s)| s),
                // At most `MAX_METRICS_PER_EVENT` (64), checked by `validate`.
                metrics: obs.metrics.len() as u8,
            });
            wake
        } else {
            self.full(shard)
        };
        shard.recorded += 1;
        shard.signals += signals.len() as u64;
        if let Some(started) = started {
            self.series.time_operation("record", started.elapsed().as_secs_f64());
        }
        Ok((signals, wake))
    }

    /// Feeds the entry's streams and counts its series.
    #[inline]
    fn observe(
        &self,
        entry: &mut Entry,
        now: Timestamp,
        obs: &Observation<'_>,
        slots: &mut [u8],
        signals: &mut Vec<Signal>,
    ) {
        entry.dirty = true;
        entry.updated_at = now;
        if self.keep_series {
            if entry.series.agent_label.is_none() {
                entry.series.agent_label = Some(self.series.labels.label(&entry.agent));
            }
            entry.series.updates += 1;
            if let Some((duration, _)) = obs.outcome {
                entry.series.durations.observe(duration);
                entry.series.outcomes += 1;
            }
        }
        let sample = Sample { task: obs.task, outcome: obs.outcome, metrics: obs.metrics };
        entry.streams.observe_slots(now, &entry.agent, &entry.stage, &sample, slots, &self.detector, signals);
    }

    /// Counts a stage outcome in its task's trajectory: loops of this stage, runs of failures,
    /// the task's length.
    fn follow(
        &self,
        now: Timestamp,
        entry: &mut Entry,
        success: bool,
        tool: Option<(&str, Option<&str>)>,
        signals: &mut Vec<Signal>,
    ) {
        let cfg = &self.trajectory.cfg;
        let track = match &entry.track {
            Some(t) if !t.ended() => t,
            _ => entry.track.insert(self.trajectory.track(&entry.agent, &entry.last_task, now)),
        };
        track.step(now, success, &entry.stage, cfg, signals);
        if let Some((tool, digest)) = tool {
            track.tool(now, &entry.stage, tool, digest, success, cfg, signals);
        }
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

    pub(crate) fn counts(&self) -> HotCounts {
        let mut c = HotCounts { dropped: self.overflow_dropped.load(Ordering::Relaxed), ..HotCounts::default() };
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            c.recorded += shard.recorded;
            c.dropped += shard.dropped;
            c.signals += shard.signals;
            c.buffered += shard.held() as u64;
            c.entries += shard.entries.len() as u64;
        }
        c
    }
}

/// Checks everything but the agent, stage and task, which `record` checks only for a new entry
/// or a change of task, and the metrics, which [`check_metrics`] checks once their entry is
/// found. The task is checked first all the same when something else is invalid, so an event
/// with several faults reports the task's as it always did.
#[inline]
fn validate(obs: &Observation<'_>) -> Result<()> {
    validate_rest(obs).or_else(|e| validate_id("task", obs.task).and(Err(e)))
}

fn validate_rest(obs: &Observation<'_>) -> Result<()> {
    if let Some((tool, digest)) = obs.tool {
        validate_tool(tool)?;
        if let Some(d) = digest {
            validate_digest(d)?;
        }
    }
    if let Some((duration, _)) = obs.outcome {
        validate_duration(duration)?;
    }
    if obs.metrics.len() > MAX_METRICS_PER_EVENT {
        return Err(Error::invalid(
            "metrics",
            format!("at most {MAX_METRICS_PER_EVENT} metrics per event, got {}", obs.metrics.len()),
        ));
    }
    Ok(())
}

/// Checks the metrics (names, values, no name twice), writing each one's named stream in
/// `streams` (its entry's, where it has one) into `slots`. A name with a stream was checked when
/// the stream was made, so only a new name pays for its check. The task first, as [`validate`].
fn check_metrics(obs: &Observation<'_>, streams: Option<&Streams>, slots: &mut [u8]) -> Result<()> {
    check_each(obs.metrics, streams, slots).or_else(|e| validate_id("task", obs.task).and(Err(e)))
}

fn check_each(metrics: &[(&str, f64)], streams: Option<&Streams>, slots: &mut [u8]) -> Result<()> {
    for (i, &(name, value)) in metrics.iter().enumerate() {
        let (before, rest) = slots.split_at_mut(i.min(slots.len()));
        let Some(slot) = rest.first_mut() else { break };
        *slot = streams.map_or(NO_STREAM, |s| s.slot_near(name, i));
        if *slot == NO_STREAM {
            validate_metric_name(name)?;
            if matches!(name, metric_names::DURATION | metric_names::SUCCESS) {
                return Err(Error::invalid("metric name", format!("{name:?} is reserved for the stage outcome")));
            }
        }
        validate_value("metric value", value)?;
        // A name with a stream is told by its slot (a plain loop: `contains` calls `memchr`,
        // which costs more on a few bytes); one without, by its text.
        let twice = if *slot == NO_STREAM {
            metrics[..i].iter().any(|&(n, _)| n == name)
        } else {
            before.iter().any(|s| s == slot)
        };
        if twice {
            return Err(Error::invalid("metric name", format!("{name:?} appears twice in one event")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::context::StalenessConfig;
    use crate::record::Record;
    use crate::telemetry::AgentLabels;
    use crate::trajectory::TrajectoryConfig;

    fn monitor(buffer_capacity: usize) -> Hot {
        let detector = DetectorConfig { warmup: 20, alpha: 0.01, z: 4.0, min_pct: 20.0, sustain: 3 };
        let series = CoreSeries::new(10);
        let context =
            ContextOrgan::new(StalenessConfig::default(), AgentLabels::new(10), Arc::new(ManualClock::default()));
        let trajectory = Arc::new(TrajectoryOrgan::new(TrajectoryConfig::default()));
        Hot::new(detector, buffer_capacity, 1000, series, context, trajectory)
    }

    fn record(m: &Hot, task: &str) -> Result<()> {
        let obs =
            Observation { agent: "a", task, stage: "planning", outcome: Some((1.0, true)), metrics: &[], tool: None };
        m.record(Timestamp::from_micros(1), &obs).map(|_| ())
    }

    /// Drains, as the writer does, and stores what it drained (its room is free again).
    fn drained_tasks(m: &Hot, state: &mut DrainState) -> Vec<String> {
        let mut out = Vec::new();
        m.drain(&mut out, state);
        m.settle(0, state);
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
        // One slot in all.
        let m = monitor(1);
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

    /// Metrics whose names the entry knows skip the name's checks, not the others: a name twice
    /// (known or new), a bad value, a reserved or malformed new name are refused whole, and
    /// nothing moves; a known name and a new one are buffered under their streams' names.
    #[test]
    fn metrics_of_a_known_entry_are_checked_whole() {
        let m = monitor(100_000);
        let at = Timestamp::from_micros(1);
        let obs = |metrics| Observation {
            agent: "a",
            task: "t",
            stage: "s",
            outcome: Some((1.0, true)),
            metrics,
            tool: None,
        };
        m.record(at, &obs(&[("x", 1.0), ("y", 2.0)])).unwrap();
        let bad: [&[(&str, f64)]; 6] = [
            &[("x", 1.0), ("x", 2.0)],
            &[("z", 1.0), ("x", 1.0), ("z", 2.0)],
            &[("y", 1.0), ("x", f64::NAN)],
            &[("x", 1.0), ("success", 1.0)],
            &[("x", 1.0), ("bad name", 1.0)],
            &[("y", 1.0), ("x", 1.0), ("y", 1.0)],
        ];
        for metrics in bad {
            let e = m.record(at, &obs(metrics)).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{metrics:?}");
        }
        let hash = m.key("a", "s");
        let counts = |names: &[&str]| {
            let mut shard = m.shards.of(hash).lock();
            let entry = shard.entries.find_mut(hash, "a", "s").unwrap();
            let named: Vec<String> = entry.streams.named.iter().map(|s| s.name.to_string()).collect();
            assert_eq!(named, names);
            names.iter().map(|n| entry.streams.state(n).unwrap().count).collect::<Vec<_>>()
        };
        assert_eq!(counts(&["x", "y"]), [1, 1]);
        m.record(at, &obs(&[("z", 3.0), ("x", 2.0)])).unwrap();
        assert_eq!(counts(&["x", "y", "z"]), [2, 1, 1]);
        let mut out = Vec::new();
        m.drain(&mut out, &mut DrainState::default());
        let Some(Record::Metric(last)) = out.last() else { panic!("{out:?}") };
        let mut shard = m.shards.of(hash).lock();
        let entry = shard.entries.find_mut(hash, "a", "s").unwrap();
        assert_eq!(last.metrics.len(), 2);
        assert!(Arc::ptr_eq(&last.metrics[0].0, &entry.streams.named[2].name), "z: the stream's copy");
        assert!(Arc::ptr_eq(&last.metrics[1].0, &entry.streams.named[0].name), "x: the stream's copy");
        assert_eq!(out.len(), 2, "the refused events left nothing in the buffer");
    }

    #[test]
    fn each_buffered_record_gets_back_its_own_metrics_across_drains() {
        let m = monitor(100_000);
        let mut state = DrainState::default();
        let sets: [&[(&str, f64)]; 4] = [&[], &[("a", 1.0), ("b", 2.0)], &[("b", 3.0)], &[]];
        let mut out = Vec::new();
        for round in 0..2 {
            for (i, &metrics) in sets.iter().enumerate() {
                let agent = if i % 2 == 0 { "x" } else { "y" };
                let obs = Observation { agent, task: "t", stage: "s", outcome: Some((1.0, true)), metrics, tool: None };
                m.record(Timestamp::from_micros(1), &obs).unwrap();
            }
            out.clear();
            m.drain(&mut out, &mut state);
            m.settle(0, &mut state);
            let mut got: Vec<(String, Vec<(String, f64)>)> = out
                .iter()
                .map(|r| match r {
                    Record::Metric(r) => {
                        (r.agent.to_string(), r.metrics.iter().map(|(n, v)| (n.to_string(), *v)).collect())
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            // Shards drain in their order, each in the order of its records.
            got.sort_by(|a, b| a.0.cmp(&b.0));
            let own = |i: usize| sets[i].iter().map(|&(n, v)| (n.to_owned(), v)).collect::<Vec<_>>();
            let want = vec![
                ("x".to_owned(), own(0)),
                ("x".to_owned(), own(2)),
                ("y".to_owned(), own(1)),
                ("y".to_owned(), own(3)),
            ];
            assert_eq!(got, want, "round {round}");
        }
    }

    fn field_of(r: Result<()>) -> &'static str {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_task_is_checked_on_a_change_of_task_and_first_among_faults() {
        let m = monitor(100_000);
        let at = Timestamp::from_micros(1);
        let obs = |agent, task, duration: f64| Observation {
            agent,
            task,
            stage: "planning",
            outcome: Some((duration, true)),
            metrics: &[],
            tool: None,
        };
        m.record(at, &obs("a", "t1", 1.0)).unwrap();
        // A known entry, a bad task: refused before anything changes.
        assert_eq!(field_of(m.record(at, &obs("a", "", 1.0)).map(|_| ())), "task");
        assert_eq!(field_of(m.record(at, &obs("a", "t\n2", 1.0)).map(|_| ())), "task");
        // Several faults: the task's is reported, as before the check moved.
        assert_eq!(field_of(m.record(at, &obs("a", "", f64::NAN)).map(|_| ())), "task");
        assert_eq!(field_of(m.record(at, &obs("a", "t1", f64::NAN)).map(|_| ())), "duration");
        // A new entry with a bad task (and a bad agent) is not made.
        assert_eq!(field_of(m.record(at, &obs("b", "", 1.0)).map(|_| ())), "task");
        assert_eq!(field_of(m.record(at, &obs("", "", 1.0)).map(|_| ())), "task");
        let c = m.counts();
        assert_eq!((c.recorded, c.entries), (1, 1), "{c:?}");
        // The entry still follows its task.
        m.record(at, &obs("a", "t1", 1.0)).unwrap();
        let mut state = DrainState::default();
        assert_eq!(drained_tasks(&m, &mut state), ["t1", "t1"]);
    }

    fn record_as(m: &Hot, agent: &str) -> Result<()> {
        let obs =
            Observation { agent, task: "t", stage: "planning", outcome: Some((1.0, true)), metrics: &[], tool: None };
        m.record(Timestamp::from_micros(1), &obs).map(|_| ())
    }

    #[test]
    fn a_hot_key_uses_the_whole_capacity_and_the_writers_hands_count_against_it() {
        let m = monitor(1000);
        let mut state = DrainState::default();
        for _ in 0..1001 {
            record_as(&m, "hot").unwrap();
        }
        let c = m.counts();
        assert_eq!((c.buffered, c.dropped), (1000, 1), "{c:?}");
        let mut out = Vec::new();
        m.drain(&mut out, &mut state);
        assert_eq!(out.len(), 1000);
        // All in the writer's hands: no room until it settles.
        record_as(&m, "hot").unwrap();
        assert_eq!((m.counts().buffered, m.counts().dropped), (0, 2));
        m.settle(400, &mut state);
        for _ in 0..1000 {
            record_as(&m, "hot").unwrap();
        }
        assert_eq!((m.counts().buffered, m.counts().dropped), (600, 402));
        // Records taken back into hand take room again, as far as there is any.
        m.settle(0, &mut state);
        m.settle(300, &mut state);
        for _ in 0..1000 {
            record_as(&m, "hot").unwrap();
        }
        assert_eq!(m.counts().buffered, 700);
    }

    #[test]
    fn idle_keys_do_not_strand_the_room_a_hot_key_needs() {
        // Each cold key's shard borrows a chunk and uses one slot of it; the hot key takes the
        // unused rest back once the pool is empty, so exactly the capacity is held.
        let m = monitor(100_000);
        for i in 0..64 {
            record_as(&m, &format!("cold-{i}")).unwrap();
        }
        for _ in 0..100_000 - 64 {
            record_as(&m, "hot").unwrap();
        }
        let c = m.counts();
        assert_eq!((c.buffered, c.dropped), (100_000, 0), "{c:?}");
        record_as(&m, "hot").unwrap();
        assert_eq!(m.counts().dropped, 1);
    }

    #[test]
    fn the_buffers_and_the_writers_hands_never_hold_more_than_the_capacity() {
        // Recorders on a hot key and on many cold keys; a writer draining, and settling a random
        // part of what it holds, pass after pass: what the shards hold plus what the writer was
        // given room for never exceeds the capacity, and the room all comes back.
        let m = Arc::new(monitor(160));
        let stop = Arc::new(AtomicBool::new(false));
        let recorders: Vec<_> = (0..3)
            .map(|t| {
                let (m, stop) = (m.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let agent =
                            if t == 0 || i.is_multiple_of(3) { "hot".to_owned() } else { format!("cold-{}", i % 97) };
                        record_as(&m, &agent).unwrap();
                    }
                })
            })
            .collect();
        let mut state = DrainState::default();
        let mut hand: Vec<Record> = Vec::new();
        let (mut passes, mut most) = (0u64, 0);
        let started = Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(300) || passes < 1000 {
            m.drain(&mut hand, &mut state);
            most = most.max(hand.len());
            assert!(hand.len() <= 160, "the writer holds {} records", hand.len());
            let buffered = m.counts().buffered as usize;
            assert!(buffered + state.in_hand <= 160, "{buffered} buffered and {} in hand", state.in_hand);
            hand.truncate(hand.len() * (passes % 3) as usize / 2);
            m.settle(hand.len(), &mut state);
            passes += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in recorders {
            r.join().unwrap();
        }
        hand.clear();
        m.drain(&mut hand, &mut state);
        m.settle(0, &mut state);
        assert!(most > 16, "the race was exercised: the writer held at most {most}");
        // Every slot is free again: one key can fill the whole capacity.
        for _ in 0..160 {
            record_as(&m, "again").unwrap();
        }
        assert_eq!(m.counts().buffered, 160);
    }
}
