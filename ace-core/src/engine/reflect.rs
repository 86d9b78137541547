//! Reflection: turning what the engine saw of one task (its stages, errors, interventions and
//! their outcomes) into a compact, bounded summary, and the insights a host function draws from
//! it (an LLM call in practice) into the agent's playbook at `shadow`, through the same
//! de-dup as every merge.
//!
//! [`Ace::reflect`] runs on the caller's thread and reads the store (after a flush), so call it
//! from a worker, never from the thread that records: it is not on the recording path by
//! construction. At most `ACE_REFLECT_PER_MINUTE` reflections run per engine and minute; the
//! others return `None`. Calls, failures and skipped ones are counted
//! (`ace_reflections_total`, `ace_reflection_failures_total`, `ace_reflections_limited_total`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Weak};

use serde::Serialize;

use super::{Ace, Inner};
use crate::error::Result;
use crate::playbook::{Insight, MergeReport};
use crate::store::{ErrorQuery, MetricQuery};

/// Failed tasks waiting for the background reflector, at most (more are skipped and counted as
/// limited).
const QUEUE: usize = 64;

/// Where failed task ends go to be reflected on: (agent, task).
pub(super) type ReflectQueue = SyncSender<(String, String)>;

/// The longest summary, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Records of each kind read from the store for one reflection, at most (the agent's newest).
const SCAN: usize = 5_000;

/// What the engine saw of one task, as text for a prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskSummary {
    /// The agent.
    pub agent: String,
    /// The task.
    pub task: String,
    /// Lines: a headline, then stages, errors and interventions; at most [`MAX_SUMMARY_BYTES`].
    pub text: String,
}

/// The host's side of reflection: insights from a task's summary. Closures
/// `Fn(&TaskSummary) -> Result<Vec<Insight>>` are reflectors.
pub trait Reflector: Send + Sync {
    /// Insights drawn from `summary` (an error is counted and returned to the caller).
    fn reflect(&self, summary: &TaskSummary) -> Result<Vec<Insight>>;
}

impl<F> Reflector for F
where
    F: Fn(&TaskSummary) -> Result<Vec<Insight>> + Send + Sync,
{
    fn reflect(&self, summary: &TaskSummary) -> Result<Vec<Insight>> {
        self(summary)
    }
}

/// What one reflection did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Reflection {
    /// The summary the reflector saw.
    pub summary: TaskSummary,
    /// The merge of its insights into the domain.
    pub report: MergeReport,
}

impl Ace {
    /// The summary of what the engine saw of `agent`'s `task` (flushes first, then reads the
    /// agent's newest records from the store).
    pub fn task_summary(&self, agent: &str, task: &str) -> Result<TaskSummary> {
        crate::event::validate_id("agent", agent)?;
        crate::event::validate_id("task", task)?;
        self.flush()?;
        let store = self.store();
        let mut q = MetricQuery::all();
        q.agent = Some(agent.to_owned());
        q.limit = SCAN;
        let metrics: Vec<_> = store.query_metrics(&q)?.into_iter().filter(|m| &*m.task == task).collect();
        let mut q = ErrorQuery::all();
        q.agent = Some(agent.to_owned());
        q.limit = SCAN;
        let errors: Vec<_> = store.query_errors(&q)?.into_iter().filter(|e| &*e.task == task).collect();
        let interventions: Vec<_> =
            store.query_interventions(Some(agent), SCAN)?.into_iter().filter(|i| &*i.task == task).collect();

        let mut stages: BTreeMap<&str, (u32, u32, f64)> = BTreeMap::new();
        for m in &metrics {
            let s = stages.entry(&m.stage).or_default();
            s.0 += 1;
            s.1 += u32::from(m.success == Some(false));
            s.2 += m.duration_s.unwrap_or(0.0);
        }
        let mut kinds: BTreeMap<(&str, &str), (u32, crate::event::Severity)> = BTreeMap::new();
        for e in &errors {
            let k = kinds.entry((&e.kind, &e.message)).or_insert((0, e.severity));
            k.0 += 1;
            k.1 = k.1.max(e.severity);
        }
        let failed: u32 = stages.values().map(|s| s.1).sum();
        let mut text = format!(
            "task {task} of agent {agent}: {} stages ({failed} failed), {} errors, {} interventions\n",
            metrics.len(),
            errors.len(),
            interventions.len()
        );
        for (stage, (n, bad, secs)) in &stages {
            let _ = writeln!(text, "stage {stage}: {n} runs, {bad} failed, {:.2} s on average", secs / f64::from(*n));
        }
        let mut by_count: Vec<_> = kinds.into_iter().collect();
        by_count.sort_by_key(|e| std::cmp::Reverse(e.1.0));
        for ((kind, message), (n, severity)) in by_count {
            let message = crate::event::truncate(message, 160);
            let _ = writeln!(text, "error {kind} ({}, {n}x): {message}", severity.as_str());
        }
        for i in &interventions {
            let outcome = match i.outcome {
                Some(true) => "worked",
                Some(false) => "did not work",
                None => "outcome unknown",
            };
            let _ = writeln!(text, "intervention {} on {}: {} ({outcome})", i.strategy, i.signal_kind, i.reason);
        }
        if text.len() > MAX_SUMMARY_BYTES {
            let mut end = MAX_SUMMARY_BYTES - 4;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...\n");
        }
        Ok(TaskSummary { agent: agent.to_owned(), task: task.to_owned(), text })
    }

    /// Reflects on `agent`'s `task`: its summary goes to `reflector`, whose insights are merged
    /// into `domain` (the agent's name by default) at `shadow`, with the provenance
    /// `reflection:{agent}/{task}` when they carry none. `None` when the rate limit
    /// (`ACE_REFLECT_PER_MINUTE`) was reached. Blocks on the store and the reflector.
    pub fn reflect(
        &self,
        agent: &str,
        task: &str,
        domain: Option<&str>,
        reflector: &dyn Reflector,
    ) -> Result<Option<Reflection>> {
        crate::event::validate_id("agent", agent)?;
        crate::event::validate_id("task", task)?;
        let shared = self.shared();
        let now = shared.clock.now();
        {
            let mut recent = self.inner.reflections.lock();
            recent.retain(|t| now.since(*t) < std::time::Duration::from_secs(60));
            if recent.len() >= shared.config.reflect_per_minute as usize {
                shared.metrics.reflections_limited.inc();
                return Ok(None);
            }
            recent.push(now);
        }
        shared.metrics.reflections.inc();
        let result = self.task_summary(agent, task).and_then(|summary| {
            let mut insights = reflector.reflect(&summary)?;
            let provenance = format!("reflection:{agent}/{task}");
            for insight in &mut insights {
                if insight.provenance.is_none() {
                    insight.provenance = Some(crate::event::truncate(&provenance, 1000));
                }
            }
            let report = self.playbooks().merge(domain.unwrap_or(agent), &insights)?;
            Ok(Reflection { summary, report })
        });
        if result.is_err() {
            shared.metrics.reflection_failures.inc();
        }
        result.map(Some)
    }

    /// Reflects with `reflector` on every task that ends failed from now on
    /// (`end_task_with(agent, task, Some(false))`), on a thread of the engine's (never the
    /// recording one), into `domain` (each agent's own by default). The same rate limit and
    /// counters as [`Ace::reflect`] apply; failed tasks beyond a queue of 64 are skipped and
    /// counted as limited. A second call replaces the reflector.
    pub fn reflect_on_failure(&self, reflector: impl Reflector + 'static, domain: Option<&str>) -> Result<()> {
        if let Some(d) = domain {
            crate::event::validate_id("domain", d)?;
        }
        let (tx, rx) = sync_channel::<(String, String)>(QUEUE);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let domain = domain.map(str::to_owned);
        std::thread::Builder::new()
            .name("ace-reflect".into())
            .spawn(move || {
                // Ends when the queue's sender is replaced or the engine is gone.
                while let Ok((agent, task)) = rx.recv() {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = (Ace { inner }).reflect(&agent, &task, domain.as_deref(), &reflector) {
                        tracing::warn!(error = %e, agent, task, "reflection on a failed task failed");
                    }
                }
            })
            .map_err(|e| crate::error::Error::Internal(format!("the reflection thread could not start: {e}")))?;
        *self.inner.reflect_queue.lock() = Some(tx);
        Ok(())
    }

    /// Queues a failed task for the background reflector, if one is set (never waits).
    pub(super) fn reflect_later(&self, agent: &str, task: &str) {
        let queue = self.inner.reflect_queue.lock();
        if let Some(q) = queue.as_ref()
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                q.try_send((agent.to_owned(), task.to_owned()))
        {
            self.shared().metrics.reflections_limited.inc();
        }
    }
}
