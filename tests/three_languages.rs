//! One trace, three languages, one answer: the events of `tests/fixtures/three_languages.jsonl`
//! go through the Rust API one call each, and the signals and interventions of every call are
//! compared field by field with `tests/fixtures/three_languages.decisions.json`. The Python
//! (`ace-py/tests/test_three_languages.py`) and Node (`ace-node/test/three_languages.test.mjs`)
//! packages feed the same events through their own calls and compare with the same file, so the
//! three agree with each other, not only each with itself.
//!
//! The calls run on the system clock, as an agent's would, and the whole trace takes well under
//! a second: every window and cooldown of the engine is longer, so time does not enter the
//! answer (but for a staleness's seconds and score, left out of the comparison). The trace is synthetic (24 tasks of two agents: baseline shifts, an error pattern
//! repeated in a task, a tool called again with the same arguments, two tools alternating, a
//! tool failing again after a retry, context refreshes, task ends that teach the engine), and the
//! tool signals are switched on. When the engine's decisions change on purpose, write the file
//! anew with `ACE_BLESS=1 cargo test --test three_languages` and read the diff.

use std::path::PathBuf;

use ace::{Ace, AceConfig, Report, Severity};
use serde_json::{Value, json};

/// The settings every language uses for this trace (the tool signals are off by default).
const SETTINGS: [(&str, &str); 3] = [("tool_repeat", "3"), ("tool_alternation", "4"), ("tool_retry_failures", "2")];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn text<'a>(e: &'a Value, key: &str) -> &'a str {
    e[key].as_str().unwrap_or_else(|| panic!("{key} in {e}"))
}

/// The decisions of one call: its signals and its intervention, without ids and times.
fn decision(event: usize, signals: &[ace::Signal], intervention: Option<&ace::Intervention>) -> Option<Value> {
    if signals.is_empty() && intervention.is_none() {
        return None;
    }
    let signals: Vec<Value> = signals
        .iter()
        .map(|s| {
            json!({
                "kind": s.kind.as_str(), "severity": s.severity.as_str(), "message": s.message,
                "evidence": timeless(serde_json::to_value(&s.evidence).unwrap()),
            })
        })
        .collect();
    let intervention = intervention.map(|i| {
        json!({
            "agent": &*i.agent, "task": &*i.task, "strategy": i.strategy.as_str(), "severity": i.severity.as_str(),
            "reason": i.reason, "signals": i.signals.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            "confidence": i.confidence.score, "runner_up": i.confidence.runner_up.map(|s| s.as_str()),
            "outcomes": i.confidence.outcomes, "novel": i.confidence.novel,
        })
    });
    Some(json!({ "event": event, "signals": signals, "intervention": intervention }))
}

/// Evidence without the fields the wall clock enters: a staleness's seconds since the refresh,
/// and its score, which adds them in (its message keeps the score to two decimals).
fn timeless(mut evidence: Value) -> Value {
    if let Some(e) = evidence.as_object_mut()
        && e.get("type").and_then(Value::as_str) == Some("staleness")
    {
        e.remove("seconds_since_refresh");
        e.remove("score");
    }
    evidence
}

fn report(event: usize, r: &Report) -> Option<Value> {
    decision(event, &r.signals, r.intervention.as_deref())
}

#[test]
fn the_rust_api_gives_the_recorded_answer() {
    let ace = Ace::builder().config(AceConfig::from_settings(SETTINGS).unwrap()).build().unwrap();
    let trace = std::fs::read_to_string(fixture("three_languages.jsonl")).unwrap();
    let mut decisions = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let e: Value = serde_json::from_str(line).unwrap();
        let (agent, task) = (text(&e, "agent"), e["task"].as_str().unwrap_or(""));
        let found = match text(&e, "type") {
            "task_start" => None,
            "stage" => {
                let (stage, duration, success) =
                    (text(&e, "stage"), e["duration_s"].as_f64().unwrap(), e["success"].as_bool().unwrap());
                let r = if let Some(tool) = e["tool"].as_str() {
                    ace.record_tool_call(&ace::ToolCall {
                        agent,
                        task,
                        stage,
                        tool,
                        args_digest: e["args_digest"].as_str(),
                        duration_s: duration,
                        success,
                    })
                } else {
                    let metrics: Vec<(&str, f64)> = e["metrics"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_f64().unwrap())).collect())
                        .unwrap_or_default();
                    ace.record_stage_with(agent, task, stage, duration, success, &metrics)
                };
                report(i, &r.unwrap())
            }
            "error" => {
                let severity = e["severity"].as_str().map(|s| s.parse::<Severity>().unwrap());
                let r = ace
                    .record_error(agent, task, text(&e, "stage"), text(&e, "kind"), text(&e, "message"), severity)
                    .unwrap();
                decision(i, &r.signals, r.intervention.as_deref())
            }
            "context_refresh" => {
                ace.refresh_context(agent).unwrap();
                None
            }
            "task_end" => {
                ace.end_task_with(agent, task, e["success"].as_bool()).unwrap();
                None
            }
            other => panic!("unknown event type {other}"),
        };
        decisions.extend(found);
    }
    let got = Value::Array(decisions);
    let path = fixture("three_languages.decisions.json");
    if std::env::var_os("ACE_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let kinds: std::collections::BTreeSet<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["signals"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()))
        .collect();
    // The trace reaches the organs it was written for, and some calls end in an intervention.
    for kind in ["degradation", "error_accumulation", "tool_repeat", "tool_alternation", "tool_retry_failure"] {
        assert!(kinds.contains(kind), "no {kind} signal: {kinds:?}");
    }
    assert!(got.as_array().unwrap().iter().any(|d| !d["intervention"].is_null()));
    assert!(
        same(&got, &expected),
        "the decisions differ from tests/fixtures/three_languages.decisions.json:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

/// Equal values, numbers within a relative 1e-9: a confidence is a sum whose order can differ
/// in the last bit from one process to the next. The bindings compare the same way.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
