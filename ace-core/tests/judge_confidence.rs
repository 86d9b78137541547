//! The judge for the hard cases only: every decision carries the engine's confidence,
//! `ACE_JUDGE_BELOW` sends only the less confident (or little-known) ones to the judge, and
//! with `ACE_JUDGE_BLOCKING=false` the recording call never waits for the judge, whose verdict
//! follows to the subscribers as an amended intervention with the same id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use ace_core::intervene::Amendment;
use ace_core::{Ace, AceConfig, Intervention, Judge, ManualClock, Strategy, Timestamp, Verdict};

fn engine(judge: impl Judge, config: AceConfig) -> Ace {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    Ace::builder().config(config).clock(clock).judge(judge).build().unwrap()
}

fn loop_in(ace: &Ace, task: &str) -> Option<Box<Intervention>> {
    (0..3).filter_map(|_| ace.record_stage("a", task, "execution", 1.0, false).unwrap().intervention).next()
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn only_decisions_below_the_confidence_threshold_go_to_the_judge() {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let config = AceConfig::builder().judge_below(Some(0.9)).build().unwrap();
    let ace = engine(
        move |_: &Intervention| {
            count.fetch_add(1, Ordering::SeqCst);
            Verdict::Accept
        },
        config,
    );
    let (mut hard, mut easy) = (0, 0);
    for k in 0..40 {
        let i = loop_in(&ace, &format!("t{k}")).expect("a loop is acted on");
        let c = i.confidence;
        assert!((0.0..=1.0).contains(&c.score), "{c:?}");
        assert_eq!(c.novel, c.outcomes < 5, "{c:?}");
        if c.novel || c.score < 0.9 {
            hard += 1;
        } else {
            easy += 1;
        }
        // The engine's own choice works: its strategy grows sure of itself.
        ace.report_outcome(i.id, i.strategy == Strategy::Replan).unwrap();
    }
    assert!(hard >= 5 && easy >= 5, "both kinds of decision happened: {hard} hard, {easy} easy");
    assert_eq!(asked.load(Ordering::SeqCst), hard, "the judge saw exactly the hard cases");
    let text = ace.metrics_text();
    assert_eq!(counter(&text, "ace_judge_decisions_total"), 40, "{text}");
    assert_eq!(counter(&text, "ace_judge_confident_total"), easy as u64, "{text}");
    assert_eq!(counter(&text, "ace_judge_calls_total{verdict=\"accept\"}"), hard as u64, "{text}");

    // Without the threshold every decision is judged.
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let all = engine(
        move |_: &Intervention| {
            count.fetch_add(1, Ordering::SeqCst);
            Verdict::Accept
        },
        AceConfig::default(),
    );
    for k in 0..3 {
        loop_in(&all, &format!("t{k}")).unwrap();
    }
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

#[test]
fn in_the_background_the_call_never_waits_and_the_verdict_amends_the_intervention() {
    // The judge cannot answer before the test lets it, after the recording call has returned:
    // a call that waited for it would never return.
    let (release, released) = mpsc::channel::<Verdict>();
    let released = Mutex::new(released);
    let config = AceConfig::builder().judge_blocking(false).judge_timeout(Duration::from_secs(60)).build().unwrap();
    let ace = engine(move |_: &Intervention| released.lock().unwrap().recv().unwrap_or(Verdict::Accept), config);
    let (tx, delivered) = mpsc::channel::<Intervention>();
    let tx = Mutex::new(tx);
    ace.subscribe(move |i| {
        let _ = tx.lock().unwrap().send(i.clone());
    });
    let issued = loop_in(&ace, "t1").expect("the engine's choice, at once");
    assert_eq!((issued.strategy, issued.amended), (Strategy::Replan, None));
    let first = delivered.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((first.id, first.amended), (issued.id, None), "first delivered as issued");

    release.send(Verdict::Pick(Strategy::Escalate)).unwrap();
    let amended = delivered.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(amended.id, issued.id, "linked by id");
    assert_eq!((amended.amended, amended.strategy), (Some(Amendment::Picked), Strategy::Escalate));
    assert!(amended.reason.ends_with("(strategy chosen by the judge)"), "{}", amended.reason);

    let vetoed = loop_in(&ace, "t2").unwrap();
    assert_eq!(delivered.recv_timeout(Duration::from_secs(30)).unwrap().amended, None);
    release.send(Verdict::Veto).unwrap();
    let amended = delivered.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((amended.id, amended.amended), (vetoed.id, Some(Amendment::Vetoed)));
    assert_eq!(ace.report_outcome(vetoed.id, true).unwrap_err().code(), "invalid_input", "a veto forgets it");
    // The picked one's outcome teaches about the judge's strategy.
    ace.report_outcome(issued.id, true).unwrap();
    let text = ace.metrics_text();
    assert_eq!(counter(&text, "ace_judge_calls_total{verdict=\"pick\"}"), 1, "{text}");
    assert_eq!(counter(&text, "ace_judge_calls_total{verdict=\"veto\"}"), 1, "{text}");
    drop(release);
    ace.close().unwrap();
}
