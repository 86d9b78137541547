"""``ace.RateLimiter`` and ``ace.Bulkhead``: the non-waiting calls come from the core; waiting
(blocking or ``await``) is written here on top of them."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Optional

from ace import _ace
from ace.exceptions import InvalidInputError, LimitedError

#: The longest single sleep while waiting for a token (a day); a longer wait sleeps again.
_MAX_SLEEP = 86_400.0


def _timeout(timeout: Optional[float]) -> Optional[float]:
    """``timeout`` checked: ``None`` (wait as long as it takes) or seconds, finite and >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout < 0:
        raise InvalidInputError(
            f"timeout must be a finite number of seconds >= 0 or None, got {timeout!r}", field="timeout"
        )
    return float(timeout)

__all__ = ["Bulkhead", "RateLimiter"]


class RateLimiter:
    """A token bucket: ``per_second`` tokens a second, ``burst`` at most (``Ace.rate_limiter``)."""

    def __init__(self, engine: Any, name: str, per_second: float, burst: int) -> None:
        self._inner = _ace.RateLimiter(engine, name, per_second, burst)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def rejected(self) -> int:
        return self._inner.rejected

    def try_acquire(self) -> bool:
        """Takes a token if one is there; never waits."""
        try:
            self._inner.try_acquire()
            return True
        except LimitedError:
            return False

    def acquire(self, timeout: Optional[float] = None) -> None:
        """Waits (sleeping) for a token; ``LimitedError`` if none comes within ``timeout``."""
        timeout = _timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._inner.try_acquire()
                return
            except LimitedError as e:
                wait = e.retry_after or 0.001
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise
                time.sleep(min(wait, _MAX_SLEEP))

    async def aacquire(self, timeout: Optional[float] = None) -> None:
        """``acquire`` without blocking the event loop."""
        timeout = _timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                self._inner.try_acquire()
                return
            except LimitedError as e:
                wait = e.retry_after or 0.001
                if deadline is not None and loop.time() + wait > deadline:
                    raise
                await asyncio.sleep(min(wait, _MAX_SLEEP))


class Bulkhead:
    """At most ``max_concurrent`` calls at once (``Ace.bulkhead``). ``with bulkhead.try_enter():``
    takes a place or raises ``LimitedError`` at once; the place is given back when the block
    ends."""

    def __init__(self, engine: Any, name: str, max_concurrent: int) -> None:
        self._inner = _ace.Bulkhead(engine, name, max_concurrent)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def in_flight(self) -> int:
        return self._inner.in_flight

    @property
    def rejected(self) -> int:
        return self._inner.rejected

    def try_enter(self) -> _ace.BulkheadPermit:
        """A place now (release it, or use it with ``with``), or ``LimitedError``."""
        return self._inner.try_enter()
