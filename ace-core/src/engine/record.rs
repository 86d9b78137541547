//! The recording calls: stages, metrics, errors, task ends, context refreshes and intervention
//! outcomes.

use std::sync::Arc;

use super::Ace;
use crate::clock::Timestamp;
use crate::decision::Report;
use crate::error::{Error, Result};
use crate::errors::{ErrorEvent, ErrorOrgan, ErrorReport};
use crate::event::{Severity, validate_id};
use crate::hot::Observation;
use crate::ids::InterventionId;
use crate::persist::Wake;
use crate::persist::overflow::Taken;
use crate::persist::spill::Journal;
use crate::record::{ErrorRecord, MetricRecord, OutcomeRecord, Record};
use crate::telemetry::AgentId;
use crate::tool::{TOOL_STAGE, ToolCall};

impl Ace {
    /// Records a finished stage: its duration in seconds and whether it succeeded.
    pub fn record_stage(&self, agent: &str, task: &str, stage: &str, duration_s: f64, success: bool) -> Result<Report> {
        self.record_stage_with(agent, task, stage, duration_s, success, &[])
    }

    /// Records a finished stage with named metrics (`tokens_in`, `tokens_out`, `cost_usd`, or any
    /// valid name). Each metric gets its own baseline per (agent, stage).
    ///
    /// The event is validated as a whole: if anything is invalid (an empty id, a NaN value, a
    /// negative duration, a stage name with odd characters) nothing is recorded, the call returns
    /// [`Error::InvalidInput`] and `ace_events_rejected_total` counts it.
    pub fn record_stage_with(
        &self,
        agent: &str,
        task: &str,
        stage: &str,
        duration_s: f64,
        success: bool,
        metrics: &[(&str, f64)],
    ) -> Result<Report> {
        self.observe(&Observation { agent, task, stage, outcome: Some((duration_s, success)), metrics, tool: None })
    }

    /// Records a tool call as a stage named [`TOOL_STAGE`] (`tool`): which tool, the digest of
    /// its arguments ([`crate::tool::args_digest`]; `""` when the arguments are not known), how
    /// long it took and whether it succeeded. The arguments themselves are never seen.
    ///
    /// Besides everything a stage feeds (baselines of `tool`, loops, runs of failures, the
    /// task's length), the task's recent tool calls are followed: the same call repeated, two
    /// calls in turn, a tool failing again after a retry (see [`crate::trajectory`]). An
    /// invalid tool name or digest is [`Error::InvalidInput`] and nothing is recorded.
    ///
    /// ```
    /// use ace_core::{Ace, AceConfig, SignalKind};
    /// use ace_core::tool::digest_json;
    ///
    /// // The tool signals are off by default (see docs/replay.md); on here.
    /// let ace = Ace::builder().config(AceConfig::builder().tool_repeat(3).build()?).build()?;
    /// let digest = digest_json(r#"{"flight": "HAT139"}"#)?;
    /// let mut kinds = Vec::new();
    /// for _ in 0..3 {
    ///     let report = ace.record_tool("agent-1", "task-1", "search_flights", &digest, 0.2, true)?;
    ///     kinds.extend(report.signals.iter().map(|s| s.kind));
    /// }
    /// assert_eq!(kinds, [SignalKind::ToolRepeat]); // ACE_TOOL_REPEAT=3
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn record_tool(
        &self,
        agent: &str,
        task: &str,
        tool: &str,
        args_digest: &str,
        duration_s: f64,
        success: bool,
    ) -> Result<Report> {
        let args_digest = (!args_digest.is_empty()).then_some(args_digest);
        self.record_tool_call(&ToolCall { agent, task, stage: TOOL_STAGE, tool, args_digest, duration_s, success })
    }

    /// Records a tool call made in a stage of the caller's naming (a trace's `stage` event with
    /// both a `stage` and a `tool`); otherwise as [`Ace::record_tool`].
    ///
    /// Stores keep the call as a stage record under `call.stage`; the tool name and digest reach
    /// the trajectory organ and the trace (`ACE_TRACE_PATH`), not the store's tables.
    pub fn record_tool_call(&self, call: &ToolCall<'_>) -> Result<Report> {
        self.record_tool_call_with(call, &[])
    }

    /// [`Ace::record_tool_call`] with named metrics of the call's stage (as
    /// [`Ace::record_stage_with`]).
    pub fn record_tool_call_with(&self, call: &ToolCall<'_>, metrics: &[(&str, f64)]) -> Result<Report> {
        self.observe(&Observation {
            agent: call.agent,
            task: call.task,
            stage: call.stage,
            outcome: Some((call.duration_s, call.success)),
            metrics,
            tool: Some((call.tool, call.args_digest)),
        })
    }

    /// Records one named metric of a stage without an outcome (a cost known only later, say).
    pub fn record_metric(&self, agent: &str, task: &str, stage: &str, name: &str, value: f64) -> Result<Report> {
        self.observe(&Observation { agent, task, stage, outcome: None, metrics: &[(name, value)], tool: None })
    }

    fn observe(&self, obs: &Observation<'_>) -> Result<Report> {
        let shared = self.shared();
        let now = shared.clock.now();
        let (signals, wake) = match shared.hot.record(now, obs) {
            Ok(found) => found,
            Err(e) => {
                shared.metrics.reject(&e);
                return Err(e);
            }
        };
        let wake = if let Some(journal) = &shared.journal {
            self.journal(journal, wake, &metric_record(now, obs));
            wake
        } else if wake == Wake::Full {
            self.overflow(shared.hot.key(obs.agent, obs.stage), metric_record(now, obs))
        } else {
            wake
        };
        if let (Some(trace), Some(outcome)) = (&shared.trace, obs.outcome) {
            trace.stage(now, obs.agent, obs.task, obs.stage, outcome, obs.metrics, obs.tool);
        }
        shared.sync.wake(wake);
        if signals.is_empty() {
            return Ok(Report::default());
        }
        self.saw(&signals);
        let intervention = self.decide(now, obs.agent, obs.task, &signals);
        Ok(Report { signals, intervention })
    }

    /// Buffers a record of another organ for the store (and journals it in durable mode).
    pub(super) fn persist(&self, key: u64, record: Record) -> Result<()> {
        let shared = self.shared();
        let journaled = shared.journal.as_ref().map(|_| record.clone());
        let (wake, back) = shared.hot.buffer(key, record)?;
        let wake = match (&shared.journal, journaled, back) {
            (Some(journal), Some(r), _) => {
                self.journal(journal, wake, &r);
                wake
            }
            (None, _, Some(r)) => self.overflow(key, r),
            _ => wake,
        };
        shared.sync.wake(wake);
        Ok(())
    }

    /// Durable mode: journals a buffered record, or, when its buffer was full, writes it to the
    /// journal's overflow (stored later as a spill file) instead of dropping it.
    fn journal(&self, journal: &Journal, wake: Wake, record: &Record) {
        if wake != Wake::Full {
            journal.append(record);
        } else if !journal.overflow(record) {
            self.shared().metrics.core.drop_records("buffer_full", 1);
            self.shared().hot.overflow_dropped();
        }
    }

    /// A record that found the buffers full goes to the spill directory's overflow segment
    /// (see `persist::overflow`); dropped and counted only past the spill budget or when the
    /// disk refuses it. With a store that keeps records in memory, the caller waits a moment
    /// for the writer to make room instead (see `room.rs`). Returns what it asks of the writer.
    #[cold]
    fn overflow(&self, key: u64, record: Record) -> Wake {
        let shared = self.shared();
        let taken = match (&shared.overflow, &shared.room) {
            (Some(overflow), _) => overflow.take(&record),
            (None, Some(room)) => {
                let mut taken = None;
                room.wait(
                    record,
                    || shared.sync.wake(Wake::Now),
                    |r| match shared.hot.buffer(key, r) {
                        Ok((wake, None)) => {
                            taken = Some(wake);
                            None
                        }
                        Ok((_, back)) => back,
                        // Closed while it waited: the record is counted as dropped.
                        Err(_) => None,
                    },
                );
                if let Some(wake) = taken {
                    return wake;
                }
                Taken::Failed
            }
            (None, None) => Taken::Failed,
        };
        let reason = match taken {
            Taken::Yes { first } => return if first { Wake::Now } else { Wake::No },
            Taken::Budget => "spill_full",
            Taken::Failed => "buffer_full",
        };
        shared.metrics.core.drop_records(reason, 1);
        let dropped = shared.hot.overflow_dropped();
        if !dropped.is_power_of_two() {
            Wake::No
        } else if reason == "spill_full" {
            tracing::warn!(
                dropped,
                max_bytes = shared.config.spill_max_bytes,
                "ace spill directory is full (ACE_SPILL_MAX_BYTES): records that find the record buffer full are dropped"
            );
            Wake::Now
        } else {
            Wake::Dropped(dropped)
        }
    }

    /// Reports whether an intervention worked; the engine learns which strategy works for which
    /// kind of signal. An unknown id, or one reported already, is [`Error::InvalidInput`].
    pub fn report_outcome(&self, id: InterventionId, success: bool) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let shared = self.shared();
        let (agent, rate) = shared.decider.report_outcome(id, success)?;
        let agent_id = shared.metrics.core.labels.label(&agent);
        shared.metrics.effectiveness.get_or_create(&AgentId { agent_id }).set(rate);
        self.persist(id.0, Record::Outcome(OutcomeRecord { ts: shared.clock.now(), id, success }))
    }

    /// Records an error: groups its message into a pattern, counts it in the task's and the
    /// agent's sliding windows, and returns the pattern, the severity (given, or inferred from
    /// the kind and message when `severity` is `None`) and any signals (see [`crate::errors`]).
    /// The error is persisted through the writer like metrics.
    ///
    /// ```
    /// use ace_core::{Ace, SignalKind};
    ///
    /// let ace = Ace::builder().build()?;
    /// for port in [5432, 5433, 5434] {
    ///     let msg = format!("connection to db-1:{port} refused");
    ///     let report = ace.record_error("agent-1", "task-1", "execution", "ConnectionError", &msg, None)?;
    ///     assert_eq!(&*report.template, "connection to <*> refused");
    ///     if port == 5434 {
    ///         assert_eq!(report.signals[0].kind, SignalKind::ErrorAccumulation); // 3 in 300 s
    ///     }
    /// }
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn record_error(
        &self,
        agent: &str,
        task: &str,
        stage: &str,
        kind: &str,
        message: &str,
        severity: Option<Severity>,
    ) -> Result<ErrorReport> {
        self.record_error_event(&ErrorEvent { agent, task, stage, kind, message, severity })
    }

    /// [`Ace::record_error`] with the arguments in a struct.
    pub fn record_error_event(&self, ev: &ErrorEvent<'_>) -> Result<ErrorReport> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let shared = self.shared();
        if let Err(e) = ErrorOrgan::validate(ev) {
            shared.metrics.reject(&e);
            return Err(e);
        }
        let now = shared.clock.now();
        // The agent's context state holds the one copy of its name.
        let context = shared.context.agent(ev.agent, now);
        let mut counted = shared.errors.record(now, context.name(), ev)?;
        counted.report.signals.extend(context.observe(now, true, ev.task, ev.stage, &shared.context.cfg));
        self.saw(&counted.report.signals);
        if let Some(trace) = &shared.trace {
            trace.error(now, ev.agent, ev.task, ev.stage, ev.kind, ev.message, ev.severity);
        }
        let mut report = counted.report;
        if !shared.hot.persists() {
            // Nothing is stored: no record (nor copy of the message) is built.
            report.intervention = self.decide(now, ev.agent, ev.task, &report.signals);
            return Ok(report);
        }
        let record = Record::Error(ErrorRecord {
            ts: now,
            agent: counted.agent,
            task: counted.task,
            stage: counted.stage,
            kind: counted.kind,
            message: shared.errors.stored_message(ev.message, report.truncated),
            severity: report.severity,
            pattern: report.pattern,
        });
        self.persist(counted.key, record)?;
        report.intervention = self.decide(now, ev.agent, ev.task, &report.signals);
        Ok(report)
    }

    /// Says a task has ended: its error windows (per pattern, and its stages for cascades) and
    /// its intervention gates (count, cooldown, de-dup) are released, and its length (stages
    /// recorded) joins what the agent's tasks usually take (see [`crate::trajectory`]). Returns
    /// whether the engine knew the task (it had stages or errors). Tasks never ended have their
    /// error windows released after a window without errors, and their tracks after an hour
    /// without stages. [`Ace::end_task_with`] also says whether the task succeeded.
    pub fn end_task(&self, agent: &str, task: &str) -> Result<bool> {
        self.end_task_with(agent, task, None)
    }

    /// [`Ace::end_task`], with whether the task succeeded as far as the agent knows
    /// (`None`: unknown). The engine learns from it which signals precede failed tasks, and
    /// stops intervening on signals after which tasks go on to succeed (see
    /// [`crate::intervene::failure`] and `ACE_INTERVENTION_MIN_FAILURE`).
    ///
    /// ```
    /// use ace_core::{Ace, SignalKind};
    ///
    /// let ace = Ace::builder().build()?;
    /// let mut acted = Vec::new();
    /// for t in 0..20 {
    ///     let task = format!("task-{t}");
    ///     // The same harmless error in every task, and every task succeeds all the same.
    ///     let r = ace.record_error("agent-1", &task, "execution", "ToolError", "cache miss for key 7", None)?;
    ///     acted.push(r.intervention.is_some_and(|i| i.signals[0].kind == SignalKind::TaskError));
    ///     ace.end_task_with("agent-1", &task, Some(true))?;
    /// }
    /// // Acted on at first, then (a try or two later) left alone.
    /// assert!(acted[0] && !acted[5..].contains(&true), "{acted:?}");
    /// # Ok::<(), ace_core::Error>(())
    /// ```
    pub fn end_task_with(&self, agent: &str, task: &str, success: Option<bool>) -> Result<bool> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        validate_id("agent", agent)?;
        validate_id("task", task)?;
        let shared = self.shared();
        if let Some(trace) = &shared.trace {
            trace.task_end(shared.clock.now(), agent, task, success);
        }
        shared.decider.end_task(agent, task, success);
        if let Some(fleet) = &shared.fleet {
            fleet.ended(agent, task);
        }
        let followed = shared.trajectory.end_task(agent, task);
        if success == Some(false) {
            self.reflect_later(agent, task);
        }
        Ok(shared.errors.end_task(agent, task) | followed)
    }

    /// Says the agent's context was rebuilt (new instructions, a fresh retrieval, a summary of
    /// the conversation so far): its staleness drops to 0 and a new `context_stale` signal may
    /// come once it grows again. See [`crate::context`].
    pub fn refresh_context(&self, agent: &str) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        validate_id("agent", agent)?;
        let shared = self.shared();
        let now = shared.clock.now();
        shared.context.refresh(agent, now);
        if let Some(fleet) = &shared.fleet {
            fleet.refreshed(agent, now.as_micros());
        }
        if let Some(trace) = &shared.trace {
            trace.refresh(now, agent);
        }
        Ok(())
    }
}

/// The store's record of an observation (built only where it is written outside the buffers).
fn metric_record(now: Timestamp, obs: &Observation<'_>) -> Record {
    Record::Metric(MetricRecord {
        ts: now,
        agent: Arc::from(obs.agent),
        task: Arc::from(obs.task),
        stage: Arc::from(obs.stage),
        duration_s: obs.outcome.map(|(d, _)| d),
        success: obs.outcome.map(|(_, s)| s),
        metrics: obs.metrics.iter().map(|&(n, v)| (Arc::from(n), v)).collect(),
    })
}
