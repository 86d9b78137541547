//! Fault test: PostgreSQL goes away under a sustained write load (its connections cut by a TCP
//! proxy the test owns, as in a network partition) and comes back. Every record recorded must be
//! stored exactly once, through the spill directory, and recording must never wait on the store.
#![cfg(feature = "postgres")]

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ace::errors::PatternRecord;
use ace::store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, PlaybookEntry, Record,
    Store,
};
use ace::{Ace, AceConfig, PgOptions, PgStore};

/// Forwards 127.0.0.1:<port> to the real server; `cut` breaks every connection and refuses new
/// ones until `restore`.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, l) = (cut.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                l.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, live }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_postgres_outage_under_load_loses_nothing_and_stores_nothing_twice() {
    let proxy = Proxy::start("127.0.0.1:5432");
    let url = format!("postgresql://postgres@127.0.0.1:{}/test", proxy.port);
    let schema = format!("ace_fault_{}", std::process::id());
    let options =
        PgOptions::default().schema(schema.clone()).max_connections(2).connect_timeout(Duration::from_secs(2));
    let store = Arc::new(PgStore::connect(&url, options).expect("PostgreSQL at 127.0.0.1:5432 is required"));
    let spill = tempfile::tempdir().unwrap();
    let config = AceConfig::builder()
        .batch_size(200)
        .batch_timeout(Duration::from_millis(50))
        .spill_dir(Some(spill.path().to_path_buf()))
        .build()
        .unwrap();
    let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();

    const N: usize = 30_000;
    let mut slowest = Duration::ZERO;
    for i in 0..N {
        if i == N / 3 {
            proxy.cut();
        }
        if i == 2 * N / 3 {
            // Long enough for the writer to fail, back off and spill.
            std::thread::sleep(Duration::from_millis(300));
            proxy.restore();
        }
        let started = Instant::now();
        // A fleet: 100 agents.
        ace.record_stage_with(
            &format!("agent-{}", i % 100),
            &format!("task-{i}"),
            "execution",
            1.0,
            true,
            &[("n", i as f64)],
        )
        .unwrap();
        slowest = slowest.max(started.elapsed());
        if i % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The store is back: flush until everything is in (a retry may still be backing off).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ace.flush().is_err() {
        assert!(Instant::now() < deadline, "the store never took the records back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = ace.metrics_text();
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (spilled, replayed) = (value("ace_records_spilled_total"), value("ace_records_replayed_total"));
    eprintln!("spilled {spilled}, replayed {replayed}, slowest record call {slowest:?}");
    assert!(spilled > 0, "the outage was long enough to spill");
    // The engine's own breaker saw the failures, and the writer tried again.
    assert!(value("ace_circuit_breaker_failures_total{name=\"ace-store\"}") > 0, "{text}");
    assert!(value("ace_store_retries_total") > 0, "{text}");
    assert_eq!(spilled, replayed, "every spilled record was stored");
    assert!(!text.contains("ace_records_dropped_total{"), "nothing dropped: {text}");
    let rows = store.query_metrics(&MetricQuery::all()).unwrap();
    let mut tasks: Vec<&str> = rows.iter().map(|r| &*r.task).collect();
    tasks.sort_unstable();
    tasks.dedup();
    assert_eq!((rows.len(), tasks.len()), (N, N), "every record exactly once");
    assert!(slowest < Duration::from_millis(500), "recording never waits on the store: {slowest:?}");
    ace.close().unwrap();
    let direct = PgStore::connect(
        "postgresql://postgres@127.0.0.1:5432/test",
        PgOptions::default().schema(schema.clone()).max_connections(1),
    );
    direct.unwrap().drop_schema(&schema).unwrap();
}

/// A PostgreSQL store whose first `lose` commits succeed on the server but report a failure,
/// as when the connection is cut between the server's commit and its reply.
#[derive(Debug)]
struct LostReplies {
    inner: PgStore,
    lose: std::sync::atomic::AtomicUsize,
}

impl Store for LostReplies {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn append(&self, records: &[Record]) -> ace::Result<()> {
        self.inner.append(records)?;
        if self.lose.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(ace::Error::StoreUnavailable {
                backend: "postgres",
                message: "the connection was cut before the commit's reply".into(),
                source: None,
            });
        }
        Ok(())
    }

    fn save_baselines(&self, b: &[BaselineRecord]) -> ace::Result<()> {
        self.inner.save_baselines(b)
    }

    fn load_baselines(&self) -> ace::Result<Vec<BaselineRecord>> {
        self.inner.load_baselines()
    }

    fn query_metrics(&self, q: &MetricQuery) -> ace::Result<Vec<MetricRecord>> {
        self.inner.query_metrics(q)
    }

    fn count_metrics(&self) -> ace::Result<u64> {
        self.inner.count_metrics()
    }

    fn query_errors(&self, q: &ErrorQuery) -> ace::Result<Vec<ErrorRecord>> {
        self.inner.query_errors(q)
    }

    fn save_patterns(&self, p: &[PatternRecord]) -> ace::Result<()> {
        self.inner.save_patterns(p)
    }

    fn load_patterns(&self) -> ace::Result<Vec<PatternRecord>> {
        self.inner.load_patterns()
    }

    fn query_interventions(&self, agent: Option<&str>, limit: usize) -> ace::Result<Vec<InterventionRecord>> {
        self.inner.query_interventions(agent, limit)
    }

    fn append_playbook(&self, entries: &[PlaybookEntry]) -> ace::Result<()> {
        self.inner.append_playbook(entries)
    }

    fn load_playbook(&self, domain: &str) -> ace::Result<Vec<PlaybookEntry>> {
        self.inner.load_playbook(domain)
    }

    fn spill_key(&self) -> Option<String> {
        self.inner.spill_key()
    }

    fn ping(&self) -> ace::Result<Duration> {
        self.inner.ping()
    }
}

#[test]
fn a_batch_committed_but_reported_failed_is_stored_once_with_or_without_a_spill_directory() {
    for spill in [false, true] {
        let schema = format!("ace_lost_{}_{spill}", std::process::id());
        let url = "postgresql://postgres@127.0.0.1:5432/test";
        let connect = || PgStore::connect(url, PgOptions::default().schema(schema.clone()).max_connections(2));
        let store = Arc::new(LostReplies {
            inner: connect().expect("PostgreSQL at 127.0.0.1:5432 is required"),
            lose: 3.into(),
        });
        let dir = tempfile::tempdir().unwrap();
        let config = AceConfig::builder()
            .batch_size(50)
            .batch_timeout(Duration::from_millis(20))
            .spill_dir(spill.then(|| dir.path().to_path_buf()))
            .build()
            .unwrap();
        let ace = Ace::builder().config(config).store_arc(store.clone()).build().unwrap();
        const N: usize = 2_000;
        for i in 0..N {
            ace.record_stage(&format!("agent-{}", i % 10), &format!("task-{i}"), "execution", 1.0, true).unwrap();
            if i % 100 == 0 {
                // Batches go while records keep coming, so a retry meets newer records in hand.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while ace.flush().is_err() {
            assert!(Instant::now() < deadline, "the store never took the records back");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(store.lose.load(Ordering::SeqCst), 0, "three replies were lost");
        let rows = store.query_metrics(&MetricQuery::all()).unwrap();
        let mut tasks: Vec<&str> = rows.iter().map(|r| &*r.task).collect();
        tasks.sort_unstable();
        tasks.dedup();
        assert_eq!((rows.len(), tasks.len()), (N, N), "every record exactly once (spill directory: {spill})");
        ace.close().unwrap();
        store.inner.drop_schema(&schema).unwrap();
    }
}

#[test]
fn the_same_batch_appended_twice_is_stored_once_and_a_changed_one_again() {
    let schema = format!("ace_twice_{}", std::process::id());
    let store =
        PgStore::connect("postgresql://postgres@127.0.0.1:5432/test", PgOptions::default().schema(schema.clone()))
            .expect("PostgreSQL at 127.0.0.1:5432 is required");
    let record = |task: &str, duration: f64| {
        Record::Metric(MetricRecord {
            ts: ace::Timestamp::from_micros(1_000),
            agent: "a".into(),
            task: task.into(),
            stage: "s".into(),
            duration_s: Some(duration),
            success: Some(true),
            metrics: Vec::new(),
        })
    };
    let batch = [record("t1", 1.0), record("t2", 1.0)];
    store.append(&batch).unwrap();
    store.append(&batch).unwrap();
    assert_eq!(store.count_metrics().unwrap(), 2, "sent again, stored once");
    store.append(&[record("t1", 1.0), record("t2", 2.0)]).unwrap();
    store.append(&batch[..1]).unwrap();
    assert_eq!(store.count_metrics().unwrap(), 5, "a batch that differs in any record is another batch");
    store.drop_schema(&schema).unwrap();
}
