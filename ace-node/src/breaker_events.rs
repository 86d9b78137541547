//! A breaker's events for JS: the core's subscriber (on whichever thread caused the event)
//! queues them, bounded, and `Breaker` in `ace.js` drains the queue after its own calls and
//! emits them to its listeners; Rust never waits on JS.

use std::collections::VecDeque;
use std::sync::Arc;

use ace::Ace;
use ace::breaker::{BreakerEvent, EventKind};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Events waiting for JS; the oldest are dropped past this many.
const MAX_QUEUED: usize = 1024;

/// The queue of one breaker handle's events.
pub(crate) type Queue = Arc<Mutex<VecDeque<Value>>>;

fn event(e: &BreakerEvent) -> Value {
    let at = e.at.as_micros();
    let at = (at != 0).then(|| at as f64 / 1e6);
    let mut v = match &e.kind {
        EventKind::Transition { from, to, why } => {
            json!({"kind": "transition", "from": from.as_str(), "to": to.as_str(), "why": why})
        }
        EventKind::Rejected { state } => json!({"kind": "not_permitted", "state": state.as_str()}),
        EventKind::FailureRateExceeded { rate } => json!({"kind": "failure_rate_exceeded", "rate": rate}),
        EventKind::SlowCallRateExceeded { rate } => json!({"kind": "slow_call_rate_exceeded", "rate": rate}),
        EventKind::IgnoredError => json!({"kind": "ignored_error"}),
        EventKind::Reset => json!({"kind": "reset"}),
        _ => json!({"kind": "other"}),
    };
    v["breaker"] = json!(&*e.name);
    v["at"] = json!(at);
    v
}

/// Queues every event of the breaker `name` of `ace` into `queue`.
pub(crate) fn subscribe(ace: &Ace, name: &str, queue: Queue) {
    let name = name.to_owned();
    ace.breakers().subscribe(move |e| {
        if *e.name != *name {
            return;
        }
        let mut q = queue.lock();
        if q.len() == MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(event(e));
    });
}
