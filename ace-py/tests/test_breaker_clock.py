"""Breaker settings tested on ``ace.ManualClock``: the open wait, the half-open trial, time
windows, automatic half-open and the durations in the snapshot, all without sleeping."""

import math

import pytest

import ace
from conftest import START, fail


@pytest.fixture
def timed(clock):
    e = ace.Ace(clock=clock)
    yield e
    e.close()


def test_the_manual_clock_moves_only_when_told(clock):
    assert clock.now() == START
    clock.advance(1.5)
    assert clock.now() == START + 1.5
    clock.set(10.0)
    assert clock.now() == 10.0
    assert ace.ManualClock().now() == 0.0


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf])
def test_bad_seconds_are_an_invalid_input_error(clock, bad):
    with pytest.raises(ace.InvalidInputError) as e:
        ace.ManualClock(bad)
    assert e.value.field == "start"
    for move in (clock.advance, clock.set):
        with pytest.raises(ace.InvalidInputError):
            move(bad)
    assert clock.now() == START, "bad input moves nothing"
    with pytest.raises(TypeError):
        ace.Ace(clock="now")  # type: ignore[arg-type]


def test_open_then_the_wait_passes_then_a_trial_closes_it(timed, clock):
    b = timed.breaker("dep", failures=2, wait_seconds=30)
    fail(b, 2)
    assert b.state == "open"
    clock.advance(29)
    with pytest.raises(ace.CircuitOpenError) as e:
        b.call(lambda: 1)
    assert e.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    assert b.state == "open", "the wait ends strictly after 30 s"
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    clock.advance(0.001)
    assert b.state == "open", "without automatic_half_open, only a call moves it"
    with b:
        assert b.state == "half_open", "this call is the trial"
    assert b.state == "closed"


def test_a_failed_trial_opens_it_for_another_wait(timed, clock):
    b = timed.breaker("dep2", failures=1, wait_seconds=10)
    fail(b)
    clock.advance(11)
    fail(b)
    assert b.state == "open"
    clock.advance(10)
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    clock.advance(1)
    assert b.call(lambda: 2) == 2
    assert b.state == "closed"


def test_automatic_half_open_moves_at_a_read_once_the_wait_is_over(timed, clock):
    b = timed.breaker("auto", failures=1, wait_seconds=5, automatic_half_open=True)
    fail(b)
    clock.advance(5)
    assert b.state == "open"
    clock.advance(0.5)
    assert b.state == "half_open", "read, not called"
    assert b.snapshot()["state"] == "half_open"


def test_a_time_window_forgets_calls_older_than_its_seconds(timed, clock):
    b = timed.breaker("tw", window="time:10", minimum_calls=4, failure_rate=50)
    fail(b, 3)
    assert b.snapshot()["window_calls"] == 3
    clock.advance(10)
    assert b.snapshot()["window_calls"] == 0, "the three failures left the window"
    fail(b)
    assert b.call(lambda: 1) == 1
    assert b.state == "closed", "1 failure of 2 calls: below minimum_calls"
    fail(b, 2)
    assert b.state == "open", "3 failures of 4 calls within the ten seconds"


def test_the_half_open_limit_reopens_without_a_verdict(timed, clock):
    b = timed.breaker("hl", failures=1, wait_seconds=5, half_open_permits=1, max_half_open_seconds=20)
    fail(b)
    clock.advance(6)
    permit = b.acquire()
    assert b.state == "half_open"
    clock.advance(21)
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    assert b.state == "open"
    permit.success()


def test_the_snapshot_gives_the_window_durations(timed, clock):
    b = timed.breaker("slow", window="count:3", minimum_calls=3, slow_call_seconds=2, slow_call_rate=100)
    snap = b.snapshot()
    assert (snap["total_duration"], snap["average_duration"]) == (0.0, None)
    for took in (1, 3, 5):
        with b:
            clock.advance(took)
    snap = b.snapshot()
    assert (snap["total_duration"], snap["average_duration"]) == (9.0, 3.0)
    assert (snap["slow_successes"], snap["slow_failures"], snap["attempts"]) == (2, 0, 0)
    plain = timed.breaker("plain", window="count:3")
    assert plain.call(lambda: 1) == 1
    assert plain.snapshot()["total_duration"] is None, "a breaker without slow_call_seconds times nothing"
