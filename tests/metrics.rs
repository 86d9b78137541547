//! Every metric family DESIGN.md lists (and the operational ones ace adds) moves when its event
//! happens: one test per family reads the value before and after. The last test lints the whole
//! exposition with `promtool check metrics` (Debian's prometheus package; the test command
//! installs it).

use std::io::Write;
use std::process::{Command, Stdio};

use ace::playbook::{Feedback, Insight, Stage};
use ace::{Ace, AceConfig, ManualClock, Severity, Timestamp};

fn engine() -> Ace {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    Ace::builder().clock(clock).build().unwrap()
}

/// The value of the sample `key` (`name{labels}` exactly as exported), if present.
fn sample(ace: &Ace, key: &str) -> Option<f64> {
    ace.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
}

/// The sum of every sample of `name` (any labels).
fn total(ace: &Ace, name: &str) -> f64 {
    ace.metrics_text()
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Three failed stages in one task: an error-accumulation intervention (replan).
fn failing_task(ace: &Ace, task: &str) -> ace::InterventionId {
    (0..3)
        .find_map(|_| ace.record_stage("a", task, "execution", 1.0, false).unwrap().intervention)
        .expect("three failures in a task make an intervention")
        .id
}

#[test]
fn performance_updates_and_stage_durations() {
    let ace = engine();
    assert_eq!(sample(&ace, "ace_performance_updates_total{agent_id=\"a\",stage=\"planning\"}"), None);
    for (i, d) in [1.0, 2.0, 3.5].into_iter().enumerate() {
        ace.record_stage("a", &format!("t{i}"), "planning", d, true).unwrap();
    }
    assert_eq!(sample(&ace, "ace_performance_updates_total{agent_id=\"a\",stage=\"planning\"}"), Some(3.0));
    assert_eq!(sample(&ace, "ace_stage_duration_seconds_count{agent_id=\"a\",stage=\"planning\"}"), Some(3.0));
    assert_eq!(sample(&ace, "ace_stage_duration_seconds_sum{agent_id=\"a\",stage=\"planning\"}"), Some(6.5));
}

#[test]
fn errors_by_agent_stage_and_severity() {
    let ace = engine();
    let key = "ace_errors_total{agent_id=\"a\",stage=\"execution\",severity=\"high\"}";
    assert_eq!(sample(&ace, key), None);
    ace.record_error("a", "t", "execution", "TimeoutError", "timed out after 30 s", Some(Severity::High)).unwrap();
    assert_eq!(sample(&ace, key), Some(1.0));
    ace.record_error("a", "t", "execution", "TimeoutError", "timed out after 31 s", Some(Severity::High)).unwrap();
    assert_eq!(sample(&ace, key), Some(2.0));
}

#[test]
fn error_rate_follows_failures() {
    let ace = engine();
    for i in 0..10 {
        ace.record_stage("a", &format!("t{i}"), "planning", 1.0, true).unwrap();
    }
    let key = "ace_error_rate{agent_id=\"a\",stage=\"planning\"}";
    assert_eq!(sample(&ace, key), Some(0.0));
    ace.record_stage("a", "t10", "planning", 1.0, false).unwrap();
    let rate = sample(&ace, key).unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{rate}");
}

#[test]
fn baseline_deviation_jumps_with_an_outlier() {
    let ace = engine();
    for i in 0..60 {
        let tokens = 800.0 + f64::from(i % 5) * 10.0;
        ace.record_stage_with("a", &format!("t{i}"), "planning", 1.0, true, &[("tokens_in", tokens)]).unwrap();
    }
    let key = "ace_baseline_deviation{agent_id=\"a\",stage=\"planning\",metric=\"tokens_in\"}";
    // The relative distance of the recent level from the baseline: 0.25 = 25% above.
    let calm = sample(&ace, key).expect("a warmed-up baseline exports its deviation");
    for i in 0..20 {
        ace.record_stage_with("a", &format!("t-up{i}"), "planning", 1.0, true, &[("tokens_in", 2000.0)]).unwrap();
    }
    let risen = sample(&ace, key).unwrap();
    assert!(calm.abs() < 0.05 && risen > 0.25, "calm {calm}, after 20 stages at 2.4x the tokens {risen}");
}

#[test]
fn interventions_their_latency_and_effectiveness() {
    let ace = engine();
    assert_eq!(sample(&ace, "ace_interventions_total{agent_id=\"a\",type=\"replan\"}"), None);
    let first = failing_task(&ace, "t1");
    let second = failing_task(&ace, "t2");
    assert_eq!(sample(&ace, "ace_interventions_total{agent_id=\"a\",type=\"replan\"}"), Some(2.0));
    assert_eq!(sample(&ace, "ace_intervention_latency_seconds_count{type=\"replan\"}"), Some(2.0));
    assert!(sample(&ace, "ace_intervention_latency_seconds_sum{type=\"replan\"}").unwrap() > 0.0);
    assert_eq!(sample(&ace, "ace_intervention_effectiveness{agent_id=\"a\"}"), None);
    ace.report_outcome(first, true).unwrap();
    assert_eq!(sample(&ace, "ace_intervention_effectiveness{agent_id=\"a\"}"), Some(1.0));
    ace.report_outcome(second, false).unwrap();
    assert_eq!(sample(&ace, "ace_intervention_effectiveness{agent_id=\"a\"}"), Some(0.5));
    assert!(total(&ace, "ace_signals_total") >= 2.0, "the error signals behind them are counted");
}

#[test]
fn context_staleness_grows_and_resets() {
    let ace = engine();
    ace.record_stage("a", "t0", "execution", 1.0, true).unwrap();
    let early = sample(&ace, "ace_context_staleness{agent_id=\"a\"}").unwrap();
    for i in 1..30 {
        ace.record_stage("a", &format!("t{i}"), "execution", 1.0, true).unwrap();
    }
    let later = sample(&ace, "ace_context_staleness{agent_id=\"a\"}").unwrap();
    assert!(later > early, "{early} -> {later}");
    ace.refresh_context("a").unwrap();
    assert_eq!(sample(&ace, "ace_context_staleness{agent_id=\"a\"}"), Some(0.0));
}

#[test]
fn computation_and_store_query_durations() {
    let dir = tempfile::tempdir().unwrap();
    let store = ace::SqliteStore::open(dir.path().join("m.db")).unwrap();
    let ace = Ace::builder().store(store).build().unwrap();
    let computed = total(&ace, "ace_metric_computation_duration_seconds_count");
    let queried = total(&ace, "ace_mem_query_duration_seconds_count");
    for i in 0..20 {
        ace.record_stage("a", &format!("t{i}"), "planning", 1.0, i % 7 != 0).unwrap();
    }
    ace.record_error("a", "t", "execution", "ValueError", "bad plan step 3", None).unwrap();
    ace.flush().unwrap();
    assert!(total(&ace, "ace_metric_computation_duration_seconds_count") > computed);
    assert!(total(&ace, "ace_mem_query_duration_seconds_count") > queried, "store writes are timed");
    assert_eq!(sample(&ace, "ace_records_persisted_total"), Some(ace.stats().persisted as f64));
    assert!(ace.stats().persisted >= 21);
    assert_eq!(sample(&ace, "ace_buffered_records"), Some(0.0));
}

#[test]
fn breaker_state_and_failures() {
    let ace = engine();
    let llm = ace.breaker("llm").unwrap();
    ace.acquire("a", "t", &llm).unwrap().success();
    assert_eq!(sample(&ace, "ace_circuit_breaker_state{name=\"llm\",state=\"closed\"}"), Some(1.0));
    assert_eq!(sample(&ace, "ace_circuit_breaker_failures_total{name=\"llm\"}"), Some(0.0));
    for _ in 0..5 {
        ace.acquire("a", "t", &llm).unwrap().failure();
    }
    assert_eq!(sample(&ace, "ace_circuit_breaker_failures_total{name=\"llm\"}"), Some(5.0));
    assert_eq!(sample(&ace, "ace_circuit_breaker_state{name=\"llm\",state=\"open\"}"), Some(1.0));
    assert_eq!(sample(&ace, "ace_circuit_breaker_state{name=\"llm\",state=\"closed\"}"), Some(0.0));
}

#[test]
fn playbook_insights_bullets_promotions_and_retrieval_latency() {
    let ace = engine();
    let pb = ace.playbooks();
    assert_eq!(sample(&ace, "ace_insights_processed_total"), Some(0.0));
    assert_eq!(sample(&ace, "ace_playbook_retrieval_latency_seconds_count"), Some(0.0));
    let report = pb.merge("d", &[Insight::new("strategies", "check the fare before booking")]).unwrap();
    assert_eq!(sample(&ace, "ace_insights_processed_total"), Some(1.0));
    assert_eq!(sample(&ace, "ace_bullets_added_total"), Some(1.0));
    assert_eq!(sample(&ace, "ace_bullets_promoted_total"), Some(0.0));
    let stages: Vec<Stage> = (0..3).map(|_| pb.feedback("d", &report.added[0], Feedback::Helpful).unwrap()).collect();
    assert_eq!(stages.last(), Some(&Stage::Staging));
    assert_eq!(sample(&ace, "ace_bullets_promoted_total"), Some(1.0));
    pb.retrieve("d", "fare", 3, Stage::Shadow).unwrap();
    assert_eq!(sample(&ace, "ace_playbook_retrieval_latency_seconds_count"), Some(1.0));
}

#[test]
fn the_agent_label_cap_folds_and_counts_the_overflow() {
    let config = AceConfig::builder().metrics_max_agents(2).build().unwrap();
    let ace = Ace::builder().config(config).build().unwrap();
    assert_eq!(sample(&ace, "ace_metrics_label_overflow_total"), Some(0.0));
    for agent in ["a", "b", "c", "d"] {
        ace.record_stage(agent, "t", "planning", 1.0, true).unwrap();
    }
    assert_eq!(sample(&ace, "ace_performance_updates_total{agent_id=\"b\",stage=\"planning\"}"), Some(1.0));
    assert_eq!(sample(&ace, "ace_performance_updates_total{agent_id=\"c\",stage=\"planning\"}"), None);
    assert_eq!(sample(&ace, "ace_performance_updates_total{agent_id=\"__overflow__\",stage=\"planning\"}"), Some(2.0));
    assert!(sample(&ace, "ace_metrics_label_overflow_total").unwrap() >= 2.0);
}

#[test]
fn rejected_events_and_truncated_messages_are_counted() {
    let ace = engine();
    assert!(ace.record_stage("a", "t", "planning", f64::NAN, true).is_err());
    assert_eq!(sample(&ace, "ace_events_rejected_total{reason=\"invalid_duration\"}"), Some(1.0));
    assert_eq!(sample(&ace, "ace_error_messages_truncated_total"), Some(0.0));
    ace.record_error("a", "t", "execution", "ValueError", &"x ".repeat(40_000), None).unwrap();
    assert_eq!(sample(&ace, "ace_error_messages_truncated_total"), Some(1.0));
}

#[test]
fn build_info_names_the_version() {
    let ace = engine();
    let key = format!(
        "ace_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    assert_eq!(sample(&ace, &key), Some(1.0), "{}", ace.metrics_text());
}

/// An engine with a series in every family this test file drives, and a shared breaker.
fn busy() -> Ace {
    let config = AceConfig::builder().metrics_max_agents(1).build().unwrap();
    // A manual clock: staleness, computed at scrape time, is the same in both scrapes below.
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().config(config).clock(clock).build().unwrap();
    for i in 0..40 {
        ace.record_stage_with("a", &format!("t{i}"), "planning", 1.0, true, &[("tokens_in", 800.0)]).unwrap();
        ace.record_stage("b", &format!("t{i}"), "planning", 1.0, true).unwrap();
    }
    let id = failing_task(&ace, "f");
    ace.report_outcome(id, true).unwrap();
    ace.record_error("a", "t", "execution", "TimeoutError", "timed out", Some(Severity::Critical)).unwrap();
    let _ = ace.record_stage("a", "t", "planning", f64::INFINITY, true);
    let llm = ace.breaker("llm").unwrap();
    for _ in 0..5 {
        ace.acquire("a", "t", &llm).unwrap().failure();
    }
    let pb = ace.playbooks();
    let report = pb.merge("d", &[Insight::new("s", "check the fare first")]).unwrap();
    pb.feedback("d", &report.added[0], Feedback::Helpful).unwrap();
    pb.retrieve("d", "fare", 3, Stage::Shadow).unwrap();
    ace.flush().unwrap();
    ace
}

/// `promtool check metrics` on `text`: what it said, if anything.
fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs Debian's prometheus package)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { said.trim().to_owned() } else { format!("exit {:?}: {said}", out.status.code()) }
}

#[test]
fn hostile_agent_ids_keep_both_expositions_valid() {
    let ace = engine();
    // Quotes, backslashes, braces, an exemplar marker and a fake sample inside an agent id.
    let ids = [r#"a" # {b="c"} 1"#, r"back\slash", r#"x} 2 # {y="z"} 3"#, "multi-byte é ☃", "#"];
    for id in ids {
        for i in 0..3 {
            ace.record_stage_with(id, &format!("t{i}"), "planning", 1.0, i != 1, &[("tokens_in", 8.0)]).unwrap();
        }
        ace.record_error(id, "t", "execution", "TimeoutError", "timed out", None).unwrap();
    }
    ace.flush().unwrap();
    let text = ace.metrics_text_prometheus();
    assert_eq!(promtool_check(&text), "", "promtool check metrics");
    // Every hostile id still has its own series, with the same samples in both formats.
    let open = ace.metrics_text();
    let samples = |t: &str| -> Vec<String> {
        let mut v: Vec<String> =
            t.lines().filter(|l| !l.starts_with('#') && l.contains("agent_id=")).map(str::to_owned).collect();
        v.sort();
        v
    };
    assert!(samples(&text) == samples(&open), "the two formats differ for hostile ids");
    let updates = samples(&text).into_iter().filter(|l| l.starts_with("ace_performance_updates_total{")).count();
    assert_eq!(updates, ids.len(), "one ace_performance_updates_total series per hostile id");
}

#[test]
fn promtool_accepts_the_exposition() {
    let ace = busy();
    let text = ace.metrics_text_prometheus();
    assert!(!text.contains("# EOF") && text.contains("# TYPE ace_errors_total counter"), "{text}");
    let said = promtool_check(&text);
    assert!(said.is_empty(), "promtool check metrics:\n{said}");
    // Both formats carry the same samples.
    let samples = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(samples(&text), samples(&ace.metrics_text()));
}
