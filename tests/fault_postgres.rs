//! Fault test: PostgreSQL goes away under a sustained write load (its connections cut by a TCP
//! proxy the test owns, as in a network partition) and comes back. Every record recorded must be
//! stored exactly once, through the spill directory, and recording must never wait on the store.
#![cfg(feature = "postgres")]

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ace::store::{MetricQuery, Store};
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
