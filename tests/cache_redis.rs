//! The shared cache on the real Redis of this machine (127.0.0.1:6379, or `ACE_TEST_REDIS_URL`),
//! and on a Redis of the test's own that it stops and starts again.
#![cfg(feature = "redis")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ace::{Ace, AceConfig, Cache, ManualClock, RedisCache, RedisOptions, Strategy, Timestamp};

fn url() -> String {
    std::env::var("ACE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn namespace(name: &str) -> String {
    format!("test-{name}-{}-{}", std::process::id(), ace::Clock::now(&ace::SystemClock).as_micros())
}

fn cache(ns: &str) -> RedisCache {
    RedisCache::connect(&url(), RedisOptions::default().namespace(ns))
        .unwrap_or_else(|e| panic!("Redis at {} is required: {e}", url()))
}

#[test]
fn claims_counters_and_expiry_on_the_real_server() {
    let ns = namespace("ops");
    let (a, b) = (cache(&ns), cache(&ns));
    assert!(a.claim("k", "a", Duration::from_secs(60)).unwrap());
    assert!(!b.claim("k", "b", Duration::from_secs(60)).unwrap(), "one winner across clients");
    assert_eq!(b.get("k").unwrap().as_deref(), Some("a"));
    assert_eq!(a.incr("n", Duration::from_secs(60)).unwrap(), 1);
    assert_eq!(b.incr("n", Duration::from_secs(60)).unwrap(), 2);
    a.set("short", "x", Duration::from_millis(50)).unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(a.get("short").unwrap(), None, "expired");
    a.delete("k").unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    assert!(a.ping().unwrap() < Duration::from_secs(1));
    assert_eq!(cache(&namespace("other")).get("n").unwrap(), None, "namespaces are apart");
}

fn engine(ns: &str) -> Ace {
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    Ace::builder().clock(clock).cache(cache(ns)).build().unwrap()
}

fn loop_in(ace: &Ace, task: &str) -> Option<Box<ace::Intervention>> {
    (0..3).filter_map(|_| ace.record_stage("agent-1", task, "execution", 1.0, false).unwrap().intervention).next()
}

#[test]
fn two_replicas_never_both_intervene_on_one_task_within_the_cooldown() {
    let ns = namespace("replicas");
    let (a, b) = (engine(&ns), engine(&ns));
    assert_eq!(loop_in(&a, "task-1").unwrap().strategy, Strategy::Replan);
    assert!(loop_in(&b, "task-1").is_none(), "the other replica already acted on task-1");
    assert!(loop_in(&b, "task-2").is_some(), "another task is free");
    assert!(b.metrics_text().contains("ace_fleet_claims_total{result=\"lost\"} 1"), "{}", b.metrics_text());
    let h = b.health();
    assert_eq!((h.redis, h.cache_backend, h.status), ("connected", Some("redis"), "healthy"));
}

struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, extra: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child, port }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn local_state_serves_while_redis_is_down_and_the_cache_is_used_again_when_it_returns() {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let server = OwnRedis::start(port);
    let local = format!("redis://127.0.0.1:{}", server.port);
    let cache = RedisCache::connect(&local, RedisOptions::default().namespace("down")).unwrap();
    let config = AceConfig::builder().cooldown(Duration::from_secs(60)).build().unwrap();
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().clock(clock).config(config).cache(cache).build().unwrap();
    assert!(loop_in(&ace, "before").is_some());
    drop(server);
    // Down: the local gates decide; each attempt to use the cache is counted as an error.
    let started = std::time::Instant::now();
    assert!(loop_in(&ace, "during").is_some(), "the engine keeps deciding without Redis");
    assert!(started.elapsed() < Duration::from_secs(2), "never blocked long: {:?}", started.elapsed());
    assert!(ace.metrics_text().contains("ace_fleet_claims_total{result=\"error\"}"));
    let h = ace.health();
    assert_eq!((h.redis, h.status), ("unreachable", "degraded"));
    // Back: claims go through Redis again.
    let _again = OwnRedis::start(port);
    let mut back = false;
    for i in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if loop_in(&ace, &format!("after-{i}")).is_some()
            && ace.metrics_text().contains("ace_fleet_claims_total{result=\"won\"} 4")
        {
            back = true;
            break;
        }
    }
    assert!(back, "{}", ace.metrics_text());
}

#[test]
fn bad_urls_and_unreachable_servers_are_clear_errors_without_passwords() {
    let err = RedisCache::connect("redis://:pa55word@127.0.0.1:notaport", RedisOptions::default()).unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(!err.to_string().contains("pa55word"), "{err}");
    let err = RedisCache::connect("redis://:pa55word@127.0.0.1:1", RedisOptions::default()).unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "{err}");
    assert!(!err.to_string().contains("pa55word") && err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[test]
fn a_breaker_that_opens_in_one_process_opens_in_the_others() {
    let ns = namespace("breakers");
    let a = Ace::builder().cache(cache(&ns)).build().unwrap();
    let b = Ace::builder().cache(cache(&ns)).build().unwrap();
    let (llm_a, llm_b) = (a.breaker("llm").unwrap(), b.breaker("llm").unwrap());
    for _ in 0..5 {
        llm_a.try_acquire().unwrap().failure();
    }
    assert_eq!(llm_a.state(), ace::breaker::State::Open);
    // Published by a's writer and picked up by b's within a sync or two (about a second each).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while llm_b.state() != ace::breaker::State::Open {
        assert!(std::time::Instant::now() < deadline, "b never heard of the opening");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rejected = llm_b.try_acquire().unwrap_err();
    assert!(rejected.retry_after.unwrap() > Duration::from_secs(50), "the same wait: {rejected}");
    // A breaker b opened because of a does not bounce back to a as a new opening.
    assert_eq!(b.breakers().all().iter().filter(|x| x.state() == ace::breaker::State::Open).count(), 1);
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    // The writers sync about once a second; allow a few.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_new_replica_starts_from_the_fleets_baseline() {
    let ns = namespace("baselines");
    let a = Ace::builder().cache(cache(&ns)).build().unwrap();
    for i in 0..40 {
        a.record_stage_with(
            "agent-1",
            &format!("t{i}"),
            "planning",
            1.0 + f64::from(i % 3) * 0.01,
            true,
            &[("tokens_in", 800.0)],
        )
        .unwrap();
    }
    a.flush().unwrap(); // saves, and so publishes, the baselines
    let b = Ace::builder().cache(cache(&ns)).build().unwrap();
    b.record_stage("agent-1", "t-b", "planning", 1.0, true).unwrap();
    assert_eq!(b.baseline("agent-1", "planning", "duration_s").unwrap().count, 1, "warming up here");
    eventually("adopting the fleet's baseline", || {
        b.baseline("agent-1", "planning", "duration_s").unwrap().count >= 40
    });
    assert!(b.baseline("agent-1", "planning", "tokens_in").unwrap().count >= 40, "every stream of the pair");
    // The read that found the fleet's baseline is a cache hit: the hit rate means what it says.
    let hits: f64 = b
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("ace_cache_requests_total{result=\"hit\"} "))
        .map_or(0.0, |v| v.parse().unwrap());
    assert!(hits >= 1.0, "{}", b.metrics_text());
    // With the fleet's baseline, a slowdown is news at once rather than after a warm-up.
    let flagged = (0..10)
        .any(|i| !b.record_stage("agent-1", &format!("slow-{i}"), "planning", 5.0, true).unwrap().signals.is_empty());
    assert!(flagged, "b judged a fivefold slowdown against the adopted baseline");
    // A replica that has seen more than the fleet keeps its own.
    let c = Ace::builder().cache(cache(&ns)).build().unwrap();
    for i in 0..60 {
        c.record_stage("agent-1", &format!("c{i}"), "planning", 2.0, true).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(c.baseline("agent-1", "planning", "duration_s").unwrap().count, 60);
}

#[test]
fn a_context_refresh_in_one_replica_is_seen_by_the_others() {
    let ns = namespace("refresh");
    let config = || AceConfig::builder().context_steps_half_life(2.0).build().unwrap();
    let a = Ace::builder().config(config()).cache(cache(&ns)).build().unwrap();
    let b = Ace::builder().config(config()).cache(cache(&ns)).build().unwrap();
    for i in 0..10 {
        a.record_stage("agent-1", &format!("a{i}"), "planning", 1.0, true).unwrap();
        b.record_stage("agent-1", &format!("b{i}"), "planning", 1.0, true).unwrap();
    }
    assert!(b.context_staleness("agent-1").unwrap() > 0.5, "ten steps at a half-life of two");
    a.refresh_context("agent-1").unwrap();
    eventually("b seeing a's refresh", || b.context_staleness("agent-1").unwrap() < 0.1);
}

#[test]
fn wrong_credentials_are_a_clear_error_without_the_password() {
    // A server of the test's own that wants a password.
    let port = 20_000 + ((std::process::id() + 7_919) % 20_000) as u16;
    let server = OwnRedis::start_with(port, &["--requirepass", "r1ght"]);
    let at = |auth: &str| format!("redis://{auth}127.0.0.1:{}", server.port);
    let good = RedisCache::connect(&at(":r1ght@"), RedisOptions::default()).expect("the right password");
    good.set("k", "v", Duration::from_secs(5)).unwrap();
    for auth in [":wr0ngpass@", "nobody:wr0ngpass@", ""] {
        let err = RedisCache::connect(&at(auth), RedisOptions::default())
            .map(|c| c.get("k").map(|_| c))
            .and_then(|r| r)
            .expect_err(auth);
        let text = err.to_string();
        assert_eq!(err.code(), "store_unavailable", "{text}");
        assert!(
            text.contains("WRONGPASS") || text.contains("NOAUTH") || text.contains("auth"),
            "names the cause: {text}"
        );
        assert!(!text.contains("wr0ngpass") && text.contains(&format!("127.0.0.1:{}", server.port)), "{text}");
    }
}
