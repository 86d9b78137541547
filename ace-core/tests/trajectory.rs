//! Trajectory signals through the engine: loops, runs of failures, over-long tasks, and the
//! first real error of a task; and the interventions they lead to.

use ace_core::{Ace, AceConfig, Evidence, ManualClock, Severity, SignalKind, Strategy, Timestamp};

fn engine(config: AceConfig) -> (Ace, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    (Ace::builder().config(config).clock(clock.clone()).build().unwrap(), clock)
}

fn kinds(report: &ace_core::Report) -> Vec<SignalKind> {
    report.signals.iter().map(|s| s.kind).collect()
}

#[test]
fn the_same_stage_failing_three_times_in_a_row_is_a_loop() {
    let (ace, _) = engine(AceConfig::default());
    let fail = |task: &str| ace.record_stage("a", task, "execution", 1.0, false).unwrap();
    assert!(fail("t").signals.is_empty());
    // A success of another stage does not break this stage's run...
    ace.record_stage("a", "t", "planning", 1.0, true).unwrap();
    assert!(fail("t").signals.is_empty());
    let third = fail("t");
    assert_eq!(kinds(&third), [SignalKind::Loop]);
    let i = third.intervention.expect("a loop warrants an intervention");
    assert_eq!(i.strategy, Strategy::Replan, "the rule's first choice for a loop");
    assert!(i.reason.contains("stage execution of task t failed 3 times in a row"), "{}", i.reason);
    let Evidence::Failures { failures, threshold } = i.signals[0].evidence else { panic!("{:?}", i.signals[0]) };
    assert_eq!((failures, threshold), (3, 3));
    assert!(fail("t").signals.is_empty(), "fires once per run");
    // ...but a success of the stage itself does, and another task counts on its own.
    ace.record_stage("a", "t", "execution", 1.0, true).unwrap();
    assert!(fail("t").signals.is_empty() && fail("t").signals.is_empty());
    assert_eq!(kinds(&fail("t")), [SignalKind::Loop]);
    assert!(fail("other").signals.is_empty());
}

#[test]
fn failed_stages_in_a_row_whichever_they_are_make_a_failure_run() {
    let (ace, _) = engine(AceConfig::default());
    let mut last = None;
    for stage in ["planning", "execution", "verification", "reflection"] {
        last = Some(ace.record_stage("a", "t", stage, 1.0, false).unwrap());
    }
    let last = last.unwrap();
    assert_eq!(kinds(&last), [SignalKind::FailureRun]);
    assert_eq!(last.signals[0].severity, Severity::High);
    assert_eq!(last.intervention.unwrap().strategy, Strategy::Reflect);
    let (off, _) = engine(AceConfig::builder().failure_run(0).loop_threshold(0).build().unwrap());
    for _ in 0..10 {
        assert!(off.record_stage("a", "t", "execution", 1.0, false).unwrap().signals.is_empty());
    }
}

#[test]
fn a_task_far_longer_than_the_agents_usual_ones_is_flagged_once() {
    // Staleness (steps since a refresh) would speak up too; it has its own tests.
    let config = AceConfig::builder().long_task_min_tasks(10).context_staleness_threshold(1.0).build().unwrap();
    let (ace, clock) = engine(config);
    for k in 0..10 {
        let task = format!("warm-{k}");
        for _ in 0..(8 + k % 3) {
            clock.advance(std::time::Duration::from_secs(1));
            assert!(ace.record_stage("a", &task, "execution", 1.0, true).unwrap().signals.is_empty());
        }
        assert!(ace.end_task("a", &task).unwrap(), "the engine followed the task");
    }
    // Lengths 8..10, median 9: the limit is max(the 0.95 quantile = 10, 1.5 x 9 = 14) = 14.
    let mut flagged = Vec::new();
    for step in 1..=30 {
        let r = ace.record_stage("a", "long", "execution", 1.0, true).unwrap();
        if !r.signals.is_empty() {
            flagged.push((step, r));
        }
    }
    assert_eq!(flagged.len(), 1, "once per task");
    let (step, report) = &flagged[0];
    assert_eq!(*step, 15);
    assert_eq!(kinds(report), [SignalKind::LongTask]);
    let Evidence::TaskLength { steps, limit, typical_steps, tasks_seen } = report.signals[0].evidence else { panic!() };
    assert_eq!((steps, limit, typical_steps, tasks_seen), (15, 14, 9, 10));
    assert_eq!(report.intervention.as_ref().unwrap().strategy, Strategy::Replan);
    // Another agent has no history: nothing is learned for it yet.
    for _ in 0..30 {
        assert!(ace.record_stage("b", "long", "execution", 1.0, true).unwrap().signals.is_empty());
    }
    // A fixed cap needs no history.
    let (capped, _) = engine(AceConfig::builder().task_max_steps(5).context_staleness_threshold(1.0).build().unwrap());
    let hits =
        (0..10).filter(|_| !capped.record_stage("a", "t", "execution", 1.0, true).unwrap().signals.is_empty()).count();
    assert_eq!(hits, 1);
}

#[test]
fn the_first_real_error_of_a_task_is_acted_on_and_routine_ones_are_not() {
    let (ace, _) = engine(AceConfig::default());
    let low = ace.record_error("a", "t", "execution", "LookupError", "payment method not found", None).unwrap();
    assert_eq!(low.severity, Severity::Low);
    assert!(low.signals.is_empty() && low.intervention.is_none(), "a routine error is left to accumulate");
    let real = ace.record_error("a", "t", "execution", "TypeError", "'NoneType' object is not iterable", None).unwrap();
    assert_eq!(kinds_of(&real.signals), [SignalKind::TaskError]);
    let i = real.intervention.expect("the first medium error of a task");
    assert_eq!(i.strategy, Strategy::Reflect);
    assert!(i.reason.contains("first medium error: TypeError"), "{}", i.reason);
    let again = ace.record_error("a", "t", "execution", "ValueError", "bad value 7", None).unwrap();
    assert!(!kinds_of(&again.signals).contains(&SignalKind::TaskError), "once per task");
    let throttled = ace.record_error("a", "t2", "execution", "RateLimitError", "429 Too Many Requests", None).unwrap();
    assert_eq!(throttled.intervention.unwrap().strategy, Strategy::Backoff);
    let (off, _) = engine(AceConfig::builder().task_error_severity(None).build().unwrap());
    assert!(off.record_error("a", "t", "execution", "TypeError", "boom", None).unwrap().signals.is_empty());
}

fn kinds_of(signals: &[ace_core::Signal]) -> Vec<SignalKind> {
    signals.iter().map(|s| s.kind).collect()
}
