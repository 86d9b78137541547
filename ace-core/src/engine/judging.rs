//! The judge's say on a decision: only for the hard cases when `ACE_JUDGE_BELOW` is set, and
//! either on the recording call (`ACE_JUDGE_BLOCKING`, the default) or in the background, where
//! the engine's choice is issued at once and the verdict follows to the subscribers as an
//! amended intervention with the same id.
//!
//! The background judge is one thread with a bounded queue of [`QUEUE`] proposals; a proposal
//! that finds it full is not judged (counted in `ace_judge_calls_total{verdict="dropped"}`).
//! The thread holds the engine weakly: it ends when the engine is dropped.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Weak};

use super::{Ace, Inner};
use crate::decision::{Amendment, Intervention, Verdict};
use crate::intervene::Judge;
use crate::intervene::judge::{JudgeFailure, ask};
use crate::telemetry::VerdictLabel;

/// Proposals waiting for the background judge, at most.
pub(super) const QUEUE: usize = 256;

/// Where the decide path hands proposals to the background judge.
pub(super) type Queue = SyncSender<Intervention>;

/// What the decide path does with a proposal, given the judge and the configuration.
pub(super) enum Route {
    /// No judge, or a decision sure enough: issue it.
    Issue,
    /// Ask now, on the recording call.
    Now,
    /// Issue it and ask in the background.
    Later,
}

impl Ace {
    /// Counts the decision and says whether and how the judge sees it.
    pub(super) fn route(&self, proposal: &Intervention) -> Route {
        if self.inner.judge.is_none() {
            return Route::Issue;
        }
        let shared = self.shared();
        shared.metrics.judge_decisions.inc();
        if shared.config.judge_below.is_some_and(|below| !proposal.confidence.is_below(below)) {
            shared.metrics.judge_confident.inc();
            return Route::Issue;
        }
        if self.inner.judge_queue.is_some() { Route::Later } else { Route::Now }
    }

    fn count(&self, verdict: &'static str) {
        self.shared().metrics.judge_calls.get_or_create(&VerdictLabel { verdict }).inc();
    }

    /// Puts a proposal to the judge and waits; false when it was vetoed.
    pub(super) fn judged(&self, judge: &Arc<dyn Judge>, proposal: &mut Intervention) -> bool {
        let shared = self.shared();
        match ask(judge, proposal, shared.config.judge_timeout) {
            Ok(None) => true,
            Ok(Some(verdict)) => self.apply(verdict, proposal),
            Err(failure) => {
                self.failed(failure, proposal);
                true
            }
        }
    }

    /// Applies a verdict to the proposal (and to what the decider learns); false for a veto.
    fn apply(&self, verdict: Verdict, proposal: &mut Intervention) -> bool {
        let decider = &self.shared().decider;
        match verdict {
            Verdict::Accept => {
                self.count("accept");
                true
            }
            Verdict::Veto => {
                self.count("veto");
                decider.forget(proposal.id);
                false
            }
            Verdict::Pick(strategy) => {
                self.count("pick");
                if strategy != proposal.strategy {
                    decider.repick(proposal.id, proposal.signals[0].kind, strategy);
                    proposal.strategy = strategy;
                    proposal.reason =
                        format!("{strategy}: {} (strategy chosen by the judge)", proposal.signals[0].message);
                }
                true
            }
        }
    }

    fn failed(&self, failure: JudgeFailure, proposal: &Intervention) {
        self.count(failure.as_str());
        tracing::warn!(
            failure = failure.as_str(),
            agent = &*proposal.agent,
            "the intervention judge gave no verdict; the engine's own choice stands"
        );
    }

    /// Hands an issued intervention to the background judge (never waits).
    pub(super) fn judge_later(&self, intervention: &Intervention) {
        let Some(queue) = &self.inner.judge_queue else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(intervention.clone()) {
            self.count("dropped");
        }
    }

    /// The background judge's work on one issued intervention: the verdict, delivered to the
    /// subscribers as the amended intervention.
    fn judge_issued(&self, judge: &Arc<dyn Judge>, mut issued: Intervention) {
        let before = issued.strategy;
        let amendment = match ask(judge, &issued, self.shared().config.judge_timeout) {
            Ok(None) => return,
            Ok(Some(verdict)) => match self.apply(verdict, &mut issued) {
                false => Amendment::Vetoed,
                true if issued.strategy != before => Amendment::Picked,
                true => Amendment::Accepted,
            },
            Err(failure) => return self.failed(failure, &issued),
        };
        issued.amended = Some(amendment);
        let agent = issued.agent.clone();
        self.deliver(&issued, issued.strategy.as_str(), &agent);
    }
}

/// The background judge's queue, when the engine has a judge and does not block on it.
pub(super) fn queue(blocking: bool, judge: Option<&Arc<dyn Judge>>) -> Option<(Queue, Receiver<Intervention>)> {
    (!blocking && judge.is_some()).then(|| sync_channel(QUEUE))
}

/// Starts the background judge on `rx` for the engine `inner` points to.
pub(super) fn spawn(inner: Weak<Inner>, judge: Arc<dyn Judge>, rx: Receiver<Intervention>) {
    let started = std::thread::Builder::new().name("ace-judge-bg".into()).spawn(move || {
        // The queue's sender lives in the engine: once the engine is gone, this ends.
        while let Ok(issued) = rx.recv() {
            let Some(inner) = inner.upgrade() else { break };
            Ace { inner }.judge_issued(&judge, issued);
        }
    });
    if let Err(e) = started {
        tracing::error!(error = %e, "the background judge could not start; issued interventions are not judged");
    }
}
