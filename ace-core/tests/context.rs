//! Context staleness through the public engine API, on a manual clock.

use std::time::Duration;

use ace_core::{Ace, Evidence, ManualClock, Signal, SignalKind, Timestamp};

fn engine() -> (Ace, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    (Ace::builder().clock(clock.clone()).build().unwrap(), clock)
}

fn stale(signals: &[Signal]) -> Vec<&Signal> {
    signals.iter().filter(|s| s.kind == SignalKind::ContextStale).collect()
}

#[test]
fn stages_make_the_context_stale_once_until_a_refresh() {
    let (ace, _) = engine();
    assert_eq!(ace.context_staleness("a"), None);
    let mut fired_at = Vec::new();
    for i in 1..=200u32 {
        if i == 120 {
            ace.refresh_context("a").unwrap();
            assert_eq!(ace.context_staleness("a"), Some(0.0));
        }
        let signals = ace.record_stage("a", &format!("t{i}"), "execution", 1.0, true).unwrap().signals;
        if !stale(&signals).is_empty() {
            fired_at.push(i);
        }
    }
    // 80 stages give 80 / (80 + 20) = 0.8: the signal comes with the 80th, and again 80 after the refresh.
    assert_eq!(fired_at, [80, 199]);
    let (ace, _) = engine();
    for i in 0..20 {
        ace.record_stage("a", &format!("t{i}"), "execution", 1.0, true).unwrap();
    }
    assert!((ace.context_staleness("a").unwrap() - 0.5).abs() < 1e-9);
    assert!(ace.metrics_text().contains("ace_context_staleness{agent_id=\"a\"} 0.5"), "{}", ace.metrics_text());
}

#[test]
fn time_and_errors_count_too() {
    let (ace, clock) = engine();
    ace.record_stage("a", "t1", "planning", 1.0, true).unwrap();
    clock.advance(Duration::from_secs(40 * 60));
    let signals = ace.record_stage("a", "t1", "planning", 1.0, true).unwrap().signals;
    let s = stale(&signals);
    assert_eq!(s.len(), 1, "40 minutes and 2 stages: {signals:?}");
    let Evidence::Staleness { score, seconds_since_refresh, steps_since_refresh, errors_since_refresh, threshold } =
        s[0].evidence
    else {
        panic!()
    };
    assert!(score >= threshold && threshold == 0.8);
    assert_eq!((seconds_since_refresh, steps_since_refresh, errors_since_refresh), (2400.0, 2, 0));
    assert!(s[0].message.contains("context is stale"), "{}", s[0].message);

    let (ace, _) = engine();
    let mut fired = None;
    for i in 1..=20 {
        let r = ace.record_error("b", &format!("t{i}"), "execution", "ToolError", &format!("tool {i} failed"), None);
        if !stale(&r.unwrap().signals).is_empty() {
            fired = Some(i);
            break;
        }
    }
    assert_eq!(fired, Some(12), "12 errors alone give 12 / (12 + 3) = 0.8");
}

#[test]
fn bad_input_and_closed_engines() {
    let (ace, _) = engine();
    assert_eq!(ace.refresh_context("").unwrap_err().code(), "invalid_input");
    assert_eq!(ace.refresh_context(&"x".repeat(100_000)).unwrap_err().code(), "invalid_input");
    ace.refresh_context("never-seen").unwrap();
    assert_eq!(ace.context_staleness("never-seen"), Some(0.0));
    ace.close().unwrap();
    assert_eq!(ace.refresh_context("a").unwrap_err().code(), "closed");
}
