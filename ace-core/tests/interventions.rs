//! Interventions through the public engine API: returned by the call that caused them,
//! delivered to subscribers, counted, gated per task, and taught by outcomes.

use std::sync::{Arc, Mutex};

use ace_core::{Ace, AceConfig, ManualClock, Strategy, Timestamp};

/// Accumulation is the signal under test here; the first-error signal is turned off.
fn engine(config: AceConfig) -> Ace {
    let mut config = config;
    config.task_error_severity = None;
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    Ace::builder().config(config).clock(clock).build().unwrap()
}

fn repeated_errors(ace: &Ace, task: &str) -> Option<Box<ace_core::Intervention>> {
    let mut last = None;
    for i in 0..3 {
        last = ace
            .record_error("a", task, "execution", "ToolError", &format!("tool call {i} failed"), None)
            .unwrap()
            .intervention;
    }
    last
}

#[test]
fn the_call_that_raises_the_signal_returns_the_intervention_and_subscribers_get_it() {
    let ace = engine(AceConfig::default());
    let seen: Arc<Mutex<Vec<Strategy>>> = Arc::default();
    let sink = seen.clone();
    ace.subscribe(move |i| sink.lock().unwrap().push(i.strategy));
    ace.subscribe(|_| panic!("a broken subscriber"));
    let i = repeated_errors(&ace, "t1").expect("three repeats of one error in a task");
    assert_eq!(i.strategy, Strategy::Reflect, "the rule's first choice");
    assert_eq!((&*i.agent, &*i.task), ("a", "t1"));
    assert!(i.reason.starts_with("reflect: a execution: ToolError"), "{}", i.reason);
    assert_eq!(*seen.lock().unwrap(), [Strategy::Reflect]);
    let text = ace.metrics_text();
    assert!(text.contains("ace_interventions_total{agent_id=\"a\",type=\"reflect\"} 1"), "{text}");
    assert!(text.contains("ace_intervention_latency_seconds_count{type=\"reflect\"} 1"), "{text}");
    assert!(text.contains("ace_intervention_subscriber_failures_total 1"), "{text}");
    ace.report_outcome(i.id, true).unwrap();
    assert_eq!(ace.report_outcome(i.id, true).unwrap_err().code(), "invalid_input");
    // Audited: the intervention and, later, its outcome.
    ace.flush().unwrap();
    let audited = ace.store().query_interventions(Some("a"), 0).unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!((audited[0].id, audited[0].strategy, audited[0].outcome), (i.id, Strategy::Reflect, Some(true)));
    assert!(audited[0].signals_json.contains("error_accumulation"), "{}", audited[0].signals_json);
}

#[test]
fn gates_are_per_task_and_end_with_it() {
    let ace = engine(AceConfig::default());
    assert!(repeated_errors(&ace, "t1").is_some());
    assert!(repeated_errors(&ace, "t1").is_none(), "repeats in the same task and window: acted on once");
    ace.end_task("a", "t1").unwrap();
    assert!(repeated_errors(&ace, "t1").is_some(), "a task that starts again starts clean");
    let off = engine(AceConfig::builder().intervention_enabled(false).build().unwrap());
    assert!(repeated_errors(&off, "t1").is_none());
    off.close().unwrap();
    assert_eq!(off.report_outcome("0000000000000001".parse().unwrap(), true).unwrap_err().code(), "closed");
}

#[test]
fn the_same_seed_gives_the_same_interventions_under_ids_of_their_own() {
    let run = || {
        let ace = engine(AceConfig::builder().intervention_seed(7).build().unwrap());
        (0..50).filter_map(|t| repeated_errors(&ace, &format!("t{t}"))).map(|i| (i.id, i.strategy)).collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 50);
    let strategies = |v: &[(ace_core::InterventionId, Strategy)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(strategies(&a), strategies(&b));
    // Each engine counts up from an id of its own, so two engines' records never share an id.
    assert!(a.iter().all(|x| b.iter().all(|y| x.0 != y.0)));
    assert!(a.windows(2).all(|w| w[1].0.0 == w[0].0.0.wrapping_add(1)));
}
