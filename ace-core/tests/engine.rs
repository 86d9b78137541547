//! The engine's public API: batching, flush, close, bad input, overflow, signals, metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ace_core::errors::PatternRecord;
use ace_core::store::{BaselineRecord, ErrorQuery, ErrorRecord, MetricQuery, MetricRecord, Record, Store};
use ace_core::{Ace, AceConfig, Clock, Error, ManualClock, MemoryStore, SignalKind, Timestamp};

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn engine(store: &MemoryStore, config: AceConfig) -> Ace {
    Ace::builder().config(config).store(store.clone()).build().unwrap()
}

#[test]
fn handle_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Ace>();
}

#[test]
fn flush_stores_everything_accepted() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::builder().batch_timeout(Duration::from_secs(3600)).build().unwrap());
    for i in 0..1234u32 {
        ace.record_stage_with("a", &format!("t{i}"), "planning", 0.5, !i.is_multiple_of(7), &[("tokens_in", i as f64)])
            .unwrap();
    }
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 1234);
    let back = store.query_metrics(&MetricQuery::all().limit(3)).unwrap();
    assert_eq!(back[0].task.as_ref(), "t0");
    assert_eq!(back[0].success, Some(false));
    assert_eq!(back[1].metrics, vec![(Arc::from("tokens_in"), 1.0)]);
    let stats = ace.stats();
    // Records of every kind: the stages, and the interventions their signals led to (audited).
    let interventions = store.query_interventions(None, 0).unwrap().len() as u64;
    assert_eq!((stats.recorded, stats.persisted, stats.buffered, stats.dropped), (1234, 1234 + interventions, 0, 0));
}

#[test]
fn the_default_store_evicts_past_its_bound_and_counts_it_apart_from_losses() {
    let store = MemoryStore::with_max_records(100);
    let ace = engine(&store, AceConfig::default());
    for i in 0..250u32 {
        ace.record_stage("a", &format!("t{i}"), "planning", 0.5, true).unwrap();
    }
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 100, "the newest 100");
    let stats = ace.stats();
    assert_eq!((stats.evicted, stats.dropped), (150, 0));
    assert!(ace.metrics_text().contains("\nace_records_evicted_total 150\n"), "the series says it too");
    // A store that keeps everything evicts nothing.
    let keeps = Ace::builder().build().unwrap();
    keeps.record_stage("a", "t", "planning", 0.5, true).unwrap();
    keeps.flush().unwrap();
    assert_eq!(keeps.stats().evicted, 0);
}

#[test]
fn a_full_batch_is_written_without_a_flush() {
    let store = MemoryStore::new();
    let ace =
        engine(&store, AceConfig::builder().batch_size(64).batch_timeout(Duration::from_secs(3600)).build().unwrap());
    // One agent and stage live in one shard; its share of the batch is what triggers the write.
    for i in 0..256 {
        ace.record_stage("agent", &format!("t{i}"), "execution", 1.0, true).unwrap();
    }
    wait_until("a batch was written by size", || store.count_metrics().unwrap() > 0);
    ace.close().unwrap();
}

#[test]
fn the_batch_timeout_writes_a_lone_record() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::builder().batch_timeout(Duration::from_millis(20)).build().unwrap());
    ace.record_stage("a", "t", "planning", 0.1, true).unwrap();
    wait_until("the timeout wrote the record", || store.count_metrics().unwrap() == 1);
}

#[test]
fn close_flushes_and_then_refuses() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::default());
    let clone = ace.clone();
    ace.record_stage("a", "t", "planning", 0.1, true).unwrap();
    ace.close().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 1);
    assert!(clone.is_closed());
    assert!(matches!(clone.record_stage("a", "t", "planning", 0.1, true), Err(Error::Closed)));
    assert!(matches!(clone.record_metric("a", "t", "planning", "cost_usd", 1.0), Err(Error::Closed)));
    assert_eq!(clone.flush().unwrap_err().code(), "closed");
    // Nor does it hand out breakers, limiters or bulkheads.
    assert!(matches!(clone.breaker("b"), Err(Error::Closed)));
    assert!(matches!(clone.rate_limiter("r", 1.0, 1), Err(Error::Closed)));
    assert!(matches!(clone.bulkhead("k", 1), Err(Error::Closed)));
    clone.close().unwrap(); // twice is fine
}

#[test]
fn dropping_the_last_handle_flushes() {
    let store = MemoryStore::new();
    {
        let ace = engine(&store, AceConfig::builder().batch_timeout(Duration::from_secs(3600)).build().unwrap());
        for i in 0..10 {
            ace.record_stage("a", &format!("t{i}"), "planning", 0.1, true).unwrap();
        }
    }
    assert_eq!(store.count_metrics().unwrap(), 10);
}

#[test]
fn invalid_events_are_rejected_whole_and_counted() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::default());
    let huge = "a".repeat(100 * 1024);
    let many: Vec<(String, f64)> = (0..65).map(|i| (format!("m{i}"), 1.0)).collect();
    let many: Vec<(&str, f64)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let cases: Vec<(&str, Result<ace_core::Report, Error>)> = vec![
        (
            "nan metric",
            ace.record_stage_with("a", "t", "planning", 1.0, true, &[("tokens_in", 1.0), ("cost_usd", f64::NAN)]),
        ),
        ("inf metric", ace.record_metric("a", "t", "planning", "cost_usd", f64::INFINITY)),
        ("negative duration", ace.record_stage("a", "t", "planning", -0.5, true)),
        ("nan duration", ace.record_stage("a", "t", "planning", f64::NAN, true)),
        ("empty agent", ace.record_stage("", "t", "planning", 1.0, true)),
        ("huge agent", ace.record_stage(&huge, "t", "planning", 1.0, true)),
        ("empty task", ace.record_stage("a", "", "planning", 1.0, true)),
        ("odd stage", ace.record_stage("a", "t", "Plan; DROP TABLE", 1.0, true)),
        ("unicode stage", ace.record_stage("a", "t", "plänning", 1.0, true)),
        ("reserved metric", ace.record_stage_with("a", "t", "planning", 1.0, true, &[("success", 1.0)])),
        ("duplicate metric", ace.record_stage_with("a", "t", "planning", 1.0, true, &[("x", 1.0), ("x", 2.0)])),
        ("bad metric name", ace.record_metric("a", "t", "planning", "tokens in", 1.0)),
        ("too many metrics", ace.record_stage_with("a", "t", "planning", 1.0, true, &many)),
    ];
    for (what, result) in cases {
        let err = result.expect_err(what);
        assert_eq!(err.code(), "invalid_input", "{what}: {err}");
    }
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 0, "nothing of a rejected event is stored");
    assert_eq!(ace.stats().recorded, 0);
    assert!(ace.baseline("a", "planning", "tokens_in").is_none(), "no baseline moved");
    let text = ace.metrics_text();
    let rejected: f64 = text
        .lines()
        .filter(|l| l.starts_with("ace_events_rejected_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(rejected, 13.0, "{text}");
    // A valid event right after is recorded normally.
    ace.record_stage("a", "t", "planning", 1.0, true).unwrap();
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 1);
}

/// A memory store that misbehaves on demand: its writes fail `failures` times (then succeed),
/// or while `down` is set; its pings fail when `unpingable`; with a `key` the engine spills for it.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    failures: AtomicUsize,
    down: Arc<std::sync::atomic::AtomicBool>,
    unpingable: bool,
    key: Option<String>,
}

impl Store for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    fn append(&self, records: &[Record]) -> ace_core::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::StoreUnavailable { backend: "flaky", message: "switched off".into(), source: None });
        }
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::StoreUnavailable { backend: "flaky", message: "injected failure".into(), source: None });
        }
        self.inner.append(records)
    }
    fn spill_key(&self) -> Option<String> {
        self.key.clone()
    }
    fn save_baselines(&self, b: &[BaselineRecord]) -> ace_core::Result<()> {
        self.inner.save_baselines(b)
    }
    fn load_baselines(&self) -> ace_core::Result<Vec<BaselineRecord>> {
        self.inner.load_baselines()
    }
    fn query_metrics(&self, q: &MetricQuery) -> ace_core::Result<Vec<MetricRecord>> {
        self.inner.query_metrics(q)
    }
    fn count_metrics(&self) -> ace_core::Result<u64> {
        self.inner.count_metrics()
    }
    fn query_errors(&self, q: &ErrorQuery) -> ace_core::Result<Vec<ErrorRecord>> {
        self.inner.query_errors(q)
    }
    fn save_patterns(&self, p: &[PatternRecord]) -> ace_core::Result<()> {
        self.inner.save_patterns(p)
    }
    fn load_patterns(&self) -> ace_core::Result<Vec<PatternRecord>> {
        self.inner.load_patterns()
    }
    fn query_interventions(
        &self,
        a: Option<&str>,
        n: usize,
    ) -> ace_core::Result<Vec<ace_core::store::InterventionRecord>> {
        self.inner.query_interventions(a, n)
    }
    fn append_playbook(&self, entries: &[ace_core::store::PlaybookEntry]) -> ace_core::Result<()> {
        self.inner.append_playbook(entries)
    }
    fn load_playbook(&self, domain: &str) -> ace_core::Result<Vec<ace_core::store::PlaybookEntry>> {
        self.inner.load_playbook(domain)
    }
    fn ping(&self) -> ace_core::Result<Duration> {
        if self.unpingable {
            return Err(Error::StoreUnavailable {
                backend: "flaky",
                message: "connection refused".into(),
                source: None,
            });
        }
        self.inner.ping()
    }
}

#[test]
fn failed_writes_are_retried_and_nothing_is_lost_or_duplicated() {
    let flaky = Arc::new(FlakyStore { failures: AtomicUsize::new(2), ..FlakyStore::default() });
    let ace = Ace::builder().store_arc(flaky.clone()).build().unwrap();
    for i in 0..500 {
        ace.record_stage("a", &format!("t{i}"), "planning", 0.1, true).unwrap();
    }
    let first = ace.flush().unwrap_err();
    assert_eq!(first.code(), "store");
    assert!(first.to_string().contains("injected failure"), "{first}");
    // Flush forces a new attempt each time; the third succeeds.
    let mut attempts = 1;
    while ace.flush().is_err() {
        attempts += 1;
        assert!(attempts < 10);
    }
    assert_eq!(flaky.inner.count_metrics().unwrap(), 500);
    let tasks: std::collections::HashSet<String> =
        flaky.inner.query_metrics(&MetricQuery::all()).unwrap().iter().map(|r| r.task.to_string()).collect();
    assert_eq!(tasks.len(), 500, "each record exactly once");
    assert!(ace.stats().store_failures >= 2);
}

#[test]
fn a_full_buffer_drops_counted_never_blocks() {
    let flaky = Arc::new(FlakyStore { failures: AtomicUsize::new(usize::MAX), ..FlakyStore::default() });
    // Interventions off: only stage records go through the buffer here.
    let config = AceConfig::builder().batch_size(16).buffer_capacity(160).intervention_enabled(false).build().unwrap();
    let ace = Ace::builder().config(config).store_arc(flaky.clone()).build().unwrap();
    for i in 0..5000 {
        // Never an error for the agent: persistence trouble is the engine's to report.
        ace.record_stage(&format!("agent-{}", i % 50), "t", "planning", 0.1, true).unwrap();
    }
    let stats = ace.stats();
    assert_eq!(stats.recorded, 5000);
    assert!(stats.dropped > 0, "{stats:?}");
    // The shards hold at most half the capacity and the writer's hand one drain, at most the
    // other half, whatever the interleaving of recorders and drains (see `hot/buffer.rs`).
    assert!(stats.buffered <= 160, "bounded by the capacity: {stats:?}");
    assert!(ace.metrics_text().contains("ace_records_dropped_total{reason=\"buffer_full\"}"));
    assert_eq!(ace.flush().unwrap_err().code(), "store");
    flaky.failures.store(0, Ordering::SeqCst);
    ace.flush().unwrap();
    let stored = flaky.inner.count_metrics().unwrap();
    assert_eq!(stored + ace.stats().dropped, 5000, "every record is either stored or counted as dropped");
}

#[test]
fn degradation_is_returned_by_the_call_that_caused_it() {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().clock(clock.clone()).build().unwrap();
    for i in 0..100u32 {
        clock.advance(Duration::from_secs(10));
        let d = if i.is_multiple_of(2) { 2.1 } else { 1.9 };
        // The agent's context is rebuilt for every task, so only the monitor speaks here.
        ace.refresh_context("agent-7").unwrap();
        assert!(ace.record_stage("agent-7", &format!("t{i}"), "execution", d, true).unwrap().is_empty());
    }
    let mut found = None;
    for i in 100..120 {
        clock.advance(Duration::from_secs(10));
        let report = ace.record_stage("agent-7", &format!("t{i}"), "execution", 6.0, true).unwrap();
        if let Some(s) = report.signals.into_iter().next() {
            // The same call says what to do about it.
            let intervention = report.intervention.expect("a degradation warrants an intervention");
            assert_eq!(intervention.signals[0], s);
            assert!(intervention.reason.contains("duration_s"), "{}", intervention.reason);
            found = Some((i, s));
            break;
        }
    }
    let (at, signal) = found.expect("a tripled duration must raise a signal");
    assert!(at < 110, "raised only at task {at}");
    assert_eq!(signal.kind, SignalKind::Degradation);
    assert_eq!(&*signal.agent, "agent-7");
    assert_eq!(signal.stage.as_deref(), Some("execution"));
    assert_eq!(signal.at, clock.now());
    assert!(signal.message.contains("duration_s") && signal.message.contains("above"), "{}", signal.message);
    let ace_core::Evidence::BaselineShift { deviation_pct, z_score, .. } = signal.evidence else { panic!() };
    assert!(deviation_pct > 20.0 && z_score > 4.0);
}

#[test]
fn token_and_cost_metrics_get_baselines() {
    let ace = Ace::builder().build().unwrap();
    for i in 0..50 {
        ace.record_stage_with(
            "a",
            &format!("t{i}"),
            "planning",
            1.0,
            true,
            &[("tokens_in", 1000.0), ("cost_usd", 0.01)],
        )
        .unwrap();
    }
    ace.record_metric("a", "t50", "planning", "tokens_out", 250.0).unwrap();
    let tokens = ace.baseline("a", "planning", "tokens_in").unwrap();
    assert_eq!((tokens.count, tokens.mean), (50, 1000.0));
    assert_eq!(ace.baseline("a", "planning", "cost_usd").unwrap().mean, 0.01);
    assert_eq!(ace.baseline("a", "planning", "tokens_out").unwrap().count, 1);
    assert_eq!(ace.baseline("a", "planning", "duration_s").unwrap().count, 50, "a lone metric has no outcome");
}

#[test]
fn the_timer_records_duration_and_outcome() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::default());
    let mut ok = ace.time_stage("a", "t1", "execution");
    ok.metric("tokens_out", 12.0);
    std::thread::sleep(Duration::from_millis(5));
    assert!(ok.finish().unwrap().is_empty());
    let mut failed = ace.time_stage("a", "t2", "execution");
    failed.fail();
    drop(failed);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _timer = ace.time_stage("a", "t3", "execution");
        panic!("the agent's code blew up");
    }));
    assert!(panicked.is_err());
    ace.flush().unwrap();
    let back = store.query_metrics(&MetricQuery::all()).unwrap();
    assert_eq!(back.len(), 3);
    assert!(back[0].duration_s.unwrap() >= 0.005);
    assert_eq!(back.iter().map(|r| r.success.unwrap()).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(back[0].metrics, vec![(Arc::from("tokens_out"), 12.0)]);
}

#[test]
fn metrics_use_the_seed_names_and_cap_agent_labels() {
    let ace = Ace::builder().config(AceConfig::builder().metrics_max_agents(2).build().unwrap()).build().unwrap();
    for agent in ["a1", "a2", "a3", "a4", "a5"] {
        ace.record_stage_with(agent, "t", "planning", 0.2, true, &[("tokens_in", 10.0)]).unwrap();
    }
    let text = ace.metrics_text();
    for name in [
        "ace_performance_updates_total{agent_id=\"a1\",stage=\"planning\"} 1",
        "ace_performance_updates_total{agent_id=\"__overflow__\",stage=\"planning\"} 3",
        "ace_stage_duration_seconds_count{agent_id=\"__overflow__\",stage=\"planning\"} 3",
        "ace_stage_duration_seconds_bucket{le=\"0.16\",agent_id=\"a1\",stage=\"planning\"} 0",
        "ace_stage_duration_seconds_bucket{le=\"0.32\",agent_id=\"a1\",stage=\"planning\"} 1",
        "ace_stage_duration_seconds_bucket{le=\"+Inf\",agent_id=\"a1\",stage=\"planning\"} 1",
        "ace_error_rate{agent_id=\"a2\",stage=\"planning\"}",
        "ace_baseline_deviation{agent_id=\"a1\",stage=\"planning\",metric=\"tokens_in\"}",
        // Three agents over the cap, each folded in two families (stage series and staleness).
        "ace_metrics_label_overflow_total 6",
        "ace_context_staleness{agent_id=\"__overflow__\"}",
        "ace_context_staleness{agent_id=\"a1\"}",
        "# EOF",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert!(!text.contains("a3"), "capped agents must not get their own series");
    ace.flush().unwrap();
    let text = ace.metrics_text();
    assert!(text.contains("ace_mem_query_duration_seconds_count{query_type=\"append\"}"), "{text}");
    assert!(text.contains("ace_metric_computation_duration_seconds_count{operation=\"flush\"}"), "{text}");
}

#[test]
fn threads_recording_at_once_lose_nothing() {
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::builder().batch_size(500).buffer_capacity(1_000_000).build().unwrap());
    std::thread::scope(|s| {
        for t in 0..4 {
            let ace = ace.clone();
            s.spawn(move || {
                for i in 0..10_000 {
                    ace.record_stage(&format!("agent-{}", i % 37), &format!("t{t}-{i}"), "execution", 0.1, true)
                        .unwrap();
                }
            });
        }
    });
    ace.flush().unwrap();
    assert_eq!(store.count_metrics().unwrap(), 40_000);
    assert_eq!(ace.stats().recorded, 40_000);
}

#[test]
fn bad_config_fails_the_build() {
    let mut config = AceConfig::default();
    config.batch_size = 0;
    let err = Ace::builder().config(config).build().unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("ACE_BATCH_SIZE"));
}

#[test]
fn an_engine_that_does_not_persist_still_decides_but_stores_nothing() {
    let clock = ace_core::ManualClock::new(ace_core::Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().clock(clock).persist(false).build().unwrap();
    let mut issued = 0;
    for _ in 0..3 {
        issued += usize::from(ace.record_stage("a", "t", "execution", 1.0, false).unwrap().intervention.is_some());
    }
    ace.record_error("a", "t", "execution", "TypeError", "boom", None).unwrap();
    assert_eq!(issued, 1);
    ace.flush().unwrap();
    assert_eq!(ace.store().count_metrics().unwrap(), 0);
    assert!(ace.store().query_interventions(None, 0).unwrap().is_empty());
    assert_eq!(ace.stats().buffered, 0);
}

#[test]
fn a_recorded_trace_replays_to_the_same_decisions() {
    let dir = std::env::temp_dir().join(format!("ace-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.jsonl");
    let _ = std::fs::remove_file(&path);
    let clock = ace_core::ManualClock::new(ace_core::Timestamp::from_micros(1_700_000_000_000_000));
    let config = AceConfig::builder().trace_path(path.to_str().unwrap()).build().unwrap();
    let ace = Ace::builder().config(config.clone()).clock(clock.clone()).build().unwrap();
    let mut live = 0;
    for task in 0..5 {
        let task = format!("t{task}");
        for step in 0..4 {
            clock.advance(std::time::Duration::from_secs(2));
            let r = ace.record_stage_with(
                "a",
                &task,
                "execution",
                1.5,
                step % 2 == 0 || task != "t3",
                &[("tokens_in", 10.0)],
            );
            live += usize::from(r.unwrap().intervention.is_some());
        }
        let e = ace.record_error(
            "a",
            &task,
            "execution",
            "ToolError",
            "tool \"x\" failed: bad input",
            Some(ace_core::Severity::High),
        );
        live += usize::from(e.unwrap().intervention.is_some());
        ace.refresh_context("a").unwrap();
        ace.end_task("a", &task).unwrap();
    }
    ace.record_metric("a", "t9", "execution", "cost_usd", 0.1).unwrap();
    ace.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5 * (4 + 1 + 1 + 1), "stages, errors, refreshes and ends; no metric-only line");
    assert!(text.lines().next().unwrap().contains("\"type\":\"stage\""));
    assert!(text.contains("\"severity\":\"high\"") && text.contains("\\\"x\\\""));
    let score = ace_core::replay::replay(text.as_bytes(), "recorded", AceConfig::default()).unwrap();
    assert_eq!(score.events, 35);
    assert_eq!(score.interventions as usize, live, "the same input gives the same decisions");
    assert!(live > 0);
    // A trace path that cannot be opened is a configuration error at start.
    let bad = AceConfig::builder().trace_path(dir.join("no/such/dir/t.jsonl").to_str().unwrap()).build().unwrap();
    assert_eq!(Ace::builder().config(bad).build().unwrap_err().code(), "config");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn health_reports_the_store_the_breakers_and_the_status() {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().clock(clock).build().unwrap();
    let h = ace.health();
    assert_eq!(
        (h.status, h.database, h.database_backend, h.redis),
        ("healthy", "connected", "memory", "not_configured")
    );
    assert!(h.latency_ms.is_some() && h.database_error.is_none());
    assert_eq!(h.timestamp, "2023-11-14T22:13:20.000Z");
    let llm = ace.breaker("generator").unwrap();
    for _ in 0..5 {
        llm.try_acquire().unwrap().failure();
    }
    let h = ace.health();
    assert_eq!((h.status, h.circuit_breakers["generator"]), ("degraded", "open"));
    let json: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
    assert_eq!(json["circuit_breakers"]["generator"], "open");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));

    let down = Ace::builder().store(FlakyStore { unpingable: true, ..FlakyStore::default() }).build().unwrap();
    let h = down.health();
    assert_eq!((h.status, h.database), ("unhealthy", "unreachable"));
    assert!(h.database_error.unwrap().contains("connection refused"));
}

#[test]
fn records_of_an_engine_closed_while_the_store_is_down_are_spilled_and_stored_by_the_next() {
    let dir = std::env::temp_dir().join(format!("ace-spill-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inner = MemoryStore::new();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let key = format!("switchable-{}", std::process::id());
    let store =
        || FlakyStore { inner: inner.clone(), down: down.clone(), key: Some(key.clone()), ..FlakyStore::default() };
    let config = AceConfig::builder().spill_dir(Some(dir.clone())).build().unwrap();
    let first = Ace::builder().config(config.clone()).store(store()).build().unwrap();
    for i in 0..500 {
        first.record_stage("agent-1", &format!("t{i}"), "planning", 1.0, true).unwrap();
    }
    assert!(first.flush().is_err(), "the store is down");
    first.close().unwrap_or_default();
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // 500 stages and the intervention that staleness raised on the way.
    let spilled = counter(&first.metrics_text(), "ace_records_spilled_total");
    assert_eq!(spilled, 501, "{}", first.metrics_text());
    assert!(!first.metrics_text().contains("ace_records_dropped_total{"));
    assert_eq!(inner.count_metrics().unwrap(), 0);

    down.store(false, Ordering::SeqCst);
    let second = Ace::builder().config(config).store(store()).build().unwrap();
    second.flush().unwrap();
    assert_eq!(inner.count_metrics().unwrap(), 500, "replayed by the next engine on the directory");
    assert_eq!(counter(&second.metrics_text(), "ace_records_replayed_total"), spilled);
    assert_eq!(inner.query_interventions(None, 0).unwrap().len(), 1);
    // Another store (another key) never sees these files.
    second.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn durable_mode_needs_a_store_that_persists() {
    let config = AceConfig::builder().durable(true).build().unwrap();
    let err = Ace::builder().config(config).build().unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("ACE_DURABLE"), "{err}");
}

#[test]
fn thousands_of_agent_stages_each_keep_their_own_baseline() {
    // 3,000 (agent, stage) entries: about 190 a shard, past one chunk of entries in each.
    let store = MemoryStore::new();
    let ace = engine(&store, AceConfig::default());
    for round in 0..3 {
        for agent in 0..1_000 {
            for (i, stage) in ["planning", "execution", "reflection"].into_iter().enumerate() {
                let seconds = (agent * 3 + i) as f64 + round as f64 * 0.001;
                ace.record_stage_with(&format!("agent-{agent}"), "t", stage, seconds, true, &[("tokens", 1.0)])
                    .unwrap();
            }
        }
    }
    assert_eq!(ace.stats().baselines, 3_000);
    for agent in [0, 127, 128, 500, 999] {
        for (i, stage) in ["planning", "execution", "reflection"].into_iter().enumerate() {
            let b = ace.baseline(&format!("agent-{agent}"), stage, "duration_s").unwrap();
            assert_eq!(b.count, 3);
            assert!((b.mean - ((agent * 3 + i) as f64 + 0.001)).abs() < 1e-9, "{agent} {stage}: {}", b.mean);
            assert_eq!(ace.baseline(&format!("agent-{agent}"), stage, "tokens").unwrap().count, 3);
        }
    }
    assert!(ace.baseline("agent-1000", "planning", "duration_s").is_none());
    ace.flush().unwrap();
    assert_eq!(store.query_metrics(&MetricQuery::all()).unwrap().len(), 9_000);
}
