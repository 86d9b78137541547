//! The conformance suite on the SQLite store, plus what only a file can get wrong.

mod conformance;

use std::sync::Arc;

use ace::{SqliteStore, Store};

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
    assert_eq!(store.schema_version().unwrap(), 4);
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
    assert_eq!(store.migrate_up().unwrap(), 4);
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
