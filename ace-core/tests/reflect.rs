//! Reflection end to end with a deterministic reflector: the engine's evidence of a failed task
//! becomes a bounded summary, the reflector's insights land in the agent's playbook at shadow
//! with their provenance, the rate limit skips the excess, and failures are counted.

use std::sync::Mutex;

use ace_core::playbook::{Insight, Stage};
use ace_core::{Ace, AceConfig, Error, MAX_SUMMARY_BYTES, MemoryStore, TaskSummary};

fn engine(per_minute: u32) -> Ace {
    let config = AceConfig::builder().reflect_per_minute(per_minute).build().unwrap();
    Ace::builder().store(MemoryStore::new()).config(config).build().unwrap()
}

/// What an LLM would do, deterministically: one pitfall per error line of the summary.
fn pitfalls(summary: &TaskSummary) -> ace_core::Result<Vec<Insight>> {
    Ok(summary
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("error "))
        .map(|e| Insight::new("pitfalls", &format!("Expect this failure and check for it first: {e}")))
        .collect())
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_failed_task_becomes_insights_in_the_agents_playbook_at_shadow() {
    let ace = engine(10);
    ace.record_stage("a", "t1", "planning", 0.5, true).unwrap();
    let mut intervention = None;
    for _ in 0..3 {
        let r = ace.record_stage("a", "t1", "execution", 1.0, false).unwrap();
        intervention = intervention.or(r.intervention);
    }
    ace.record_error("a", "t1", "execution", "ConnectionError", "connection to db:5432 refused", None).unwrap();
    ace.record_error("a", "t1", "execution", "QuotaExceeded", "monthly search quota used up", None).unwrap();
    ace.report_outcome(intervention.expect("the loop was acted on").id, false).unwrap();
    ace.record_stage("a", "other-task", "planning", 0.1, true).unwrap();
    ace.end_task_with("a", "t1", Some(false)).unwrap();

    let seen = Mutex::new(None);
    let reflector = |s: &TaskSummary| {
        *seen.lock().unwrap() = Some(s.clone());
        pitfalls(s)
    };
    let done = ace.reflect("a", "t1", None, &reflector).unwrap().expect("not rate-limited");
    let summary = seen.lock().unwrap().clone().unwrap();
    assert_eq!(summary, done.summary);
    let text = &summary.text;
    assert!(text.starts_with("task t1 of agent a: 4 stages (3 failed), 2 errors, 1 interventions\n"), "{text}");
    assert!(text.contains("stage execution: 3 runs, 3 failed"), "{text}");
    assert!(text.contains("error ConnectionError (") && text.contains("connection to db:5432 refused"), "{text}");
    assert!(text.contains("intervention replan on loop: ") && text.contains("(did not work)"), "{text}");
    assert!(!text.contains("other-task"), "{text}");

    assert_eq!(done.report.added.len(), 2, "{:?}", done.report);
    let bullets = ace.playbooks().bullets("a").unwrap();
    assert_eq!(bullets.len(), 2);
    for b in &bullets {
        assert_eq!((b.stage, b.provenance.as_deref()), (Stage::Shadow, Some("reflection:a/t1")));
    }
    // Reflecting again finds the same insights: they strengthen the bullets, nothing is added.
    let again = ace.reflect("a", "t1", Some("a"), &pitfalls).unwrap().unwrap();
    assert_eq!((again.report.added.len(), again.report.merged.len()), (0, 2));
    assert_eq!(counter(&ace.metrics_text(), "ace_reflections_total"), 2);
}

#[test]
fn reflections_are_rate_limited_bounded_and_failures_counted() {
    let ace = engine(2);
    for k in 0..300 {
        ace.record_error(
            "a",
            "t",
            "execution",
            &format!("Kind{k}"),
            &format!("failure number {k} {}", "x".repeat(100)),
            None,
        )
        .unwrap();
    }
    let failing =
        |_: &TaskSummary| -> ace_core::Result<Vec<Insight>> { Err(Error::Internal("the LLM is down".into())) };
    assert_eq!(ace.reflect("a", "t", None, &failing).unwrap_err().code(), "internal");
    let bounded = ace.reflect("a", "t", None, &pitfalls).unwrap().unwrap();
    assert!(bounded.summary.text.len() <= MAX_SUMMARY_BYTES && bounded.summary.text.ends_with("...\n"));
    assert!(ace.reflect("a", "t", None, &pitfalls).unwrap().is_none(), "the third in a minute is skipped");
    let text = ace.metrics_text();
    assert_eq!(counter(&text, "ace_reflections_total"), 2, "{text}");
    assert_eq!(counter(&text, "ace_reflection_failures_total"), 1, "{text}");
    assert_eq!(counter(&text, "ace_reflections_limited_total"), 1, "{text}");
    assert_eq!(ace.reflect("", "t", None, &pitfalls).unwrap_err().code(), "invalid_input");
}

#[test]
fn a_failed_task_end_is_reflected_on_in_the_background() {
    let ace = engine(10);
    let (tx, seen) = std::sync::mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    ace.reflect_on_failure(
        move |s: &TaskSummary| {
            let _ = tx.lock().unwrap().send(s.task.clone());
            pitfalls(s)
        },
        Some("learnt"),
    )
    .unwrap();
    for task in ["ok", "unknown", "bad"] {
        ace.record_error("a", task, "execution", "ConnectionError", "connection to db:5432 refused", None).unwrap();
    }
    ace.end_task_with("a", "ok", Some(true)).unwrap();
    ace.end_task_with("a", "unknown", None).unwrap();
    ace.end_task_with("a", "bad", Some(false)).unwrap();
    assert_eq!(seen.recv_timeout(std::time::Duration::from_secs(30)).unwrap(), "bad", "only the failed task");
    // The merge follows the reflector's answer on the same thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ace.playbooks().bullets("learnt").unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the insight never landed");
        std::thread::yield_now();
    }
    let bullets = ace.playbooks().bullets("learnt").unwrap();
    assert_eq!(bullets[0].provenance.as_deref(), Some("reflection:a/bad"));
    assert!(seen.try_recv().is_err(), "nothing else was reflected on");
    assert_eq!(ace.reflect_on_failure(pitfalls, Some("")).unwrap_err().code(), "invalid_input");
}
