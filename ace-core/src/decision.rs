//! What the engine decides, as data: the strategies, an intervention, a call's report, and a
//! judge's verdict.
//!
//! The intervention organ makes these, the engine returns them, the breakers carry them in a
//! rejection and the store keeps them; so they sit below every organ.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::event::Severity;
use crate::ids::InterventionId;
use crate::signal::Signal;

/// What the agent is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Rebuild the context (instructions, retrieval, a summary of the conversation).
    RefreshContext,
    /// Make a new plan for the task.
    Replan,
    /// Stop and reflect on what went wrong before going on.
    Reflect,
    /// Check the result before going on.
    Verify,
    /// Hand the task to a human or a stronger agent.
    Escalate,
    /// Wait before calling the failing dependency again.
    Backoff,
    /// Give up on the task.
    Terminate,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 7] = [
        Strategy::RefreshContext,
        Strategy::Replan,
        Strategy::Reflect,
        Strategy::Verify,
        Strategy::Escalate,
        Strategy::Backoff,
        Strategy::Terminate,
    ];

    /// The snake_case name (`"refresh_context"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::RefreshContext => "refresh_context",
            Strategy::Replan => "replan",
            Strategy::Reflect => "reflect",
            Strategy::Verify => "verify",
            Strategy::Escalate => "escalate",
            Strategy::Backoff => "backoff",
            Strategy::Terminate => "terminate",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::invalid(
                "strategy",
                format!("unknown strategy {s:?}; one of {}", Strategy::ALL.map(Strategy::as_str).join(", ")),
            )
        })
    }
}

/// What the engine tells an agent to do, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// Its id, to report the outcome with.
    pub id: InterventionId,
    /// When it was decided (engine clock).
    pub at: Timestamp,
    /// The agent.
    pub agent: Arc<str>,
    /// The task.
    pub task: Arc<str>,
    /// What to do.
    pub strategy: Strategy,
    /// The severity of the signal acted on.
    pub severity: Severity,
    /// One human-readable sentence.
    pub reason: String,
    /// The signals of the call that caused it, the one acted on first.
    pub signals: Vec<Signal>,
    /// How sure the engine was of its strategy (`ACE_JUDGE_BELOW` asks the judge below it).
    #[serde(default)]
    pub confidence: Confidence,
    /// Set on an intervention delivered again to the subscribers with the judge's verdict,
    /// when the judge runs in the background (`ACE_JUDGE_BLOCKING=false`): same id, the
    /// verdict, and the strategy the judge picked. `None` on a first delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amended: Option<Amendment>,
}

/// How sure the engine was of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// The posterior probability that the chosen strategy works better than the runner-up (the
    /// candidate with the best expected success), in [0, 1]; 1 when there was no other
    /// candidate. Thompson sampling explores, so it is below one half now and then.
    pub score: f64,
    /// The runner-up, if there was another candidate.
    pub runner_up: Option<Strategy>,
    /// Outcomes reported so far for the signal's kind (over its candidates).
    pub outcomes: u64,
    /// Whether those are few (under 5): the score then rests mostly on the rule's prior.
    pub novel: bool,
}

impl Default for Confidence {
    /// Full confidence, no history: what an intervention decided before confidences were kept
    /// reads as.
    fn default() -> Self {
        Confidence { score: 1.0, runner_up: None, outcomes: 0, novel: true }
    }
}

impl Confidence {
    /// Whether a decision this sure is a hard case for `below` (`ACE_JUDGE_BELOW`): a score
    /// under it, or little outcome history.
    #[must_use]
    pub fn is_below(&self, below: f64) -> bool {
        self.novel || self.score < below
    }
}

/// The judge's verdict on an intervention already issued (the judge in the background).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amendment {
    /// The judge agreed: carry on.
    Accepted,
    /// The judge vetoed it: disregard it.
    Vetoed,
    /// The judge picked another strategy (the amended intervention's `strategy`).
    Picked,
}

impl Amendment {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Amendment::Accepted => "accepted",
            Amendment::Vetoed => "vetoed",
            Amendment::Picked => "picked",
        }
    }
}

/// What a recording call found: the signals it raised and, when they warrant one, what the agent
/// should do about them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// The signals the call raised (often none).
    pub signals: Vec<Signal>,
    /// The intervention they led to, if any (see the `intervene` organ). Boxed: most calls
    /// return none, and a small report is cheaper to return.
    pub intervention: Option<Box<Intervention>>,
}

impl Report {
    /// No signal (and so no intervention).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }
}

/// What the judge decided about a proposed intervention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Issue it as proposed.
    Accept,
    /// Issue nothing (the signals still count as acted on for the task's gates).
    Veto,
    /// Issue it with this strategy instead; the outcome reported later teaches about this one.
    Pick(Strategy),
}
