//! `ace retain` as a user runs it, on a SQLite file and on the PostgreSQL server (a schema of
//! its own, named in the URL's `options`).
#![cfg(feature = "cli")]

#[path = "common/aged.rs"]
mod aged;
mod common;
use common::ace;

use ace::{PgOptions, PgStore, SqliteStore, Store};

fn deleted(out: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    v["deleted"].as_i64().unwrap()
}

#[test]
fn retain_deletes_old_records_from_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = SqliteStore::open(&path).unwrap();
    store.append(&aged::forty_to_zero_days()).unwrap();
    store.close().unwrap();
    drop(store);
    let url = format!("sqlite://{}", path.display());

    let (ok, out, err) = ace(&["retain", "--store", &url, "--days", "30", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(deleted(&out), 6);
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["days"], 30);
    // A bare path works too, and the sentence says what went.
    let (ok, out, err) = ace(&["retain", "--store", path.to_str().unwrap(), "--days", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted 3 records older than 1 day");
    assert_eq!(SqliteStore::open(&path).unwrap().count_metrics().unwrap(), 1);

    // Bad input is refused with a typed error and deletes nothing.
    for days in ["0", "36501"] {
        let (ok, _, err) = ace(&["retain", "--store", &url, "--days", days]);
        assert!(!ok && err.contains("[invalid_input]") && err.contains("days"), "{days}: {err}");
    }
    let (ok, _, err) = ace(&["retain", "--store", &url, "--days", "-3"]);
    assert!(!ok && err.contains("--days"), "{err}");
    let (ok, _, err) = ace(&["retain", "--store", &url]);
    assert!(!ok && err.contains("--days"), "{err}");
    assert_eq!(SqliteStore::open(&path).unwrap().count_metrics().unwrap(), 1);
    // A file that is not there is an error, not a new empty file.
    let missing = dir.path().join("typo.db");
    let (ok, _, err) = ace(&["retain", "--store", missing.to_str().unwrap(), "--days", "30"]);
    assert!(!ok && err.contains("no SQLite file"), "{err}");
    assert!(!missing.exists());
    // So is a file with no ace tables.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let (ok, _, err) = ace(&["retain", "--store", empty.to_str().unwrap(), "--days", "30"]);
    assert!(!ok && err.contains("no ace tables"), "{err}");
    let (ok, _, err) = ace(&["retain", "--store", "redis://127.0.0.1:6379", "--days", "30"]);
    assert!(!ok && err.contains("ace retain"), "{err}");
}

#[test]
fn retain_deletes_old_records_from_postgres() {
    let base = std::env::var("ACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("ace_cli_retain_{}", std::process::id());
    let options = PgOptions::default().schema(schema.clone()).max_connections(2);
    let store = PgStore::connect(&base, options).unwrap_or_else(|e| panic!("PostgreSQL at {base} is required: {e}"));
    store.append(&aged::forty_to_zero_days()).unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    let (ok, out, err) = ace(&["retain", "--store", &url, "--days", "30", "--json"]);
    let after = store.count_metrics();
    let (ok_zero, _, err_zero) = ace(&["retain", "--store", &url, "--days", "0"]);
    store.drop_schema(&schema).unwrap();
    assert!(ok, "{err}");
    assert_eq!(deleted(&out), 6);
    assert_eq!(after.unwrap(), 2);
    assert!(!ok_zero && err_zero.contains("[invalid_input]"), "{err_zero}");
}
