//! What the engine learns survives a restart and is shared by a fleet: two engines on the real
//! PostgreSQL (127.0.0.1:5432, `ACE_TEST_POSTGRES_URL`) and the real Redis (127.0.0.1:6379,
//! `ACE_TEST_REDIS_URL`); outcomes reported to one change the other's choices; a restart on the
//! same database keeps them; each outcome counts once in the store and in the cache.
#![cfg(all(feature = "postgres", feature = "redis"))]

use std::time::{Duration, Instant};

use ace::{Ace, Cache, PgOptions, PgStore, RedisCache, RedisOptions, SignalKind, SqliteStore, Store, Strategy};

fn pg_url() -> String {
    std::env::var("ACE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

fn redis_url() -> String {
    std::env::var("ACE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique(name: &str) -> String {
    format!("{name}_{}_{}", std::process::id(), ace::Clock::now(&ace::SystemClock).as_micros())
}

fn pg(schema: &str) -> PgStore {
    PgStore::connect(&pg_url(), PgOptions::default().schema(schema.to_owned()).max_connections(2))
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", pg_url()))
}

fn cache(ns: &str) -> RedisCache {
    RedisCache::connect(&redis_url(), RedisOptions::default().namespace(ns))
        .unwrap_or_else(|e| panic!("Redis at {} is required: {e}", redis_url()))
}

fn engine(schema: &str, ns: &str) -> Ace {
    Ace::builder().store(pg(schema)).cache(cache(ns)).build().unwrap()
}

/// A loop in a new task: three identical failures; the engine's intervention, if any.
fn loop_in(ace: &Ace, task: &str) -> Option<Box<ace::Intervention>> {
    // An agent of its own per task: its context never grows stale.
    let agent = format!("agent-{task}");
    (0..3).filter_map(|_| ace.record_stage(&agent, task, "execution", 1.0, false).unwrap().intervention).next()
}

/// How many of `n` new tasks the engine answers by reflecting (its rule for loops says replan).
fn reflections(ace: &Ace, prefix: &str, n: usize) -> usize {
    (0..n)
        .filter_map(|i| loop_in(ace, &format!("{prefix}-{i}")))
        .inspect(|i| assert_eq!(i.signals[0].kind, SignalKind::Loop))
        .filter(|i| i.strategy == Strategy::Reflect)
        .count()
}

/// Teaches `ace` over `n` tasks that only reflecting works; returns the outcomes reported.
fn teach(ace: &Ace, prefix: &str, n: usize) -> u64 {
    let mut reported = 0;
    for i in 0..n {
        let intervention = loop_in(ace, &format!("{prefix}-{i}")).expect("one intervention per new task");
        ace.report_outcome(intervention.id, intervention.strategy == Strategy::Reflect).unwrap();
        reported += 1;
    }
    reported
}

fn total(learnt: &[ace::store::LearntRecord]) -> u64 {
    learnt.iter().filter(|r| r.kind == SignalKind::Loop).map(|r| r.successes + r.failures).sum()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    // The writers exchange what was learnt about once a second; allow several turns.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = pg(&self.0).drop_schema(&self.0);
    }
}

#[test]
fn outcomes_reported_to_one_replica_change_the_others_choice_and_survive_a_restart() {
    let schema = Schema(unique("ace_learnt"));
    let ns = unique("learnt");
    let (a, b) = (engine(&schema.0, &ns), engine(&schema.0, &ns));
    let before = reflections(&b, "b-before", 20);
    assert!(before <= 4, "b follows the rule (replan) before learning anything: {before} of 20 reflected");

    let taught = teach(&a, "a", 120);
    let mut round = 0;
    eventually("b choosing as a learnt", || {
        round += 1;
        reflections(&b, &format!("b-{round}"), 20) >= 14
    });

    // Outcomes reported to b count too, once each, fleet-wide.
    let taught_b = teach(&b, "b-teach", 30);
    let shared = cache(&ns);
    eventually("every outcome in the cache once", || {
        let n: i64 =
            shared.counts("{learnt}").unwrap().iter().filter(|(f, _)| f.starts_with("loop:")).map(|(_, n)| n).sum();
        u64::try_from(n).unwrap() == taught + taught_b
    });
    a.close().unwrap();
    b.close().unwrap();
    let stored = pg(&schema.0).load_learnt().unwrap();
    assert_eq!(total(&stored), taught + taught_b, "each outcome added once to the shared database: {stored:?}");

    // A restart on the same database, with a cache that knows nothing: the store carries it.
    let c = engine(&schema.0, &unique("learnt_fresh"));
    let after = reflections(&c, "c", 20);
    assert!(after >= 14, "the restarted engine still reflects: {after} of 20");
}

#[test]
fn an_engine_without_a_cache_keeps_what_it_learnt_in_its_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ace.db");
    let a = Ace::builder().store(SqliteStore::open(&path).unwrap()).build().unwrap();
    let before = reflections(&a, "before", 20);
    assert!(before <= 4, "{before}");
    let taught = teach(&a, "t", 120);
    a.close().unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(total(&store.load_learnt().unwrap()), taught);
    store.add_learnt(&store.load_learnt().unwrap()).unwrap();
    assert_eq!(total(&store.load_learnt().unwrap()), 2 * taught, "saving adds to the totals");
    drop(store);
    let b = Ace::builder().store(SqliteStore::open(&path).unwrap()).build().unwrap();
    let after = reflections(&b, "after", 20);
    assert!(after >= 14, "{after}");
}
