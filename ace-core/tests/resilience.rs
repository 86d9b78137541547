//! Retry, timeout, fallback and their composition with a breaker, sync and async, on a manual
//! clock: the waits advance it instead of sleeping.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ace_core::breaker::policy::timeout;
use ace_core::breaker::{
    BreakerConfig, CallError, CircuitBreaker, Policy, PolicyError, Retry, RetryConfig, Sleep, State,
};
use ace_core::{Clock, ManualClock, Timestamp};

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Sleeps by advancing the manual clock, and remembers each wait.
struct Advance {
    clock: ManualClock,
    waits: Mutex<Vec<Duration>>,
}

impl Sleep for Advance {
    fn sleep(&self, d: Duration) {
        self.waits.lock().unwrap().push(d);
        self.clock.advance(d);
    }
}

fn advance(c: &ManualClock) -> Advance {
    Advance { clock: c.clone(), waits: Mutex::default() }
}

fn retry(cfg: RetryConfig) -> Arc<Retry> {
    Arc::new(Retry::new("r", cfg).unwrap())
}

fn no_jitter() -> RetryConfig {
    let mut cfg = RetryConfig::default();
    cfg.jitter = 0.0;
    cfg
}

#[derive(Debug, PartialEq)]
struct Down(u32);

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "down {}", self.0)
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("these futures never wait for real"),
    }
}

#[test]
fn waits_grow_exponentially_up_to_the_longest_and_jitter_stays_in_its_band() {
    let mut cfg = no_jitter();
    cfg.max_attempts = 6;
    cfg.max_wait = secs(5);
    let r = retry(cfg);
    let c = clock();
    let sleep = advance(&c);
    let before = c.now();
    let mut calls = 0;
    let out: Result<(), CallError<Down>> = r.call(&sleep, || {
        calls += 1;
        Err(CallError::Failed(Down(calls)))
    });
    assert_eq!(out, Err(CallError::Failed(Down(6))), "the last attempt's error");
    let waits = sleep.waits.lock().unwrap().clone();
    assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 5.0].map(Duration::from_secs_f64), "doubling, capped at 5 s");
    assert_eq!(c.now().since(before), Duration::from_secs_f64(12.5));

    let jittered = retry(RetryConfig::default());
    let draws: Vec<f64> = (0..2000).map(|_| jittered.wait(2).as_secs_f64()).collect();
    assert!(draws.iter().all(|w| (0.5..=1.5).contains(w)), "1 s ± 50%");
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((0.95..1.05).contains(&mean), "centred on the base wait: {mean}");
    assert!(draws.iter().any(|w| *w < 0.75) && draws.iter().any(|w| *w > 1.25), "spread over the band");
}

#[test]
fn retries_are_counted_by_how_the_call_ended() {
    let mut cfg = no_jitter();
    cfg.retry_if = Some(Arc::new(|_, message| message != "down 0"));
    let r = retry(cfg);
    let c = clock();
    let sleep = advance(&c);
    let ok: Result<u8, CallError<Down>> = r.call(&sleep, || Ok(1));
    assert_eq!(ok, Ok(1));
    let mut n = 0;
    let later: Result<u32, CallError<Down>> = r.call(&sleep, || {
        n += 1;
        if n < 3 { Err(CallError::Failed(Down(n))) } else { Ok(n) }
    });
    assert_eq!(later, Ok(3));
    let never: Result<(), CallError<Down>> = r.call(&sleep, || Err(CallError::Failed(Down(0))));
    assert_eq!(never, Err(CallError::Failed(Down(0))), "retry_if said no: one attempt");
    let spent: Result<(), CallError<Down>> = r.call(&sleep, || Err(CallError::Failed(Down(9))));
    assert!(spent.is_err());
    let n = r.counts();
    assert_eq!(
        (n.succeeded_without_retry, n.succeeded_with_retry, n.failed_without_retry, n.failed_with_retry),
        (1, 1, 1, 1)
    );
    assert_eq!(n.retries, 2 + 2, "two before the late success, two before giving up");
}

#[test]
fn a_call_rejected_by_an_open_breaker_is_not_retried_unless_asked() {
    for retry_rejected in [false, true] {
        let c = clock();
        let b = Arc::new(
            CircuitBreaker::new(
                "dep",
                BreakerConfig::builder().window(ace_core::breaker::Window::ConsecutiveFailures(2)).build().unwrap(),
                Arc::new(c.clone()),
            )
            .unwrap(),
        );
        let mut cfg = no_jitter();
        // Waits of 1, 2, 4, ... s: the breaker's 60 s open wait passes during the sixth.
        cfg.max_attempts = 10;
        cfg.wait = secs(1);
        cfg.max_wait = secs(61);
        cfg.retry_rejected = retry_rejected;
        let policy = Policy::builder().breaker(b.clone()).retry(retry(cfg)).build();
        let sleep = advance(&c);
        let mut calls = 0;
        let out = policy.call(&sleep, || {
            calls += 1;
            if calls <= 2 { Err(Down(calls)) } else { Ok(calls) }
        });
        if retry_rejected {
            assert_eq!(out, Ok(3), "rejections retried until the open wait passed: the trial went through");
            assert_eq!(b.state(), State::Closed);
            assert_eq!(b.counts().not_permitted, 4, "attempts 3 to 6 were turned away and retried");
        } else {
            assert!(matches!(out, Err(PolicyError::Rejected(_))), "{out:?}");
            assert_eq!(calls, 2, "the breaker opened: no attempt reached the dependency after that");
            assert_eq!(b.counts().not_permitted, 1, "the one rejection ended the retries");
            assert_eq!(b.state(), State::Open);
        }
        assert_eq!(b.counts().failures, 2, "the breaker judged each attempt");
    }
}

#[test]
fn a_timeout_drops_the_slow_attempt_and_the_breaker_counts_it_as_a_failure() {
    let c = clock();
    let b = Arc::new(CircuitBreaker::new("dep", BreakerConfig::default(), Arc::new(c.clone())).unwrap());
    let mut cfg = no_jitter();
    cfg.max_attempts = 3;
    let r = retry(cfg);
    let policy = Policy::builder().timeout(secs(2)).breaker(b.clone()).retry(r.clone()).build();
    let slept: Mutex<Vec<Duration>> = Mutex::default();
    let sleep = |d: Duration| {
        slept.lock().unwrap().push(d);
        c.advance(d);
        std::future::ready(())
    };
    let mut attempts = 0;
    let out: Result<u8, PolicyError<Down>> = block_on(policy.call_async(&sleep, || {
        attempts += 1;
        let hang = attempts < 3;
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(7)
        }
    }));
    assert_eq!(out, Ok(7), "third attempt in time");
    assert_eq!(b.counts().failures, 2, "each time-out a failure for the breaker");
    assert_eq!(
        *slept.lock().unwrap(),
        [secs(2), Duration::from_millis(500), secs(2), secs(1), secs(2)],
        "time-out, wait, time-out, wait, and the last attempt's timer (it lost)"
    );
    assert_eq!(r.counts().succeeded_with_retry, 1);

    let never: Result<(), _> = block_on(timeout(std::future::ready(()), std::future::pending::<()>()));
    assert!(never.is_err());
    let first: Result<u8, _> = block_on(timeout(std::future::ready(()), async { 1 }));
    assert_eq!(first, Ok(1), "a ready call wins over a ready timer");
}

#[test]
fn the_fallback_sees_only_what_is_left_after_every_attempt() {
    let c = clock();
    let b = Arc::new(CircuitBreaker::new("dep", BreakerConfig::default(), Arc::new(c.clone())).unwrap());
    b.force_open();
    let policy = Policy::builder().breaker(b.clone()).retry(retry(no_jitter())).build();
    let sleep = advance(&c);
    let seen = Mutex::new(None);
    let out = policy.call_or_else(
        &sleep,
        || -> Result<&str, Down> { panic!("never runs through a forced-open breaker") },
        |e| {
            *seen.lock().unwrap() = Some(matches!(e, PolicyError::Rejected(_)));
            Ok("cached")
        },
    );
    assert_eq!(out, Ok("cached"));
    assert_eq!(*seen.lock().unwrap(), Some(true));
    assert!(sleep.waits.lock().unwrap().is_empty(), "a rejection is not retried");
    let out = block_on(policy.call_async_or_else(|_| std::future::ready(()), || async { Ok::<_, Down>("fresh") }, Err));
    assert!(matches!(out, Err(PolicyError::Rejected(_))), "a fallback may hand the error back");
    b.close();
    let plain = Policy::builder().build();
    assert_eq!(plain.call(&sleep, || Ok::<_, Down>(5)), Ok(5));
}

#[test]
fn bad_retry_settings_are_config_errors() {
    let cases: [fn(&mut RetryConfig); 5] = [
        |c| c.max_attempts = 0,
        |c| c.multiplier = 0.5,
        |c| c.multiplier = f64::NAN,
        |c| c.jitter = 1.0,
        |c| c.max_wait = Duration::from_millis(100),
    ];
    for (i, set) in cases.into_iter().enumerate() {
        let mut cfg = RetryConfig::default();
        set(&mut cfg);
        assert_eq!(Retry::new("r", cfg).unwrap_err().code(), "config", "case {i}");
    }
    assert_eq!(Retry::new("", RetryConfig::default()).unwrap_err().code(), "invalid_input");
}

#[test]
fn a_host_running_the_attempts_itself_gets_the_same_decisions_and_counts() {
    let r = retry(no_jitter());
    assert_eq!(r.after_failure(Some(("TimeoutError", "slow")), 1), Some(Duration::from_millis(500)));
    assert_eq!(r.after_failure(Some(("TimeoutError", "slow")), 2), Some(secs(1)));
    assert_eq!(r.after_failure(Some(("TimeoutError", "slow")), 3), None, "attempts spent");
    assert_eq!(r.after_failure(None, 1), None, "a breaker's rejection is not retried");
    r.gave_up(1);
    r.after_success(2);
    let n = r.counts();
    assert_eq!(
        (n.succeeded_without_retry, n.succeeded_with_retry, n.failed_without_retry, n.failed_with_retry, n.retries),
        (0, 1, 2, 1, 2)
    );
}
