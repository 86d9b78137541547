"""``ace.Breaker``: a circuit breaker of the engine, as a decorator (sync and async), a context
manager (``with`` and ``async with``) and ``call``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from typing import Any, Callable, Optional, Tuple, TypeVar

from ace import _ace

__all__ = ["Breaker", "wait_for_permit"]

F = TypeVar("F", bound=Callable[..., Any])


class Breaker(_ace.CircuitBreaker):
    """The circuit breaker ``name`` of ``engine``. With no settings it uses the engine's defaults
    (``ACE_BREAKER_FAILURES`` failures in a row open it for ``ACE_BREAKER_WAIT_SECONDS``). Settings
    (applied when the breaker is first made): ``failures``, ``wait_seconds``, ``window``
    (``"count:N"`` or ``"time:SECONDS"``, with ``failure_rate`` percent and ``minimum_calls``),
    ``slow_call_seconds`` and ``slow_call_rate``, ``half_open_permits``,
    ``max_half_open_seconds``, ``ignore``, exception classes that count neither way, ``record``,
    the only exception classes that are failures (any other is a success), ``is_failure(exc)``
    and ``failure_result(value)``, predicates on the exception and on the returned value, and the
    settings where breaker libraries disagree (docs/breakers.md): ``threshold``
    (``"reached"``/``"exceeded"``), ``half_open_busy`` (``"reject"``/``"wait"``; ``"wait"`` holds
    ``call`` and sync decorated calls with the interpreter released, and async decorated calls
    and ``async with`` without blocking the event loop; never ``acquire`` or ``with``), ``tripping_call``
    (``"own_error"``/``"breaker_error"``) and ``trial_verdict``
    (``"after_all_permits"``/``"at_once"``).

    ``@breaker`` guards a function; ``with breaker:`` guards a block (an exception is a failure);
    ``breaker.call(fn, *args)`` guards one call; ``breaker.acquire(agent, task)`` gives a
    ``Permit`` and, when turned away, a ``CircuitOpenError`` carrying the intervention.
    """

    def __new__(
        cls,
        engine: Any,
        name: str,
        *,
        ignore: Optional[Tuple[type, ...]] = None,
        record: Optional[Tuple[type, ...]] = None,
        **config: Any,
    ) -> "Breaker":
        if ignore is not None:
            ignore = tuple(ignore)
        if record is not None:
            record = tuple(record)
        return super().__new__(cls, engine, name, ignore=ignore, record=record, **config)

    def __init__(self, engine: Any, name: str, **config: Any) -> None:
        self._held: contextvars.ContextVar[Tuple[_ace.Permit, ...]] = contextvars.ContextVar(
            f"ace-breaker-{name}", default=()
        )

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            poll, wait = self._poll_acquire, functools.partial(wait_for_permit, self)

            @functools.wraps(fn)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                permit = poll(None)
                if permit is None:  # half_open_busy="wait" and the trial busy: no other call waits
                    permit = await wait()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    instead = permit.error(e)
                    if instead is not None:
                        raise instead from e
                    raise
                permit.result(result)
                return result

            return guarded  # type: ignore[return-value]
        return self.guard(fn)  # type: ignore[return-value]

    def __enter__(self) -> _ace.Permit:
        permit = self.acquire()
        self._held.set(self._held.get() + (permit,))
        return permit

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        held = self._held.get()
        self._held.set(held[:-1])
        return held[-1].__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> _ace.Permit:
        permit = self._poll_acquire(None) or await wait_for_permit(self)
        self._held.set(self._held.get() + (permit,))
        return permit

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)


async def wait_for_permit(breaker: _ace.CircuitBreaker) -> _ace.Permit:
    """``acquire()`` for a coroutine: with ``half_open_busy="wait"``, a call that finds every
    half-open trial permit taken waits for the trial's verdict without blocking the loop (the core
    wakes it from another thread), then goes through or raises ``CircuitOpenError``. Callers ask
    ``breaker._poll_acquire(None)`` first, so a call that need not wait builds no future."""
    loop = asyncio.get_running_loop()
    while True:
        woken = loop.create_future()
        permit = breaker._poll_acquire(functools.partial(loop.call_soon_threadsafe, _settle, woken))
        if permit is not None:
            return permit
        await asyncio.wait((woken,), timeout=breaker._recheck_seconds)


def _settle(woken: "asyncio.Future[None]") -> None:
    if not woken.done():
        woken.set_result(None)
