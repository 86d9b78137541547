"""ace.Policy through the built extension: retry, breaker, timeout and fallback composed in the
core's order, fallback ( retry ( breaker ( timeout ( call ) ) ) ), sync and async. Retry waits
run on a fake clock; timeouts are tens of milliseconds against calls that would take seconds
(held on an event the test releases), and nothing asserts on speed."""

import asyncio
import contextvars
import threading

import pytest

import ace
from ace.exceptions import error_for_code


def fake_clock():
    waits = []
    return waits, waits.append


def test_an_open_breaker_stops_the_retries_unless_asked(eng):
    for retry_rejected, expected_waits, not_permitted in [(False, 2, 1), (True, 4, 3)]:
        waits, sleep = fake_clock()
        b = eng.breaker(f"dep-{retry_rejected}", failures=2)
        r = ace.Retry(f"r-{retry_rejected}", max_attempts=5, jitter=0, sleep=sleep, retry_rejected=retry_rejected)
        policy = ace.Policy(breaker=b, retry=r)  # the order given does not matter
        calls = []

        def down():
            calls.append(1)
            raise ConnectionError("down")

        with pytest.raises(ace.CircuitOpenError):
            policy.call(down)
        assert len(calls) == 2, "the breaker turned the later attempts away"
        assert len(waits) == expected_waits
        assert b.snapshot()["not_permitted"] == not_permitted
        assert r.counts()["retries"] == expected_waits


def test_a_sync_timeout_is_a_breaker_failure_and_the_call_finishes_on_its_own(eng):
    b = eng.breaker("slow", failures=2)
    policy = ace.Policy(breaker=b, timeout=0.02)
    release = threading.Event()
    started, finished = [], []

    def slow(tag):
        started.append(tag)
        release.wait(30)
        finished.append(tag)
        return tag

    try:
        for tag in ("a", "b"):
            with pytest.raises(ace.TimedOutError) as info:
                policy.call(slow, tag)
            assert isinstance(info.value, TimeoutError) and isinstance(info.value, ace.AceError)
            assert info.value.code == "timed_out" and info.value.timeout == 0.02
        assert b.state == "open", "two timed-out attempts are two failures"
        with pytest.raises(ace.CircuitOpenError):
            policy.call(slow, "c")
        assert started == ["a", "b"], "the open breaker turned the third call away"
        assert policy.counts() == {"timeouts": 2, "fallbacks": 0}
    finally:
        release.set()
    for _ in range(500):
        if len(finished) == 2:
            break
        threading.Event().wait(0.01)
    assert sorted(finished) == ["a", "b"], "the attempts ran to their end"


def test_a_sync_call_within_its_timeout_keeps_its_value_error_and_context():
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    policy = ace.Policy(timeout=5)

    def f(x, *, fn="kw"):
        return (x, fn, var.get(), threading.current_thread().name)

    x, kw, seen, thread = policy.call(f, 1, fn="named fn")
    assert (x, kw, seen) == (1, "named fn", "caller's")
    assert thread.startswith("ace-policy-"), "with a timeout the attempt runs on its own thread"
    with pytest.raises(KeyError, match="own"):
        policy.call(_raise, KeyError("own"))
    assert ace.Policy().call(lambda: threading.current_thread()) is threading.current_thread()


def test_the_fallback_gets_the_last_error_after_every_attempt():
    waits, sleep = fake_clock()
    r = ace.Retry("fb", max_attempts=3, jitter=0, sleep=sleep)
    attempts = []

    def failing():
        attempts.append(1)
        raise ValueError(f"attempt {len(attempts)}")

    seen = []
    policy = ace.Policy(retry=r, fallback=lambda e: seen.append(e) or "cached")
    assert policy.call(failing) == "cached"
    assert len(attempts) == 3 and len(waits) == 2, "the fallback waited for every attempt"
    assert [str(e) for e in seen] == ["attempt 3"]
    assert policy.counts()["fallbacks"] == 1
    assert r.counts()["failed_with_retry"] == 1

    assert ace.Policy(fallback=0).call(_raise, ValueError("x")) == 0, "a value is returned as is"
    only_value_errors = ace.Policy(fallback="fb", fallback_on=(ValueError,))
    with pytest.raises(KeyError):
        only_value_errors.call(_raise, KeyError("not handled"))
    assert only_value_errors.call(lambda: "fine") == "fine"
    assert only_value_errors.counts()["fallbacks"] == 0


def test_the_fallback_answers_for_an_open_breaker(eng):
    b = eng.breaker("fb-open", failures=1)
    b.force_open()
    seen = []
    policy = ace.Policy(breaker=b, fallback=lambda e: seen.append(e) or "stale")
    assert policy.call(lambda: "live") == "stale"
    assert isinstance(seen[0], ace.CircuitOpenError) and seen[0].breaker == "fb-open"


def test_the_decorator_wraps_sync_functions(eng):
    waits, sleep = fake_clock()
    policy = ace.Policy(retry=ace.Retry("dec", jitter=0, sleep=sleep), breaker=eng.breaker("dec", failures=5))
    calls = []

    @policy
    def flaky(n, *, until=2):
        """Fails until its `until`th call."""
        calls.append(n)
        if len(calls) < until:
            raise ConnectionError("flaky")
        return n * 2

    assert flaky.__name__ == "flaky" and "Fails" in flaky.__doc__
    assert flaky(21) == 42
    assert calls == [21, 21] and waits == [0.5]


def test_async_an_open_breaker_stops_the_retries_unless_asked(eng):
    for retry_rejected, expected_waits in [(False, 2), (True, 4)]:
        waits = []

        async def asleep(d, waits=waits):
            waits.append(d)

        b = eng.breaker(f"adep-{retry_rejected}", failures=2)
        r = ace.Retry(f"ar-{retry_rejected}", max_attempts=5, jitter=0, asleep=asleep, retry_rejected=retry_rejected)
        calls = []

        @ace.Policy(retry=r, breaker=b)
        async def down():
            calls.append(1)
            raise ConnectionError("down")

        with pytest.raises(ace.CircuitOpenError):
            asyncio.run(down())
        assert len(calls) == 2 and len(waits) == expected_waits


def test_async_timeout_cancels_the_awaitable_and_counts_as_a_breaker_failure(eng):
    b = eng.breaker("aslow", failures=2)
    waits = []

    async def asleep(d):
        waits.append(d)

    r = ace.Retry("aslow", max_attempts=4, jitter=0, asleep=asleep)
    policy = ace.Policy(retry=r, breaker=b, timeout=0.02)
    cancelled = []

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise
        return "never"

    with pytest.raises(ace.CircuitOpenError):
        asyncio.run(policy.acall(slow))
    assert len(cancelled) == 2, "each timed-out attempt was cancelled; the breaker refused the third"
    assert b.state == "open" and b.snapshot()["not_permitted"] == 1
    assert policy.counts()["timeouts"] == 2 and len(waits) == 2


def test_async_timeout_alone_raises_timed_out_and_the_calls_own_timeout_passes():
    policy = ace.Policy(timeout=0.02)

    async def slow():
        await asyncio.sleep(30)

    async def own():
        raise TimeoutError("the call's own")

    with pytest.raises(ace.TimedOutError, match="timed out after 0.020 s"):
        asyncio.run(policy.acall(slow))
    with pytest.raises(TimeoutError, match="the call's own") as info:
        asyncio.run(policy.acall(own))
    assert not isinstance(info.value, ace.TimedOutError)
    assert policy.counts()["timeouts"] == 1

    async def quick(x):
        return x + 1

    assert asyncio.run(policy.acall(quick, 1)) == 2


def test_async_fallback_may_be_a_coroutine_and_gets_the_last_error():
    waits = []

    async def asleep(d):
        waits.append(d)

    async def fallback(e):
        await asyncio.sleep(0)
        return f"fallback for {e}"

    attempts = []

    @ace.Policy(retry=ace.Retry("afb", max_attempts=2, jitter=0, asleep=asleep), fallback=fallback)
    async def failing():
        attempts.append(1)
        raise ValueError(f"attempt {len(attempts)}")

    assert asyncio.run(failing()) == "fallback for attempt 2"
    assert len(attempts) == 2 and waits == [0.5]


def test_a_cancelled_async_call_is_not_answered_by_the_fallback():
    policy = ace.Policy(fallback="fb")

    async def main():
        task = asyncio.ensure_future(policy.acall(asyncio.sleep, 30))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert policy.counts()["fallbacks"] == 0


def test_timed_out_error_is_typed():
    e = ace.TimedOutError("timed out after 1.000 s", timeout=1.0)
    assert isinstance(e, TimeoutError) and isinstance(e, ace.AceError)
    assert e.code == "timed_out" and e.timeout == 1.0 and str(e) == "timed out after 1.000 s"
    assert error_for_code("timed_out") is ace.TimedOutError


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "1"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"retry": "r"}, "retry"),
        ({"breaker": object()}, "breaker"),
        ({"fallback": lambda: 1}, "fallback"),
        ({"fallback": lambda a, b: 1}, "fallback"),
        ({"fallback_on": ("ValueError",)}, "fallback_on"),
        ({"fallback_on": (int,)}, "fallback_on"),
    ],
)
def test_bad_settings_are_typed_errors(kwargs, field):
    with pytest.raises(ace.InvalidInputError) as info:
        ace.Policy(**kwargs)
    assert info.value.field == field


def test_unknown_settings_are_refused():
    with pytest.raises(TypeError):
        ace.Policy(timeout_seconds=1)  # type: ignore[call-arg]


def _raise(e):
    raise e


def test_an_engine_retry_and_a_policy_timeout_are_prometheus_series(eng):
    b = eng.breaker("series", failures=10)
    waits = []

    async def asleep(d):
        waits.append(d)

    r = eng.retry("series", max_attempts=3, jitter=0, asleep=asleep)
    policy = ace.Policy(retry=r, breaker=b, timeout=0.02)

    async def slow():
        await asyncio.sleep(30)

    with pytest.raises(ace.TimedOutError):
        asyncio.run(policy.acall(slow))
    assert asyncio.run(policy.acall(asyncio.sleep, 0, "ok")) == "ok"
    text = eng.metrics_text()
    for line in [
        'ace_retry_calls_total{name="series",outcome="failed_with_retry"} 1',
        'ace_retry_calls_total{name="series",outcome="successful_without_retry"} 1',
        'ace_retry_attempts_total{name="series"} 2',
        'ace_timeouts_total{name="series"} 3',
    ]:
        assert line in text, f"{line} in\n{text}"
    assert eng.retry("series").counts()["retries"] == 2, "one retry per name in an engine"
    alone = ace.Retry("alone", max_attempts=1)
    alone.after_success(1)
    alone.count_timeout()
    assert "alone" not in eng.metrics_text(), "a retry made alone belongs to no engine"
