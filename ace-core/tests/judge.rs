//! The judge hook: accept, veto, pick; and a judge that panics or hangs changes nothing but a
//! counter. Also the effectiveness gauge that reported outcomes move.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ace_core::{Ace, AceConfig, Intervention, Judge, ManualClock, Strategy, Timestamp, Verdict};

fn engine(judge: impl Judge, timeout: Duration) -> Ace {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let config = AceConfig::builder().judge_timeout(timeout).build().unwrap();
    Ace::builder().config(config).clock(clock).judge(judge).build().unwrap()
}

fn loop_in(ace: &Ace, task: &str) -> Option<Box<Intervention>> {
    (0..3).filter_map(|_| ace.record_stage("a", task, "execution", 1.0, false).unwrap().intervention).next()
}

#[test]
fn accept_veto_and_pick() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let ace = engine(
        move |p: &Intervention| {
            counter.fetch_add(1, Ordering::SeqCst);
            match &*p.task {
                "vetoed" => Verdict::Veto,
                "picked" => Verdict::Pick(Strategy::Escalate),
                _ => Verdict::Accept,
            }
        },
        Duration::from_secs(5),
    );
    assert_eq!(loop_in(&ace, "accepted").unwrap().strategy, Strategy::Replan);
    assert!(loop_in(&ace, "vetoed").is_none());
    let picked = loop_in(&ace, "picked").unwrap();
    assert_eq!(picked.strategy, Strategy::Escalate);
    assert!(picked.reason.starts_with("escalate: ") && picked.reason.ends_with("(strategy chosen by the judge)"));
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    // The outcome of a picked intervention teaches about the picked strategy.
    ace.report_outcome(picked.id, true).unwrap();
    let text = ace.metrics_text();
    for verdict in ["accept", "veto", "pick"] {
        assert!(text.contains(&format!("ace_judge_calls_total{{verdict=\"{verdict}\"}} 1")), "{verdict}: {text}");
    }
    assert!(text.contains("ace_interventions_total{agent_id=\"a\",type=\"escalate\"} 1"), "{text}");
    assert!(!text.contains("type=\"replan\"} 2"), "the vetoed one was not issued");
}

struct Selective;

impl Judge for Selective {
    fn wants(&self, p: &Intervention) -> bool {
        p.task.starts_with("hard")
    }

    fn judge(&self, _: &Intervention) -> Verdict {
        Verdict::Veto
    }
}

#[test]
fn a_judge_sees_only_what_it_wants() {
    let ace = engine(Selective, Duration::from_secs(5));
    assert!(loop_in(&ace, "easy").is_some());
    assert!(loop_in(&ace, "hard-1").is_none());
    assert!(!ace.metrics_text().contains("verdict=\"accept\""));
}

#[test]
fn a_judge_that_panics_or_hangs_leaves_the_engines_choice() {
    let ace = engine(
        |p: &Intervention| {
            if &*p.task == "hangs" {
                std::thread::sleep(Duration::from_secs(10));
                Verdict::Veto
            } else {
                panic!("the judge broke")
            }
        },
        // Long enough for a panic's backtrace to print, short against the hang.
        Duration::from_secs(1),
    );
    assert_eq!(loop_in(&ace, "panics").unwrap().strategy, Strategy::Replan);
    assert_eq!(loop_in(&ace, "hangs").unwrap().strategy, Strategy::Replan);
    let text = ace.metrics_text();
    assert!(text.contains("ace_judge_calls_total{verdict=\"panic\"} 1"), "{text}");
    assert!(text.contains("ace_judge_calls_total{verdict=\"timeout\"} 1"), "{text}");
}

#[test]
fn reported_outcomes_move_the_effectiveness_gauge() {
    let ace = engine(|_: &Intervention| Verdict::Accept, Duration::from_secs(5));
    let ids: Vec<_> = (0..4).map(|k| loop_in(&ace, &format!("t{k}")).unwrap().id).collect();
    for (k, id) in ids.iter().enumerate() {
        ace.report_outcome(*id, k != 0).unwrap();
    }
    let text = ace.metrics_text();
    assert!(text.contains("ace_intervention_effectiveness{agent_id=\"a\"} 0.75"), "{text}");
}
