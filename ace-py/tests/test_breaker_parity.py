"""Breakers at parity with resilience4j by default, and the peers' behaviours as named settings,
through the built extension, on an engine with a manual clock: every wait passes by moving the
clock, so nothing sleeps. docs/breakers.md ("where each behaviour is pinned") maps each behaviour
of issue 24 to its test here, in Rust and in Node."""

import asyncio
import sys
import threading

import pytest

import ace
from conftest import START, fail


@pytest.fixture
def eng(clock):
    e = ace.Ace(clock=clock)
    yield e
    e.close()


def watch(b):
    events = []
    b.subscribe(events.append)
    return events


def drained(events):
    out = [(e["kind"], e.get("from"), e.get("to"), e.get("rate")) for e in events]
    events.clear()
    return out


def test_the_snapshot_counts_not_permitted_since_the_last_transition(eng, clock):
    b = eng.breaker("np", failures=2, wait_seconds=30)
    for _ in range(2):
        with pytest.raises(ValueError):
            b.call(int, "x")
    for _ in range(3):
        with pytest.raises(ace.CircuitOpenError):
            b.call(lambda: 1)
    snap = b.snapshot()
    assert (snap["not_permitted"], snap["not_permitted_total"]) == (3, 3)
    clock.advance(31)
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


def test_automatic_half_open_moves_on_a_read_after_the_wait(eng, clock):
    for automatic, expected in [(False, "open"), (True, "half_open")]:
        b = eng.breaker(f"auto-{automatic}", automatic_half_open=automatic)
        b.open_until(clock.now() + 10)
        clock.advance(10)
        assert b.state == "open", "not before the wait is over (strictly after it)"
        clock.advance(1)
        assert b.state == expected, automatic
        assert b.snapshot()["state"] == expected, automatic


def test_the_open_wait_backs_off_on_each_reopen_up_to_its_most(eng, clock):
    b = eng.breaker("bo", failures=1, wait_seconds=10, backoff_multiplier=3, max_wait_seconds=100)
    waits = []
    for _ in range(4):
        fail(b)  # the first opens it; each later one is a lost trial, which re-opens it
        with pytest.raises(ace.CircuitOpenError) as e:
            b.call(lambda: 1)
        waits.append(e.value.retry_after)
        assert b.snapshot()["attempts"] == len(waits), "openings in a row"
        clock.advance(waits[-1] - 1)
        with pytest.raises(ace.CircuitOpenError):
            b.call(lambda: 1)
        clock.advance(1.5)  # the wait is over: the next call is the trial
    assert waits == [10, 30, 90, 100]
    assert b.call(lambda: 1) == 1 and b.state == "closed", "a won trial closes it"
    fail(b)
    with pytest.raises(ace.CircuitOpenError) as e:
        b.call(lambda: 1)
    assert e.value.retry_after == 10, "closing forgot the attempt"
    for bad in [{"backoff_multiplier": 2}, {"max_wait_seconds": 60}, {"backoff_multiplier": 2, "max_wait_seconds": -1}]:
        with pytest.raises(ace.InvalidInputError):
            eng.breaker("bo-bad", **bad)
    for bad in [{"backoff_multiplier": float("nan")}, {"backoff_multiplier": 0.5}, {"max_wait_seconds": 30}]:
        with pytest.raises(ace.ConfigError):
            eng.breaker("bo-bad", **{"wait_seconds": 60, "backoff_multiplier": 2, "max_wait_seconds": 600, **bad})


def test_metrics_only_starts_a_fresh_window_and_publishes_the_rate_once_per_stay(eng):
    b = eng.breaker("mo", window="count:4", minimum_calls=4)
    events = watch(b)
    fail(b, 3)
    b.metrics_only()
    assert b.snapshot()["window_calls"] == 0, "the closed window is not carried over"
    assert drained(events) == [("transition", "closed", "metrics_only", None)]
    fail(b, 3)
    assert drained(events) == [], "below minimum_calls, no rate"
    fail(b, 5)
    assert drained(events) == [("failure_rate_exceeded", None, None, 100.0)], "once, however many failures"
    assert b.state == "metrics_only", "it never trips"
    b.metrics_only()
    assert drained(events) == [], "a move to the same state publishes no transition"
    fail(b, 4)
    assert drained(events) == [("failure_rate_exceeded", None, None, 100.0)], "a new stay publishes again"


def test_a_manual_move_to_the_current_state_restarts_it_without_a_transition(eng):
    b = eng.breaker("same")
    events = watch(b)
    b.close()
    assert drained(events) == []
    b.open_for(5)
    b.open_for(50)
    assert drained(events) == [("transition", "closed", "open", None)]
    with pytest.raises(ace.CircuitOpenError) as e:
        b.call(lambda: 1)
    assert e.value.retry_after == 50, "the second wait holds"
    assert b.snapshot()["not_permitted"] == 1
    b.open_for(50)
    assert b.snapshot()["not_permitted"] == 0, "the state started afresh"
    b.force_open()
    b.force_open()
    b.disable()
    b.disable()
    assert drained(events) == [
        ("not_permitted", None, None, None),
        ("transition", "open", "forced_open", None),
        ("transition", "forced_open", "disabled", None),
    ]
    b.reset()
    assert drained(events) == [("transition", "disabled", "closed", None), ("reset", None, None, None)]
    b.reset()
    assert drained(events) == [("reset", None, None, None)], "resetting a closed breaker: only the reset"


def test_slow_calls_publish_their_rate_before_the_opening(eng, clock):
    b = eng.breaker("slowrate", window="count:4", minimum_calls=4, slow_call_seconds=1, slow_call_rate=50)
    events = watch(b)
    for _ in range(2):
        assert b.call(lambda: 1) == 1
    with b:
        clock.advance(2)  # a slow success
    with pytest.raises(ValueError):
        with b:
            clock.advance(2)
            raise ValueError("slow and failed")
    assert drained(events) == [
        ("slow_call_rate_exceeded", None, None, 50.0),
        ("transition", "closed", "open", None),
    ], "a failure rate of 25% publishes nothing; the slow rate of 50% opens it"
    snap = b.snapshot()
    assert (snap["slow"], snap["failures"]) == (2, 1)


def test_open_until_a_time_then_the_next_call_is_the_trial(eng, clock):
    b = eng.breaker("until")
    b.open_until(clock.now() + 20)
    with pytest.raises(ace.CircuitOpenError) as e:
        b.call(lambda: 1)
    assert (e.value.state, e.value.retry_after) == ("open", 20)
    clock.advance(20)
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    clock.advance(0.5)
    assert b.state == "open", "without automatic_half_open, the move waits for a call"
    assert b.call(lambda: 1) == 1 and b.state == "closed"
    b.half_open()
    assert b.state == "half_open", "a manual move to half-open"


def test_a_busy_half_open_makes_coroutines_wait_for_the_verdict_without_blocking_the_loop(eng):
    for verdict_ok in (True, False):
        b = eng.breaker(f"abusy-{verdict_ok}", half_open_busy="wait")
        b.half_open()

        @b
        async def decorated():
            return "went through"

        async def in_block():
            async with b:
                return "block ran"

        async def scenario():
            trial = b.acquire()
            waiters = [
                asyncio.ensure_future(decorated()),
                asyncio.ensure_future(in_block()),
                asyncio.ensure_future(ace.Policy(breaker=b).acall(decorated.__wrapped__)),
            ]
            for _ in range(5):
                await asyncio.sleep(0)  # the loop runs on while they wait
            assert not any(w.done() for w in waiters), "the waiters wait for the verdict"
            with pytest.raises(ace.CircuitOpenError):
                b.acquire()  # acquire never waits
            (trial.success if verdict_ok else trial.failure)()
            return await asyncio.gather(*waiters, return_exceptions=True)

        results = asyncio.run(asyncio.wait_for(scenario(), 30))
        if verdict_ok:
            assert results == ["went through", "block ran", "went through"]
            assert b.state == "closed"
        else:
            assert all(isinstance(r, ace.CircuitOpenError) and r.state == "open" for r in results), results
        assert b.snapshot()["not_permitted"] == (0 if verdict_ok else 3), "waiting counts nothing"


def test_a_trial_that_never_reports_ends_at_max_half_open_seconds_and_the_coroutine_is_told(eng, clock):
    b = eng.breaker("astuck", half_open_busy="wait", max_half_open_seconds=0.001)
    b.half_open()
    held = b.acquire()

    @b
    async def waiter():
        return "never"

    async def scenario():
        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        assert not task.done()
        clock.advance(1)  # no verdict comes; the waiter asks again on its own after its recheck
        with pytest.raises(ace.CircuitOpenError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert b.state == "open"
    held.success()  # too late: counted, judging nothing


def test_the_typed_snapshot_and_events_name_exactly_the_keys_given(eng):
    b = eng.breaker("shape", window="count:2", minimum_calls=2, slow_call_seconds=1, ignore=(KeyError,))
    assert set(b.snapshot()) == set(ace.BreakerSnapshot.__annotations__)
    events = watch(b)
    with pytest.raises(KeyError):
        b.call(lambda: {}["x"])
    fail(b, 2)
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    b.reset()
    assert {e["kind"] for e in events} == {"ignored_error", "failure_rate_exceeded", "transition", "not_permitted", "reset"}
    for e in events:
        assert set(e) <= set(ace.BreakerEvent.__annotations__), e
