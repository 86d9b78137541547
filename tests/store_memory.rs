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

/// One (agent, stage) recorded as fast as three threads can call: the shards share their room, so
/// the hot key is not cut to a sixteenth of the buffer, and the writer, woken before the shared
/// room runs low, keeps up with the memory store. Nothing is dropped.
#[test]
fn one_hot_key_from_several_threads_drops_nothing() {
    let ace = Arc::new(ace::Ace::builder().store(MemoryStore::new()).build().unwrap());
    // Three recording threads and the writer on this 2-core machine: more recorders than cores
    // would test the scheduler (a writer that gets no CPU drains nothing), not the buffer.
    const THREADS: usize = 3;
    const EACH: usize = 150_000;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let ace = ace.clone();
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    ace.record_stage("agent-1", "task-1", "planning", 0.5, true).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ace.flush().unwrap();
    let stats = ace.stats();
    assert_eq!(stats.recorded, (THREADS * EACH) as u64, "{stats:?}");
    assert_eq!(stats.dropped, 0, "a hot key lost records with a store that keeps up: {stats:?}");
    // Every stage record was written (interventions the run raised are records too).
    assert!(stats.persisted >= (THREADS * EACH) as u64, "{stats:?}");
}
