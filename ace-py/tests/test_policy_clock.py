"""A composed ``ace.Policy`` with every clock manual: the breaker on the engine's ``ManualClock``,
the retry's waits on an ``asleep`` that moves that clock, and the timeout on an event loop whose
time jumps to its next timer instead of waiting. The whole order, fallback ( retry ( breaker (
timeout ( call ) ) ) ), runs without sleeping."""

import asyncio

import ace
from conftest import START


class JumpingLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: when nothing is ready, time jumps to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        real, loop = self._selector, self

        class Selector:
            def select(self, timeout=None):
                if timeout is not None and timeout > 0:
                    loop._now += timeout
                    timeout = 0
                return real.select(timeout)

            def __getattr__(self, name):
                return getattr(real, name)

        self._selector = Selector()

    def time(self) -> float:
        return self._now


def run(coro):
    loop = JumpingLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_timeouts_open_the_breaker_the_retry_stops_at_the_rejection_the_fallback_answers():
    clock = ace.ManualClock(START)
    eng = ace.Ace(clock=clock)
    b = eng.breaker("dep", failures=2, wait_seconds=5)
    waits = []

    async def asleep(d):
        waits.append(d)
        clock.advance(d)

    r = ace.Retry("dep", max_attempts=4, wait_seconds=1, multiplier=2, jitter=0, asleep=asleep)
    seen = []

    def fallback(e):
        seen.append(e)
        return f"fallback: {e.code}"

    policy = ace.Policy(fallback=fallback, timeout=20, breaker=b, retry=r)  # any order: the same policy
    ran_for = []

    async def hangs():
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            ran_for.append(loop.time() - started)
            raise
        return "never"

    assert run(policy.acall(hangs)) == "fallback: circuit_open"
    assert ran_for == [20.0, 20.0], "each attempt was cancelled at its twentieth second, not later"
    assert len(seen) == 1 and isinstance(seen[0], ace.CircuitOpenError), "the rejection was not retried"
    assert waits == [1, 2]
    assert policy.counts() == {"timeouts": 2, "fallbacks": 1}
    assert (r.counts()["retries"], r.counts()["failed_with_retry"]) == (2, 1)
    assert b.state == "open" and b.snapshot()["failures"] == 2, "each timed-out attempt was a breaker failure"

    async def live():
        return "live"

    # Opened at START + 1 for 5 s; the retry's second wait moved the clock to START + 3.
    clock.advance(2.5)
    assert run(policy.acall(live)) == "fallback: circuit_open"
    clock.advance(1)
    assert run(policy.acall(live)) == "live", "the wait is over: the trial goes through"
    assert b.state == "closed"
    eng.close()


def test_a_call_that_ends_before_its_timeout_keeps_its_value():
    policy = ace.Policy(timeout=20)

    async def answers_at_19_999():
        await asyncio.sleep(19.999)
        return "in time"

    async def hangs():
        await asyncio.sleep(20.001)

    assert run(policy.acall(answers_at_19_999)) == "in time"
    assert policy.counts()["timeouts"] == 0
    try:
        run(policy.acall(hangs))
    except ace.TimedOutError as e:
        assert e.timeout == 20
    else:
        raise AssertionError("no TimedOutError")
    assert policy.counts()["timeouts"] == 1
