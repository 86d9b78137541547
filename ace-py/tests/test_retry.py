"""ace.Retry through the built extension: backoff and jitter decided by the core, waits on a
fake clock (nothing sleeps), rejections by an open breaker not retried unless asked."""

import asyncio

import pytest

import ace


def fake_clock():
    waits = []
    return waits, waits.append


def test_sync_retries_back_off_exponentially_and_count(eng):
    waits, sleep = fake_clock()
    r = ace.Retry("llm", max_attempts=4, wait_seconds=0.5, jitter=0, sleep=sleep)
    calls = []

    @r
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return "ok"

    assert flaky() == "ok"
    assert waits == [0.5, 1.0]
    with pytest.raises(TimeoutError):
        r.call(_raise, TimeoutError("always"))
    assert waits == [0.5, 1.0, 0.5, 1.0, 2.0], "four attempts: three waits"
    with pytest.raises(KeyError):
        ace.Retry("n", retry_on=(TimeoutError,), sleep=sleep).call(_raise, KeyError("not retried"))
    assert r.counts() == {
        "succeeded_without_retry": 0,
        "succeeded_with_retry": 1,
        "failed_without_retry": 0,
        "failed_with_retry": 1,
        "retries": 5,
    }


def _raise(e):
    raise e


def test_jitter_spreads_each_wait_within_its_band():
    r = ace.Retry("j", jitter=0.5, wait_seconds=1.0)
    draws = [r.wait(1) for _ in range(500)]
    assert all(0.5 <= w <= 1.5 for w in draws)
    assert min(draws) < 0.75 and max(draws) > 1.25


def test_an_open_breaker_stops_the_retries_unless_asked(eng):
    for retry_rejected, expected_waits in [(False, 2), (True, 4)]:
        waits, sleep = fake_clock()
        b = eng.breaker(f"dep-{retry_rejected}", failures=2)
        r = ace.Retry(f"r-{retry_rejected}", max_attempts=5, jitter=0, sleep=sleep, retry_rejected=retry_rejected)
        calls = []

        @r
        @b
        def down():
            calls.append(1)
            raise ConnectionError("down")

        with pytest.raises(ace.CircuitOpenError):
            down()
        assert len(calls) == 2, "the breaker turned the later attempts away"
        assert len(waits) == expected_waits, "retried the rejections too" if retry_rejected else "stopped at one"
        assert b.snapshot()["not_permitted"] == (3 if retry_rejected else 1)


def test_async_retries_wait_on_the_given_timer():
    waits = []

    async def asleep(d):
        waits.append(d)

    r = ace.Retry("a", jitter=0, asleep=asleep)
    calls = []

    @r
    async def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise TimeoutError("slow")
        return 42

    assert asyncio.run(flaky()) == 42
    assert waits == [0.5]
    assert r.counts()["succeeded_with_retry"] == 1


def test_bad_settings_are_typed_errors():
    with pytest.raises(ace.ConfigError):
        ace.Retry("r", max_attempts=0)
    with pytest.raises(ace.ConfigError):
        ace.Retry("r", jitter=1.5)
    with pytest.raises(ace.InvalidInputError):
        ace.Retry("r", wait_seconds=float("nan"))
    with pytest.raises(ace.InvalidInputError):
        ace.Retry("")
