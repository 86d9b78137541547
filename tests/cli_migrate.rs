//! `ace migrate` as a user runs it, on a SQLite file and on the PostgreSQL server.
#![cfg(feature = "cli")]

mod common;
use common::ace;

fn version(out: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["schema_version"].as_i64().unwrap()
}

fn ran(out: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["migrations_run"].as_i64().unwrap()
}

#[test]
fn down_status_and_up_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let db = db.to_str().unwrap();
    let (ok, out, err) = ace(&["migrate", "status", "--store", db]);
    assert!(ok, "{err}");
    assert_eq!(version(&out), 0, "a new file, and status applies nothing");
    let (ok, out, err) = ace(&["migrate", "up", "--store", db]);
    assert!(ok, "{err}");
    assert_eq!((version(&out), ran(&out)), (7, 7));
    let (ok, out, _) = ace(&["migrate", "down", "--to", "1", "--store", db]);
    assert!(ok);
    assert_eq!((version(&out), ran(&out)), (1, 6));
    let (ok, out, _) = ace(&["migrate", "status", "--store", db]);
    assert!(ok);
    assert_eq!(version(&out), 1, "status applies nothing");
    let (ok, out, _) = ace(&["migrate", "up", "--store", db]);
    assert!(ok);
    assert_eq!((version(&out), ran(&out)), (7, 6), "up reports the migrations it ran");
    let (ok, out, _) = ace(&["migrate", "up", "--store", db]);
    assert!(ok);
    assert_eq!((version(&out), ran(&out)), (7, 0));
    let pg = std::env::var("ACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    // The shared database may be fresh (nothing has migrated it yet on a new machine): bring it
    // up first, which is idempotent and serialised by the store's advisory lock.
    let (ok, out, err) = ace(&["migrate", "up", "--store", &pg]);
    assert!(ok, "{err}");
    assert_eq!(version(&out), 2);
    let (ok, out, err) = ace(&["migrate", "status", "--store", &pg]);
    assert!(ok, "{err}");
    assert_eq!((version(&out), ran(&out)), (2, 0), "status applies nothing");
    let (ok, _, err) =
        ace(&["migrate", "status", "--store", "postgresql://postgres:hunter22@127.0.0.1:5432/no_such_db_ace"]);
    assert!(!ok && err.contains("no_such_db_ace") && !err.contains("hunter22"), "{err}");
}
