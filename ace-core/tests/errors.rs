//! The error organ through the public engine API, on a manual clock.

use std::time::Duration;

use ace_core::errors::TRUNCATION_MARKER;
use ace_core::store::ErrorQuery;
use ace_core::{Ace, ErrorScope, Evidence, ManualClock, MemoryStore, Severity, SignalKind, Store, Timestamp};

fn engine(store: &MemoryStore) -> (Ace, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_micros(1_000_000_000));
    // Accumulation is under test here; the first-error signal has its own test (trajectory.rs).
    let config = ace_core::AceConfig::builder().task_error_severity(None).build().unwrap();
    let ace = Ace::builder().config(config).store(store.clone()).clock(clock.clone()).build().unwrap();
    (ace, clock)
}

fn kinds(signals: &[ace_core::Signal]) -> Vec<SignalKind> {
    signals.iter().map(|s| s.kind).collect()
}

#[test]
fn a_repeated_pattern_accumulates_within_the_window_only() {
    let store = MemoryStore::new();
    let (ace, clock) = engine(&store);
    let rec = |i: u32| {
        ace.record_error("a", "t", "execution", "ValueError", &format!("could not parse plan step {i}"), None).unwrap()
    };
    assert!(rec(1).signals.is_empty());
    clock.advance(Duration::from_secs(100));
    let second = rec(2);
    assert_eq!(second.occurrences, 2);
    assert!(second.signals.is_empty());
    clock.advance(Duration::from_secs(100));
    let third = rec(3);
    assert_eq!(kinds(&third.signals), [SignalKind::ErrorAccumulation]);
    let Evidence::ErrorPattern { occurrences, scope, ref template, .. } = third.signals[0].evidence else {
        panic!("{:?}", third.signals[0].evidence)
    };
    assert_eq!((occurrences, scope, &**template), (3, ErrorScope::Task, "could not parse plan step <*>"));
    assert!(third.signals[0].message.contains("3 times within 300s in task t"), "{}", third.signals[0].message);
    assert!(rec(4).signals.is_empty(), "once per window");

    // 301 s later only the errors of the last 300 s count.
    clock.advance(Duration::from_secs(301));
    let later = rec(5);
    assert_eq!(later.occurrences, 1);
    assert!(later.signals.is_empty());
}

#[test]
fn a_window_slides() {
    let store = MemoryStore::new();
    let (ace, clock) = engine(&store);
    for _ in 0..3 {
        let r =
            ace.record_error("a", "t", "execution", "KeyError", "missing key 'x1'", Some(Severity::Medium)).unwrap();
        assert!(r.signals.is_empty(), "200 s apart: never 3 within 300 s");
        clock.advance(Duration::from_secs(200));
    }
}

#[test]
fn the_same_pattern_across_tasks_accumulates_in_the_agent() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let mut last = Vec::new();
    for t in ["t1", "t2", "t3"] {
        last = ace.record_error("a", t, "execution", "RateLimitError", "429 from provider", None).unwrap().signals;
    }
    assert_eq!(kinds(&last), [SignalKind::ErrorAccumulation]);
    let Evidence::ErrorPattern { scope, .. } = last[0].evidence else { panic!() };
    assert_eq!(scope, ErrorScope::Agent);
    // Another agent is counted apart.
    assert!(
        ace.record_error("b", "t1", "execution", "RateLimitError", "429 from provider", None)
            .unwrap()
            .signals
            .is_empty()
    );
}

#[test]
fn critical_errors_signal_at_once() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let r = ace.record_error("a", "t", "execution", "RuntimeError", "FATAL: out of memory in tool", None).unwrap();
    assert_eq!(r.severity, Severity::Critical, "inferred from the message");
    assert_eq!(kinds(&r.signals), [SignalKind::CriticalError]);
    let given = ace.record_error("a", "t2", "execution", "ValueError", "bad plan", Some(Severity::Critical)).unwrap();
    assert_eq!(kinds(&given.signals), [SignalKind::CriticalError]);
}

#[test]
fn repeats_escalate_severity() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let rec =
        |s: Option<Severity>| ace.record_error("a", "t", "execution", "ToolError", "search tool failed", s).unwrap();
    assert_eq!(rec(Some(Severity::Low)).severity, Severity::Low);
    let up = rec(Some(Severity::High));
    assert_eq!(kinds(&up.signals), [SignalKind::ErrorEscalation]);
    let Evidence::ErrorPattern { severity, previous_severity, .. } = up.signals[0].evidence else { panic!() };
    assert_eq!((previous_severity, severity), (Severity::Low, Severity::High));

    // Repetition alone: medium errors become high at 2 x threshold (6) occurrences.
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let mut seen = Vec::new();
    for i in 1..=6 {
        let r = ace.record_error("a", "t", "execution", "ToolError", "search tool failed", None).unwrap();
        seen.push((i, r.severity, kinds(&r.signals)));
    }
    assert_eq!(seen[4].1, Severity::Medium);
    assert_eq!(seen[5], (6, Severity::High, vec![SignalKind::ErrorEscalation]));
}

#[test]
fn errors_spreading_over_stages_cascade() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let mut signals = Vec::new();
    for (stage, message) in [("planning", "no plan"), ("execution", "tool failed"), ("verification", "check failed")] {
        signals = ace.record_error("a", "t", stage, "AgentError", message, None).unwrap().signals;
    }
    assert_eq!(kinds(&signals), [SignalKind::ErrorCascade]);
    let Evidence::Cascade { ref stages, .. } = signals[0].evidence else { panic!() };
    assert_eq!(stages, &["planning", "execution", "verification"]);
    assert!(ace.record_error("a", "t", "reflection", "AgentError", "x", None).unwrap().signals.is_empty());
}

#[test]
fn ending_a_task_releases_its_windows() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    for _ in 0..2 {
        ace.record_error("a", "t", "execution", "E", "boom", None).unwrap();
    }
    assert_eq!(ace.stats().open_tasks, 1);
    assert!(ace.end_task("a", "t").unwrap());
    assert!(!ace.end_task("a", "t").unwrap());
    assert_eq!(ace.stats().open_tasks, 0);
    let r = ace.record_error("a", "t", "execution", "E", "boom", None).unwrap();
    assert_eq!(r.occurrences, 1, "the task starts afresh");
}

#[test]
fn errors_are_stored_with_their_pattern_and_counted() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    let r = ace.record_error("a", "t", "execution", "TimeoutError", "model call took 31s", None).unwrap();
    assert_eq!(r.severity, Severity::High);
    ace.flush().unwrap();
    let stored = store.query_errors(&ErrorQuery::all()).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].pattern, &*stored[0].message), (r.pattern, "model call took 31s"));
    assert_eq!(store.load_patterns().unwrap()[0].id, r.pattern);
    let text = ace.metrics_text();
    assert!(text.contains("ace_errors_total{agent_id=\"a\",stage=\"execution\",severity=\"high\"} 1"), "{text}");
    assert_eq!(ace.stats().errors, 1);
    assert_eq!(ace.patterns()[0].template, "model call took <*>");
}

#[test]
fn bad_input_is_refused_or_handled() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    for (agent, stage, kind) in
        [("", "execution", "E"), ("a", "Bad Stage", "E"), ("a", "execution", ""), ("a", "execution", "E\n")]
    {
        let e = ace.record_error(agent, "t", stage, kind, "m", None).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{agent:?} {stage:?} {kind:?}");
    }
    assert!(ace.metrics_text().contains("ace_events_rejected_total{reason=\"invalid_kind\"} 2"));

    // Empty, huge and degenerate messages are handled.
    ace.record_error("a", "t", "execution", "E", "", None).unwrap();
    let huge = "x".repeat(1 << 20);
    let r = ace.record_error("a", "t", "execution", "E", &huge, None).unwrap();
    assert!(r.truncated);
    let spam = "spam ".repeat(100_000);
    assert!(ace.record_error("a", "t", "execution", "E", &spam, None).unwrap().truncated);
    ace.flush().unwrap();
    let stored = store.query_errors(&ErrorQuery::all()).unwrap();
    assert!(stored[1].message.ends_with(TRUNCATION_MARKER));
    assert!(stored[1].message.len() < 20 * 1024);
    assert!(ace.metrics_text().contains("ace_error_messages_truncated_total 2"));

    ace.close().unwrap();
    assert_eq!(ace.record_error("a", "t", "execution", "E", "m", None).unwrap_err().code(), "closed");
    assert_eq!(ace.end_task("a", "t").unwrap_err().code(), "closed");
}

#[test]
fn a_flood_of_unique_errors_stays_bounded() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    for i in 0..30_000u32 {
        // Unique words (no digits), so each is a new pattern until evicted.
        let word: String = (0..8).map(|k| char::from(b'a' + ((i >> (k * 2)) % 26) as u8)).collect();
        ace.record_error("a", &format!("t{}", i % 100), "execution", "E", &format!("{word} {word} failed"), None)
            .unwrap();
    }
    assert!(ace.stats().patterns <= 10_000, "{}", ace.stats().patterns);
}

#[test]
fn threads_recording_errors_at_once_lose_nothing() {
    let store = MemoryStore::new();
    let config = ace_core::AceConfig::builder().buffer_capacity(1_000_000).task_error_severity(None).build().unwrap();
    let ace = Ace::builder().store(store.clone()).config(config).build().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let ace = ace.clone();
            s.spawn(move || {
                for i in 0..5_000 {
                    let task = format!("t{t}-{}", i / 50);
                    let msg = format!("tool call {i} failed with status 50{}", i % 4);
                    ace.record_error(&format!("agent-{}", i % 7), &task, "execution", "ToolError", &msg, None).unwrap();
                    if i % 50 == 49 {
                        ace.end_task(&format!("agent-{}", i % 7), &task).unwrap();
                    }
                }
            });
        }
    });
    ace.flush().unwrap();
    assert_eq!(ace.stats().errors, 20_000);
    let stored = store.query_errors(&ErrorQuery::all()).unwrap();
    assert_eq!(stored.len(), 20_000);
    // One pattern for all of them, whatever the interleaving.
    assert_eq!(ace.patterns().len(), 1, "{:?}", ace.patterns());
    assert!(stored.iter().all(|r| r.pattern == stored[0].pattern));
}

#[test]
fn stats_count_error_signals_too() {
    let store = MemoryStore::new();
    let (ace, _) = engine(&store);
    for i in 0..3 {
        ace.record_error("a", "t", "execution", "E", &format!("boom {i}"), None).unwrap();
    }
    assert_eq!(ace.stats().signals, 1, "the accumulation");
}

#[test]
fn task_windows_are_capped_and_the_most_recent_keep_accumulating() {
    let config = ace_core::AceConfig::builder().task_error_severity(None).build().unwrap();
    let clock = ManualClock::new(Timestamp::from_micros(1_000_000_000));
    // No store: nothing is buffered, so 100,000 errors cost memory only in the organ.
    let ace = Ace::builder().config(config).clock(clock.clone()).build().unwrap();
    for i in 0..100_000 {
        clock.advance(Duration::from_millis(1));
        ace.record_error("a", &format!("t{i}"), "execution", "ValueError", "could not parse plan step 3", None)
            .unwrap();
    }
    let held = ace.stats().open_tasks;
    assert!(held <= 57_344, "task windows held: {held}");
    // The newest task's window survived the evictions: two more errors make three.
    let mut last = Vec::new();
    for _ in 0..2 {
        clock.advance(Duration::from_millis(1));
        last = ace
            .record_error("a", "t99999", "execution", "ValueError", "could not parse plan step 3", None)
            .unwrap()
            .signals;
    }
    assert!(kinds(&last).contains(&SignalKind::ErrorAccumulation), "{last:?}");
}
