//! Circuit breakers, rate limiters and bulkheads: one test per behaviour, on a manual clock
//! (no sleeping), edge cases included; real threads for the concurrency guarantees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ace_core::breaker::limit::{Bulkhead, RateLimiter};
use ace_core::breaker::{BreakerConfig, Breakers, CallError, CircuitBreaker, EventKind, Outcome, State, Window};
use ace_core::{Ace, ManualClock, Strategy, Timestamp};

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000))
}

fn breaker(cfg: BreakerConfig, clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::new("dep", cfg, Arc::new(clock.clone())).unwrap()
}

fn fail(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().unwrap().failure();
    }
}

fn succeed(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().unwrap().success();
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_default_opens_after_five_failures_in_a_row_and_a_success_resets_the_count() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    fail(&b, 4);
    succeed(&b, 1);
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed, "4 in a row after a success");
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::Open, Some(secs(60))));
    assert_eq!(r.to_string(), "circuit breaker 'dep' is open (retry after 60.000 s)");
    assert_eq!(b.counts().not_permitted, 1);
    assert_eq!(ace_core::Error::from(r).code(), "circuit_open");
}

#[test]
fn open_moves_to_half_open_strictly_after_the_wait() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    fail(&b, 5);
    c.advance(secs(60));
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::Open, Some(Duration::ZERO)), "exactly elapsed: still open");
    c.advance(Duration::from_micros(1));
    let trial = b.try_acquire().unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.try_acquire().unwrap_err().state, State::HalfOpen, "one trial permit by default");
    trial.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_half_open_episode_grants_exactly_its_permits_and_judges_exactly_their_results() {
    let c = clock();
    let cfg = BreakerConfig::builder()
        .window(Window::Count(10))
        .minimum_calls(4)
        .half_open_permits(3)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let b = breaker(cfg, &c);
    fail(&b, 4);
    assert_eq!(b.state(), State::Open);
    c.advance(secs(61));
    let permits: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert!(b.try_acquire().is_err(), "a fourth is refused");
    let mut it = permits.into_iter();
    it.next().unwrap().success();
    it.next().unwrap().failure();
    assert_eq!(b.state(), State::HalfOpen, "no verdict before the third result");
    it.next().unwrap().success();
    assert_eq!(b.state(), State::Closed, "1 failure of 3 = 33% < 50%");

    fail(&b, 4);
    c.advance(secs(61));
    let permits: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    let mut it = permits.into_iter();
    it.next().unwrap().failure();
    it.next().unwrap().failure();
    it.next().unwrap().success();
    assert_eq!(b.state(), State::Open, "2 of 3 = 67% >= 50%");
}

#[test]
fn unused_and_ignored_half_open_permits_are_given_back() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    fail(&b, 5);
    c.advance(secs(61));
    drop(b.try_acquire().unwrap());
    let p = b.try_acquire().expect("the dropped permit came back");
    p.record(Outcome::Ignored);
    assert_eq!(b.state(), State::HalfOpen, "an ignored result decides nothing");
    b.try_acquire().expect("the ignored permit came back").success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.counts().ignored, 1);
}

#[test]
fn a_failure_rate_exactly_at_the_threshold_opens() {
    let c = clock();
    let cfg = BreakerConfig::builder().window(Window::Count(10)).minimum_calls(10).failure_rate_threshold(50.0);
    let b = breaker(cfg.clone().build().unwrap(), &c);
    succeed(&b, 6);
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed, "40%");
    let snap = b.snapshot();
    assert_eq!((snap.window_calls, snap.failure_rate), (10, Some(40.0)));
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "the oldest success slid out: 5 of 10 = 50%");
}

#[test]
fn no_rate_is_computed_before_exactly_the_minimum_number_of_calls() {
    let c = clock();
    let b = breaker(BreakerConfig::builder().window(Window::Count(100)).minimum_calls(4).build().unwrap(), &c);
    fail(&b, 3);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().failure_rate, None);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    // The default minimum (10) is clamped to a smaller count window.
    let small = breaker(BreakerConfig::builder().window(Window::Count(3)).build().unwrap(), &c);
    fail(&small, 3);
    assert_eq!(small.state(), State::Open);
}

#[test]
fn slow_means_strictly_longer_than_the_threshold() {
    let c = clock();
    let cfg = BreakerConfig::builder()
        .window(Window::Count(2))
        .minimum_calls(2)
        .slow_call_duration(secs(2))
        .slow_call_rate_threshold(100.0)
        .build()
        .unwrap();
    let b = breaker(cfg, &c);
    for _ in 0..2 {
        let p = b.try_acquire().unwrap();
        c.advance(secs(2));
        p.success();
    }
    assert_eq!((b.state(), b.counts().slow), (State::Closed, 0), "exactly 2 s is not slow");
    for _ in 0..2 {
        let p = b.try_acquire().unwrap();
        c.advance(secs(2) + Duration::from_micros(1));
        p.success();
    }
    assert_eq!((b.state(), b.counts().slow), (State::Open, 2));
}

#[test]
fn a_time_window_counts_the_last_seconds_only() {
    let c = clock();
    let cfg = BreakerConfig::builder().window(Window::Time(10)).minimum_calls(5).failure_rate_threshold(60.0);
    let b = breaker(cfg.build().unwrap(), &c);
    fail(&b, 2);
    succeed(&b, 2);
    c.advance(secs(11));
    fail(&b, 2);
    assert_eq!(b.state(), State::Closed, "the first calls left the window: 2 calls only");
    fail(&b, 1);
    succeed(&b, 1);
    assert_eq!(b.state(), State::Closed, "3 of 4 calls, under the minimum");
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "4 of 5 = 80% >= 60%");
}

#[test]
fn a_half_open_breaker_without_a_verdict_opens_again_after_the_longest_wait() {
    let c = clock();
    let b = breaker(BreakerConfig::builder().max_wait_in_half_open(secs(30)).build().unwrap(), &c);
    fail(&b, 5);
    c.advance(secs(61));
    let stuck = b.try_acquire().unwrap();
    c.advance(secs(30));
    assert_eq!(b.try_acquire().unwrap_err().state, State::HalfOpen, "exactly 30 s: still waiting");
    c.advance(Duration::from_micros(1));
    assert_eq!(b.try_acquire().unwrap_err().state, State::Open);
    stuck.success();
    assert_eq!(b.state(), State::Open, "a late result of the old episode changes nothing");
    assert_eq!(b.counts().successes, 1, "but it is counted");
}

#[test]
fn backoff_grows_the_wait_across_reopens_and_resets_on_close() {
    let c = clock();
    let b = breaker(BreakerConfig::builder().backoff(2.0, secs(200)).build().unwrap(), &c);
    fail(&b, 5);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(60)));
    for expected in [120, 200, 200] {
        c.advance(secs(1000));
        b.try_acquire().unwrap().failure();
        assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(expected)));
    }
    assert_eq!(b.snapshot().attempts, 4);
    c.advance(secs(1000));
    b.try_acquire().unwrap().success();
    fail(&b, 5);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(60)), "closing reset the attempt");
}

#[test]
fn calls_finishing_after_a_state_change_are_counted_without_a_transition() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    let late: Vec<_> = (0..5).map(|_| b.try_acquire().unwrap()).collect();
    b.force_open();
    b.close();
    for p in late {
        p.failure();
    }
    assert_eq!(b.state(), State::Closed, "five failures from a previous episode trip nothing");
    assert_eq!(b.counts().failures, 5);
}

#[test]
fn disabled_forced_open_and_metrics_only_never_move_on_their_own() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    b.disable();
    fail(&b, 20);
    assert_eq!(b.state(), State::Disabled);
    b.force_open();
    c.advance(secs(10_000));
    assert_eq!(b.try_acquire().unwrap_err().state, State::ForcedOpen);
    b.metrics_only();
    fail(&b, 20);
    assert_eq!(b.state(), State::MetricsOnly);
    assert_eq!(b.counts().failures, 40);
    let w = breaker(BreakerConfig::builder().window(Window::Count(5)).build().unwrap(), &c);
    w.metrics_only();
    fail(&w, 5);
    assert_eq!((w.state(), w.snapshot().failure_rate), (State::MetricsOnly, Some(100.0)), "counted, never tripped");
}

#[test]
fn manual_transitions_open_for_until_close_and_reset() {
    let c = clock();
    let b = breaker(BreakerConfig::builder().backoff(2.0, secs(600)).build().unwrap(), &c);
    b.open_for(secs(5));
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(5)));
    c.advance(secs(6));
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    b.open_until(Timestamp::from_micros(1_700_000_000_000_000 + 100_000_000));
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(100 - 6)));
    b.close();
    assert!(b.try_acquire().is_ok());
    fail(&b, 5);
    b.reset();
    assert_eq!((b.state(), b.snapshot().attempts, b.snapshot().consecutive_failures), (State::Closed, 0, 0));
}

#[derive(Debug)]
struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no such record")
    }
}

#[test]
fn classification_decides_failures_ignored_errors_and_bad_results() {
    let c = clock();
    let cfg = BreakerConfig::builder()
        .classify(
            |kind, message| {
                if kind == "NotFound" || message.contains("404") { Outcome::Ignored } else { Outcome::Failure }
            },
        )
        .build()
        .unwrap();
    let b = breaker(cfg, &c);
    for _ in 0..10 {
        let r: Result<(), CallError<NotFound>> = b.call(|| Err(NotFound));
        assert!(matches!(r, Err(CallError::Failed(NotFound))));
    }
    assert_eq!((b.state(), b.counts().ignored), (State::Closed, 10), "a not-found is not the dependency failing");
    for _ in 0..10 {
        b.try_acquire().unwrap().error("HTTPError", "404 Not Found");
    }
    assert_eq!(b.state(), State::Closed);
    // A "200 OK but empty" answer is a failure by the result predicate.
    for _ in 0..5 {
        let r: Result<String, CallError<NotFound>> = b.call_checked(|| Ok(String::new()), String::is_empty);
        assert_eq!(r.unwrap(), "");
    }
    assert_eq!(b.state(), State::Open);
    let r: Result<u8, CallError<NotFound>> = b.call(|| Ok(1));
    assert!(matches!(r, Err(CallError::Rejected(_))));
}

struct Flag(std::thread::Thread);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Flag(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn futures_are_guarded_and_a_dropped_one_gives_its_permit_back() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    for _ in 0..5 {
        let r: Result<(), CallError<&str>> = block_on(b.call_async(async { Err("down") }));
        assert!(matches!(r, Err(CallError::Failed("down"))));
    }
    assert_eq!(b.state(), State::Open, "async calls open the breaker like sync ones");
    c.advance(secs(61));
    {
        // Polled once (it takes the trial permit), then dropped unfinished.
        let mut fut = std::pin::pin!(b.call_async(std::future::pending::<Result<(), &str>>()));
        let waker = Waker::from(Arc::new(Flag(std::thread::current())));
        assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    let r: Result<u8, CallError<&str>> = block_on(b.call_async(async { Ok(7) }));
    assert_eq!(r.unwrap(), 7);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn many_threads_never_overshoot_the_permits_and_one_moves_to_half_open() {
    for _ in 0..20 {
        let c = clock();
        let registry = Breakers::new(BreakerConfig::default(), Arc::new(c.clone()));
        let cfg = BreakerConfig::builder().half_open_permits(3).build().unwrap();
        let b = registry.get_with("shared", cfg).unwrap();
        let moves = Arc::new(AtomicUsize::new(0));
        let m = moves.clone();
        registry.subscribe(move |e| {
            if let EventKind::Transition { to: State::HalfOpen, .. } = e.kind {
                m.fetch_add(1, Ordering::SeqCst);
            }
        });
        fail(&b, 5);
        c.advance(secs(61));
        let granted = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let held: Arc<Mutex<Vec<()>>> = Arc::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (b, granted, barrier, _held) = (b.clone(), granted.clone(), barrier.clone(), held.clone());
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..100 {
                        if let Ok(p) = b.try_acquire() {
                            granted.fetch_add(1, Ordering::SeqCst);
                            // Held, never completed or dropped until the end: no permit comes back.
                            std::mem::forget(p);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::SeqCst), 3, "exactly the permits");
        assert_eq!(moves.load(Ordering::SeqCst), 1, "exactly one move to half-open");
    }
}

#[test]
fn closed_calls_from_many_threads_count_every_outcome() {
    let c = clock();
    let b = Arc::new(breaker(BreakerConfig::builder().window(Window::Count(1000)).build().unwrap(), &c));
    std::thread::scope(|s| {
        for t in 0..4 {
            let b = b.clone();
            s.spawn(move || {
                for i in 0..10_000 {
                    b.try_acquire().unwrap().record(if (i + t) % 10 == 0 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    });
                }
            });
        }
    });
    let counts = b.counts();
    assert_eq!((counts.successes, counts.failures), (36_000, 4_000));
    assert_eq!(b.state(), State::Closed, "10% < 50%");
}

#[test]
fn bad_configurations_are_refused_at_construction() {
    let cases = [
        BreakerConfig::builder().window(Window::Count(0)).build(),
        BreakerConfig::builder().window(Window::ConsecutiveFailures(0)).build(),
        BreakerConfig::builder().failure_rate_threshold(0.0).build(),
        BreakerConfig::builder().failure_rate_threshold(100.5).build(),
        BreakerConfig::builder().slow_call_rate_threshold(f64::NAN).build(),
        BreakerConfig::builder().minimum_calls(0).build(),
        BreakerConfig::builder().half_open_permits(0).build(),
        BreakerConfig::builder().wait_in_open(Duration::ZERO).build(),
        BreakerConfig::builder().backoff(0.5, secs(600)).build(),
        BreakerConfig::builder().backoff(f64::INFINITY, secs(600)).build(),
        BreakerConfig::builder().backoff(2.0, secs(1)).build(),
    ];
    for (i, r) in cases.into_iter().enumerate() {
        assert_eq!(r.unwrap_err().code(), "config", "case {i}");
    }
    let c: Arc<ManualClock> = Arc::new(clock());
    assert_eq!(CircuitBreaker::new("", BreakerConfig::default(), c.clone()).unwrap_err().code(), "invalid_input");
    assert_eq!(RateLimiter::new("r", f64::NAN, 1, c.clone()).unwrap_err().code(), "config");
    assert_eq!(RateLimiter::new("r", 1.0, 0, c.clone()).unwrap_err().code(), "config");
    assert_eq!(Bulkhead::new("b", 0).unwrap_err().code(), "config");
}

#[test]
fn the_engine_registry_shares_breakers_reports_metrics_and_turns_rejections_into_backoff() {
    let c = clock();
    let ace = Ace::builder().clock(c.clone()).build().unwrap();
    let llm = ace.breaker("llm").unwrap();
    assert!(Arc::ptr_eq(&llm, &ace.breaker("llm").unwrap()));
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = events.clone();
    ace.breakers().subscribe(move |e| sink.lock().unwrap().push(format!("{:?}", e.kind)));
    for _ in 0..5 {
        ace.acquire("agent-1", "task-1", &llm).unwrap().failure();
    }
    let rejected = ace.acquire("agent-1", "task-1", &llm).unwrap_err();
    let i = rejected.intervention.expect("an intervention for the rejected task");
    assert_eq!(i.strategy, Strategy::Backoff);
    assert!(i.reason.contains("circuit breaker 'llm' is open"), "{}", i.reason);
    assert!(ace.acquire("agent-1", "task-1", &llm).unwrap_err().intervention.is_none(), "once per breaker and task");
    let text = ace.metrics_text();
    for line in [
        "ace_circuit_breaker_state{name=\"llm\",state=\"open\"} 1",
        "ace_circuit_breaker_state{name=\"llm\",state=\"closed\"} 0",
        "ace_circuit_breaker_failures_total{name=\"llm\"} 5",
        "ace_circuit_breaker_calls_total{name=\"llm\",outcome=\"failure\"} 5",
        "ace_circuit_breaker_not_permitted_calls_total{name=\"llm\"} 2",
        "ace_signals_total{kind=\"breaker_open\"} 2",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let seen = events.lock().unwrap().clone();
    assert!(seen[0].contains("from: Closed, to: Open"), "{seen:?}");
    assert!(seen[1..].iter().all(|e| e.contains("Rejected")), "{seen:?}");
    assert_eq!(ace.breaker("bad\nname").unwrap_err().code(), "invalid_input");
}

#[test]
fn a_token_bucket_allows_bursts_then_the_rate() {
    let c = clock();
    let limiter = RateLimiter::new("llm", 1.0, 10, Arc::new(c.clone())).unwrap();
    for _ in 0..10 {
        limiter.try_acquire().unwrap();
    }
    let e = limiter.try_acquire().unwrap_err();
    assert_eq!(e.retry_after, Some(secs(1)));
    c.advance(Duration::from_millis(500));
    assert!(limiter.try_acquire().is_err());
    c.advance(Duration::from_millis(500));
    limiter.try_acquire().unwrap();
    c.advance(secs(3600));
    for _ in 0..10 {
        limiter.try_acquire().unwrap();
    }
    assert!(limiter.try_acquire().is_err(), "never more than the burst");
    assert_eq!(limiter.rejected(), 3);
}

#[test]
fn waiting_for_a_token_is_async_and_cancellable() {
    let limiter = Arc::new(RateLimiter::new("fast", 50.0, 1, Arc::new(ace_core::SystemClock)).unwrap());
    block_on(limiter.acquire());
    let started = std::time::Instant::now();
    block_on(limiter.acquire());
    assert!(started.elapsed() >= Duration::from_millis(10), "the second token took its time");
    {
        // Reserved at the first poll, then abandoned: the reservation is given back.
        let mut fut = std::pin::pin!(limiter.acquire());
        let waker = Waker::from(Arc::new(Flag(std::thread::current())));
        assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    std::thread::sleep(Duration::from_millis(25));
    limiter.try_acquire().expect("the abandoned reservation was returned");
}

#[test]
fn a_bulkhead_bounds_concurrency_and_wakes_waiters() {
    let bulkhead = Arc::new(Bulkhead::new("db", 2).unwrap());
    let a = bulkhead.try_enter().unwrap();
    let _b = bulkhead.try_enter().unwrap();
    assert!(bulkhead.try_enter().is_err());
    assert_eq!((bulkhead.in_flight(), bulkhead.rejected()), (2, 1));
    let waiter = {
        let bulkhead = bulkhead.clone();
        std::thread::spawn(move || {
            let _p = block_on(bulkhead.enter());
            bulkhead.in_flight()
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    drop(a);
    assert_eq!(waiter.join().unwrap(), 2, "the waiter took the freed place");
    assert_eq!(bulkhead.in_flight(), 1);
}

#[test]
fn owned_permits_follow_the_same_rules_as_borrowed_ones() {
    let c = clock();
    let b = Arc::new(breaker(BreakerConfig::default(), &c));
    for _ in 0..5 {
        b.try_acquire_owned().unwrap().record(Outcome::Failure);
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.try_acquire_owned().unwrap_err().state, State::Open);
    c.advance(secs(61));
    drop(b.try_acquire_owned().unwrap());
    let trial = b.try_acquire_owned().expect("the dropped trial permit came back");
    assert!(b.try_acquire_owned().is_err(), "one trial at a time");
    assert_eq!(trial.breaker().name(), "dep");
    trial.record(Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.counts().failures, 5);
}

#[test]
fn an_owned_permit_through_the_engine_carries_the_backoff_intervention() {
    let ace = Ace::builder().build().unwrap();
    let llm = ace.breaker("llm").unwrap();
    for _ in 0..5 {
        ace.acquire_owned("a", "t", &llm).unwrap().error("TimeoutError", "timed out");
    }
    let rejected = ace.acquire_owned("a", "t", &llm).unwrap_err();
    assert_eq!(rejected.intervention.unwrap().strategy, Strategy::Backoff);
}

#[test]
fn batched_successes_end_the_run_of_failures_like_permits_do() {
    let c = clock();
    let b = breaker(BreakerConfig::default(), &c);
    assert!(b.takes_batched_successes());
    fail(&b, 4);
    b.record_successes(3);
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed, "the batch ended the first run");
    assert_eq!(b.counts().successes, 3);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    assert!(!b.takes_batched_successes(), "only while closed");
    let windowed = breaker(BreakerConfig::builder().window(Window::Count(10)).build().unwrap(), &c);
    assert!(!windowed.takes_batched_successes(), "a rate window needs each call in order");
    let timed = breaker(BreakerConfig::builder().slow_call_duration(secs(1)).build().unwrap(), &c);
    assert!(!timed.takes_batched_successes(), "slow calls need each call timed");
}

#[test]
fn the_engine_registry_exports_its_retries_and_policy_timeouts() {
    use ace_core::breaker::RetryConfig;
    let ace = Ace::builder().clock(clock()).build().unwrap();
    let retry = ace.breakers().retry("llm", RetryConfig::default()).unwrap();
    assert!(Arc::ptr_eq(&retry, &ace.breakers().retry("llm", RetryConfig::default()).unwrap()));
    retry.after_success(1);
    assert!(retry.after_failure(Some(("Timeout", "slow")), 1).is_some(), "a first failure is retried");
    retry.after_success(2);
    assert!(retry.after_failure(Some(("Timeout", "slow")), 3).is_none(), "the third attempt is the last");
    ace.breakers().count_timeout("llm").unwrap();
    ace.breakers().count_timeout("llm").unwrap();
    assert_eq!(ace.breakers().timeouts("llm"), 2);
    assert_eq!(ace.breakers().count_timeout("bad\nname").unwrap_err().code(), "invalid_input");
    let text = ace.metrics_text();
    for line in [
        "ace_retry_calls_total{name=\"llm\",outcome=\"successful_without_retry\"} 1",
        "ace_retry_calls_total{name=\"llm\",outcome=\"successful_with_retry\"} 1",
        "ace_retry_calls_total{name=\"llm\",outcome=\"failed_without_retry\"} 0",
        "ace_retry_calls_total{name=\"llm\",outcome=\"failed_with_retry\"} 1",
        "ace_retry_attempts_total{name=\"llm\"} 1",
        "ace_timeouts_total{name=\"llm\"} 2",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
