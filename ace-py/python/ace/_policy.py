"""``ace.Policy``: a retry, a breaker, a timeout and a fallback around a call, composed in the
core's fixed order (``ace-core/src/breaker/policy.rs``): fallback ( retry ( breaker ( timeout (
the call ) ) ) ). The retry sees each attempt after the breaker judged it, so an opening stops
the retries; a timed-out attempt is a failure for the breaker; the fallback sees only what is
left after every attempt. The parts are the core's (``Retry``, ``Breaker``); the order, the
timer and the fallback live here, as the waits of ``Retry`` do."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import math
import threading
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Type, TypeVar

from ace import _ace
from ace._breaker import wait_for_permit
from ace._retry import Retry
from ace.exceptions import InvalidInputError, TimedOutError

__all__ = ["Policy"]

F = TypeVar("F", bound=Callable[..., Any])


def _invalid(field: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"invalid {field}: {reason}", field=field)


def _seconds(timeout: Optional[float]) -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise _invalid("timeout", f"must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise _invalid("timeout", f"must be a finite number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # a builtin without a signature: trust it
    try:
        signature.bind(None)
    except TypeError:
        return False
    return True


class _Outcome:
    """What a sync attempt running on its worker thread came to."""

    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: Optional[BaseException] = None


class Policy:
    """A call's resilience in one object: ``retry`` (an ``ace.Retry``), ``breaker`` (an
    ``ace.Breaker``), ``timeout`` (seconds per attempt) and ``fallback``, each optional, always
    applied in the same order, whatever order they are given in: fallback ( retry ( breaker (
    timeout ( call ) ) ) ).

    - The breaker judges every attempt, so a breaker that opens stops the retries: its
      ``CircuitOpenError`` is not retried unless the retry was made with ``retry_rejected=True``.
    - A timed-out attempt raises ``ace.TimedOutError`` (a ``TimeoutError``), which the breaker
      counts as a failure and the retry retries like any other exception.
    - ``fallback`` answers for a call that failed after every attempt with an exception of
      ``fallback_on`` (``Exception``): a callable is called with that exception and its return
      value (awaited in ``acall`` when it is awaitable) is the call's; any other value is returned
      as is. ``None`` means no fallback (to fall back to ``None``, give ``lambda e: None``).

    The timeout of an async call (``acall``, an ``async def`` decorated) cancels the awaitable, as
    ``asyncio.timeout`` does. A Python thread cannot be stopped, so a sync call with a timeout
    runs each attempt on a thread of its own and the caller gets ``TimedOutError`` when the time
    is up while the attempt finishes on its own, its result dropped (Polly's pessimistic timeout,
    resilience4j's ``TimeLimiter`` over a future). Without a timeout the sync call runs on the
    caller's thread.

    ``@policy`` decorates sync and async functions; ``policy.call(fn, *args, **kwargs)`` and
    ``await policy.acall(fn, *args, **kwargs)`` run one call. ``counts()`` gives the attempts that
    timed out and the calls the fallback answered; the retries are in ``retry.counts()`` and the
    breaker's figures in ``breaker.snapshot()``.
    """

    def __init__(
        self,
        *,
        retry: Optional[Retry] = None,
        breaker: Optional[_ace.CircuitBreaker] = None,
        timeout: Optional[float] = None,
        fallback: Any = None,
        fallback_on: Tuple[Type[BaseException], ...] = (Exception,),
    ) -> None:
        if retry is not None and not isinstance(retry, Retry):
            raise _invalid("retry", f"must be an ace.Retry or None, not {type(retry).__name__}")
        if breaker is not None and not isinstance(breaker, _ace.CircuitBreaker):
            raise _invalid("breaker", f"must be an ace.Breaker or None, not {type(breaker).__name__}")
        if callable(fallback) and not _takes_one_argument(fallback):
            raise _invalid("fallback", "a callable fallback is called with the exception: it must take one argument")
        if isinstance(fallback_on, type):
            fallback_on = (fallback_on,)
        if not isinstance(fallback_on, tuple) or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in fallback_on
        ):
            raise _invalid("fallback_on", "must be a tuple of exception classes")
        self._retry = retry
        self._breaker = breaker
        self._timeout = _seconds(timeout)
        self._fallback = fallback
        self._fallback_on = fallback_on
        self._lock = threading.Lock()
        self._timeouts = 0
        self._fallbacks = 0

    @property
    def retry(self) -> Optional[Retry]:
        return self._retry

    @property
    def breaker(self) -> Optional[_ace.CircuitBreaker]:
        return self._breaker

    @property
    def timeout(self) -> Optional[float]:
        """Seconds an attempt may take, or ``None``."""
        return self._timeout

    def counts(self) -> Dict[str, int]:
        """``timeouts``: attempts that ran out of time; ``fallbacks``: calls the fallback answered."""
        with self._lock:
            return {"timeouts": self._timeouts, "fallbacks": self._fallbacks}

    def _timed_out(self) -> TimedOutError:
        assert self._timeout is not None
        with self._lock:
            self._timeouts += 1
        # ace_timeouts_total{name}: in the breaker's engine, under its name (else the retry's).
        counted = self._breaker if self._breaker is not None else self._retry
        if counted is not None:
            counted.count_timeout()
        return TimedOutError(f"timed out after {self._timeout:.3f} s", timeout=self._timeout)

    def _falls_back(self, e: BaseException) -> bool:
        if self._fallback is None or not isinstance(e, self._fallback_on):
            return False
        with self._lock:
            self._fallbacks += 1
        return True

    # ---- sync ----------------------------------------------------------------------------

    def _limited(self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self._timeout is None:
            return fn(*args, **kwargs)
        outcome = _Outcome()
        context = contextvars.copy_context()

        def run() -> None:
            try:
                outcome.value = context.run(fn, *args, **kwargs)
            except BaseException as e:  # handed to the caller's thread
                outcome.error = e
            finally:
                outcome.done.set()

        name = getattr(fn, "__name__", "call")
        threading.Thread(target=run, name=f"ace-policy-{name}", daemon=True).start()
        if not outcome.done.wait(self._timeout):
            raise self._timed_out()
        if outcome.error is not None:
            error, outcome.error = outcome.error, None
            raise error
        return outcome.value

    def _attempt(self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self._breaker is not None:
            return self._breaker.call(self._limited, fn, args, kwargs)
        return self._limited(fn, args, kwargs)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` through the policy: its value, the fallback's, or the last
        exception."""
        try:
            if self._retry is not None:
                return self._retry.call(self._attempt, fn, args, kwargs)
            return self._attempt(fn, args, kwargs)
        except BaseException as e:
            if not self._falls_back(e):
                raise
            fallback = self._fallback
            return fallback(e) if callable(fallback) else fallback

    # ---- async ---------------------------------------------------------------------------

    async def _alimited(self, fn: Callable[..., Awaitable[Any]], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self._timeout is None:
            return await fn(*args, **kwargs)
        limit = asyncio.timeout(self._timeout)
        try:
            async with limit:
                return await fn(*args, **kwargs)
        except TimeoutError:
            # Only our deadline becomes TimedOutError; the call's own TimeoutError passes as is.
            if limit.expired():
                raise self._timed_out() from None
            raise

    async def _aattempt(self, fn: Callable[..., Awaitable[Any]], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        breaker = self._breaker
        if breaker is None:
            return await self._alimited(fn, args, kwargs)
        permit = breaker._poll_acquire(None) or await wait_for_permit(breaker)
        try:
            result = await self._alimited(fn, args, kwargs)
        except BaseException as e:
            instead = permit.error(e)
            if instead is not None:
                raise instead from e
            raise
        permit.result(result)
        return result

    async def acall(self, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` through the policy, on the running event loop."""
        try:
            if self._retry is not None:
                return await self._retry.acall(self._aattempt, fn, args, kwargs)
            return await self._aattempt(fn, args, kwargs)
        except BaseException as e:
            if not self._falls_back(e):
                raise
            fallback = self._fallback
            if not callable(fallback):
                return fallback
            value = fallback(e)
            return (await value) if inspect.isawaitable(value) else value

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    def __repr__(self) -> str:
        parts = [
            f"retry={self._retry.name!r}" if self._retry is not None else None,
            f"breaker={self._breaker.name!r}" if self._breaker is not None else None,
            f"timeout={self._timeout!r}" if self._timeout is not None else None,
            "fallback" if self._fallback is not None else None,
        ]
        return f"Policy({', '.join(p for p in parts if p)})"
