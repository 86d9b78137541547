//! The conformance suite on the SQLite store, plus what only a file can get wrong.

#[path = "common/aged.rs"]
mod aged;
mod conformance;
#[path = "common/sqlite_lock.rs"]
mod sqlite_lock;

use std::sync::Arc;

use ace::{SqliteStore, Store};
use sqlite_lock::hold_exclusive;

fn fresh_in(dir: &tempfile::TempDir) -> impl Fn() -> Arc<dyn Store> + '_ {
    let n = std::cell::Cell::new(0);
    move || {
        n.set(n.get() + 1);
        Arc::new(SqliteStore::open(dir.path().join(format!("conformance-{}.db", n.get()))).unwrap()) as Arc<dyn Store>
    }
}

#[test]
fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&fresh_in(&dir));
}

#[test]
fn sqlite_store_engine_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ace.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::engine_round_trip_owned(store, &|| Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn Store>);
}

/// An engine's interventions, each raised by three repeats of one error in a new task; the
/// engine is closed after.
fn interventions_of_one_run(path: &std::path::Path, tasks: &[&str]) -> Vec<ace::InterventionId> {
    let mut config = ace::AceConfig::default();
    config.task_error_severity = None;
    let ace = ace::Ace::builder().config(config).store(SqliteStore::open(path).unwrap()).build().unwrap();
    let mut ids = Vec::new();
    for task in tasks {
        let mut raised = None;
        for i in 0..3 {
            let report = ace.record_error("a", task, "execution", "ToolError", &format!("call {i} failed"), None);
            raised = report.unwrap().intervention.map(|i| i.id).or(raised);
        }
        ids.push(raised.expect("three repeats of one error raise an intervention"));
    }
    ace.report_outcome(ids[ids.len() - 1], true).unwrap();
    ace.close().unwrap();
    ids
}

/// A process and its restart on one file, with the same (default) seed: every intervention is
/// stored, and an outcome reaches its own intervention. The ids used to start from the seed, so
/// the restart's first id was the first run's: the store kept the old row (`ON CONFLICT DO
/// NOTHING`) and the outcome went to it.
#[test]
fn a_restarted_engine_stores_all_its_interventions_and_outcomes_reach_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ace.db");
    let first = interventions_of_one_run(&path, &["t1", "t2"]);
    let second = interventions_of_one_run(&path, &["t3", "t4"]);
    let stored = SqliteStore::open(&path).unwrap().query_interventions(Some("a"), 0).unwrap();
    let mut tasks: Vec<(&str, Option<bool>)> = stored.iter().map(|i| (&*i.task, i.outcome)).collect();
    tasks.sort_unstable();
    assert_eq!(tasks, [("t1", None), ("t2", Some(true)), ("t3", None), ("t4", Some(true))], "{first:?} {second:?}");
}

#[test]
fn opens_through_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("via-url.db");
    let store = ace::open_store(&format!("sqlite://{}", path.display())).unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists());
    assert_eq!(ace::open_store("memory").unwrap().backend(), "memory");
    let plain = dir.path().join("plain.db");
    assert_eq!(ace::open_store(plain.to_str().unwrap()).unwrap().backend(), "sqlite");
}

#[test]
fn unsupported_urls_are_config_errors_without_passwords() {
    for url in ["mysql://u:hunter2@h/db", "redis-typo://:hunter2@h/0", "   "] {
        let err = ace::open_store(url).unwrap_err();
        assert_eq!(err.code(), "config", "{url}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn a_path_that_cannot_be_opened_is_store_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path().join("no/such/dir/ace.db")).unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    // A directory is not a database file either.
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err.code(), "store_unavailable" | "corrupt"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 64 * 1024]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.code(), "corrupt", "{err}");
    assert!(err.to_string().contains("garbage.db"), "{err}");
}

#[test]
fn migrations_go_down_and_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("m.db")).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    assert_eq!(store.migrate_down(6).unwrap(), 1);
    assert_eq!(
        indexes(store.path(), "ace_errors"),
        ["idx_ace_errors_agent_created", "idx_ace_errors_severity_created"]
    );
    assert_eq!(indexes(store.path(), "ace_interventions"), ["idx_ace_interventions_agent_created"]);
    assert_eq!(store.migrate_down(5).unwrap(), 1);
    assert_eq!(metric_indexes(store.path()), ["idx_ace_metrics_created"]);
    assert_eq!(store.migrate_down(4).unwrap(), 1);
    assert_eq!(store.count_metrics().unwrap(), 0, "v5 to v7 change indexes only");
    assert_eq!(store.migrate_down(3).unwrap(), 1);
    assert!(store.load_playbook("d").is_err(), "v4 tables are gone after going down to 3");
    assert_eq!(store.migrate_down(2).unwrap(), 1);
    assert!(store.query_interventions(None, 0).is_err(), "v3 tables are gone after going down to 2");
    assert_eq!(store.migrate_down(1).unwrap(), 1);
    assert_eq!(store.schema_version().unwrap(), 1);
    assert!(store.load_patterns().is_err(), "v2 tables are gone after going down to 1");
    assert_eq!(store.count_metrics().unwrap(), 0, "v1 tables stay");
    assert_eq!(store.migrate_down(0).unwrap(), 1);
    assert_eq!(store.schema_version().unwrap(), 0);
    assert!(store.count_metrics().is_err(), "tables are gone after down");
    assert_eq!(store.migrate_up().unwrap(), 7);
    assert_eq!(metric_indexes(store.path()), ["idx_ace_metrics_created_agent"]);
    assert_eq!(
        indexes(store.path(), "ace_errors"),
        ["idx_ace_errors_created_agent", "idx_ace_errors_severity_created"]
    );
    assert_eq!(indexes(store.path(), "ace_interventions"), ["idx_ace_interventions_created_agent"]);
    assert_eq!(store.load_patterns().unwrap(), vec![]);
    assert_eq!(store.count_metrics().unwrap(), 0);
    assert_eq!(store.migrate_up().unwrap(), 0, "up is idempotent");
}

#[test]
fn works_when_called_from_inside_a_tokio_runtime() {
    // Hosts with their own runtime must not hit "cannot start a runtime from within a runtime".
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in-runtime.db");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let ace = ace::Ace::builder().store(SqliteStore::open(&path).unwrap()).build().unwrap();
        ace.record_stage("a", "t", "planning", 0.1, true).unwrap();
        ace.flush().unwrap();
        assert_eq!(ace.store().count_metrics().unwrap(), 1);
        ace.close().unwrap();
    });
}

/// Issue 20 item 3: while another connection holds the file in `BEGIN EXCLUSIVE` for four seconds
/// under load, the writer does not sit on the lock with the buffers filling: it spills what
/// comes in and stores it, in order, once the lock is gone. Every accepted record is stored;
/// none is dropped.
#[test]
fn a_file_locked_by_another_connection_under_load_spills_and_loses_nothing() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let config =
        ace::AceConfig::builder().buffer_capacity(20_000).spill_dir(Some(dir.path().join("spill"))).build().unwrap();
    let ace = Arc::new(ace::Ace::builder().config(config).store(SqliteStore::open(&path).unwrap()).build().unwrap());
    let (locked, holder) = hold_exclusive(&path, Duration::from_secs(4));
    locked.recv().unwrap();
    // Two threads at 2,500 records a second each for five seconds: 20,000 records, five times
    // the buffer's capacity, arrive while the file is locked. (A debug build on a busy machine:
    // the rate is kept modest so the test asserts failover, not raw speed; the scale bench
    // measures speed.)
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let ace = ace.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                let mut slowest = Duration::ZERO;
                while started.elapsed() < Duration::from_secs(5) {
                    let due = (started.elapsed().as_secs_f64() * 2_500.0) as usize;
                    while n < due {
                        let agent = format!("agent-{t}-{}", n % 200);
                        let call = Instant::now();
                        ace.record_stage(&agent, &format!("task-{}", n / 800), "planning", 0.5, true).unwrap();
                        slowest = slowest.max(call.elapsed());
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                (n, slowest)
            })
        })
        .collect();
    let mut recorded = 0;
    for t in threads {
        let (n, slowest) = t.join().unwrap();
        recorded += n;
        eprintln!("a recording thread: {n} records, slowest call {slowest:?}");
    }
    holder.join().unwrap();
    let mut attempts = 0;
    while let Err(e) = ace.flush() {
        attempts += 1;
        assert!(attempts < 20, "the store never came back: {e}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let stats = ace.stats();
    let text = ace.metrics_text();
    let counter = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eprintln!("{stats:?}");
    for l in text
        .lines()
        .filter(|l| l.starts_with("ace_records") || l.starts_with("ace_spill") || l.starts_with("ace_store"))
    {
        eprintln!("{l}");
    }
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(counter("ace_records_spilled_total") > 0.0, "the writer waited on the lock instead of spilling");
    assert_eq!(counter("ace_records_spilled_total"), counter("ace_records_replayed_total"));
    assert!(recorded > 20_000, "{recorded}");
    ace.close().unwrap();
    let stored = SqliteStore::open(&path).unwrap().count_metrics().unwrap();
    assert_eq!(stored, recorded as u64, "every accepted record is stored");
}

/// Past `ACE_SPILL_MAX_BYTES` a slow store costs records, and each one is counted: what was
/// accepted is either stored or in `ace_records_dropped_total`, never silently gone.
#[test]
fn past_the_spill_budget_records_are_dropped_and_counted() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let config = ace::AceConfig::builder()
        .buffer_capacity(2_000)
        .spill_max_bytes(100_000)
        // Only stage records go through the buffer, so the counts below are of one kind.
        .intervention_enabled(false)
        .spill_dir(Some(dir.path().join("spill")))
        .build()
        .unwrap();
    let ace = ace::Ace::builder().config(config).store(SqliteStore::open(&path).unwrap()).build().unwrap();
    let (locked, holder) = hold_exclusive(&path, Duration::from_secs(3));
    locked.recv().unwrap();
    // 20,000 records over two seconds, about 1 MB spilled if the budget allowed it.
    let mut recorded = 0u64;
    for ms in 0..2000 {
        for i in 0..10 {
            ace.record_stage(&format!("agent-{i}"), &format!("task-{ms}"), "planning", 0.5, true).unwrap();
            recorded += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    holder.join().unwrap();
    while ace.flush().is_err() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = ace.metrics_text();
    let dropped = |reason: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("ace_records_dropped_total{{reason=\"{reason}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    ace.close().unwrap();
    let stored = SqliteStore::open(&path).unwrap().count_metrics().unwrap();
    let (full, buffer) = (dropped("spill_full"), dropped("buffer_full"));
    eprintln!("recorded {recorded}, stored {stored}, dropped past the budget {full}, at the buffer {buffer}");
    assert!(full > 0, "the budget was never reached");
    assert_eq!(stored + full + buffer, recorded, "every accepted record is stored or counted as dropped");
}

/// The indexes of `ace_performance_metrics` in the file at `path`.
fn metric_indexes(path: &std::path::Path) -> Vec<String> {
    indexes(path, "ace_performance_metrics")
}

/// The indexes created on `table` in the file at `path` (not those SQLite makes for a `UNIQUE`).
fn indexes(path: &std::path::Path, table: &str) -> Vec<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap()
    })
}

/// A file written by ace with schema v4 (the metrics indexed by agent and by stage) is brought
/// to v7 (one index in time order, then agent) when opened, keeping its records, which the
/// seed's query (one agent over a time range) still finds.
#[test]
fn a_version_4_file_is_migrated_to_time_ordered_metrics_with_its_records() {
    use ace::Timestamp;
    use ace::store::{MetricQuery, MetricRecord, Record};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let store = SqliteStore::open(&path).unwrap();
    store.migrate_down(4).unwrap();
    assert_eq!(store.schema_version().unwrap(), 4);
    let records: Vec<Record> = (0..300)
        .map(|i| {
            Record::Metric(MetricRecord {
                ts: Timestamp::from_micros(1_700_000_000_000_000 + i),
                agent: Arc::from(format!("agent-{}", i % 3)),
                task: Arc::from("t"),
                stage: Arc::from(if i % 2 == 0 { "planning" } else { "execution" }),
                duration_s: Some(1.0),
                success: Some(true),
                metrics: vec![(Arc::from("tokens_in"), i as f64)],
            })
        })
        .collect();
    store.append(&records).unwrap();
    store.close().unwrap();
    drop(store);
    assert_eq!(metric_indexes(&path), ["idx_ace_metrics_agent_created", "idx_ace_metrics_stage_created"]);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    assert_eq!(metric_indexes(&path), ["idx_ace_metrics_created_agent"]);
    assert_eq!(store.count_metrics().unwrap(), 300);
    let since = Timestamp::from_micros(1_700_000_000_000_000 + 150);
    let found = store.query_metrics(&MetricQuery::all().agent("agent-1").since(since)).unwrap();
    assert_eq!(found.len(), 50);
    assert!(found.windows(2).all(|w| w[0].ts <= w[1].ts), "oldest first");
    assert!(found.iter().all(|r| &*r.agent == "agent-1" && r.ts >= since));
    let planning = store.query_metrics(&MetricQuery::all().stage("planning").limit(10)).unwrap();
    assert_eq!(planning.len(), 10);
    assert_eq!(planning[0].ts, Timestamp::from_micros(1_700_000_000_000_000));
}

/// A file written by ace with schema v6 (errors and interventions indexed by agent) is brought
/// to v7 (indexed by time, then agent) when opened, keeping its records; the queries by agent, by
/// severity and over a time range return the rows they returned before.
#[test]
fn a_version_6_file_is_migrated_to_time_ordered_errors_and_interventions_with_its_records() {
    use ace::store::{ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, Record};
    use ace::{InterventionId, Severity, SignalKind, Strategy, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    let store = SqliteStore::open(&path).unwrap();
    store.migrate_down(6).unwrap();
    assert_eq!(store.schema_version().unwrap(), 6);
    let t0 = 1_700_000_000_000_000;
    let mut records = Vec::new();
    // Written out of time order, and two records at one time, so the order comes from the query.
    for i in (0..400_i64).rev() {
        let (ts, agent) = (Timestamp::from_micros(t0 + i / 2), Arc::<str>::from(format!("agent-{}", i % 5)));
        records.push(Record::Error(ErrorRecord {
            ts,
            agent: agent.clone(),
            task: Arc::from("t"),
            stage: Arc::from("execution"),
            kind: Arc::from("TimeoutError"),
            message: Arc::from(format!("timed out after {i} s")),
            severity: Severity::ALL[(i % 7 % 4) as usize],
            pattern: ace::errors::PatternId(i as u64),
        }));
        records.push(Record::Intervention(InterventionRecord {
            ts,
            id: InterventionId((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            agent,
            task: Arc::from("t"),
            strategy: Strategy::Replan,
            severity: Severity::Medium,
            signal_kind: SignalKind::ErrorAccumulation,
            reason: format!("reason {i}"),
            signals_json: "[]".into(),
            outcome: None,
        }));
    }
    store.append(&records).unwrap();
    let since = Timestamp::from_micros(t0 + 120);
    let error_queries = [
        ErrorQuery::all().agent("agent-1").since(since),
        ErrorQuery::all().agent("agent-2").limit(7),
        ErrorQuery::all().min_severity(Severity::High).since(since),
        ErrorQuery::all().min_severity(Severity::Medium).limit(9),
        ErrorQuery::all().agent("agent-3").min_severity(Severity::High),
        ErrorQuery::all().since(since).limit(11),
    ];
    let intervention_queries = [
        InterventionQuery::all().agent("agent-4").since(since),
        InterventionQuery::all().agent("agent-0").limit(6),
        InterventionQuery::all().since(since),
    ];
    let read = |store: &SqliteStore| {
        let errors: Vec<_> =
            error_queries.iter().map(|q| (store.query_errors(q).unwrap(), store.recent_errors(q).unwrap())).collect();
        let interventions: Vec<_> = intervention_queries
            .iter()
            .map(|q| {
                (
                    store.query_interventions(q.agent.as_deref(), q.limit).unwrap(),
                    store.recent_interventions(q).unwrap(),
                )
            })
            .collect();
        (errors, interventions)
    };
    let before = read(&store);
    store.close().unwrap();
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    assert_eq!(indexes(&path, "ace_errors"), ["idx_ace_errors_created_agent", "idx_ace_errors_severity_created"]);
    assert_eq!(indexes(&path, "ace_interventions"), ["idx_ace_interventions_created_agent"]);
    let after = read(&store);
    assert_eq!(after, before);
    let (errors, interventions) = after;
    assert_eq!(store.query_errors(&ErrorQuery::all()).unwrap().len(), 400, "every error kept");
    assert_eq!(store.query_interventions(None, 0).unwrap().len(), 400, "every intervention kept");
    // The reads are not empty and match their queries, in time order (newest first for recent).
    for (q, (oldest, newest)) in error_queries.iter().zip(&errors) {
        assert!(!oldest.is_empty() && oldest.iter().all(|r| q.matches(r)), "{q:?}");
        assert!(oldest.windows(2).all(|w| w[0].ts <= w[1].ts), "{q:?}");
        assert!(newest.windows(2).all(|w| w[0].ts >= w[1].ts), "{q:?}");
    }
    let first = &errors[0].0;
    assert_eq!(first.len(), 32, "agent-1's errors at or after t0 + 120");
    assert!(interventions.iter().all(|(oldest, newest)| !oldest.is_empty() && !newest.is_empty()));
    assert!(interventions[0].1.iter().all(|r| &*r.agent == "agent-4" && r.ts >= since));
}

/// `PRAGMA name` of the file at `path`, read through a connection of its own.
fn pragma(path: &std::path::Path, name: &str) -> i64 {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}"))).fetch_one(&mut conn).await.unwrap()
    })
}

/// Retention deletes the metric, error and intervention records older than the cutoff, keeps
/// the newer ones and everything else (baselines, patterns, playbooks), counts what it deleted,
/// and refuses 0 or absurd days.
#[test]
fn retain_deletes_old_records_and_keeps_the_rest() {
    use ace::errors::{PatternId, PatternRecord};
    use ace::store::{BaselineRecord, ErrorQuery, PlaybookEntry};
    use ace::{BaselineState, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("retain.db")).unwrap();
    store.append(&aged::forty_to_zero_days()).unwrap();
    let long_ago = Timestamp::from_micros(1_000_000);
    let baseline = BaselineRecord {
        agent: "a".into(),
        stage: "planning".into(),
        metric: "tokens_in".into(),
        state: BaselineState { count: 3, mean: 1.0, var: 0.1, recent: 1.0, degraded: false },
        updated_at: long_ago,
    };
    store.save_baselines(std::slice::from_ref(&baseline)).unwrap();
    let pattern = PatternRecord {
        id: PatternId::of("E", "disk <*> full"),
        kind: "E".into(),
        template: "disk <*> full".into(),
        count: 2,
    };
    store.save_patterns(std::slice::from_ref(&pattern)).unwrap();
    let entry = PlaybookEntry {
        domain: "d".into(),
        version: 1,
        at: long_ago,
        hash: format!("{:064x}", 1),
        snapshot: true,
        body: "{}".into(),
    };
    store.append_playbook(std::slice::from_ref(&entry)).unwrap();

    assert_eq!(store.retain(30).unwrap(), 6, "two metrics, two errors and two interventions are older");
    assert_eq!(store.count_metrics().unwrap(), 2);
    assert_eq!(store.query_errors(&ErrorQuery::all()).unwrap().len(), 2);
    let kept: Vec<u64> = store.query_interventions(None, 0).unwrap().iter().map(|i| i.id.0).collect();
    assert_eq!(kept, [3, 4], "the 29- and 0-day-old interventions stay");
    assert_eq!(store.load_baselines().unwrap(), [baseline]);
    assert_eq!(store.load_patterns().unwrap(), [pattern]);
    assert_eq!(store.load_playbook("d").unwrap(), [entry]);
    assert_eq!(store.retain(30).unwrap(), 0, "nothing older is left");
    assert_eq!(store.retain(1).unwrap(), 3, "then the 29-day-old records go");

    for days in [0, ace::event::MAX_RETAIN_DAYS + 1, u32::MAX] {
        let err = store.retain(days).unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{days}: {err}");
    }
    assert_eq!(store.count_metrics().unwrap(), 1, "a refused call deletes nothing");
}

/// More old records than one delete takes go in several chunks, all counted; the pages they
/// free take the next records, so a file refilled to the same size does not grow.
#[test]
fn retain_deletes_in_chunks_and_the_freed_pages_are_reused() {
    use ace::Timestamp;
    use ace::store::Record;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunks.db");
    let store = SqliteStore::open(&path).unwrap();
    let now = ace::Clock::now(&ace::SystemClock).as_micros();
    let batch = |from_micros: i64| -> Vec<Record> {
        (0..5_000).map(|i| Record::Metric(aged::aged_metric(Timestamp::from_micros(from_micros + i)))).collect()
    };
    let old = now - 10 * 86_400_000_000;
    for b in 0..5 {
        store.append(&batch(old + b * 5_000)).unwrap();
    }
    store.append(&aged::aged(0, 1)[..1]).unwrap();
    let pages = pragma(&path, "page_count");
    assert_eq!(store.retain(1).unwrap(), 25_000, "three chunks of up to 10,000");
    assert_eq!(store.count_metrics().unwrap(), 1);
    assert!(pragma(&path, "freelist_count") > pages / 2, "the old records' pages are free");
    for b in 0..5 {
        store.append(&batch(now - 1_000_000 + b * 5_000)).unwrap();
    }
    assert_eq!(store.count_metrics().unwrap(), 25_001);
    // B-tree pages split differently the second time: a few more, where a file that kept
    // nothing free would have doubled.
    let refilled = pragma(&path, "page_count");
    assert!(refilled < pages + pages / 10, "refilled from the free pages: {refilled} pages, from {pages}");
}

/// `ACE_RETAIN_DAYS` has the engine delete the old records itself (the first pass starts with
/// the engine, on a thread of its own); without it nothing is deleted.
#[test]
fn the_engine_deletes_old_records_when_told_how_many_days_to_keep() {
    use ace::store::ErrorQuery;
    use ace::{Ace, AceConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auto.db");
    SqliteStore::open(&path).unwrap().append(&aged::forty_to_zero_days()).unwrap();
    // The store after the engine closed, and the engine's count of what it deleted.
    let engine = |settings: &[(&str, &str)]| {
        let config = AceConfig::from_settings(settings.iter().copied().chain([("ACE_SPILL_DIR", "off")])).unwrap();
        let ace = Ace::builder().config(config).store(SqliteStore::open(&path).unwrap()).build().unwrap();
        ace.flush().unwrap();
        let deleted = || {
            ace.metrics_text()
                .lines()
                .find_map(|l| l.strip_prefix("ace_records_retention_deleted_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        // The pass runs beside the writer: wait for its count (a pass that deletes nothing
        // leaves it at 0, and the assertions below say so).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !settings.is_empty() && deleted() == Some(0.0) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let deleted = deleted();
        ace.close().unwrap();
        (SqliteStore::open(&path).unwrap(), deleted)
    };
    let (store, deleted) = engine(&[]);
    assert_eq!(store.count_metrics().unwrap(), 4, "off by default");
    assert_eq!(deleted, Some(0.0));
    let (store, deleted) = engine(&[("ACE_RETAIN_DAYS", "30")]);
    assert_eq!(store.count_metrics().unwrap(), 2);
    assert_eq!(deleted, Some(6.0), "two metric, two error and two intervention records counted");
    assert_eq!(store.query_errors(&ErrorQuery::all()).unwrap().len(), 2);
    assert_eq!(store.query_interventions(None, 0).unwrap().len(), 2);
}
