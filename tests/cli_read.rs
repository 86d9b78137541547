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
    // A duration past what the clock can hold is refused, not a panic (issue 21 item 5's class).
    for duration in ["1e300", "NaN", "-1"] {
        let (ok, _, err) = ace(&["demo", "--store", "memory", &format!("--duration={duration}")]);
        assert!(!ok && err.contains("invalid_input") && err.contains("duration") && !err.contains("panicked"), "{err}");
    }
    // `ace patterns eval` still evaluates.
    let (ok, out, err) = ace(&["patterns", "eval", "--json", "tests/fixtures/mini_2k.log_structured.csv"]);
    assert!(ok && out.contains("\"dataset\":\"mini\""), "{out}{err}");
}

#[test]
fn demo_serve_keeps_the_demo_engine_up_for_the_page() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    /// Kills the demo however the test ends (it serves until stopped).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ace"))
        .args(["demo", "--agents", "5", "--tasks", "30", "--store", "memory", "--json", "--serve", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = Killed(child);
    // With --json the serving line goes to standard error, so the summary stays one document.
    let mut url = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("serving the demo's engine on ") {
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let url = url.expect("the demo says where it serves");
    let out = Command::new("curl").args(["-s", "--max-time", "10", &format!("{url}api/agents")]).output().unwrap();
    let agents: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(agents["total"], 5, "{agents}");
    let out = Command::new("curl").args(["-s", "--max-time", "10", &format!("{url}api/patterns")]).output().unwrap();
    assert!(!serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().is_empty());
}
