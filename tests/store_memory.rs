//! The conformance suite on the in-memory store.

mod conformance;

use std::sync::Arc;

use ace::{MemoryStore, Store};

#[test]
fn memory_store_conforms() {
    conformance::run_all(&|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
}

#[test]
fn memory_store_engine_round_trip() {
    let store = MemoryStore::new();
    let reopen = store.clone();
    conformance::engine_round_trip_owned(Arc::new(store), &|| Arc::new(reopen.clone()) as Arc<dyn Store>);
}
