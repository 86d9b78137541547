"""``ace.Retry``: retry with exponential backoff and jitter, as a decorator (sync and async) and
``call``. The core decides (whether to retry, how long to wait) and counts; the attempts and the
waits run here, so an async function waits on the event loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from typing import Any, Awaitable, Callable, Optional, Tuple, Type, TypeVar

from ace import _ace
from ace.exceptions import CircuitOpenError

__all__ = ["Retry"]

F = TypeVar("F", bound=Callable[..., Any])


class Retry(_ace.Retry):
    """Retries a call that raised, ``max_attempts`` in all (3), waiting ``wait_seconds`` (0.5)
    growing by ``multiplier`` (2) up to ``max_wait_seconds`` (30), each wait spread by ``jitter``
    (0.5, ±50%). Only exceptions of ``retry_on`` (``Exception``) are retried; a
    ``CircuitOpenError`` only with ``retry_rejected=True``. ``sleep`` and ``asleep`` replace
    ``time.sleep`` and ``asyncio.sleep`` (a test's fake clock). ``counts()`` says what it did.

    Put a breaker inside it, ``@retry`` over ``@breaker``, so the breaker judges every attempt
    and an opening stops the retries."""

    def __new__(
        cls,
        name: str,
        *,
        retry_on: Tuple[Type[BaseException], ...] = (Exception,),
        sleep: Optional[Callable[[float], Any]] = None,
        asleep: Optional[Callable[[float], Awaitable[Any]]] = None,
        **config: Any,
    ) -> "Retry":
        return super().__new__(cls, name, **config)

    def __init__(
        self,
        name: str,
        *,
        retry_on: Tuple[Type[BaseException], ...] = (Exception,),
        sleep: Optional[Callable[[float], Any]] = None,
        asleep: Optional[Callable[[float], Awaitable[Any]]] = None,
        **config: Any,
    ) -> None:
        self._retry_on = tuple(retry_on)
        self._sleep = sleep or time.sleep
        self._asleep = asleep or asyncio.sleep

    def _next(self, e: BaseException, attempt: int) -> Optional[float]:
        if isinstance(e, CircuitOpenError):
            return self.after_failure(None, str(e), attempt)
        return self.after_failure(type(e).__name__, str(e), attempt, isinstance(e, self._retry_on))

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, retried as configured; the last exception is raised."""
        attempt = 1
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                wait = self._next(e, attempt)
                if wait is None:
                    raise
                self._sleep(wait)
                attempt += 1
                continue
            self.after_success(attempt)
            return result

    async def acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)``, retried as configured, waiting on the event loop."""
        attempt = 1
        while True:
            try:
                result = await fn(*args, **kwargs)
            except Exception as e:
                wait = self._next(e, attempt)
                if wait is None:
                    raise
                await self._asleep(wait)
                attempt += 1
                continue
            self.after_success(attempt)
            return result

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def retried_async(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return retried_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def retried(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return retried  # type: ignore[return-value]
