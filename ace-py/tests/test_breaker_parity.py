"""Breakers at parity with resilience4j by default, and the peers' behaviours as named settings,
through the built extension. Half-open is reached by hand (``half_open()`` or ``open_until`` a past
time), so nothing sleeps."""

import asyncio
import sys
import threading
import time

import pytest

import ace


def test_the_snapshot_counts_not_permitted_since_the_last_transition(eng):
    b = eng.breaker("np", failures=2)
    for _ in range(2):
        with pytest.raises(ValueError):
            b.call(int, "x")
    for _ in range(3):
        with pytest.raises(ace.CircuitOpenError):
            b.call(lambda: 1)
    snap = b.snapshot()
    assert (snap["not_permitted"], snap["not_permitted_total"]) == (3, 3)
    b.open_until(time.time() - 1)
    assert b.call(lambda: 7) == 7, "the wait is over: this call is the trial"
    snap = b.snapshot()
    assert (snap["state"], snap["not_permitted"], snap["not_permitted_total"]) == ("closed", 0, 3)


def test_the_snapshot_shows_the_half_open_trial(eng):
    b = eng.breaker("trial", window="count:4", minimum_calls=4, half_open_permits=3)
    b.half_open()
    with pytest.raises(ValueError):
        b.call(int, "x")
    assert b.call(lambda: 1) == 1
    snap = b.snapshot()
    assert snap["state"] == "half_open"
    assert (snap["window_calls"], snap["window_failures"], snap["failure_rate"]) == (2, 1, None)
    assert (snap["slow_successes"], snap["slow_failures"]) == (0, 0)


def test_threshold_reached_or_exceeded(eng):
    for rule, opens in [("reached", True), ("exceeded", False)]:
        b = eng.breaker(f"th-{rule}", window="count:4", minimum_calls=4, threshold=rule)
        for _ in range(2):
            b.call(lambda: 1)
        for _ in range(2):
            with pytest.raises(ValueError):
                b.call(int, "x")
        assert (b.state == "open") == opens, rule


def test_a_lost_trial_reopens_after_all_permits_or_at_once(eng):
    for verdict, open_after_two in [("after_all_permits", False), ("at_once", True)]:
        b = eng.breaker(
            f"tv-{verdict}", window="count:4", minimum_calls=4, half_open_permits=4, trial_verdict=verdict
        )
        b.half_open()
        for _ in range(2):
            with pytest.raises(ValueError):
                b.call(int, "x")
        assert (b.state == "open") == open_after_two, verdict


class Down(Exception):
    pass


def test_the_tripping_call_raises_its_own_error_or_the_breakers(eng):
    own = eng.breaker("own", failures=1)
    with pytest.raises(Down):
        own.call(_down)

    sync = eng.breaker("pyb-sync", failures=1, tripping_call="breaker_error")
    with pytest.raises(ace.CircuitOpenError) as info:
        sync.call(_down)
    assert isinstance(info.value.__cause__, Down) and info.value.state == "open"

    decorated = eng.breaker("pyb-deco", failures=2, tripping_call="breaker_error")
    guarded = decorated(_down)
    with pytest.raises(Down):
        guarded()
    with pytest.raises(ace.CircuitOpenError) as info:
        guarded()
    assert isinstance(info.value.__cause__, Down)

    block = eng.breaker("pyb-with", failures=1, tripping_call="breaker_error")
    with pytest.raises(ace.CircuitOpenError) as info:
        with block:
            raise Down("db")
    assert isinstance(info.value.__cause__, Down)

    aio = eng.breaker("pyb-async", failures=1, tripping_call="breaker_error")

    @aio
    async def fetch():
        raise Down("api")

    with pytest.raises(ace.CircuitOpenError) as info:
        asyncio.run(fetch())
    assert isinstance(info.value.__cause__, Down)


def _down():
    raise Down("down")


def test_a_busy_half_open_rejects_at_once_or_waits_for_the_verdict(eng):
    reject = eng.breaker("busy-reject")
    reject.half_open()
    trial = reject.acquire()
    with pytest.raises(ace.CircuitOpenError) as info:
        reject.call(lambda: 1)
    assert info.value.state == "half_open"
    trial.success()

    for verdict_ok in (True, False):
        b = eng.breaker(f"busy-wait-{verdict_ok}", half_open_busy="wait")
        b.half_open()
        trial = b.acquire()
        results = []

        def second_call():
            try:
                results.append(b.call(lambda: "went through"))
            except ace.CircuitOpenError as e:
                results.append(e.state)

        t = threading.Thread(target=second_call)
        t.start()
        if verdict_ok:
            trial.success()
        else:
            trial.failure()
        t.join(timeout=30)
        assert not t.is_alive()
        assert results == (["went through"] if verdict_ok else ["open"]), verdict_ok


def test_bad_setting_names_are_invalid_input(eng):
    for key in ("threshold", "half_open_busy", "tripping_call", "trial_verdict"):
        with pytest.raises(ace.InvalidInputError):
            eng.breaker(f"bad-{key}", **{key: "sometimes"})
    with pytest.raises(ace.InvalidInputError):
        eng.breaker("bad-until").open_until(float("nan"))


def test_a_count_window_smaller_than_minimum_calls_clamps_it(eng):
    b = eng.breaker("clamp", window="count:3", minimum_calls=10)
    for _ in range(3):
        with pytest.raises(ValueError):
            b.call(int, "x")
    assert b.state == "open"


def test_events_reach_a_python_subscriber(eng):
    b = eng.breaker("ev", window="count:4", minimum_calls=4, ignore=(KeyError,))
    events = []
    b.subscribe(events.append)
    others = []
    eng.breaker("other").subscribe(others.append)
    with pytest.raises(KeyError):
        b.call(lambda: {}["x"])
    for _ in range(4):
        with pytest.raises(ValueError):
            b.call(int, "x")
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    b.reset()
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "ignored_error",
        "failure_rate_exceeded",
        "transition",
        "not_permitted",
        "transition",
        "reset",
    ], kinds
    assert events[1]["rate"] == 100.0
    assert (events[2]["from"], events[2]["to"]) == ("closed", "open")
    assert events[3]["state"] == "open"
    assert (events[4]["from"], events[4]["to"], events[4]["why"]) == ("open", "closed", "reset")
    assert all(e["breaker"] == "ev" for e in events)
    assert others == [], "each subscriber hears its own breaker only"
    with pytest.raises(ace.InvalidInputError):
        b.subscribe(42)


class Transient(Exception):
    pass


def test_which_errors_and_results_count(eng, monkeypatch):
    recorded = eng.breaker("rec", failures=2, record=(Transient,))
    for _ in range(3):
        with pytest.raises(ValueError):
            recorded.call(int, "x")
    snap = recorded.snapshot()
    assert (snap["state"], snap["successes"], snap["failures"]) == ("closed", 3, 0), "outside record: successes"
    for _ in range(2):
        with pytest.raises(Transient):
            recorded.call(_raise, Transient())
    assert recorded.state == "open"

    judged = eng.breaker("pred", failures=2, is_failure=lambda e: "retryable" in str(e))
    for _ in range(3):
        with pytest.raises(RuntimeError):
            judged.call(_raise, RuntimeError("fatal"))
    assert (judged.state, judged.snapshot()["successes"]) == ("closed", 3)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            judged.call(_raise, RuntimeError("retryable"))
    assert judged.state == "open"

    empty = eng.breaker("res", failures=2, failure_result=lambda v: v == "")
    assert empty.call(lambda: "ok") == "ok"
    guarded = empty(lambda: "")
    assert guarded() == "" and empty.state == "closed"

    @empty
    async def fetch():
        return ""

    assert asyncio.run(fetch()) == ""
    assert (empty.state, empty.snapshot()["failures"]) == ("open", 2), "the empty answers opened it"

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    boom = eng.breaker("boom", failures=1, failure_result=lambda v: 1 / 0)
    assert boom.call(lambda: 5) == 5, "a raising predicate never hides the call's value"
    assert boom.state == "closed"
    assert [type(r.exc_value) for r in reported] == [ZeroDivisionError], "reported, not swallowed"
    with pytest.raises(ace.InvalidInputError):
        eng.breaker("bad-pred", is_failure=3)


def _raise(e):
    raise e


def test_automatic_half_open_moves_on_a_read_after_the_wait(eng):
    for automatic, expected in [(False, "open"), (True, "half_open")]:
        b = eng.breaker(f"auto-{automatic}", automatic_half_open=automatic)
        b.open_until(time.time() - 1)
        assert b.state == expected, automatic
        assert b.snapshot()["state"] == expected, automatic


def test_the_open_wait_backs_off_on_each_reopen_up_to_its_most(eng):
    b = eng.breaker("bo", failures=1, wait_seconds=10, backoff_multiplier=3, max_wait_seconds=100)
    waits = []
    for _ in range(4):
        with pytest.raises(ValueError):
            b.call(int, "x")  # the first opens it; each later one is a lost trial, which re-opens it
        with pytest.raises(ace.CircuitOpenError) as e:
            b.call(lambda: 1)
        waits.append(e.value.retry_after)
        b.half_open()  # as when the wait is over: the next call is the trial
    expected = [10, 30, 90, 100]
    assert all(w - 5 < x <= w for x, w in zip(waits, expected)), waits
    assert b.call(lambda: 1) == 1 and b.state == "closed", "a won trial closes it"
    with pytest.raises(ValueError):
        b.call(int, "x")
    with pytest.raises(ace.CircuitOpenError) as e:
        b.call(lambda: 1)
    assert 5 < e.value.retry_after <= 10, "closing forgot the attempt"
    for bad in [{"backoff_multiplier": 2}, {"max_wait_seconds": 60}, {"backoff_multiplier": 2, "max_wait_seconds": -1}]:
        with pytest.raises(ace.InvalidInputError):
            eng.breaker("bo-bad", **bad)
    for bad in [{"backoff_multiplier": float("nan")}, {"backoff_multiplier": 0.5}, {"max_wait_seconds": 30}]:
        with pytest.raises(ace.ConfigError):
            eng.breaker("bo-bad", **{"wait_seconds": 60, "backoff_multiplier": 2, "max_wait_seconds": 600, **bad})
