"""Circuit breakers: decorator (sync, async, methods), with / async with, call, acquire."""

import asyncio

import pytest

import ace


def test_the_decorator_opens_after_five_failures_and_rejects_fast(eng):
    b = eng.breaker("llm")
    calls = []

    @b
    def flaky(x):
        calls.append(x)
        raise TimeoutError("slow")

    for i in range(5):
        with pytest.raises(TimeoutError):
            flaky(i)
    assert b.state == "open" and eng.breaker_states()["llm"] == "open"
    with pytest.raises(ace.CircuitOpenError) as info:
        flaky(99)
    e = info.value
    assert (e.code, e.breaker, e.state) == ("circuit_open", "llm", "open")
    assert 0 < e.retry_after <= 60
    assert calls == [0, 1, 2, 3, 4], "a rejected call never runs"
    assert isinstance(flaky, ace.Guarded) and flaky.__name__ == "flaky"
    snap = b.snapshot()
    assert (snap["failures"], snap["not_permitted"]) == (5, 1)


def test_settings_ignored_exceptions_and_manual_states(eng):
    b = eng.breaker("db", failures=2, wait_seconds=30, ignore=(KeyError,))
    for _ in range(3):
        with pytest.raises(KeyError):
            b.call(lambda: {}["x"])
    assert b.state == "closed", "ignored errors count neither way"
    assert b.call(lambda a, k=0: a + k, 1, k=2) == 3
    for _ in range(2):
        with pytest.raises(ValueError):
            b.call(int, "x")
    assert b.state == "open"
    b.reset()
    assert b.state == "closed"
    b.force_open()
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: 1)
    b.disable()
    assert b.call(lambda: 1) == 1
    b.metrics_only()
    assert b.state == "metrics_only"
    b.close()
    b.open_for(5)
    assert b.state == "open"
    with pytest.raises(ace.InvalidInputError):
        eng.breaker("w", window="sometimes:3")
    with pytest.raises(ace.ConfigError):
        eng.breaker("r", window="count:10", failure_rate=150)
    with pytest.raises(ace.InvalidInputError):
        eng.breaker("s", wait_seconds=float("nan"))


def test_with_and_async_with_complete_their_permits(eng):
    b = eng.breaker("api", failures=2)
    with b as permit:
        pass
    assert permit.done
    for _ in range(2):
        with pytest.raises(RuntimeError):
            with b:
                raise RuntimeError("down")
    assert b.state == "open"
    with pytest.raises(ace.CircuitOpenError):
        with b:
            pytest.fail("must not run")

    b2 = eng.breaker("api2", failures=1)

    async def main():
        async with b2:
            await asyncio.sleep(0)
        with pytest.raises(OSError):
            async with b2:
                raise OSError("refused")
        with pytest.raises(ace.CircuitOpenError):
            async with b2:
                pass

    asyncio.run(main())


def test_async_functions_and_methods(eng):
    b = eng.breaker("svc", failures=1)

    @b
    async def fetch(x):
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError(x)
        return x

    assert asyncio.run(fetch(2)) == 2
    with pytest.raises(ValueError):
        asyncio.run(fetch(-1))
    with pytest.raises(ace.CircuitOpenError):
        asyncio.run(fetch(3))

    class Client:
        def __init__(self):
            self.n = 0

        @eng.breaker("method")
        def get(self, k):
            self.n += 1
            return k

    c = Client()
    assert c.get(5) == 5 and c.n == 1


def test_a_cancelled_call_gives_its_permit_back(eng):
    b = eng.breaker("cancel", failures=1)

    @b
    async def slow():
        await asyncio.sleep(10)

    async def main():
        t = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())
    assert b.state == "closed", "a cancellation is not a failure of the dependency"


def test_acquire_with_a_task_carries_the_backoff_intervention(eng):
    b = eng.breaker("llm2")
    for _ in range(5):
        p = b.acquire("agent-1", "task-1")
        p.failure()
        with pytest.raises(ace.InvalidInputError):
            p.success()  # completed already
    with pytest.raises(ace.CircuitOpenError) as info:
        b.acquire("agent-1", "task-1")
    assert info.value.intervention.strategy == "backoff"
    with pytest.raises(ace.InvalidInputError):
        b.acquire("agent-1")


def test_rate_limiters_and_bulkheads(eng):
    import time

    rl = eng.rate_limiter("llm-rate", per_second=50.0, burst=2)
    assert rl.try_acquire() and rl.try_acquire()
    assert not rl.try_acquire(), "the burst is spent"
    with pytest.raises(ace.LimitedError) as info:
        rl._inner.try_acquire()
    assert info.value.code == "limited" and 0 < info.value.retry_after <= 0.05
    started = time.monotonic()
    rl.acquire()  # waits about 1/50 s for a token
    assert time.monotonic() - started < 1.0
    slow = eng.rate_limiter("slow-rate", per_second=0.01, burst=1)
    slow.acquire(timeout=0)  # the burst token
    with pytest.raises(ace.LimitedError):
        slow.acquire(timeout=0.01)  # the next one is 100 s away

    async def wait_async():
        await rl.aacquire()

    asyncio.run(wait_async())
    assert rl.rejected >= 1
    with pytest.raises(ace.ConfigError):
        eng.rate_limiter("bad-rate", per_second=0.0, burst=1)

    bh = eng.bulkhead("db-pool", max_concurrent=2)
    with bh.try_enter():
        with bh.try_enter():
            assert bh.in_flight == 2
            with pytest.raises(ace.LimitedError):
                bh.try_enter()
    assert bh.in_flight == 0 and bh.rejected == 1
    p = bh.try_enter()
    p.release()
    p.release()
    assert bh.in_flight == 0
    with pytest.raises(ace.ConfigError):
        eng.bulkhead("bad", max_concurrent=0)
