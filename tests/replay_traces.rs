//! `ace eval` and `ace replay` on the shared development data (real tau-bench and Who&When runs,
//! Loghub-2k), against the cross-validated targets of issue 23; and the command line as a user
//! runs it.
#![cfg(feature = "cli")]
mod common;
use common::ace;

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

/// The figure at `path` (`a.b.c`) of a JSON object, as a number.
fn num(v: &serde_json::Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_f64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// `ace eval --json` on the development data holds the cross-validated targets of issue 23
/// (the in-sample figures are printed, not held: they were tuned on). Floors sit slightly under
/// what `ace eval` measured.
#[test]
fn eval_holds_the_cross_validated_figures() {
    let Some(root) = traces() else { return };
    let data = root.parent().unwrap().to_str().unwrap().to_owned();
    let (ok, out, err) = ace(&["eval", "--json", "--data", &data]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&v).unwrap());

    // Traces: 5 folds by task, settings chosen on 4, scored on the 5th, beside the first-error
    // rule on the same folds.
    let sets = v["traces"]["sets"].as_array().unwrap();
    let set = |name: &str| sets.iter().find(|s| s["name"].as_str().unwrap().starts_with(name)).unwrap();
    let tau = set("tau_airline_dev");
    assert!(num(tau, "cross_validated.precision") >= 0.90, "tau cv precision");
    let rule = num(tau, "baseline_cross_validated.recall");
    assert!(num(tau, "cross_validated.recall") >= rule, "tau cv recall under the first-error rule's {rule}");
    assert!(num(tau, "cross_validated.recall") >= 0.18, "tau cv recall");
    let ww = set("who_and_when_algorithm_dev");
    let rule = num(ww, "baseline_cross_validated.recall");
    assert!(num(ww, "cross_validated.recall") >= rule, "Who&When cv recall under the first-error rule's {rule}");
    assert!(num(ww, "cross_validated.recall") >= 0.60, "Who&When cv recall");
    assert!(num(ww, "cross_validated.early_hits") >= 0.92, "Who&When cv early hits");

    // The demo: every injected fault detected, interventions on at most 1% of healthy tasks
    // (the first-error rule alone sends one to about 4%).
    let demo = &v["demo"];
    assert_eq!(demo["all_faults_detected"], true, "{demo}");
    assert!(num(demo, "healthy_tasks") > 10_000.0);
    assert!(num(demo, "false_intervention_rate") <= 0.005, "{demo}");
    let burst = demo["faults"].as_array().unwrap().iter().find(|f| f["fault"] == "verification failing").unwrap();
    assert_eq!(burst["intervened"], burst["agents"], "every agent whose tasks failed got an intervention");

    // Loghub: leave one system out.
    assert_eq!(v["loghub"]["systems"].as_array().unwrap().len(), 8);
    assert!(num(&v["loghub"], "loo_ga") >= 0.92, "Loghub LOO GA");
    assert!(num(&v["loghub"], "loo_fga") >= 0.90, "Loghub LOO FGA");
}

/// Without outcomes the engine acts on its rules; with each task's outcome at its end it
/// learns to leave alone what tasks get over, online, from tasks that ended before.
#[test]
fn task_outcomes_in_a_trace_teach_the_engine_online() {
    let mut text = String::new();
    for k in 0..30 {
        let ts = 1_700_000_000 + k * 1000;
        text += &format!(
            "{{\"ts\":{ts},\"type\":\"error\",\"agent\":\"a\",\"task\":\"t{k}\",\"stage\":\"execution\",\"kind\":\"TypeError\",\"message\":\"x is None\"}}\n"
        );
        text += &format!(
            "{{\"ts\":{},\"type\":\"task_end\",\"agent\":\"a\",\"task\":\"t{k}\",\"success\":true}}\n",
            ts + 1
        );
        text += &format!("{{\"type\":\"label\",\"task\":\"t{k}\",\"failed\":false}}\n");
    }
    let s = replay(text.as_bytes(), "ok", AceConfig::default()).unwrap();
    assert!(s.flagged_tasks <= 3, "learnt after a few: {s:?}");
    let blind = text.replace(",\"success\":true", "");
    assert_eq!(replay(blind.as_bytes(), "blind", AceConfig::default()).unwrap().flagged_tasks, 30);
    let always = AceConfig::builder().intervention_min_failure(0.0).build().unwrap();
    assert_eq!(replay(text.as_bytes(), "always", always).unwrap().flagged_tasks, 30);
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

    // --tasks: one line per labelled task after the summary.
    let (ok, out, err) = ace(&["replay", "--json", "--tasks", trace]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!((lines[1]["task"].as_str(), lines[1]["failed"].as_bool()), (Some("t1"), Some(true)));
    assert_eq!((lines[2]["task"].as_str(), lines[2]["flagged"].as_bool()), (Some("t2"), Some(true)));
    assert_eq!(lines[1]["first_error"], 0);
    assert_eq!(lines[1]["signals"]["task_error"], 1);

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

/// `ace replay` on input with no newline fails at once, naming the line, in bounded memory
/// (`/dev/zero` reached 7 GB before the line limit); a trace that opens with a byte-order mark
/// is read.
#[test]
fn the_command_bounds_lines_and_skips_a_byte_order_mark() {
    let (ok, _, err) = ace(&["replay", "/dev/zero"]);
    assert!(!ok && err.contains("/dev/zero line 1: the line is longer than 1048576 bytes"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bom.jsonl");
    std::fs::write(
        &trace,
        "\u{feff}{\"ts\":1,\"type\":\"task_start\",\"agent\":\"a\",\"task\":\"t\"}\n{\"type\":\"label\",\"task\":\"t\",\"failed\":false}\n",
    )
    .unwrap();
    let (ok, out, err) = ace(&["replay", "--json", trace.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((v["events"].as_u64(), v["tasks"].as_u64()), (Some(1), Some(1)), "{out}");
}
