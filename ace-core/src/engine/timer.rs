//! A guard that times a stage and records it when it ends.

use std::time::{Duration, Instant};

use super::Ace;
use crate::decision::Report;
use crate::error::Result;

/// Times one stage; records duration and outcome when finished or dropped.
///
/// The stage counts as failed if [`StageTimer::fail`] was called or if the thread is unwinding
/// from a panic when the guard drops. Prefer [`StageTimer::finish`], which returns the signals
/// and any error; a guard that is only dropped logs a recording error instead (a destructor
/// cannot return one).
///
/// ```
/// use ace_core::Ace;
///
/// let ace = Ace::builder().build().unwrap();
/// let mut timer = ace.time_stage("agent-1", "task-1", "execution");
/// timer.metric("tokens_out", 128.0);
/// let signals = timer.finish().unwrap();
/// assert!(signals.is_empty());
/// ```
#[must_use = "a timer records its stage when finished or dropped"]
#[derive(Debug)]
pub struct StageTimer {
    ace: Ace,
    agent: String,
    task: String,
    stage: String,
    started: Instant,
    metrics: Vec<(String, f64)>,
    failed: bool,
    done: bool,
}

impl StageTimer {
    pub(crate) fn new(ace: Ace, agent: &str, task: &str, stage: &str) -> Self {
        StageTimer {
            ace,
            agent: agent.to_owned(),
            task: task.to_owned(),
            stage: stage.to_owned(),
            started: Instant::now(),
            metrics: Vec::new(),
            failed: false,
            done: false,
        }
    }

    /// Adds a named metric to the stage's record (`tokens_in`, `cost_usd`, ...).
    pub fn metric(&mut self, name: &str, value: f64) -> &mut Self {
        self.metrics.push((name.to_owned(), value));
        self
    }

    /// Marks the stage as failed.
    pub fn fail(&mut self) -> &mut Self {
        self.failed = true;
        self
    }

    /// Time since the timer started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the stage now and returns the signals it raised.
    pub fn finish(mut self) -> Result<Report> {
        self.record(!self.failed)
    }

    fn record(&mut self, success: bool) -> Result<Report> {
        self.done = true;
        let metrics: Vec<(&str, f64)> = self.metrics.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let duration = self.started.elapsed().as_secs_f64();
        self.ace.record_stage_with(&self.agent, &self.task, &self.stage, duration, success, &metrics)
    }
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let success = !self.failed && !std::thread::panicking();
        if let Err(e) = self.record(success) {
            tracing::warn!(error = %e, agent = %self.agent, stage = %self.stage, "could not record a timed stage");
        }
    }
}
