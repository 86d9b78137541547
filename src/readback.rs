//! The read-back records as JSON, in one shape for every reader: `ace interventions --json`,
//! `ace errors --json`, `ace patterns --json`, the listener's `/api/` and the bindings' read-back
//! calls. Times are Unix seconds (`ts`) and RFC 3339 UTC (`time`); ids are 16 hex digits.

use ace_core::errors::PatternRecord;
use ace_core::store::{ErrorRecord, InterventionRecord};
use serde_json::{Value, json};

/// An audited intervention, with its reason, the signals behind it and its outcome (`null`
/// until reported).
#[must_use]
pub fn intervention_json(r: &InterventionRecord) -> Value {
    let signals: Value = serde_json::from_str(&r.signals_json).unwrap_or(Value::Null);
    json!({
        "ts": r.ts.as_secs_f64(),
        "time": r.ts.to_rfc3339(),
        "id": r.id.to_string(),
        "agent": &*r.agent,
        "task": &*r.task,
        "strategy": r.strategy.as_str(),
        "severity": r.severity.as_str(),
        "signal_kind": r.signal_kind.to_string(),
        "reason": r.reason,
        "signals": signals,
        "outcome": r.outcome,
    })
}

/// A stored error, with the pattern it was grouped into.
#[must_use]
pub fn error_json(r: &ErrorRecord) -> Value {
    json!({
        "ts": r.ts.as_secs_f64(),
        "time": r.ts.to_rfc3339(),
        "agent": &*r.agent,
        "task": &*r.task,
        "stage": &*r.stage,
        "kind": &*r.kind,
        "message": &*r.message,
        "severity": r.severity.as_str(),
        "pattern": r.pattern.to_string(),
    })
}

/// An error pattern and how many errors it grouped.
#[must_use]
pub fn pattern_json(p: &PatternRecord) -> Value {
    json!({ "id": p.id.to_string(), "kind": p.kind, "template": p.template, "count": p.count })
}

/// A signal the engine raised (held in memory, see `Ace::recent_signals`), with its evidence.
#[must_use]
pub fn signal_json(s: &ace_core::Signal) -> Value {
    json!({
        "ts": s.at.as_secs_f64(),
        "time": s.at.to_rfc3339(),
        "agent": &*s.agent,
        "task": s.task.as_deref(),
        "stage": s.stage.as_deref(),
        "kind": s.kind.as_str(),
        "severity": s.severity.as_str(),
        "message": s.message,
        "evidence": serde_json::to_value(&s.evidence).unwrap_or(Value::Null),
    })
}

/// A list of records as a JSON array.
#[must_use]
pub fn list<T>(records: &[T], f: impl Fn(&T) -> Value) -> Value {
    Value::Array(records.iter().map(f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ace_core::{ErrorQuery, InterventionQuery};

    #[test]
    fn records_read_back_as_json() {
        let ace = ace_core::Ace::builder().build().unwrap();
        ace.record_error("a", "t", "execution", "Timeout", "timed out after 30s", None).unwrap();
        ace.flush().unwrap();
        let errors = ace.errors(&ErrorQuery::all()).unwrap();
        let v = list(&errors, error_json);
        assert_eq!(v[0]["agent"], "a");
        assert_eq!(v[0]["kind"], "Timeout");
        assert_eq!(v[0]["pattern"].as_str().unwrap().len(), 16);
        assert!(v[0]["time"].as_str().unwrap().ends_with('Z'));
        let p = list(&ace.patterns(), pattern_json);
        assert_eq!(p[0]["id"], v[0]["pattern"]);
        // A first timeout is severe enough for an intervention, audited with its reason.
        let audited = list(&ace.interventions(&InterventionQuery::all()).unwrap(), intervention_json);
        assert_eq!(audited[0]["agent"], "a");
        assert!(!audited[0]["reason"].as_str().unwrap().is_empty(), "{audited}");
        assert!(audited[0]["signals"].is_array(), "{audited}");
        assert_eq!(audited[0]["outcome"], Value::Null);
    }
}
