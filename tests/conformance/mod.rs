//! The store conformance suite: every backend must pass every check here.
//!
//! A backend's test file builds a fresh, empty store per check and calls [`run_all`] (or the
//! checks one by one, so a failure names the check).

use std::sync::Arc;

use ace::errors::{PatternId, PatternRecord};
use ace::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MetricQuery, MetricRecord,
    OutcomeRecord, PlaybookEntry, Record, Store,
};
use ace::{BaselineState, Severity, Timestamp};
use ace::{InterventionId, SignalKind, Strategy};

fn rec(ts: i64, agent: &str, task: &str, stage: &str, metrics: &[(&str, f64)]) -> MetricRecord {
    MetricRecord {
        ts: Timestamp::from_micros(ts),
        agent: Arc::from(agent),
        task: Arc::from(task),
        stage: Arc::from(stage),
        duration_s: Some(ts as f64 / 1e6),
        success: Some(ts.rem_euclid(2) == 0),
        metrics: metrics.iter().map(|(n, v)| (Arc::from(*n), *v)).collect(),
    }
}

fn append(store: &dyn Store, records: &[MetricRecord]) {
    let batch: Vec<Record> = records.iter().cloned().map(Record::Metric).collect();
    store.append(&batch).expect("append");
}

/// A batch comes back exactly as written, in order, with its named metrics in their order.
pub fn round_trips_records(store: &dyn Store) {
    let written = vec![
        rec(1_000_000, "agent-1", "t1", "planning", &[("tokens_in", 812.0), ("cost_usd", 0.0031), ("a:b", -1.5)]),
        rec(2_000_000, "agent-1", "t1", "execution", &[]),
        MetricRecord {
            duration_s: None,
            success: None,
            ..rec(3_000_000, "agent-2", "t2", "execution", &[("cost_usd", 1e-9)])
        },
    ];
    append(store, &written);
    assert_eq!(store.count_metrics().unwrap(), 3);
    assert_eq!(store.query_metrics(&MetricQuery::all()).unwrap(), written);
}

/// An empty batch is a no-op, not an error.
pub fn empty_batch_is_fine(store: &dyn Store) {
    store.append(&[]).unwrap();
    store.save_baselines(&[]).unwrap();
    assert_eq!(store.count_metrics().unwrap(), 0);
    assert!(store.load_baselines().unwrap().is_empty());
}

/// Filters by agent, stage and time, orders by time, honours the limit.
pub fn queries_filter_and_order(store: &dyn Store) {
    append(
        store,
        &[rec(30, "b", "t", "planning", &[]), rec(10, "a", "t", "planning", &[]), rec(20, "a", "t", "execution", &[])],
    );
    let ts = |q: MetricQuery| store.query_metrics(&q).unwrap().iter().map(|r| r.ts.as_micros()).collect::<Vec<_>>();
    assert_eq!(ts(MetricQuery::all()), vec![10, 20, 30]);
    assert_eq!(ts(MetricQuery::all().agent("a")), vec![10, 20]);
    assert_eq!(ts(MetricQuery::all().stage("planning")), vec![10, 30]);
    assert_eq!(ts(MetricQuery::all().since(Timestamp::from_micros(20))), vec![20, 30]);
    assert_eq!(ts(MetricQuery::all().agent("a").stage("execution")), vec![20]);
    assert_eq!(ts(MetricQuery::all().limit(2)), vec![10, 20]);
    assert!(ts(MetricQuery::all().agent("nobody")).is_empty());
}

/// Records with the same timestamp keep the order they were appended in, across batches.
pub fn ties_keep_insertion_order(store: &dyn Store) {
    append(store, &[rec(5, "a", "first", "planning", &[])]);
    append(store, &[rec(5, "a", "second", "planning", &[]), rec(5, "a", "third", "planning", &[])]);
    let tasks: Vec<String> =
        store.query_metrics(&MetricQuery::all()).unwrap().iter().map(|r| r.task.to_string()).collect();
    assert_eq!(tasks, ["first", "second", "third"]);
}

/// Large batches (beyond any per-statement limit) are stored whole.
pub fn large_batches(store: &dyn Store) {
    let batch: Vec<MetricRecord> = (0..25_001)
        .map(|i| rec(i, &format!("agent-{}", i % 97), "t", "execution", &[("tokens_out", i as f64)]))
        .collect();
    append(store, &batch);
    assert_eq!(store.count_metrics().unwrap(), 25_001);
    let back = store.query_metrics(&MetricQuery::all().agent("agent-5")).unwrap();
    assert_eq!(back.len(), batch.iter().filter(|r| &*r.agent == "agent-5").count());
    assert!(back.iter().all(|r| r.metrics[0].1 == r.ts.as_micros() as f64));
}

/// Ids with quotes, SQL, unicode and maximal length are stored verbatim.
pub fn odd_strings_are_verbatim(store: &dyn Store) {
    let long = "x".repeat(ace::event::MAX_ID_LEN);
    let odd =
        ["agent'; DROP TABLE ace_performance_metrics; --", "\"quoted\" \\ back", "エージェント-🚀", long.as_str()];
    let batch: Vec<MetricRecord> =
        odd.iter().enumerate().map(|(i, id)| rec(i as i64, id, id, "tool_call", &[])).collect();
    append(store, &batch);
    assert_eq!(store.query_metrics(&MetricQuery::all()).unwrap(), batch);
    assert_eq!(store.query_metrics(&MetricQuery::all().agent(odd[0])).unwrap().len(), 1);
}

/// Extreme finite values survive exactly.
pub fn extreme_values_survive(store: &dyn Store) {
    let values = [f64::MAX, f64::MIN_POSITIVE, -0.0, 1e-300, 123_456_789.123_456_78, 0.1 + 0.2];
    let metrics: Vec<(&str, f64)> = ["m0", "m1", "m2", "m3", "m4", "m5"].into_iter().zip(values).collect();
    let r = rec(1, "a", "t", "planning", &metrics);
    append(store, std::slice::from_ref(&r));
    let back = store.query_metrics(&MetricQuery::all()).unwrap();
    for ((_, want), (_, got)) in r.metrics.iter().zip(&back[0].metrics) {
        assert!(want.to_bits() == got.to_bits() || (*want == 0.0 && *got == 0.0), "{want} came back as {got}");
    }
}

fn baseline(agent: &str, metric: &str, count: u64, mean: f64) -> BaselineRecord {
    BaselineRecord {
        agent: agent.into(),
        stage: "planning".into(),
        metric: metric.into(),
        state: BaselineState { count, mean, var: mean / 10.0, recent: mean * 1.1, degraded: count % 2 == 1 },
        updated_at: Timestamp::from_micros(count as i64),
    }
}

/// Baselines are upserted by (agent, stage, metric) and load back exactly.
pub fn baselines_upsert_and_reload(store: &dyn Store) {
    store.save_baselines(&[baseline("a", "duration_s", 21, 1.5), baseline("a", "tokens_in", 30, 800.0)]).unwrap();
    store.save_baselines(&[baseline("a", "duration_s", 40, 1.7), baseline("b", "success", 25, 0.97)]).unwrap();
    let mut loaded = store.load_baselines().unwrap();
    loaded.sort_by(|x, y| (&x.agent, &x.metric).cmp(&(&y.agent, &y.metric)));
    assert_eq!(
        loaded,
        vec![
            baseline("a", "duration_s", 40, 1.7),
            baseline("a", "tokens_in", 30, 800.0),
            baseline("b", "success", 25, 0.97)
        ]
    );
}

/// The store answers a ping.
pub fn pings(store: &dyn Store) {
    assert!(store.ping().unwrap() < std::time::Duration::from_secs(5));
    assert!(!store.backend().is_empty());
}

fn err(ts: i64, agent: &str, severity: Severity, message: &str) -> ErrorRecord {
    ErrorRecord {
        ts: Timestamp::from_micros(ts),
        agent: Arc::from(agent),
        task: Arc::from("task-1"),
        stage: Arc::from("execution"),
        kind: Arc::from("TimeoutError"),
        message: Arc::from(message),
        severity,
        pattern: PatternId(0xdead_beef_0000_0001 ^ ts as u64),
    }
}

/// Error records come back exactly, interleaved with metrics in one batch, filtered by agent,
/// severity and time.
pub fn round_trips_errors(store: &dyn Store) {
    let errors = vec![
        err(10, "a", Severity::Low, "retrying"),
        err(20, "a", Severity::Critical, "fatal: 'quoted' \"double\" ünïcödé \n newline\ttab"),
        err(30, "b", Severity::High, ""),
        err(40, "a", Severity::Medium, &"x".repeat(20_000)),
    ];
    let batch = vec![
        Record::Error(errors[0].clone()),
        Record::Metric(rec(15, "a", "t", "planning", &[])),
        Record::Error(errors[1].clone()),
        Record::Error(errors[2].clone()),
        Record::Error(errors[3].clone()),
    ];
    store.append(&batch).unwrap();
    assert_eq!(store.count_metrics().unwrap(), 1);
    assert_eq!(store.query_errors(&ErrorQuery::all()).unwrap(), errors);
    let ts = |q: ErrorQuery| store.query_errors(&q).unwrap().iter().map(|r| r.ts.as_micros()).collect::<Vec<_>>();
    assert_eq!(ts(ErrorQuery::all().agent("a")), vec![10, 20, 40]);
    assert_eq!(ts(ErrorQuery::all().min_severity(Severity::High)), vec![20, 30]);
    assert_eq!(ts(ErrorQuery::all().since(Timestamp::from_micros(25)).limit(1)), vec![30]);
    // Read back newest first: the limit keeps the newest.
    let recent = |q: ErrorQuery| store.recent_errors(&q).unwrap().iter().map(|r| r.ts.as_micros()).collect::<Vec<_>>();
    assert_eq!(recent(ErrorQuery::all()), vec![40, 30, 20, 10]);
    assert_eq!(recent(ErrorQuery::all().agent("a").limit(2)), vec![40, 20]);
    assert_eq!(recent(ErrorQuery::all().since(Timestamp::from_micros(20)).min_severity(Severity::High)), vec![30, 20]);
    assert_eq!(store.recent_errors(&ErrorQuery::all().limit(1)).unwrap()[0], errors[3]);
}

/// Patterns upsert by (kind, template) and come back most frequent first.
pub fn patterns_upsert_and_reload(store: &dyn Store) {
    let p = |kind: &str, template: &str, count: u64| PatternRecord {
        id: PatternId::of(kind, template),
        kind: kind.into(),
        template: template.into(),
        count,
    };
    store.save_patterns(&[p("E", "disk <*> full", 2), p("E", "user <*> left", 7), p("F", "disk <*> full", 1)]).unwrap();
    store.save_patterns(&[p("E", "disk <*> full", 9)]).unwrap();
    assert_eq!(
        store.load_patterns().unwrap(),
        vec![p("E", "disk <*> full", 9), p("E", "user <*> left", 7), p("F", "disk <*> full", 1)]
    );
    store.save_patterns(&[]).unwrap();
}

/// Interventions come back as audited, with the outcomes reported later (an outcome for an id
/// the store never saw changes nothing).
pub fn interventions_and_outcomes(store: &dyn Store) {
    let i = |ts: i64, id: u64, agent: &str, strategy| InterventionRecord {
        ts: Timestamp::from_micros(ts),
        id: InterventionId(id),
        agent: Arc::from(agent),
        task: Arc::from("task-1"),
        strategy,
        severity: Severity::High,
        signal_kind: SignalKind::ErrorAccumulation,
        reason: "reflect: a execution: ToolError \"x <*>\" occurred 3 times ünï".into(),
        signals_json: r#"[{"kind":"error_accumulation"}]"#.into(),
        outcome: None,
    };
    let outcome =
        |ts: i64, id: u64, success| OutcomeRecord { ts: Timestamp::from_micros(ts), id: InterventionId(id), success };
    store
        .append(&[
            Record::Intervention(i(10, u64::MAX, "a", Strategy::Reflect)),
            Record::Intervention(i(20, 2, "b", Strategy::Backoff)),
            Record::Outcome(outcome(30, u64::MAX, true)),
        ])
        .unwrap();
    store.append(&[Record::Outcome(outcome(40, 2, false)), Record::Outcome(outcome(50, 99, true))]).unwrap();
    let back = store.query_interventions(None, 0).unwrap();
    assert_eq!(
        back,
        vec![
            InterventionRecord { outcome: Some(true), ..i(10, u64::MAX, "a", Strategy::Reflect) },
            InterventionRecord { outcome: Some(false), ..i(20, 2, "b", Strategy::Backoff) },
        ]
    );
    assert_eq!(store.query_interventions(Some("b"), 0).unwrap().len(), 1);
    assert_eq!(store.query_interventions(None, 1).unwrap()[0].id, InterventionId(u64::MAX));
    // Read back newest first, with their outcomes, filtered by agent and time.
    let recent = store.recent_interventions(&InterventionQuery::all()).unwrap();
    assert_eq!(recent.iter().map(|r| r.id).collect::<Vec<_>>(), [InterventionId(2), InterventionId(u64::MAX)]);
    assert_eq!(recent[0].outcome, Some(false));
    assert_eq!(store.recent_interventions(&InterventionQuery::all().limit(1)).unwrap()[0].id, InterventionId(2));
    assert_eq!(store.recent_interventions(&InterventionQuery::all().agent("a")).unwrap().len(), 1);
    let since = InterventionQuery::all().since(Timestamp::from_micros(15));
    assert_eq!(
        store.recent_interventions(&since).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(),
        [InterventionId(2)]
    );
    assert!(store.recent_interventions(&InterventionQuery::all().agent("nobody")).unwrap().is_empty());
}

fn entry(domain: &str, version: u64, snapshot: bool, body: &str) -> PlaybookEntry {
    PlaybookEntry {
        domain: domain.to_owned(),
        version,
        at: Timestamp::from_micros(1_700_000_000_000_000 + version as i64),
        hash: format!("{version:064x}"),
        snapshot,
        body: body.to_owned(),
    }
}

pub fn playbook_logs_append_in_order_per_domain(store: &dyn Store) {
    assert!(store.load_playbook("none").unwrap().is_empty());
    store.append_playbook(&[entry("a", 1, false, "{\"op\":1}"), entry("a", 2, true, "{\"é\":\"ü\\n\"}")]).unwrap();
    store.append_playbook(&[entry("b", 1, false, "{}")]).unwrap();
    store.append_playbook(&[entry("a", 3, false, "{}")]).unwrap();
    store.append_playbook(&[]).unwrap();
    let a = store.load_playbook("a").unwrap();
    assert_eq!(a.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(a[1], entry("a", 2, true, "{\"é\":\"ü\\n\"}"), "verbatim");
    assert_eq!(store.load_playbook("b").unwrap().len(), 1, "domains are apart");
    // A version written twice would fork the history: refused, and the batch is all or nothing.
    let clash = store.append_playbook(&[entry("a", 4, false, "{}"), entry("a", 3, false, "{}")]);
    assert!(clash.is_err());
    assert_eq!(store.load_playbook("a").unwrap().len(), 3, "nothing of the refused batch");
}

/// Every check, each on a fresh store from `fresh`.
/// `delete_before` deletes the metric, error and intervention records older than the cutoff,
/// no more than it is asked a call, and keeps the rest (`ACE_RETAIN_DAYS` relies on it).
pub fn old_records_are_deleted_a_chunk_at_a_time(store: &dyn Store) {
    let intervention = |ts: i64, id: u64| InterventionRecord {
        ts: Timestamp::from_micros(ts),
        id: InterventionId(id),
        agent: Arc::from("a"),
        task: Arc::from("t"),
        strategy: Strategy::Reflect,
        severity: Severity::High,
        signal_kind: SignalKind::ErrorAccumulation,
        reason: "r".into(),
        signals_json: "[]".into(),
        outcome: None,
    };
    store
        .append(&[
            Record::Metric(rec(10, "a", "t", "planning", &[])),
            Record::Metric(rec(20, "a", "t", "planning", &[])),
            Record::Metric(rec(30, "a", "t", "planning", &[])),
            Record::Error(err(10, "a", Severity::High, "old")),
            Record::Error(err(40, "a", Severity::High, "new")),
            Record::Intervention(intervention(10, 1)),
            Record::Intervention(intervention(50, 2)),
        ])
        .unwrap();
    let baseline = baseline("a", "m", 3, 1.0);
    store.save_baselines(std::slice::from_ref(&baseline)).unwrap();
    let cutoff = Timestamp::from_micros(25);
    assert_eq!(store.delete_before(cutoff, 3).unwrap(), 3, "no more than asked");
    assert_eq!(store.delete_before(cutoff, 100).unwrap(), 1, "the rest");
    assert_eq!(store.delete_before(cutoff, 100).unwrap(), 0);
    let ts = store.query_metrics(&MetricQuery::all()).unwrap().iter().map(|r| r.ts.as_micros()).collect::<Vec<_>>();
    assert_eq!(ts, [30]);
    let errors = store.query_errors(&ErrorQuery::all()).unwrap();
    assert_eq!(errors.iter().map(|r| r.ts.as_micros()).collect::<Vec<_>>(), [40]);
    let kept = store.query_interventions(None, 0).unwrap();
    assert_eq!(kept.iter().map(|r| r.id).collect::<Vec<_>>(), [InterventionId(2)]);
    assert_eq!(store.load_baselines().unwrap(), [baseline], "state is not history");
}

pub fn run_all(fresh: &dyn Fn() -> Arc<dyn Store>) {
    type Check = (&'static str, fn(&dyn Store));
    let checks: [Check; 14] = [
        ("round_trips_records", round_trips_records),
        ("empty_batch_is_fine", empty_batch_is_fine),
        ("queries_filter_and_order", queries_filter_and_order),
        ("ties_keep_insertion_order", ties_keep_insertion_order),
        ("large_batches", large_batches),
        ("odd_strings_are_verbatim", odd_strings_are_verbatim),
        ("extreme_values_survive", extreme_values_survive),
        ("baselines_upsert_and_reload", baselines_upsert_and_reload),
        ("pings", pings),
        ("round_trips_errors", round_trips_errors),
        ("patterns_upsert_and_reload", patterns_upsert_and_reload),
        ("interventions_and_outcomes", interventions_and_outcomes),
        ("playbook_logs_append_in_order_per_domain", playbook_logs_append_in_order_per_domain),
        ("old_records_are_deleted_a_chunk_at_a_time", old_records_are_deleted_a_chunk_at_a_time),
    ];
    for (name, check) in checks {
        eprintln!("conformance: {name}");
        check(&*fresh());
    }
}

/// Records through a real engine on `store`, closes it, and checks a second engine on the same
/// store resumes the baselines.
pub fn engine_round_trip_owned(store: Arc<dyn Store>, reopen: &dyn Fn() -> Arc<dyn Store>) {
    let ace = ace::Ace::builder().store_arc(store.clone()).build().unwrap();
    for i in 0..150 {
        ace.record_stage_with(
            "agent-1",
            &format!("task-{i}"),
            "planning",
            1.0 + (i % 3) as f64 * 0.1,
            true,
            &[("tokens_in", 800.0)],
        )
        .unwrap();
    }
    let mut pattern = None;
    for port in 0..4 {
        let r = ace
            .record_error("agent-1", "task-x", "execution", "ConnectionError", &format!("db-{port} refused"), None)
            .unwrap();
        pattern = Some(r.pattern);
    }
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 150);
    let stored = store.query_errors(&ErrorQuery::all()).unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].pattern, pattern.unwrap());
    assert!(store.load_patterns().unwrap().iter().any(|p| p.id == pattern.unwrap()), "patterns saved at flush");
    let before = ace.baseline("agent-1", "planning", "duration_s").unwrap();
    let pb = ace.playbooks();
    let added =
        pb.merge("tenant-a", &[ace::playbook::Insight::new("strategies", "Check the fare before booking")]).unwrap();
    pb.feedback("tenant-a", &added.added[0], ace::playbook::Feedback::Helpful).unwrap();
    let playbook_before = pb.stats("tenant-a").unwrap();
    ace.close().unwrap();
    drop(ace);
    drop(store);

    let store = reopen();
    let ace = ace::Ace::builder().store_arc(store.clone()).build().unwrap();
    let after = ace.baseline("agent-1", "planning", "duration_s").expect("baseline reloaded");
    assert_eq!(after, before);
    assert_eq!(ace.baseline("agent-1", "planning", "tokens_in").unwrap().count, 150);
    let again = ace.record_error("agent-1", "task-y", "execution", "ConnectionError", "db-9 refused", None).unwrap();
    assert_eq!(again.pattern, pattern.unwrap(), "a reloaded pattern keeps its id");
    let pb = ace.playbooks();
    assert_eq!(pb.stats("tenant-a").unwrap(), playbook_before, "the playbook reloads to the same version and hash");
    assert_eq!(pb.bullets("tenant-a").unwrap()[0].helpful, 1);
    assert!(pb.bullets("tenant-b").unwrap().is_empty());
    ace.close().unwrap();
}
