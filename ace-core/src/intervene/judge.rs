//! The judge hook: the host's say on an intervention before it is issued.
//!
//! A [`Judge`] sees each proposed intervention it [`wants`](Judge::wants) and answers a
//! [`Verdict`]: accept it, veto it, or pick another strategy (an LLM asked "given these signals,
//! what should the agent do?" is the usual judge). The engine works fully without one.
//!
//! The judge runs on a thread of its own, so one that hangs cannot hold the recording call
//! beyond `ACE_JUDGE_TIMEOUT` (2 s); one that times out or panics is counted in
//! `ace_judge_calls_total{verdict="timeout"|"panic"}` and the engine issues its own choice.
//! A judged decision costs a thread start (tens of microseconds) on top of the judge itself:
//! keep [`wants`](Judge::wants) selective when the judge is slow.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use crate::decision::{Intervention, Verdict};

/// The host's say on proposed interventions. Closures `Fn(&Intervention) -> Verdict` are judges.
pub trait Judge: Send + Sync + 'static {
    /// Whether to be asked about `proposal` (called on the recording thread: keep it cheap).
    /// Every proposal by default.
    fn wants(&self, proposal: &Intervention) -> bool {
        let _ = proposal;
        true
    }

    /// The verdict on `proposal`.
    fn judge(&self, proposal: &Intervention) -> Verdict;
}

impl<F> Judge for F
where
    F: Fn(&Intervention) -> Verdict + Send + Sync + 'static,
{
    fn judge(&self, proposal: &Intervention) -> Verdict {
        self(proposal)
    }
}

/// Why a judge gave no usable verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JudgeFailure {
    Timeout,
    Panic,
}

impl JudgeFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JudgeFailure::Timeout => "timeout",
            JudgeFailure::Panic => "panic",
        }
    }
}

/// Asks `judge` about `proposal`, waiting at most `timeout`. `Ok(None)`: the judge did not want it.
pub(crate) fn ask(
    judge: &Arc<dyn Judge>,
    proposal: &Intervention,
    timeout: Duration,
) -> Result<Option<Verdict>, JudgeFailure> {
    match catch_unwind(AssertUnwindSafe(|| judge.wants(proposal))) {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(_) => return Err(JudgeFailure::Panic),
    }
    let (tx, rx) = sync_channel(1);
    let (judge, proposal) = (judge.clone(), proposal.clone());
    let spawned = std::thread::Builder::new().name("ace-judge".into()).spawn(move || {
        let verdict = catch_unwind(AssertUnwindSafe(|| judge.judge(&proposal))).ok();
        // The caller may have stopped waiting; then the verdict is not needed.
        let _ = tx.send(verdict);
    });
    if spawned.is_err() {
        return Err(JudgeFailure::Panic);
    }
    match rx.recv_timeout(timeout) {
        Ok(Some(verdict)) => Ok(Some(verdict)),
        Ok(None) | Err(RecvTimeoutError::Disconnected) => Err(JudgeFailure::Panic),
        Err(RecvTimeoutError::Timeout) => Err(JudgeFailure::Timeout),
    }
}
