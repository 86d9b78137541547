//! The error organ: groups error messages into patterns and notices when they accumulate.
//!
//! Each error is mined into a pattern ([`Miner`]), then counted in two sliding windows of
//! `ACE_ERROR_WINDOW` on the engine clock: one per (agent, task, pattern), one per
//! (agent, pattern) across tasks. A window keeps only the latest `4 × ACE_ERROR_THRESHOLD`
//! times (at most 64), so an error costs the same however many errors its task has. Signals:
//!
//! - *error_accumulation*: the pattern reached `ACE_ERROR_THRESHOLD` occurrences within the
//!   window in the task, or (spread over tasks) in the agent; once per window.
//! - *critical_error*: an error whose severity is critical; once per window per task and pattern.
//! - *error_escalation*: a repeat whose severity is above the earlier ones of the window, either
//!   because the caller said so or because repeats raise it (one level at `2 × threshold`
//!   occurrences, two at `4 ×`).
//! - *error_cascade*: errors in `cascade_stages` (3) different stages of a task within the window;
//!   once per window per task.
//! - *task_error*: the first error of a task at or above `ACE_TASK_ERROR_SEVERITY` (medium), so
//!   a task that meets a real error is looked at before the error repeats; low-severity errors
//!   (`not found`, `retrying`, warnings) are left to accumulate.
//!
//! Without a severity from the caller it is inferred from the kind and the pattern's template
//! ([`severity`]), once per pattern.
//! A task's windows are released by `Ace::end_task`, or once they have
//! been idle for a window.

pub mod eval;
pub mod mask;
pub mod miner;
pub mod severity;
mod windows;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use miner::{Mined, Miner, MinerConfig, PatternId, PatternRecord};
use windows::{AgentShard, AgentState, TaskShard, TaskState, bound, fired_within};

use crate::clock::Timestamp;
use crate::error::Result;
use crate::event::{Severity, validate_id, validate_stage};
use crate::shard::{SHARDS, Sharded, hash_pair};
use crate::signal::{ErrorScope, Evidence, Signal, SignalKind};
use crate::telemetry::{AgentLabels, AgentStageSeverity, Instrumented};

/// Times kept per window, at most.
const MAX_WINDOW_TIMES: usize = 64;
/// Patterns tracked per task or agent before idle ones are dropped.
const MAX_PATTERNS_PER_SCOPE: usize = 256;
/// Stages remembered per task for cascades.
const MAX_STAGES_PER_TASK: usize = 32;
/// Distinct stages with errors within the window that make a cascade.
pub const CASCADE_STAGES: usize = 3;
/// Operations on a shard between sweeps of idle tasks and agents.
const SWEEP_EVERY: u64 = 1024;
/// Tasks with an error window held at most (in all shards); past it the least recently failing
/// go first. 10,000 agents failing 1% of 10 stages a second open 1,000 task windows a second, and
/// a window lives `ACE_ERROR_WINDOW` (300 s) after its last error.
const MAX_TASKS: usize = 57_344;
const SHARD_MAX_TASKS: usize = MAX_TASKS / SHARDS;
/// The marker appended to a message cut to the miner's `max_message_bytes`.
pub const TRUNCATION_MARKER: &str = " …[truncated]";

/// An error to record.
#[derive(Clone, Copy, Debug)]
pub struct ErrorEvent<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The task.
    pub task: &'a str,
    /// The stage where it happened.
    pub stage: &'a str,
    /// The error's kind (an exception type, `TimeoutError`).
    pub kind: &'a str,
    /// The message.
    pub message: &'a str,
    /// The severity, or `None` to infer it from the kind and message.
    pub severity: Option<Severity>,
}

/// What recording an error found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The pattern the error was grouped into.
    pub pattern: PatternId,
    /// The pattern's template.
    pub template: Arc<str>,
    /// The severity: given or inferred, raised by repeats.
    pub severity: Severity,
    /// Occurrences of the pattern in this task within the window (counted up to 64).
    pub occurrences: u32,
    /// The message was cut (it is stored with a marker).
    pub truncated: bool,
    /// The signals it raised.
    pub signals: Vec<Signal>,
    /// The intervention they led to, if any.
    pub intervention: Option<Box<crate::decision::Intervention>>,
}

/// Counts summed over the organ.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ErrorCounts {
    pub recorded: u64,
    pub signals: u64,
    pub patterns: u64,
    pub tasks: u64,
}

pub(crate) struct ErrorOrgan {
    miner: Mutex<Miner>,
    tasks: Sharded<TaskShard>,
    agents: Sharded<AgentShard>,
    hasher: DefaultHashBuilder,
    threshold: usize,
    window: Duration,
    task_error: Option<Severity>,
    series: ErrorSeries,
}

/// The organ's series: `ace_errors_total{agent_id, stage, severity}` and
/// `ace_error_messages_truncated_total`.
#[derive(Clone, Debug)]
pub(crate) struct ErrorSeries {
    errors: Family<AgentStageSeverity, Counter>,
    truncated: Counter,
    labels: AgentLabels,
}

impl ErrorSeries {
    fn new(labels: AgentLabels) -> Self {
        ErrorSeries { errors: Family::default(), truncated: Counter::default(), labels }
    }

    /// The counter of (agent, stage, severity), label cap applied.
    fn counter(&self, agent: &Arc<str>, stage: &str, severity: Severity) -> Counter {
        let labels = AgentStageSeverity {
            agent_id: self.labels.label(agent),
            stage: stage.to_owned(),
            severity: severity.as_str(),
        };
        self.errors.get_or_create_owned(&labels)
    }
}

impl Instrumented for ErrorSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register("ace_errors", "Errors recorded, by agent, stage and severity", self.errors.clone());
        registry.register(
            "ace_error_messages_truncated",
            "Error messages cut to the miner's maximum length (stored with a marker)",
            self.truncated.clone(),
        );
    }
}

/// One error after validation, mining and counting: the report, and the parts of its record.
pub(crate) struct Counted {
    pub report: ErrorReport,
    /// A hash of (agent, task), to pick the buffer the record goes to.
    pub key: u64,
    pub agent: Arc<str>,
    pub task: Arc<str>,
    pub stage: Arc<str>,
    pub kind: Arc<str>,
}

impl ErrorOrgan {
    pub(crate) fn new(
        miner: MinerConfig,
        threshold: u32,
        window: Duration,
        task_error: Option<Severity>,
        labels: AgentLabels,
    ) -> Result<Self> {
        Ok(ErrorOrgan {
            miner: Mutex::new(Miner::new(miner)?),
            tasks: Sharded::default(),
            agents: Sharded::default(),
            hasher: DefaultHashBuilder::default(),
            threshold: (threshold as usize).max(1),
            window,
            task_error,
            series: ErrorSeries::new(labels),
        })
    }

    /// The organ's series, to register.
    pub(crate) fn series(&self) -> &ErrorSeries {
        &self.series
    }

    /// Restores stored patterns (at start).
    pub(crate) fn load(&self, patterns: &[PatternRecord]) -> usize {
        self.miner.lock().load(patterns)
    }

    /// Patterns changed since the last call.
    pub(crate) fn changed_patterns(&self) -> Vec<PatternRecord> {
        self.miner.lock().take_changed()
    }

    /// Every pattern held, most frequent first.
    pub(crate) fn patterns(&self) -> Vec<PatternRecord> {
        self.miner.lock().patterns()
    }

    pub(crate) fn counts(&self) -> ErrorCounts {
        let mut c = ErrorCounts { patterns: self.miner.lock().len() as u64, ..ErrorCounts::default() };
        for shard in self.tasks.iter() {
            let shard = shard.0.lock();
            c.recorded += shard.ops;
            c.signals += shard.signals;
            c.tasks += shard.tasks.len() as u64;
        }
        c
    }

    /// Validates the parts of an error that [`ErrorOrgan::record`] needs valid.
    pub(crate) fn validate(ev: &ErrorEvent<'_>) -> Result<()> {
        validate(ev)
    }

    /// Mines and counts one error, valid as [`ErrorOrgan::validate`] checks. `agent` is the
    /// agent's shared name (one copy for every organ), equal to `ev.agent`.
    pub(crate) fn record(&self, now: Timestamp, agent: &Arc<str>, ev: &ErrorEvent<'_>) -> Result<Counted> {
        debug_assert_eq!(&**agent, ev.agent);
        let mined = self.miner.lock().mine(ev.kind, ev.message);
        // Inferred once per pattern, from its kind and template (a property of the pattern).
        let base = ev.severity.unwrap_or(mined.severity);
        let mut signals = Vec::new();
        let cap = (self.threshold * 4).min(MAX_WINDOW_TIMES);

        // The task's window.
        let task_hash = hash_pair(&self.hasher, ev.agent, ev.task);
        let (occurrences, severity, task_accumulated, agent, task, stage) = {
            let mut guard = self.tasks.of(task_hash).lock();
            let shard = &mut *guard;
            shard.ops += 1;
            if shard.ops.is_multiple_of(SWEEP_EVERY) {
                let horizon = now.minus(self.window);
                shard.tasks.retain(|t| t.last >= horizon);
            }
            if shard.tasks.len() >= SHARD_MAX_TASKS {
                crate::shard::forget_least_recent(&mut shard.tasks, now, self.window, SHARD_MAX_TASKS, |t| t.last);
            }
            let state = match shard.tasks.find_mut(task_hash, |t| same(&t.agent, agent) && &*t.task == ev.task) {
                Some(t) => t,
                None => {
                    let state = Box::new(TaskState::new(task_hash, agent.clone(), ev.task));
                    shard.tasks.insert_unique(task_hash, state, |t| t.hash).into_mut()
                }
            };
            state.last = now;
            let stage: Arc<str> = match state.stages.iter().find(|(s, _)| &**s == ev.stage) {
                Some((s, _)) => s.clone(),
                None => shard.stage_names.get(ev.stage),
            };
            let (agent, task) = (state.agent.clone(), state.task.clone());
            let w = state.patterns.entry(mined.serial);
            let n = w.push(now, self.window, cap);
            let bumps = if n >= 4 * self.threshold {
                2
            } else if n >= 2 * self.threshold {
                1
            } else {
                0
            };
            let severity = raise(base, bumps);
            let ctx = Ctx { now, ev, mined: &mined, window: self.window, agent: &agent, task: &task, stage: &stage };
            if let Some(previous) = w.max_severity
                && severity > previous
            {
                signals.push(ctx.pattern_signal(SignalKind::ErrorEscalation, ErrorScope::Task, n, severity, previous));
            }
            let previous = w.max_severity.unwrap_or(severity);
            w.max_severity = Some(previous.max(severity));
            let mut accumulated = false;
            if n >= self.threshold && !fired_within(w.accumulation_at, now, self.window) {
                w.accumulation_at = Some(now);
                accumulated = true;
                signals.push(ctx.pattern_signal(
                    SignalKind::ErrorAccumulation,
                    ErrorScope::Task,
                    n,
                    severity,
                    previous,
                ));
            }
            if !state.flagged && self.task_error.is_some_and(|floor| severity >= floor) {
                state.flagged = true;
                signals.push(ctx.pattern_signal(SignalKind::TaskError, ErrorScope::Task, n, severity, previous));
            }
            if severity == Severity::Critical && !fired_within(w.critical_at, now, self.window) {
                w.critical_at = Some(now);
                signals.push(ctx.pattern_signal(SignalKind::CriticalError, ErrorScope::Task, n, severity, previous));
            }
            state.patterns.bound();
            signals.extend(state.cascade(&ctx));
            match state.counters.iter().find(|(s, sev, _)| same(s, &stage) && *sev == severity) {
                Some((_, _, counter)) => {
                    counter.inc();
                }
                None => {
                    let counter = self.series.counter(&state.agent, ev.stage, severity);
                    counter.inc();
                    if state.counters.len() < 16 {
                        state.counters.reserve_exact(1);
                        state.counters.push((stage.clone(), severity, counter));
                    }
                }
            };
            shard.signals += signals.len() as u64;
            (n, severity, accumulated, agent, task, stage)
        };

        // The agent's window, across tasks.
        {
            let agent_hash = self.hasher.hash_one(ev.agent);
            let mut guard = self.agents.of(agent_hash).lock();
            let shard = &mut *guard;
            shard.ops += 1;
            if shard.ops.is_multiple_of(SWEEP_EVERY) {
                let horizon = now.minus(self.window);
                shard.agents.retain(|a| a.last >= horizon);
            }
            let state = match shard.agents.find_mut(agent_hash, |a| same(&a.agent, &agent)) {
                Some(a) => a,
                None => {
                    let fresh =
                        AgentState { hash: agent_hash, agent: agent.clone(), patterns: HashMap::new(), last: now };
                    shard.agents.insert_unique(agent_hash, fresh, |a| a.hash).into_mut()
                }
            };
            state.last = now;
            let w = state.patterns.entry(mined.serial).or_default();
            let n = w.push(now, self.window, cap);
            if n >= self.threshold && !fired_within(w.accumulation_at, now, self.window) {
                w.accumulation_at = Some(now);
                if !task_accumulated {
                    let ctx =
                        Ctx { now, ev, mined: &mined, window: self.window, agent: &agent, task: &task, stage: &stage };
                    signals.push(ctx.pattern_signal(
                        SignalKind::ErrorAccumulation,
                        ErrorScope::Agent,
                        n,
                        severity,
                        severity,
                    ));
                }
            }
            bound(&mut state.patterns);
        }

        if mined.truncated {
            self.series.truncated.inc();
        }
        Ok(Counted {
            report: ErrorReport {
                pattern: mined.id,
                template: mined.template,
                severity,
                occurrences: u32::try_from(occurrences).unwrap_or(u32::MAX),
                truncated: mined.truncated,
                signals,
                intervention: None,
            },
            key: task_hash,
            agent,
            task,
            stage,
            kind: mined.kind,
        })
    }

    /// The message as its record keeps it: cut to the miner's `max_message_bytes`, with
    /// [`TRUNCATION_MARKER`], when the miner truncated it. Only an engine that stores records
    /// asks for this copy.
    pub(crate) fn stored_message(&self, message: &str, truncated: bool) -> Arc<str> {
        if !truncated {
            return Arc::from(message);
        }
        let max = self.miner.lock().config().max_message_bytes;
        let mut cut = message.len().min(max);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{TRUNCATION_MARKER}", &message[..cut]).into()
    }

    /// Forgets the windows of a finished task; returns whether it had any.
    pub(crate) fn end_task(&self, agent: &str, task: &str) -> bool {
        let hash = hash_pair(&self.hasher, agent, task);
        let mut shard = self.tasks.of(hash).lock();
        match shard.tasks.find_entry(hash, |t| &*t.agent == agent && &*t.task == task) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

struct Ctx<'a> {
    now: Timestamp,
    ev: &'a ErrorEvent<'a>,
    mined: &'a Mined,
    window: Duration,
    agent: &'a Arc<str>,
    task: &'a Arc<str>,
    stage: &'a Arc<str>,
}

impl Ctx<'_> {
    fn pattern_signal(
        &self,
        kind: SignalKind,
        scope: ErrorScope,
        occurrences: usize,
        severity: Severity,
        previous: Severity,
    ) -> Signal {
        let window_s = self.window.as_secs_f64();
        // Built by pushing parts (no float formatting): a signal is on the recording path.
        let e = self.ev;
        let mut message = String::with_capacity(96 + e.agent.len() + e.stage.len() + self.mined.template.len());
        let mut push = |parts: &[&str]| parts.iter().for_each(|p| message.push_str(p));
        let (mut n, mut secs) = ([0; 20], [0; 20]);
        let (n, secs) = (decimal(occurrences as u64, &mut n), decimal(self.window.as_secs(), &mut secs));
        push(&[e.agent, " ", e.stage, ": "]);
        match kind {
            SignalKind::ErrorEscalation => push(&[
                "repeated ",
                e.kind,
                " \"",
                &self.mined.template,
                "\" rose from ",
                previous.as_str(),
                " to ",
                severity.as_str(),
                " (",
                n,
                " within ",
                secs,
                "s",
            ]),
            SignalKind::CriticalError => push(&["critical ", e.kind, " \"", &self.mined.template, "\""]),
            SignalKind::TaskError => {
                push(&["first ", severity.as_str(), " error: ", e.kind, " \"", &self.mined.template, "\""]);
            }
            _ => push(&[e.kind, " \"", &self.mined.template, "\" occurred ", n, " times within ", secs, "s"]),
        }
        match scope {
            ErrorScope::Task => push(&[" in task ", e.task]),
            ErrorScope::Agent => push(&[" across its tasks"]),
        }
        if kind == SignalKind::ErrorEscalation {
            push(&[")"]);
        }
        Signal {
            kind,
            severity: if kind == SignalKind::ErrorAccumulation { severity.max(Severity::Medium) } else { severity },
            at: self.now,
            agent: self.agent.clone(),
            task: Some(self.task.clone()),
            stage: Some(self.stage.clone()),
            message,
            evidence: Evidence::ErrorPattern {
                pattern_id: self.mined.id,
                error_kind: self.mined.kind.clone(),
                template: self.mined.template.clone(),
                occurrences: u32::try_from(occurrences).unwrap_or(u32::MAX),
                window_s,
                scope,
                severity,
                previous_severity: previous,
            },
        }
    }
}

impl TaskState {
    /// Notes the error's stage (returned, shared); a cascade signal when it makes
    /// [`CASCADE_STAGES`] stages with errors within the window.
    fn cascade(&mut self, ctx: &Ctx<'_>) -> Option<Signal> {
        let horizon = ctx.now.minus(ctx.window);
        self.stages.retain(|(_, t)| *t >= horizon);
        let joined = match self.stages.iter_mut().find(|(s, _)| same(s, ctx.stage)) {
            Some(entry) => {
                entry.1 = ctx.now;
                false
            }
            None => {
                if self.stages.len() == MAX_STAGES_PER_TASK {
                    self.stages.remove(0);
                }
                self.stages.reserve_exact(1);
                self.stages.push((ctx.stage.clone(), ctx.now));
                true
            }
        };
        if !joined || self.stages.len() < CASCADE_STAGES || fired_within(self.cascade_at, ctx.now, ctx.window) {
            return None;
        }
        self.cascade_at = Some(ctx.now);
        let mut stages: Vec<(Arc<str>, Timestamp)> = self.stages.to_vec();
        stages.sort_by_key(|(_, t)| *t);
        let names: Vec<String> = stages.iter().map(|(s, _)| s.to_string()).collect();
        let signal = Signal {
            kind: SignalKind::ErrorCascade,
            severity: Severity::High,
            at: ctx.now,
            agent: ctx.agent.clone(),
            task: Some(ctx.task.clone()),
            stage: Some(ctx.stage.clone()),
            message: format!(
                "{}: errors spread across {} stages of task {} within {:.0}s ({})",
                ctx.ev.agent,
                names.len(),
                ctx.ev.task,
                ctx.window.as_secs_f64(),
                names.join(" → ")
            ),
            evidence: Evidence::Cascade { stages: names, window_s: ctx.window.as_secs_f64() },
        };
        Some(signal)
    }
}

/// `n` in decimal, written into `buf` (formatting machinery costs more than the digits).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

fn raise(s: Severity, levels: usize) -> Severity {
    let i = Severity::ALL.iter().position(|&x| x == s).unwrap_or(0);
    Severity::ALL[(i + levels).min(Severity::ALL.len() - 1)]
}

/// Whether two shared names are equal: the same copy, as they mostly are (an agent's one copy,
/// a shard's stage names), or equal text.
#[inline]
fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn validate(ev: &ErrorEvent<'_>) -> Result<()> {
    validate_id("agent", ev.agent)?;
    validate_id("task", ev.task)?;
    validate_stage(ev.stage)?;
    validate_id("kind", ev.kind)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::windows::{Window, Windows};
    use super::*;

    /// `n` windows, pattern `i` last active at `i` seconds.
    fn windows(n: u64) -> Windows {
        let mut w = Windows::default();
        for i in 0..n {
            w.entry(i).last = Timestamp::from_micros(i as i64 * 1_000_000);
        }
        w
    }

    #[test]
    fn decimals_are_written_as_to_string_does() {
        for n in [0, 7, 10, 300, 4_096, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
        }
    }

    #[test]
    fn a_scope_past_its_pattern_cap_keeps_its_most_recent_windows() {
        let mut full = windows(MAX_PATTERNS_PER_SCOPE as u64);
        full.bound();
        assert_eq!(full.0.len(), MAX_PATTERNS_PER_SCOPE, "at the cap nothing goes");

        let n = MAX_PATTERNS_PER_SCOPE as u64 + 44;
        let mut task = windows(n);
        task.bound();
        let kept: Vec<u64> = task.0.iter().map(|(s, _)| *s).collect();
        let first_kept = n - (MAX_PATTERNS_PER_SCOPE * 3 / 4) as u64 + 1;
        assert_eq!(kept, (first_kept..n).collect::<Vec<_>>(), "the idlest go first");

        // The agent scope's map is bounded the same way.
        let mut agent: HashMap<u64, Window> = windows(n).0.into_iter().collect();
        bound(&mut agent);
        let mut kept: Vec<u64> = agent.into_keys().collect();
        kept.sort_unstable();
        assert_eq!(kept, (first_kept..n).collect::<Vec<_>>());
    }
}
