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

/// One (agent, stage) recorded as fast as three threads can call, with a buffer whose shared
/// room holds the whole burst: the shards share their room, so the hot key may fill about 0.39
/// of `buffer_capacity` (390,000 records here) instead of a sixteenth of the shards' half
/// (31,250, where fixed slices would drop over 300,000 of these records). The writer may drain
/// meanwhile or not run at all (a loaded machine can starve it): either way nothing is dropped,
/// so the test checks the sharing, not the scheduler.
#[test]
fn one_hot_key_from_several_threads_drops_nothing() {
    let config = ace::AceConfig::builder().buffer_capacity(1_000_000).build().unwrap();
    let ace = Arc::new(ace::Ace::builder().config(config).store(MemoryStore::new()).build().unwrap());
    const THREADS: usize = 3;
    const EACH: usize = 120_000;
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
    assert_eq!(stats.dropped, 0, "a hot key lost records: {stats:?}");
    // Every stage record was written (interventions the run raised are records too).
    assert!(stats.persisted >= (THREADS * EACH) as u64, "{stats:?}");
}
