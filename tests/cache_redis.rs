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

fn engine_at(ns: &str, clock: ManualClock) -> Ace {
    let config = AceConfig::builder().cooldown(Duration::from_secs(60)).max_interventions_per_task(3).build().unwrap();
    Ace::builder().clock(clock).config(config).cache(cache(ns)).build().unwrap()
}

fn loop_in(ace: &Ace, task: &str) -> Option<Box<ace::Intervention>> {
    loop_at(ace, task, "execution")
}

/// Three identical failures of `stage` in `task`: a loop, a new subject per stage.
fn loop_at(ace: &Ace, task: &str, stage: &str) -> Option<Box<ace::Intervention>> {
    (0..3).filter_map(|_| ace.record_stage("agent-1", task, stage, 1.0, false).unwrap().intervention).next()
}

/// The lease on agent-1's `task` as the cache holds it: (holder, interventions fleet-wide).
fn lease(ns: &str, task: &str) -> Option<(String, u32)> {
    let value = cache(ns).get(&format!("lease:agent-1:{task}")).unwrap()?;
    let (lease, _) = ace::Lease::parse(&value).expect("a well-formed lease");
    Some((lease.holder, lease.count))
}

fn claims(ace: &Ace, result: &str) -> f64 {
    let prefix = format!("ace_fleet_claims_total{{result=\"{result}\"}} ");
    ace.metrics_text().lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn the_replica_holding_a_tasks_lease_acts_on_it_under_fleet_wide_gates() {
    let ns = namespace("replicas");
    let start = Timestamp::from_micros(1_700_000_000_000_000);
    let (clock_a, clock_b) = (ManualClock::new(start), ManualClock::new(start));
    let (a, b) = (engine_at(&ns, clock_a.clone()), engine_at(&ns, clock_b.clone()));
    assert_eq!(loop_in(&a, "task-1").unwrap().strategy, Strategy::Replan);
    // a's writer takes the lease; the caller did not wait for it.
    eventually("a holding task-1's lease", || lease(&ns, "task-1").is_some_and(|(_, n)| n == 1));
    let holder = lease(&ns, "task-1").unwrap().0;
    // The documented bound: a replica that has not asked for a task's lease yet acts on it once
    // (its first proposal there), then asks and learns that a holds it.
    assert!(loop_at(&b, "task-1", "planning").is_some(), "b's first proposal on task-1");
    eventually("b's intervention counted on a's lease", || lease(&ns, "task-1") == Some((holder.clone(), 2)));
    let lost = claims(&b, "lost");
    clock_b.advance(Duration::from_secs(120)); // b's own cooldown is past: only the lease stops it
    assert!(loop_at(&b, "task-1", "review").is_none(), "a holds task-1: b does not act");
    assert_eq!(claims(&b, "lost"), lost + 1.0, "stopped by the lease, not by b's own gates");
    assert!(loop_in(&b, "task-2").is_some(), "another task is free");
    // The holder: within the cooldown of the fleet's latest intervention, nothing...
    assert!(loop_at(&a, "task-1", "verify").is_none());
    // ...after it, one more; then the cap (3, counted fleet-wide with b's) holds.
    let mut tries = 0;
    eventually("a acting again on task-1", || {
        tries += 1;
        clock_a.advance(Duration::from_secs(61));
        loop_at(&a, "task-1", &format!("s{tries}")).is_some()
    });
    clock_a.advance(Duration::from_secs(61));
    eventually("a's count reaching the cache", || lease(&ns, "task-1") == Some((holder.clone(), 3)));
    assert!(loop_at(&a, "task-1", "final").is_none(), "the task's cap, counted fleet-wide");
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
    let connect = || RedisCache::connect(&local, RedisOptions::default().namespace("down")).unwrap();
    let config =
        AceConfig::builder().cooldown(Duration::from_secs(60)).max_interventions_per_task(100).build().unwrap();
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
    let ace = Ace::builder().clock(clock.clone()).config(config).cache(connect()).build().unwrap();
    assert!(loop_in(&ace, "before").is_some());
    drop(server);
    // Down: the local gates decide, and the recording call never waits on the cache.
    let started = std::time::Instant::now();
    assert!(loop_in(&ace, "during").is_some(), "the engine keeps deciding without Redis");
    assert!(started.elapsed() < Duration::from_secs(2), "never blocked long: {:?}", started.elapsed());
    let h = ace.health();
    assert_eq!((h.redis, h.status), ("unreachable", "degraded"));
    // The writer fails to take the task's lease: the task is decided on local state.
    // (A proposal the fleet turns away still starts the task's cooldown here: each try waits it out.)
    let mut tries = 0;
    eventually("a decision on local state", || {
        tries += 1;
        clock.advance(Duration::from_secs(61));
        loop_at(&ace, "during", &format!("s{tries}")).is_some() && claims(&ace, "error") >= 1.0
    });
    // Back: leases are taken through Redis again.
    let _again = OwnRedis::start(port);
    assert!(loop_in(&ace, "after").is_some());
    let check = connect();
    eventually("the lease taken once Redis is back", || {
        check.get("lease:agent-1:after").ok().flatten().is_some_and(|v| ace::Lease::parse(&v).is_some())
    });
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

/// `n` engines sharing the namespace `ns` of the real Redis: replicas of one service.
fn replicas(ns: &str, n: usize) -> Vec<Ace> {
    (0..n).map(|_| Ace::builder().cache(cache(ns)).build().unwrap()).collect()
}

#[test]
fn a_breaker_that_opens_in_one_process_opens_in_the_others() {
    let [a, b]: [Ace; 2] = replicas(&namespace("breakers"), 2).try_into().unwrap();
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

#[test]
fn a_closing_in_one_process_closes_the_others() {
    let [a, b]: [Ace; 2] = replicas(&namespace("closings"), 2).try_into().unwrap();
    let (llm_a, llm_b) = (a.breaker("llm").unwrap(), b.breaker("llm").unwrap());
    llm_a.open_for(Duration::from_secs(600));
    eventually("b's opening", || llm_b.state() == ace::breaker::State::Open);
    // A hand (or a successful trial) closes a's: b closes too, and stays closed.
    llm_a.close();
    eventually("b's closing", || llm_b.state() == ace::breaker::State::Closed);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(llm_b.state(), ace::breaker::State::Closed, "no replica opened it again");
    assert_eq!(llm_a.state(), ace::breaker::State::Closed);
}

#[test]
fn failures_spread_over_replicas_trip_the_breaker_as_in_one_process() {
    let ns = namespace("windows");
    let cfg = || {
        ace::breaker::BreakerConfig::builder()
            .window(ace::breaker::Window::Count(50))
            .failure_rate_threshold(50.0)
            .minimum_calls(10)
            .build()
            .unwrap()
    };
    let engines = replicas(&ns, 3);
    let breakers: Vec<_> = engines.iter().map(|e| e.breakers().get_with("search", cfg()).unwrap()).collect();
    // Four failures and one success each: below the minimum in every replica, 12 of 15 failed
    // in the fleet.
    for b in &breakers {
        for i in 0..5 {
            let p = b.try_acquire().unwrap();
            if i == 0 { p.success() } else { p.failure() }
        }
        assert_eq!(b.state(), ace::breaker::State::Closed);
    }
    eventually("every replica opening on the fleet's calls", || {
        breakers.iter().all(|b| b.state() == ace::breaker::State::Open)
    });
    // One replica judged the fleet's window; the others took its move (or judged it too, a
    // moment later): either way every replica rejects.
    for b in &breakers {
        assert!(b.try_acquire().is_err());
    }
}

#[test]
fn one_replica_runs_the_trial_calls_and_its_verdict_reaches_the_others() {
    let ns = namespace("trials");
    let cfg = || {
        ace::breaker::BreakerConfig::builder()
            .window(ace::breaker::Window::ConsecutiveFailures(3))
            .wait_in_open(Duration::from_secs(5))
            .half_open_permits(1)
            .build()
            .unwrap()
    };
    let engines = replicas(&ns, 3);
    let breakers: Vec<_> = engines.iter().map(|e| e.breakers().get_with("tool", cfg()).unwrap()).collect();
    for _ in 0..3 {
        breakers[0].try_acquire().unwrap().failure();
    }
    eventually("every replica open", || breakers.iter().all(|b| b.state() == ace::breaker::State::Open));
    // Every replica calls every 20 ms, from the opening until all are closed: the trial calls
    // (those let through while not closed) add up to the one permit, fleet-wide.
    let mut trials = [0u32; 3];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !breakers.iter().all(|b| b.state() == ace::breaker::State::Closed) {
        assert!(std::time::Instant::now() < deadline, "the breakers never closed");
        for (i, b) in breakers.iter().enumerate() {
            let before = b.state();
            if let Ok(p) = b.try_acquire() {
                trials[i] += u32::from(before != ace::breaker::State::Closed);
                p.success();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(trials.iter().sum::<u32>(), 1, "one trial call fleet-wide: {trials:?}");
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
