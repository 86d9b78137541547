//! `ace interventions`, `ace errors` and `ace patterns` as a user runs them: the real binary
//! reading back a SQLite file an engine wrote.
#![cfg(feature = "cli")]

mod common;
use common::ace;
use serde_json::Value;

/// A SQLite store holding errors of two agents (and whatever interventions they drew).
fn store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ace.db").display());
    let engine = ::ace::open(&url, [("ACE_SPILL_DIR", "off")]).unwrap();
    for i in 0..6 {
        engine
            .record_error("agent-a", &format!("t{i}"), "execution", "Timeout", &format!("call {i} timed out"), None)
            .unwrap();
    }
    engine.record_error("agent-b", "t1", "planning", "ValueError", "bad plan", None).unwrap();
    engine.close().unwrap();
    (dir, url)
}

fn json(args: &[&str]) -> Vec<Value> {
    let (ok, out, err) = ace(args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}")).as_array().unwrap().clone()
}

#[test]
fn errors_interventions_and_patterns_read_back_as_json_and_text() {
    let (_dir, url) = store();
    let errors = json(&["errors", "--store", &url, "--json"]);
    assert_eq!(errors.len(), 7);
    assert_eq!(errors[0]["agent"], "agent-b", "newest first");
    let a = json(&["errors", "--store", &url, "--agent", "agent-a", "--limit", "2", "--json"]);
    assert_eq!(
        a.iter().map(|e| e["message"].as_str().unwrap()).collect::<Vec<_>>(),
        ["call 5 timed out", "call 4 timed out"]
    );
    assert_eq!(json(&["errors", "--store", &url, "--since", "1h", "--json"]).len(), 7);
    assert!(json(&["errors", "--store", &url, "--since", "4000000000", "--json"]).is_empty());

    let patterns = json(&["patterns", "--store", &url, "--json"]);
    let timeout = patterns.iter().find(|p| p["kind"] == "Timeout").expect("the Timeout pattern");
    assert_eq!(timeout["count"], 6);
    assert_eq!(timeout["id"], a[0]["pattern"]);

    let interventions = json(&["interventions", "--store", &url, "--json"]);
    assert!(!interventions.is_empty(), "six timeouts draw an intervention");
    assert!(interventions.iter().all(|i| i["reason"].as_str().is_some_and(|r| !r.is_empty())));
    let (ok, text, err) = ace(&["interventions", "--store", &url]);
    assert!(ok && text.contains(interventions[0]["reason"].as_str().unwrap()), "{text}{err}");
    let (ok, text, err) = ace(&["errors", "--store", &url, "--limit", "1"]);
    assert!(ok && text.contains("bad plan") && text.lines().count() == 1, "{text}{err}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (_dir, url) = store();
    let (ok, _, err) = ace(&["errors", "--store", &url, "--since", "yesterday"]);
    assert!(!ok && err.contains("invalid_input") && err.contains("since"), "{err}");
    let (ok, _, err) = ace(&["errors", "--store", &url, "--limit", "1000000"]);
    assert!(!ok && err.contains("limit"), "{err}");
    let (ok, _, err) = ace(&["patterns", "--store", &url, "--agent", "a"]);
    assert!(!ok && err.contains("--agent"), "{err}");
    // `ace patterns eval` still evaluates.
    let (ok, out, err) = ace(&["patterns", "eval", "--json", "tests/fixtures/mini_2k.log_structured.csv"]);
    assert!(ok && out.contains("\"dataset\":\"mini\""), "{out}{err}");
}
