//! Trajectories: what the sequence of a task's stages says, beyond any one stage.
//!
//! Most failed agent runs raise no error at all (see `docs/replay.md`): the agent goes round in
//! circles, or keeps going long after a task of its kind is usually done. Three signals watch for
//! that, per (agent, task):
//!
//! - *loop*: the same stage failed `ACE_LOOP_THRESHOLD` (3) times in a row (counted by the
//!   monitor, per stage);
//! - *failure_run*: `ACE_FAILURE_RUN` (4) stages failed in a row, whichever they were;
//! - *long_task*: the task has recorded more stages than the agent's tasks usually take: more
//!   than the `ACE_LONG_TASK_QUANTILE` (0.95) quantile of the lengths of its last 256 finished
//!   tasks and more than 1.5 times their median, once it has finished
//!   `ACE_LONG_TASK_MIN_TASKS` (20); or more than `ACE_TASK_MAX_STEPS` when that is set.
//!
//! Tool calls (stages with a tool, see [`crate::tool`]) add three more, in `tools.rs`: the same
//! call repeated (*tool_repeat*), two calls in turn (*tool_alternation*) and a tool failing
//! again after a retry (*tool_retry_failure*).
//!
//! Each fires once per task (a run fires again after a success breaks it). A task's length is
//! learned when `Ace::end_task` reports it finished; tasks that never
//! end are forgotten after an hour without a stage.
//!
//! The recording path touches this organ once per (agent, stage) and task: the entry table
//! keeps the task's `Track`, whose counters are atomics.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use parking_lot::Mutex;

use crate::clock::Timestamp;
use crate::event::Severity;
use crate::shard::{SHARDS, Sharded, hash_pair};
use crate::signal::{Evidence, Signal, SignalKind};

mod tools;

use tools::{ToolFinding, ToolWindow};

/// Finished task lengths remembered per agent.
const HISTORY: usize = 256;
/// A task without a stage for this long is forgotten (it never ended, or ended unreported).
const IDLE: Duration = Duration::from_secs(3600);
/// Task creations in a shard between sweeps of idle tasks.
const SWEEP_EVERY: u32 = 1024;
/// Running tasks tracked at most (in all shards). Past it the least recently active tasks are
/// forgotten first: a fleet starting tasks faster than they go idle (10,000 agents at a new task
/// every few seconds start millions an hour) stays within a few MB.
const MAX_TASKS: usize = 57_344;
const SHARD_MAX_TASKS: usize = MAX_TASKS / SHARDS;
/// A learned limit is at least this multiple of the median length.
const MIN_RATIO: f64 = 1.5;

const FLAG_LONG: u8 = 1;

/// The trajectory settings (`ACE_LOOP_THRESHOLD`, `ACE_FAILURE_RUN`, `ACE_LONG_TASK_*`,
/// `ACE_TASK_MAX_STEPS`, `ACE_TOOL_*`; the defaults are the configuration's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TrajectoryConfig {
    pub loop_threshold: u32,
    pub failure_run: u32,
    pub quantile: f64,
    pub min_tasks: u32,
    pub max_steps: u32,
    pub tool_repeat: u32,
    pub tool_alternation: u32,
    pub tool_retry_failures: u32,
}

impl Default for TrajectoryConfig {
    fn default() -> Self {
        TrajectoryConfig {
            loop_threshold: 3,
            failure_run: 4,
            quantile: 0.95,
            min_tasks: 20,
            max_steps: 0,
            tool_repeat: 0,
            tool_alternation: 0,
            tool_retry_failures: 0,
        }
    }
}

/// One running task of one agent.
pub(crate) struct Track {
    hash: u64,
    agent: Arc<str>,
    task: Arc<str>,
    steps: AtomicU32,
    failures: AtomicU32,
    flags: AtomicU8,
    last: AtomicI64,
    ended: AtomicBool,
    /// The task's recent tool calls, made at its first.
    tools: Mutex<Option<Box<ToolWindow>>>,
    /// The length limit when the task started (0: none), the median and the tasks it came from.
    limit: u32,
    typical: u32,
    seen: u32,
}

impl Track {
    /// The task's name.
    pub(crate) fn task(&self) -> &Arc<str> {
        &self.task
    }

    /// Whether the task was reported finished (a new task of the same name needs a new track).
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Counts one stage outcome; pushes a `failure_run` or `long_task` signal when one is due.
    pub(crate) fn step(
        &self,
        now: Timestamp,
        success: bool,
        stage: &Arc<str>,
        cfg: &TrajectoryConfig,
        out: &mut Vec<Signal>,
    ) {
        let steps = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        self.last.store(now.as_micros(), Ordering::Relaxed);
        if success {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
        } else {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if cfg.failure_run > 0 && failures == cfg.failure_run {
                out.push(self.signal(
                    now,
                    stage,
                    SignalKind::FailureRun,
                    Severity::High,
                    format!("{}: {failures} stages of task {} failed in a row", self.agent, self.task),
                    Evidence::Failures { failures, threshold: cfg.failure_run },
                ));
            }
        }
        if self.limit > 0 && steps > self.limit && self.flags.fetch_or(FLAG_LONG, Ordering::Relaxed) & FLAG_LONG == 0 {
            let message = if self.typical > 0 {
                format!(
                    "{}: task {} has run {steps} stages, more than the {} the agent's tasks take at most as a rule (median {})",
                    self.agent, self.task, self.limit, self.typical
                )
            } else {
                format!(
                    "{}: task {} has run {steps} stages, more than the limit of {}",
                    self.agent, self.task, self.limit
                )
            };
            out.push(self.signal(
                now,
                stage,
                SignalKind::LongTask,
                Severity::Medium,
                message,
                Evidence::TaskLength { steps, limit: self.limit, typical_steps: self.typical, tasks_seen: self.seen },
            ));
        }
    }

    /// Counts one tool call of the task (after [`Track::step`] counted its stage); pushes a
    /// `tool_*` signal when one is due.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tool(
        &self,
        now: Timestamp,
        stage: &Arc<str>,
        tool: &str,
        digest: Option<&str>,
        success: bool,
        cfg: &TrajectoryConfig,
        out: &mut Vec<Signal>,
    ) {
        if cfg.tool_repeat == 0 && cfg.tool_alternation == 0 && cfg.tool_retry_failures == 0 {
            return;
        }
        let mut found = Vec::new();
        self.tools.lock().get_or_insert_with(Box::default).push(tool, digest, success, cfg, &mut found);
        for finding in found {
            let (kind, severity, count, threshold, other, message) = match finding {
                ToolFinding::Repeat { count, threshold } => (
                    SignalKind::ToolRepeat,
                    Severity::Medium,
                    count,
                    threshold,
                    None,
                    format!(
                        "{}: task {} called {tool} with the same arguments {count} times in its last {} tool calls",
                        self.agent,
                        self.task,
                        tools::WINDOW
                    ),
                ),
                ToolFinding::Alternation { count, threshold, other } => {
                    let message = format!(
                        "{}: task {} alternated between {tool} and {} for {count} tool calls",
                        self.agent, self.task, other.0
                    );
                    (SignalKind::ToolAlternation, Severity::Medium, count, threshold, Some(other), message)
                }
                ToolFinding::RetryFailure { count, threshold } => (
                    SignalKind::ToolRetryFailure,
                    Severity::High,
                    count,
                    threshold,
                    None,
                    format!(
                        "{}: tool {tool} failed {count} times in the last {} tool calls of task {}, retries did not help",
                        self.agent,
                        tools::WINDOW,
                        self.task
                    ),
                ),
            };
            let (other_tool, other_args_digest) = match other {
                Some((t, d)) => (Some(t), Some(d)),
                None => (None, None),
            };
            let evidence = Evidence::ToolCalls {
                tool: Arc::from(tool),
                args_digest: digest.map(Arc::from),
                other_tool,
                other_args_digest,
                count,
                threshold,
                window: tools::WINDOW as u32,
            };
            out.push(self.signal(now, stage, kind, severity, message, evidence));
        }
    }

    fn signal(
        &self,
        now: Timestamp,
        stage: &Arc<str>,
        kind: SignalKind,
        severity: Severity,
        message: String,
        evidence: Evidence,
    ) -> Signal {
        Signal {
            kind,
            severity,
            at: now,
            agent: self.agent.clone(),
            task: Some(self.task.clone()),
            stage: Some(stage.clone()),
            message,
            evidence,
        }
    }
}

/// A `loop` signal: the same stage failed `failures` times in a row in a task.
pub(crate) fn loop_signal(
    now: Timestamp,
    agent: &Arc<str>,
    task: &Arc<str>,
    stage: &Arc<str>,
    failures: u32,
    threshold: u32,
) -> Signal {
    Signal {
        kind: SignalKind::Loop,
        severity: Severity::Medium,
        at: now,
        agent: agent.clone(),
        task: Some(task.clone()),
        stage: Some(stage.clone()),
        message: format!("{agent}: stage {stage} of task {task} failed {failures} times in a row"),
        evidence: Evidence::Failures { failures, threshold },
    }
}

/// An agent's finished task lengths (in order, and sorted) and the limit learned from them.
#[derive(Default)]
struct History {
    lengths: VecDeque<u32>,
    sorted: Vec<u32>,
    limit: u32,
    typical: u32,
}

impl History {
    fn push(&mut self, steps: u32, cfg: &TrajectoryConfig) {
        if self.lengths.len() == HISTORY
            && let Some(old) = self.lengths.pop_front()
            && let Ok(i) = self.sorted.binary_search(&old)
        {
            self.sorted.remove(i);
        }
        self.lengths.push_back(steps);
        let at = self.sorted.partition_point(|&x| x <= steps);
        self.sorted.insert(at, steps);
        let n = self.sorted.len();
        if cfg.quantile <= 0.0 || n < cfg.min_tasks as usize {
            return;
        }
        let at = |q: f64| self.sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        self.typical = at(0.5);
        self.limit = at(cfg.quantile).max((f64::from(self.typical) * MIN_RATIO).ceil() as u32);
    }
}

#[derive(Default)]
struct Shard {
    tasks: HashTable<Arc<Track>>,
    created: u32,
}

/// The running tasks and the agents' task lengths.
pub(crate) struct TrajectoryOrgan {
    pub(crate) cfg: TrajectoryConfig,
    shards: Sharded<Shard>,
    agents: Mutex<HashMap<Arc<str>, History>>,
    hasher: DefaultHashBuilder,
}

impl TrajectoryOrgan {
    pub(crate) fn new(cfg: TrajectoryConfig) -> Self {
        TrajectoryOrgan {
            cfg,
            shards: Sharded::default(),
            agents: Mutex::new(HashMap::new()),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        self.shards.of(hash)
    }

    /// The track of `agent`'s `task`, made at its first stage.
    pub(crate) fn track(&self, agent: &Arc<str>, task: &str, now: Timestamp) -> Arc<Track> {
        let hash = hash_pair(&self.hasher, agent, task);
        let mut shard = self.shard(hash).lock();
        if let Some(t) = shard.tasks.find(hash, |t| t.agent == *agent && &*t.task == task) {
            return t.clone();
        }
        shard.created = shard.created.wrapping_add(1);
        if shard.created.is_multiple_of(SWEEP_EVERY) {
            let horizon = now.minus(IDLE).as_micros();
            shard.tasks.retain(|t| t.last.load(Ordering::Relaxed) >= horizon);
        }
        if shard.tasks.len() >= SHARD_MAX_TASKS {
            crate::shard::forget_least_recent(&mut shard.tasks, now, IDLE, SHARD_MAX_TASKS, |t| {
                Timestamp::from_micros(t.last.load(Ordering::Relaxed))
            });
        }
        let (learned, typical, seen) =
            self.agents.lock().get(agent).map_or((0, 0, 0), |h| (h.limit, h.typical, h.lengths.len() as u32));
        let limit = match (learned, self.cfg.max_steps) {
            (0, fixed) | (fixed, 0) => fixed,
            (a, b) => a.min(b),
        };
        let track = Arc::new(Track {
            hash,
            agent: agent.clone(),
            task: Arc::from(task),
            steps: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            flags: AtomicU8::new(0),
            last: AtomicI64::new(now.as_micros()),
            ended: AtomicBool::new(false),
            tools: Mutex::new(None),
            limit,
            typical: if limit == learned { typical } else { 0 },
            seen,
        });
        shard.tasks.insert_unique(hash, track.clone(), |t| t.hash);
        track
    }

    /// The task finished: its length joins the agent's history. Returns whether it was known.
    pub(crate) fn end_task(&self, agent: &str, task: &str) -> bool {
        let hash = hash_pair(&self.hasher, agent, task);
        let track = match self.shard(hash).lock().tasks.find_entry(hash, |t| &*t.agent == agent && &*t.task == task) {
            Ok(entry) => entry.remove().0,
            Err(_) => return false,
        };
        track.ended.store(true, Ordering::Relaxed);
        let steps = track.steps.load(Ordering::Relaxed);
        if steps > 0 {
            self.agents.lock().entry(track.agent.clone()).or_default().push(steps, &self.cfg);
        }
        true
    }

    /// Running tasks held.
    pub(crate) fn open_tasks(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().tasks.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TrajectoryConfig {
        TrajectoryConfig { failure_run: 3, min_tasks: 5, ..TrajectoryConfig::default() }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn the_limit_is_a_high_quantile_and_well_above_the_median() {
        let c = cfg();
        let mut h = History::default();
        for n in [10, 10, 10, 10] {
            h.push(n, &c);
        }
        assert_eq!(h.limit, 0, "not learned before min_tasks");
        h.push(10, &c);
        assert_eq!((h.limit, h.typical), (15, 10), "1.5 x the median when lengths barely vary");
        for n in 1..=100 {
            h.push(n, &c);
        }
        assert_eq!(h.typical, 48);
        assert_eq!(h.limit, 95);
        for n in 0..300 {
            h.push(1000 + n, &c);
        }
        assert_eq!(h.sorted.len(), HISTORY, "the oldest lengths are forgotten");
        assert_eq!(h.sorted[0], 1044);
        assert!(h.sorted.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn tasks_held_are_capped_and_the_least_recent_go_first() {
        let o = TrajectoryOrgan::new(cfg());
        let agent: Arc<str> = Arc::from("a");
        let first = o.track(&agent, "task-0", Timestamp::from_micros(0));
        let mut latest = first.clone();
        // 200,000 tasks started 1 ms apart, none ever ending: far past the cap within the hour.
        for i in 1..200_000i64 {
            latest = o.track(&agent, &format!("task-{i}"), Timestamp::from_micros(i * 1000));
        }
        let held = o.open_tasks();
        assert!((MAX_TASKS / 2..=MAX_TASKS).contains(&held), "{held}");
        let now = Timestamp::from_micros(200_000 * 1000);
        assert!(Arc::ptr_eq(&latest, &o.track(&agent, "task-199999", now)), "the newest task is kept");
        assert!(!Arc::ptr_eq(&first, &o.track(&agent, "task-0", now)), "the oldest was forgotten");
    }

    #[test]
    fn runs_and_length_fire_once_per_task() {
        let o = TrajectoryOrgan::new(cfg());
        let agent: Arc<str> = "a".into();
        let stage: Arc<str> = "execution".into();
        for k in 0..5 {
            let task = format!("warm{k}");
            let track = o.track(&agent, &task, t(k));
            for _ in 0..10 {
                track.step(t(k), true, &stage, &o.cfg, &mut Vec::new());
            }
            assert!(o.end_task("a", &task));
        }
        assert!(!o.end_task("a", "warm0"), "ended already");
        let track = o.track(&agent, "t", t(10));
        let mut signals = Vec::new();
        for i in 0..20 {
            track.step(t(10 + i), i % 5 != 4 && !(8..11).contains(&i), &stage, &o.cfg, &mut signals);
        }
        let kinds: Vec<SignalKind> = signals.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SignalKind::FailureRun, SignalKind::LongTask]);
        let Evidence::TaskLength { steps, limit, typical_steps, tasks_seen } = signals[1].evidence else { panic!() };
        assert_eq!((steps, limit, typical_steps, tasks_seen), (16, 15, 10, 5));
        assert!(Arc::ptr_eq(&track, &o.track(&agent, "t", t(40))), "one track per task");
        assert_eq!(o.open_tasks(), 1);
        assert!(o.end_task("a", "t") && track.ended());
    }

    #[test]
    fn a_fixed_cap_applies_from_the_first_task() {
        let o = TrajectoryOrgan::new(TrajectoryConfig { max_steps: 2, quantile: 0.0, ..cfg() });
        let agent: Arc<str> = "a".into();
        let stage: Arc<str> = "s".into();
        let track = o.track(&agent, "t", t(0));
        let mut signals = Vec::new();
        for _ in 0..4 {
            track.step(t(0), true, &stage, &o.cfg, &mut signals);
        }
        assert_eq!(signals.len(), 1);
        assert!(signals[0].message.contains("limit of 2"), "{}", signals[0].message);
    }
}
