//! `ace replay` on the shared development traces (real tau-bench and Who&When runs), against the
//! targets of issue 4, with the default configuration; and the command line as a user runs it.
//!
//! The baseline, "intervene at a task's first error", is computed here from the same files, so
//! the comparison holds whatever traces sit in `../shared/data/traces`.
#![cfg(feature = "cli")]
mod common;
use common::ace;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use ace::AceConfig;
use ace::replay::replay;

fn traces() -> Option<PathBuf> {
    let root = PathBuf::from("../shared/data/traces");
    if root.is_dir() {
        return Some(root);
    }
    assert!(std::env::var_os("CI").is_none(), "CI runs next to ../shared/data; it is missing");
    eprintln!("skipped: {} not found (the data lives outside the repository)", root.display());
    None
}

/// (precision, recall) of flagging every task with an error.
fn first_error_rule(text: &str) -> (f64, f64) {
    let mut with_error = HashSet::new();
    let mut failed = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let task = v["task"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str().unwrap() {
            "error" => {
                with_error.insert(task);
            }
            "label" => {
                failed.insert(task, v["failed"].as_bool().unwrap());
            }
            _ => {}
        }
    }
    let true_flags = with_error.iter().filter(|t| failed.get(*t) == Some(&true)).count() as f64;
    let all_failed = failed.values().filter(|f| **f).count() as f64;
    (true_flags / with_error.len() as f64, true_flags / all_failed)
}

#[test]
fn defaults_beat_the_first_error_rule_on_the_development_traces() {
    let Some(root) = traces() else { return };
    let tau = std::fs::read_to_string(root.join("tau_airline_dev.jsonl")).unwrap();
    let (rule_precision, rule_recall) = first_error_rule(&tau);
    let s = replay(tau.as_bytes(), "tau", AceConfig::default()).unwrap();
    eprintln!("tau-bench: ours {s:?}; first-error rule precision {rule_precision:.2} recall {rule_recall:.2}");
    assert!(s.precision.unwrap() >= 0.9, "tau precision {:?}", s.precision);
    assert!(s.recall.unwrap() >= rule_recall, "tau recall {:?} < the rule's {rule_recall:.2}", s.recall);

    let ww = std::fs::read_to_string(root.join("who_and_when_algorithm_dev.jsonl")).unwrap();
    let (_, rule_recall) = first_error_rule(&ww);
    let s = replay(ww.as_bytes(), "ww", AceConfig::default()).unwrap();
    eprintln!("Who&When: ours {s:?}; first-error rule recall {rule_recall:.2}");
    assert!(s.recall.unwrap() >= rule_recall, "Who&When recall {:?} < the rule's {rule_recall:.2}", s.recall);
}

#[test]
fn the_command_takes_settings_from_a_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut text = String::new();
    for task in ["t1", "t2"] {
        text += &format!(
            "{{\"ts\":1,\"type\":\"error\",\"agent\":\"a\",\"task\":\"{task}\",\"stage\":\"execution\",\"kind\":\"TypeError\",\"message\":\"boom\"}}\n"
        );
    }
    text +=
        "{\"type\":\"label\",\"task\":\"t1\",\"failed\":true}\n{\"type\":\"label\",\"task\":\"t2\",\"failed\":false}\n";
    std::fs::write(&trace, text).unwrap();
    let trace = trace.to_str().unwrap();

    let (ok, out, err) = ace(&["replay", "--json", trace]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((v["flagged_tasks"].as_u64(), v["precision"].as_f64()), (Some(2), Some(0.5)));

    let config = dir.path().join("ace.env");
    std::fs::write(&config, "# quieter\nACE_TASK_ERROR_SEVERITY=high # only crashes\n").unwrap();
    let (ok, out, err) = ace(&["replay", "--json", "--config", config.to_str().unwrap(), trace]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["flagged_tasks"], 0);
    assert!(v["precision"].is_null());

    let (ok, out, _) =
        ace(&["replay", "--json", "--config", config.to_str().unwrap(), "--set", "ACE_TASK_ERROR_SEVERITY=low", trace]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["flagged_tasks"], 2, "--set wins");

    for (args, needle) in [
        (vec!["--set", "ACE_NOPE=1"], "unknown setting \"ACE_NOPE\""),
        (vec!["--set", "ACE_LONG_TASK_QUANTILE"], "expected KEY=VALUE"),
        (vec!["--set", "ACE_LONG_TASK_QUANTILE=2"], "ACE_LONG_TASK_QUANTILE"),
        (vec!["--config", "/no/such/file"], "/no/such/file"),
    ] {
        let mut all = vec!["replay"];
        all.extend(args);
        all.push(trace);
        let (ok, _, err) = ace(&all);
        assert!(!ok && err.contains(needle), "{all:?}: {err}");
    }
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"ts\":1,\"type\":\"task_start\",\"agent\":\"a\",\"task\":\"t\"}\n{\"ts\":2,\"type\":\"stage\"}\n",
    )
    .unwrap();
    let (ok, _, err) = ace(&["replay", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("line 2: missing `agent`"), "{err}");
}
