//! Tool calls through the engine: validation, the trajectory's tool signals and their
//! interventions, and the `tool`/`args_digest` fields of traces, written and replayed.

use ace_core::tool::{TOOL_STAGE, ToolCall, args_digest, digest_json};
use ace_core::{Ace, AceConfig, Evidence, ManualClock, SignalKind, Strategy, Timestamp};

fn engine(config: AceConfig) -> (Ace, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    (Ace::builder().config(config).clock(clock.clone()).build().unwrap(), clock)
}

fn kinds(report: &ace_core::Report) -> Vec<SignalKind> {
    report.signals.iter().map(|s| s.kind).collect()
}

#[test]
fn a_repeated_call_is_a_tool_repeat_answered_by_replan() {
    let (ace, _) = engine(AceConfig::default());
    let d = digest_json(r#"{"flight":"HAT139","date":"2024-05-01"}"#).unwrap();
    let other = digest_json(r#"{"flight":"HAT140"}"#).unwrap();
    assert!(ace.record_tool("a", "t", "search", &d, 0.1, true).unwrap().signals.is_empty());
    assert!(ace.record_tool("a", "t", "search", &other, 0.1, true).unwrap().signals.is_empty());
    assert!(ace.record_tool("a", "t", "search", &d, 0.1, true).unwrap().signals.is_empty());
    let third = ace.record_tool("a", "t", "search", &d, 0.1, true).unwrap();
    assert_eq!(kinds(&third), [SignalKind::ToolRepeat]);
    let s = &third.signals[0];
    assert_eq!(s.stage.as_deref(), Some(TOOL_STAGE));
    let Evidence::ToolCalls { tool, args_digest, count, threshold, window, .. } = &s.evidence else { panic!("{s:?}") };
    assert_eq!((&**tool, args_digest.as_deref(), *count, *threshold, *window), ("search", Some(&*d), 3, 3, 16));
    let i = third.intervention.expect("a repeat warrants an intervention by default");
    assert_eq!(i.strategy, Strategy::Replan);
    assert!(ace.record_tool("a", "t", "search", &d, 0.1, true).unwrap().signals.is_empty(), "once per task");
    // Another task counts on its own; a call without a digest is never a repeat.
    for _ in 0..5 {
        assert!(ace.record_tool("a", "u", "search", "", 0.1, true).unwrap().signals.is_empty());
    }
}

#[test]
fn failing_again_after_a_retry_and_alternating_are_signals() {
    let (ace, _) = engine(AceConfig::default());
    let call = |task: &str, tool: &str, args: &str, ok: bool| {
        let d = digest_json(args).unwrap();
        ace.record_tool_call(&ToolCall {
            agent: "a",
            task,
            stage: "execution",
            tool,
            args_digest: Some(&d),
            duration_s: 0.5,
            success: ok,
        })
        .unwrap()
    };
    assert!(call("t", "book", r#"{"pay":255}"#, false).signals.is_empty());
    let retry = call("t", "book", r#"{"pay":305}"#, false);
    assert_eq!(kinds(&retry), [SignalKind::ToolRetryFailure]);
    assert_eq!(retry.signals[0].stage.as_deref(), Some("execution"));
    assert_eq!(retry.intervention.expect("by default").strategy, Strategy::Reflect);

    let mut seen = Vec::new();
    for i in 0..4 {
        let r = if i % 2 == 0 { call("u", "get", r#"{"id":1}"#, true) } else { call("u", "put", r#"{"id":1}"#, true) };
        seen.extend(kinds(&r));
    }
    assert_eq!(seen, [SignalKind::ToolAlternation]);
    let r = ace.stats();
    assert!(r.signals >= 2, "{r:?}");
}

#[test]
fn bad_tool_names_and_digests_are_typed_errors_and_record_nothing() {
    let (ace, _) = engine(AceConfig::default());
    for (tool, digest) in [("", "abc"), ("a\u{7}b", "abc"), (&*"t".repeat(300), "abc"), ("ok", "has space")] {
        let e = ace.record_tool("a", "t", tool, digest, 0.1, true).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{tool:?} {digest:?}");
    }
    let e = ace.record_tool("a", "t", "ok", &"f".repeat(129), 0.1, true).unwrap_err();
    assert!(e.to_string().contains("args_digest"), "{e}");
    assert_eq!(ace.record_tool("a", "t", "ok", "abc", -1.0, true).unwrap_err().code(), "invalid_input");
    assert_eq!(ace.stats().recorded, 0);
}

#[test]
fn tool_calls_are_traced_and_replayed_with_the_same_decisions() {
    let dir = std::env::temp_dir().join(format!("ace-tool-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.jsonl");
    let _ = std::fs::remove_file(&path);
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let config = AceConfig::builder().trace_path(path.to_str().unwrap()).build().unwrap();
    let ace = Ace::builder().config(config).clock(clock.clone()).build().unwrap();
    let d = args_digest(br#"{"q":"x"}"#);
    let mut live = 0;
    for task in ["t1", "t2"] {
        for step in 0..4 {
            clock.advance(std::time::Duration::from_secs(1));
            let r = ace.record_tool("a", task, "search", &d, 0.25, task == "t1" || step % 2 == 0).unwrap();
            live += usize::from(r.intervention.is_some());
        }
        let call = ToolCall {
            agent: "a",
            task,
            stage: "execution",
            tool: "think",
            args_digest: None,
            duration_s: 0.0,
            success: true,
        };
        ace.record_tool_call_with(&call, &[("tokens_out", 12.0)]).unwrap();
        ace.end_task("a", task).unwrap();
    }
    ace.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2 * 6);
    assert_eq!(lines[0]["tool"], "search");
    assert_eq!(lines[0]["args_digest"], d.as_str());
    assert_eq!(lines[0]["stage"], "tool");
    assert_eq!(lines[4]["tool"], "think");
    assert!(lines[4].get("args_digest").is_none(), "no digest, no field");
    assert_eq!(lines[4]["metrics"]["tokens_out"], 12.0);
    assert!(live > 0);
    let score = ace_core::replay::replay(text.as_bytes(), "recorded", AceConfig::default()).unwrap();
    assert_eq!(score.interventions as usize, live, "replay reads tool and args_digest back");
    // Without the tool fields the same stages make no tool signal.
    let stripped: String = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("tool");
            format!("{l}\n")
        })
        .collect();
    let plain = ace_core::replay::replay(stripped.as_bytes(), "stripped", AceConfig::default()).unwrap();
    assert!(plain.interventions < score.interventions, "{plain:?} {score:?}");
    // A bad tool field names its line.
    let bad = r#"{"ts":1,"type":"stage","agent":"a","task":"t","stage":"s","duration_s":1,"success":true,"tool":7}"#;
    let e = ace_core::replay::replay(bad.as_bytes(), "bad.jsonl", AceConfig::default()).unwrap_err();
    assert!(e.to_string().contains("bad.jsonl line 1: `tool` must be a string"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_tool_signal_can_be_turned_off() {
    let config = AceConfig::builder().tool_repeat(0).tool_alternation(0).tool_retry_failures(0).build().unwrap();
    let (ace, _) = engine(config);
    for i in 0..8 {
        let d = if i % 2 == 0 { "aa" } else { "bb" };
        assert!(ace.record_tool("a", "t", "x", d, 0.1, false).unwrap().signals.iter().all(|s| !matches!(
            s.kind,
            SignalKind::ToolRepeat | SignalKind::ToolAlternation | SignalKind::ToolRetryFailure
        )));
    }
    for (key, value) in [("ACE_TOOL_REPEAT", "1"), ("ACE_TOOL_ALTERNATION", "3"), ("ACE_TOOL_RETRY_FAILURES", "17")] {
        let e = AceConfig::from_lookup(|k| (k == key).then(|| value.to_owned())).unwrap_err();
        assert_eq!(e.code(), "config", "{key}");
    }
}
