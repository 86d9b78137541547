//! Breakers at parity with resilience4j (the defaults) and with the peers that disagree (named
//! settings): one test per behaviour, on a manual clock, no sleeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ace_core::breaker::{
    BreakerConfig, Breakers, CallError, CircuitBreaker, EventKind, HalfOpenBusy, Outcome, State, Threshold,
    TrialVerdict, TrippingCall, Window,
};
use ace_core::{ManualClock, Timestamp};

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
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

/// A registry breaker with every event it publishes recorded.
fn watched(cfg: BreakerConfig, c: &ManualClock) -> (Arc<CircuitBreaker>, Arc<Mutex<Vec<EventKind>>>) {
    let registry = Breakers::new(BreakerConfig::default(), Arc::new(c.clone()));
    let seen: Arc<Mutex<Vec<EventKind>>> = Arc::default();
    let s = seen.clone();
    registry.subscribe(move |e| s.lock().unwrap().push(e.kind.clone()));
    (registry.get_with("dep", cfg).unwrap(), seen)
}

fn drain(seen: &Mutex<Vec<EventKind>>) -> Vec<EventKind> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn transitions(events: &[EventKind]) -> Vec<(State, State)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Transition { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

fn count_window(n: u32) -> ace_core::breaker::BreakerConfigBuilder {
    BreakerConfig::builder().window(Window::Count(n)).minimum_calls(n)
}

#[test]
fn not_permitted_resets_on_every_transition_while_the_lifetime_count_keeps_growing() {
    let c = clock();
    let b = CircuitBreaker::new("dep", BreakerConfig::default(), Arc::new(c.clone())).unwrap();
    fail(&b, 5);
    for _ in 0..3 {
        assert!(b.try_acquire().is_err());
    }
    assert_eq!((b.snapshot().not_permitted, b.counts().not_permitted), (3, 3));
    c.advance(secs(61));
    let trial = b.try_acquire().unwrap();
    assert_eq!(b.snapshot().not_permitted, 0, "open -> half-open reset it");
    assert!(b.try_acquire().is_err(), "the only permit is taken");
    assert_eq!(b.snapshot().not_permitted, 1);
    trial.success();
    assert_eq!((b.state(), b.snapshot().not_permitted, b.counts().not_permitted), (State::Closed, 0, 4));
    b.force_open();
    assert!(b.try_acquire().is_err());
    b.force_open();
    assert_eq!(b.snapshot().not_permitted, 0, "a move to the same state starts it again too");
}

#[test]
fn the_snapshot_shows_the_half_open_trial_not_the_closed_window() {
    let c = clock();
    let cfg = count_window(10).half_open_permits(4).slow_call_duration(secs(1)).build().unwrap();
    let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
    fail(&b, 10);
    assert_eq!(b.state(), State::Open);
    c.advance(secs(61));
    b.try_acquire().unwrap().failure();
    let slow = b.try_acquire().unwrap();
    c.advance(secs(2));
    slow.success();
    let s = b.snapshot();
    assert_eq!(s.state, State::HalfOpen);
    assert_eq!((s.window_calls, s.window_failures, s.slow_successes, s.slow_failures), (2, 1, 1, 0));
    assert_eq!((s.failure_rate, s.slow_call_rate), (None, None), "no rate before every trial call completed");
    let slow_failure = b.try_acquire().unwrap();
    c.advance(secs(2));
    slow_failure.failure();
    let s = b.snapshot();
    assert_eq!((s.window_calls, s.window_failures, s.slow_successes, s.slow_failures), (3, 2, 1, 1));
}

#[test]
fn the_snapshot_adds_up_the_durations_of_the_window_calls() {
    let c = clock();
    let cfg = count_window(2).slow_call_duration(secs(5)).build().unwrap();
    let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
    let s = b.snapshot();
    assert_eq!((s.total_duration, s.average_duration), (Some(Duration::ZERO), None), "no calls: no average");
    for took in [1, 3, 7] {
        let p = b.try_acquire().unwrap();
        c.advance(secs(took));
        p.success();
    }
    let s = b.snapshot();
    assert_eq!(s.total_duration, Some(secs(10)), "the 1 s call slid out of the window of 2");
    assert_eq!(s.average_duration, Some(secs(5)));
    assert_eq!((s.slow_successes, s.slow_failures), (1, 0));
    let untimed = CircuitBreaker::new("plain", count_window(2).build().unwrap(), Arc::new(c.clone())).unwrap();
    succeed(&untimed, 2);
    let s = untimed.snapshot();
    assert_eq!(
        (s.total_duration, s.average_duration),
        (None, None),
        "a breaker without slow_call_duration times nothing"
    );
}

#[test]
fn a_time_window_read_after_its_seconds_passed_drops_their_calls() {
    let c = clock();
    let cfg = BreakerConfig::builder().window(Window::Time(10)).minimum_calls(2).failure_rate_threshold(100.0);
    let b = CircuitBreaker::new("dep", cfg.build().unwrap(), Arc::new(c.clone())).unwrap();
    fail(&b, 1);
    succeed(&b, 2);
    let s = b.snapshot();
    assert_eq!((s.window_calls, s.window_failures), (3, 1));
    assert_eq!(s.failure_rate, Some(100.0 / 3.0));
    c.advance(secs(9));
    assert_eq!(b.snapshot().window_calls, 3, "still within the ten seconds");
    c.advance(secs(1));
    let s = b.snapshot();
    assert_eq!((s.window_calls, s.failure_rate), (0, None), "read after the window: nothing left, no rate");
}

#[test]
fn metrics_only_starts_a_fresh_window_and_publishes_the_rate_once_per_episode() {
    let c = clock();
    let (b, seen) = watched(count_window(4).build().unwrap(), &c);
    fail(&b, 3);
    b.metrics_only();
    assert_eq!(b.snapshot().window_calls, 0, "the closed window is not carried over");
    assert_eq!(transitions(&drain(&seen)), [(State::Closed, State::MetricsOnly)]);
    fail(&b, 3);
    assert!(drain(&seen).is_empty(), "below minimum_calls, no rate");
    fail(&b, 5);
    assert_eq!(drain(&seen), [EventKind::FailureRateExceeded { rate: 100.0 }], "once, however many failures");
    assert_eq!(b.state(), State::MetricsOnly);
    b.metrics_only();
    assert!(drain(&seen).is_empty(), "a move to the same state publishes no transition");
    fail(&b, 4);
    assert_eq!(drain(&seen), [EventKind::FailureRateExceeded { rate: 100.0 }], "a new episode publishes again");
}

#[test]
fn a_closed_breaker_publishes_the_rate_then_its_opening_and_ignored_errors_are_events() {
    let c = clock();
    let cfg = count_window(4)
        .slow_call_duration(secs(1))
        .slow_call_rate_threshold(50.0)
        .classify(|kind, _| if kind == "NotFound" { Outcome::Ignored } else { Outcome::Failure })
        .build()
        .unwrap();
    let (b, seen) = watched(cfg, &c);
    b.try_acquire().unwrap().error("NotFound", "no such row");
    assert_eq!(drain(&seen), [EventKind::IgnoredError]);
    succeed(&b, 2);
    for _ in 0..2 {
        let p = b.try_acquire().unwrap();
        c.advance(secs(2));
        p.failure();
    }
    let events = drain(&seen);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], EventKind::FailureRateExceeded { rate: 50.0 });
    assert_eq!(events[1], EventKind::SlowCallRateExceeded { rate: 50.0 });
    assert_eq!(transitions(&events[2..]), [(State::Closed, State::Open)]);
}

#[test]
fn a_manual_move_to_the_current_state_restarts_it_without_a_transition() {
    let c = clock();
    let (b, seen) = watched(BreakerConfig::default(), &c);
    b.close();
    assert!(drain(&seen).is_empty());
    b.open_for(secs(5));
    b.open_for(secs(50));
    assert_eq!(transitions(&drain(&seen)), [(State::Closed, State::Open)]);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(secs(50)), "the second wait holds");
    b.force_open();
    b.force_open();
    b.disable();
    b.disable();
    assert_eq!(transitions(&drain(&seen)), [(State::Open, State::ForcedOpen), (State::ForcedOpen, State::Disabled)]);
    b.reset();
    assert_eq!(
        drain(&seen)[..],
        [EventKind::Transition { from: State::Disabled, to: State::Closed, why: "reset" }, EventKind::Reset]
    );
    b.reset();
    assert_eq!(drain(&seen), [EventKind::Reset], "resetting a closed breaker publishes only the reset");
}

#[test]
fn a_count_window_smaller_than_minimum_calls_clamps_the_minimum() {
    let c = clock();
    let cfg = BreakerConfig::builder().window(Window::Count(5)).minimum_calls(10).build().unwrap();
    assert_eq!(cfg.minimum_calls, 10);
    let b = CircuitBreaker::new("dep", cfg, Arc::new(c)).unwrap();
    fail(&b, 2);
    succeed(&b, 2);
    assert_eq!(b.snapshot().failure_rate, None);
    b.try_acquire().unwrap().success();
    assert_eq!(b.snapshot().failure_rate, Some(40.0), "rated at the window's five calls");
    fail(&b, 2);
    assert_eq!(b.state(), State::Closed, "the last five: F S S F F, 40%");
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "the last five: S S F F F, 60%");
}

#[test]
fn threshold_reached_opens_at_the_rate_and_exceeded_only_above_it() {
    for (rule, opens) in [(Threshold::Reached, true), (Threshold::Exceeded, false)] {
        let c = clock();
        let b = CircuitBreaker::new("dep", count_window(4).threshold(rule).build().unwrap(), Arc::new(c)).unwrap();
        succeed(&b, 2);
        fail(&b, 2);
        assert_eq!(b.state() == State::Open, opens, "{rule}: 50% against 50%");
        if !opens {
            fail(&b, 1);
            assert_eq!(b.state(), State::Open, "{rule}: 75% is above");
        }
    }
}

#[derive(Debug, PartialEq)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("down")
    }
}

#[test]
fn the_tripping_call_returns_its_own_error_or_the_breakers() {
    for returns in [TrippingCall::OwnError, TrippingCall::BreakerError] {
        let c = clock();
        let cfg = BreakerConfig::builder().tripping_call(returns).build().unwrap();
        let b = CircuitBreaker::new("dep", cfg, Arc::new(c)).unwrap();
        for _ in 0..4 {
            assert_eq!(b.call(|| Err::<(), _>(Down)), Err(CallError::Failed(Down)), "{returns}");
        }
        match (returns, b.call(|| Err::<(), _>(Down))) {
            (TrippingCall::OwnError, Err(CallError::Failed(Down))) => {}
            (TrippingCall::BreakerError, Err(CallError::Tripped { rejected, error: Down })) => {
                assert_eq!((rejected.state, rejected.retry_after), (State::Open, Some(secs(60))));
                assert!(CallError::Tripped { rejected, error: Down }.to_string().contains("opened by: down"));
            }
            (_, other) => panic!("{returns}: {other:?}"),
        }
        assert!(matches!(b.call(|| Ok::<_, Down>(1)), Err(CallError::Rejected(_))), "{returns}: open now");
    }
}

#[test]
fn a_lost_trial_reopens_after_all_permits_or_at_once() {
    for (when, open_after_two) in [(TrialVerdict::AfterAllPermits, false), (TrialVerdict::AtOnce, true)] {
        let c = clock();
        let cfg = count_window(4).half_open_permits(4).trial_verdict(when).build().unwrap();
        let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
        fail(&b, 4);
        c.advance(secs(61));
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), State::HalfOpen, "{when}: 1 of 4 can still close it");
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state() == State::Open, open_after_two, "{when}: 2 of 4 failed, 50% whatever comes");
        if !open_after_two {
            succeed(&b, 2);
            assert_eq!(b.state(), State::Open, "{when}: decided after the fourth");
        }
    }
    let c = clock();
    let cfg = BreakerConfig::builder().half_open_permits(3).trial_verdict(TrialVerdict::AtOnce).build().unwrap();
    let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
    fail(&b, 5);
    c.advance(secs(61));
    succeed(&b, 1);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "consecutive window: one trial failure decides at once");
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_busy_half_open_rejects_at_once_or_waits_for_the_verdict() {
    let c = clock();
    let b = CircuitBreaker::new("dep", BreakerConfig::default(), Arc::new(c.clone())).unwrap();
    fail(&b, 5);
    c.advance(secs(61));
    let _trial = b.try_acquire().unwrap();
    let mut fut = std::pin::pin!(b.acquire_async());
    let waker = Waker::noop();
    match fut.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(Err(r)) => assert_eq!(r.state, State::HalfOpen, "reject: at once"),
        _ => panic!("the default rejects at once"),
    }

    for (trial_ok, then) in [(true, State::Closed), (false, State::Open)] {
        let c = clock();
        let cfg = BreakerConfig::builder().half_open_busy(HalfOpenBusy::Wait).build().unwrap();
        let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
        fail(&b, 5);
        c.advance(secs(61));
        let trial = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "try_acquire never waits");
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(b.acquire_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "waits for the verdict");
        assert!(!flag.0.load(Ordering::SeqCst));
        let not_permitted = b.counts().not_permitted;
        std::thread::scope(|s| {
            let waiting = s.spawn(|| b.acquire_waiting().map(|p| p.success()).map_err(|r| r.state));
            if trial_ok {
                trial.success()
            } else {
                trial.failure()
            }
            assert_eq!(b.state(), then);
            let expected = if trial_ok { Ok(()) } else { Err(State::Open) };
            assert_eq!(waiting.join().unwrap(), expected, "the blocked thread follows the verdict");
        });
        assert!(flag.0.load(Ordering::SeqCst), "the verdict woke the future");
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(p)) => {
                assert!(trial_ok);
                p.success();
            }
            Poll::Ready(Err(r)) => assert_eq!((trial_ok, r.state), (false, State::Open)),
            Poll::Pending => panic!("still waiting after the verdict"),
        }
        let rejected_after = if trial_ok { 0 } else { 2 };
        assert_eq!(b.counts().not_permitted - not_permitted, rejected_after, "waiting is not a rejection");
    }
}

#[test]
fn a_permit_given_back_in_half_open_wakes_a_waiter() {
    let c = clock();
    let cfg = BreakerConfig::builder().half_open_busy(HalfOpenBusy::Wait).build().unwrap();
    let b = CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap();
    fail(&b, 5);
    c.advance(secs(61));
    let trial = b.try_acquire().unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(b.acquire_async());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(trial);
    assert!(flag.0.load(Ordering::SeqCst));
    let Poll::Ready(Ok(p)) = fut.as_mut().poll(&mut cx) else { panic!("the given-back permit is the waiter's") };
    p.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn poll_acquire_owned_waits_for_the_verdict_as_an_event_loop_binding_polls() {
    for (trial_ok, then) in [(true, State::Closed), (false, State::Open)] {
        let c = clock();
        let cfg = BreakerConfig::builder()
            .half_open_busy(HalfOpenBusy::Wait)
            .max_wait_in_half_open(secs(120))
            .build()
            .unwrap();
        let b = Arc::new(CircuitBreaker::new("dep", cfg, Arc::new(c.clone())).unwrap());
        assert_eq!(b.recheck_after(), Some(secs(1)), "with a half-open limit, the waiter asks again within a second");
        fail(&b, 5);
        c.advance(secs(61));
        let trial = b.try_acquire_owned().unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let not_permitted = b.counts().not_permitted;
        assert!(b.poll_acquire_owned(&mut Context::from_waker(&waker)).is_pending(), "waits for the verdict");
        assert_eq!(b.counts().not_permitted, not_permitted, "waiting is not a rejection");
        trial.record(if trial_ok { Outcome::Success } else { Outcome::Failure });
        assert!(flag.0.load(Ordering::SeqCst), "the verdict woke the waiter");
        match b.poll_acquire_owned(&mut Context::from_waker(&waker)) {
            Poll::Ready(Ok(p)) => {
                assert!(trial_ok, "a permit only after a closing");
                p.record(Outcome::Success);
            }
            Poll::Ready(Err(r)) => assert_eq!((trial_ok, r.state), (false, State::Open)),
            Poll::Pending => panic!("still waiting after the verdict"),
        }
        assert_eq!(b.state(), then);
    }
    let plain = Arc::new(CircuitBreaker::new("plain", BreakerConfig::default(), Arc::new(clock())).unwrap());
    assert_eq!(plain.recheck_after(), None);
    plain.half_open();
    let _trial = plain.try_acquire_owned().unwrap();
    let polled = plain.poll_acquire_owned(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(polled, Poll::Ready(Err(_))), "reject: never pending");
}

#[test]
fn peer_settings_read_from_their_names_through_the_binding_options() {
    use ace_core::breaker::config::BreakerOptions;
    let o = BreakerOptions {
        threshold: Some("exceeded".parse().unwrap()),
        half_open_busy: Some("wait".parse().unwrap()),
        tripping_call: Some("breaker_error".parse().unwrap()),
        trial_verdict: Some("at_once".parse().unwrap()),
        ..Default::default()
    };
    let cfg = o.config(5, secs(60)).unwrap();
    assert_eq!(
        (cfg.threshold, cfg.half_open_busy, cfg.tripping_call, cfg.trial_verdict),
        (Threshold::Exceeded, HalfOpenBusy::Wait, TrippingCall::BreakerError, TrialVerdict::AtOnce)
    );
    let d = BreakerConfig::default();
    assert_eq!(
        (d.threshold, d.half_open_busy, d.tripping_call, d.trial_verdict),
        (Threshold::Reached, HalfOpenBusy::Reject, TrippingCall::OwnError, TrialVerdict::AfterAllPermits),
        "resilience4j's by default"
    );
}

#[test]
fn half_open_by_hand_starts_a_trial_and_open_until_a_past_time_lets_the_next_call_try() {
    let c = clock();
    let (b, seen) = watched(BreakerConfig::builder().half_open_permits(2).build().unwrap(), &c);
    b.half_open();
    assert_eq!(transitions(&drain(&seen)), [(State::Closed, State::HalfOpen)]);
    let (p1, p2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    assert_eq!(b.try_acquire().unwrap_err().state, State::HalfOpen, "exactly the two permits");
    p1.success();
    p2.success();
    assert_eq!(b.state(), State::Closed);
    b.open_until(Timestamp::from_micros(1_700_000_000_000_000 - 1));
    assert_eq!(b.state(), State::Open);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::HalfOpen, "one of two trial calls in");
}

#[test]
fn a_permit_settled_by_a_host_hands_back_the_rejection_to_raise_instead() {
    for returns in [TrippingCall::OwnError, TrippingCall::BreakerError] {
        let c = clock();
        let cfg =
            BreakerConfig::builder().window(Window::ConsecutiveFailures(2)).tripping_call(returns).build().unwrap();
        let b = Arc::new(CircuitBreaker::new("dep", cfg, Arc::new(c)).unwrap());
        assert_eq!(b.try_acquire_owned().unwrap().settle(Outcome::Failure), None, "{returns}: not yet open");
        let instead = b.try_acquire().unwrap().settle(Outcome::Failure);
        match returns {
            TrippingCall::BreakerError => {
                let r = instead.expect("the tripping call's rejection");
                assert_eq!((r.state, r.retry_after), (State::Open, Some(secs(60))));
            }
            _ => assert_eq!(instead, None),
        }
    }
}

#[test]
fn automatic_half_open_moves_on_a_read_after_the_wait_without_a_call() {
    for automatic in [false, true] {
        let c = clock();
        let (b, seen) = watched(BreakerConfig::builder().automatic_half_open(automatic).build().unwrap(), &c);
        fail(&b, 5);
        c.advance(secs(60));
        assert_eq!(b.state(), State::Open, "{automatic}: not strictly after the wait yet");
        c.advance(Duration::from_micros(1));
        let expected = if automatic { State::HalfOpen } else { State::Open };
        assert_eq!(b.snapshot().state, expected, "{automatic}");
        assert_eq!(b.state(), expected, "{automatic}");
        let moves = transitions(&drain(&seen));
        assert_eq!(moves.contains(&(State::Open, State::HalfOpen)), automatic, "{automatic}: {moves:?}");
    }
}

#[test]
fn an_error_the_classifier_excludes_counts_as_a_success() {
    // resilience4j's recordExceptions: an error not recorded "counts as a success, unless ignored".
    let c = clock();
    let only_timeouts = |kind: &str, _: &str| if kind == "Timeout" { Outcome::Failure } else { Outcome::Success };
    let rated =
        CircuitBreaker::new("rated", count_window(4).classify(only_timeouts).build().unwrap(), Arc::new(c.clone()))
            .unwrap();
    rated.try_acquire().unwrap().error("Timeout", "no answer");
    for _ in 0..3 {
        rated.try_acquire().unwrap().error("BadRequest", "400");
    }
    let s = rated.snapshot();
    assert_eq!((s.counts.successes, s.counts.failures, s.counts.ignored), (3, 1, 0));
    assert_eq!((s.state, s.failure_rate), (State::Closed, Some(25.0)));
    let cfg = BreakerConfig::builder().window(Window::ConsecutiveFailures(2)).classify(only_timeouts).build().unwrap();
    let in_a_row = CircuitBreaker::new("row", cfg, Arc::new(c)).unwrap();
    in_a_row.try_acquire().unwrap().error("Timeout", "no answer");
    in_a_row.try_acquire().unwrap().error("BadRequest", "400");
    assert_eq!(in_a_row.snapshot().consecutive_failures, 0, "the excluded error ended the run");
    in_a_row.try_acquire().unwrap().error("Timeout", "no answer");
    assert_eq!(in_a_row.state(), State::Closed);
}
