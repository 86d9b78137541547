//! The conformance suite on the real PostgreSQL server of this machine (127.0.0.1:5432, database
//! `test`), each check in a schema of its own, plus what only a server can get wrong: bad
//! credentials, a missing database, an unreachable host, migrations, retention.
//!
//! `ACE_TEST_POSTGRES_URL` overrides the server. CI starts PostgreSQL if it is down; a missing
//! server fails there, never skips.
#![cfg(feature = "postgres")]

mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ace::store::MetricQuery;
use ace::{PgOptions, PgStore, Store};

fn url() -> String {
    std::env::var("ACE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

/// A store in a fresh schema, dropped when the guard goes.
struct Fresh {
    store: Arc<PgStore>,
    schema: String,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = self.store.drop_schema(&self.schema);
    }
}

fn fresh() -> Fresh {
    let schema = format!("ace_test_{}_{}", std::process::id(), SCHEMAS.fetch_add(1, Ordering::SeqCst));
    let options = PgOptions::default().schema(schema.clone()).max_connections(4);
    let store =
        PgStore::connect(&url(), options).unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", url()));
    Fresh { store: Arc::new(store), schema }
}

#[test]
fn postgres_store_conforms() {
    let made: std::sync::Mutex<Vec<Fresh>> = std::sync::Mutex::default();
    conformance::run_all(&|| {
        let f = fresh();
        let store: Arc<dyn Store> = f.store.clone();
        made.lock().unwrap().push(f);
        store
    });
}

#[test]
fn postgres_store_engine_round_trip_across_reopen() {
    let f = fresh();
    let schema = f.schema.clone();
    conformance::engine_round_trip_owned(f.store.clone(), &|| {
        let options = PgOptions::default().schema(schema.clone()).max_connections(4);
        Arc::new(PgStore::connect(&url(), options).unwrap()) as Arc<dyn Store>
    });
}

#[test]
fn migrations_go_down_and_up_and_a_foreign_schema_is_refused() {
    let f = fresh();
    let store = &f.store;
    assert_eq!(store.schema_version().unwrap(), 2);
    // This server has no TimescaleDB: plain tables, and compression says why it cannot run.
    assert!(!store.timescale());
    let err = store.compress(30).unwrap_err();
    assert!(err.code() == "invalid_input" && err.to_string().contains("TimescaleDB"), "{err}");
    assert_eq!(store.migrate_up().unwrap(), 0, "idempotent");
    assert_eq!(store.migrate_down(0).unwrap(), 2);
    assert!(store.count_metrics().is_err(), "tables are gone after down");
    assert_eq!(store.migrate_up().unwrap(), 2);
    assert_eq!(store.count_metrics().unwrap(), 0);
    // A schema recorded by a newer ace is refused at connect, with a clear error.
    let sql = format!("INSERT INTO \"{}\".ace_schema_migrations VALUES (99, 'future', 'x', 0)", f.schema);
    let out = std::process::Command::new("psql").args([url().as_str(), "-q", "-c", &sql]).output().expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let options = PgOptions::default().schema(f.schema.clone()).max_connections(2);
    let err = PgStore::connect(&url(), options).unwrap_err();
    assert_eq!(err.code(), "corrupt");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn retention_deletes_old_records_only() {
    use ace::store::{MetricRecord, Record};
    let f = fresh();
    let now = ace::Clock::now(&ace::SystemClock).as_micros();
    let rec = |age_days: i64| {
        Record::Metric(MetricRecord {
            ts: ace::Timestamp::from_micros(now - age_days * 86_400_000_000),
            agent: "a".into(),
            task: "t".into(),
            stage: "s".into(),
            duration_s: Some(1.0),
            success: Some(true),
            metrics: vec![],
        })
    };
    f.store.append(&[rec(40), rec(31), rec(29), rec(0)]).unwrap();
    assert_eq!(f.store.retain(30).unwrap(), 2);
    assert_eq!(f.store.count_metrics().unwrap(), 2);
}

#[test]
fn bad_connections_say_what_is_wrong_without_the_password() {
    let cases = [
        ("postgresql://nobody_ace:s3cret-pw@127.0.0.1:5432/test", "nobody_ace"),
        ("postgresql://postgres:s3cret-pw@127.0.0.1:5432/no_such_db_ace", "no_such_db_ace"),
        ("postgresql://postgres:s3cret-pw@127.0.0.1:1/test", "cannot open"),
        // The password in the query string (libpq's form) is hidden too.
        ("postgresql://nobody_ace@127.0.0.1:5432/test?sslmode=disable&password=s3cret-pw", "nobody_ace"),
        ("postgresql://postgres@127.0.0.1:1/test?password=s3cret-pw", "cannot open"),
    ];
    for (url, needle) in cases {
        let options = PgOptions::default().connect_timeout(std::time::Duration::from_secs(3));
        let err = PgStore::connect(url, options).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.code(), "store_unavailable", "{url}: {text}");
        assert!(text.contains(needle), "{url}: {text}");
        assert!(!text.contains("s3cret-pw") && !format!("{err:?}").contains("s3cret-pw"), "{text}");
    }
    let err =
        PgStore::connect("postgresql://postgres:s3cret-pw@127.0.0.1:notaport/test", PgOptions::default()).unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    // Through the URL opener too.
    let store = ace::open_store(&url()).unwrap();
    assert_eq!(store.backend(), "postgres");
}

#[test]
fn a_database_without_the_migrations_is_a_clear_error_until_they_run() {
    let schema = format!("ace_test_unmigrated_{}", std::process::id());
    let options = PgOptions::default().schema(schema.clone()).max_connections(2).migrate(false);
    let store = PgStore::connect(&url(), options).unwrap();
    let guard = Fresh { store: Arc::new(store), schema };
    assert_eq!(guard.store.schema_version().unwrap(), 0);
    let record = ace::Record::Metric(ace::MetricRecord {
        ts: ace::Timestamp::from_micros(1_700_000_000_000_000),
        agent: Arc::from("a"),
        task: Arc::from("t"),
        stage: Arc::from("planning"),
        duration_s: Some(1.0),
        success: Some(true),
        metrics: Vec::new(),
    });
    let err = guard.store.append(std::slice::from_ref(&record)).unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "{err}");
    assert!(err.to_string().contains("ace_performance_metrics"), "names the missing table: {err}");
    assert!(err.to_string().contains("is at version 0") && err.to_string().contains("ace migrate up"), "{err}");
    assert!(guard.store.migrate_up().unwrap() >= 1);
    guard.store.append(&[record]).unwrap();
    assert_eq!(guard.store.count_metrics().unwrap(), 1);
}

#[test]
fn tls_follows_the_urls_sslmode() {
    // This server offers TLS with a self-signed certificate (Debian's snakeoil).
    let with = |mode: &str| {
        let base = url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}sslmode={mode}")
    };
    let schema = format!("ace_test_tls_{}", std::process::id());
    let options = PgOptions::default().schema(schema.clone()).max_connections(2);
    let store = PgStore::connect(&with("require"), options).expect("an encrypted connection");
    let guard = Fresh { store: Arc::new(store), schema };
    assert_eq!(guard.store.count_metrics().unwrap(), 0);
    // Verifying the certificate proves the handshake happened: this one is not trusted.
    let err = PgStore::connect(&with("verify-full"), PgOptions::default().max_connections(1)).unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "{err}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate") || text.contains("tls") || text.contains("ssl"), "{err}");
}

#[test]
fn a_schema_changed_under_a_running_engine_is_a_clear_error_and_loses_nothing() {
    let f = fresh();
    let spill = tempfile::tempdir().unwrap();
    let config = ace::AceConfig::builder()
        .batch_timeout(std::time::Duration::from_millis(20))
        .spill_dir(Some(spill.path().to_path_buf()))
        .build()
        .unwrap();
    let ace = ace::Ace::builder().config(config).store_arc(f.store.clone()).build().unwrap();
    let record = |range: std::ops::Range<usize>| {
        for i in range {
            ace.record_stage(&format!("agent-{}", i % 7), &format!("task-{i}"), "execution", 1.0, true).unwrap();
        }
    };
    record(0..500);
    ace.flush().unwrap();
    // Someone takes the schema away under the running engine (a restore from an old backup,
    // another build migrating down).
    let other = PgStore::connect(&url(), PgOptions::default().schema(f.schema.clone()).max_connections(1)).unwrap();
    assert_eq!(other.migrate_down(0).unwrap(), 2);
    record(500..1000);
    let err = ace.flush().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is at version 0")
            && text.contains("this ace writes version 2")
            && text.contains("ace migrate up")
            && text.contains("does not exist"),
        "says what changed and what to run: {text}"
    );
    assert!(!text.contains("hunter"), "{text}");
    // The schema comes back: every record accepted meanwhile is stored, once.
    assert_eq!(other.migrate_up().unwrap(), 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ace.flush().is_err() {
        assert!(std::time::Instant::now() < deadline, "the records never went in");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rows = f.store.query_metrics(&MetricQuery::all()).unwrap();
    let mut tasks: Vec<&str> = rows.iter().map(|r| &*r.task).collect();
    tasks.sort_unstable();
    tasks.dedup();
    // The first 500 went with the tables; the 500 recorded while they were gone are all there.
    assert_eq!((rows.len(), tasks.len()), (500, 500), "every record recorded while the schema was gone");
    assert!(rows.iter().all(|r| r.task["task-".len()..].parse::<usize>().unwrap() >= 500));
    ace.close().unwrap();
}
