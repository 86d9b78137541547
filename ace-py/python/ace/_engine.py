"""The engine as Python code meets it: ``ace.Ace`` (the Rust handle plus context managers,
decorators and asyncio helpers) and ``Stage``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from time import perf_counter
from typing import Any, Callable, Dict, Optional, TypeVar

from ace import _ace
from ace._breaker import Breaker
from ace._limit import Bulkhead, RateLimiter

__all__ = ["Ace", "Stage"]

_log = logging.getLogger("ace")
F = TypeVar("F", bound=Callable[..., Any])


class Ace(_ace.Ace):
    """The engine. ``Ace()`` keeps everything in memory; ``Ace("sqlite:///path/ace.db")``,
    ``Ace("postgresql://user@host/db")`` persist; ``Ace(..., cache="redis://host")`` (or a
    ``redis://`` URL alone) shares hot state across processes; ``Ace.from_env()`` reads the
    ``ACE_*``, ``DATABASE_URL`` and ``REDIS_URL`` environment variables. ``config`` overrides
    settings by name (``{"cooldown_seconds": 60}`` or ``{"ACE_COOLDOWN_SECONDS": "60"}``).

    Recording calls never wait for I/O; ``flush()`` does (and releases the GIL). Use it as a
    context manager to close it at the end.
    """

    @classmethod
    def from_env(cls, *, config: Optional[Dict[str, Any]] = None, **kwargs: Any) -> "Ace":
        """An engine configured from the environment (``config`` overrides it)."""
        return cls(None, config=config, from_env=True, **kwargs)

    def stage(self, agent: str, task: str, stage: str, **metrics: float) -> "Stage":
        """Times a stage: ``with eng.stage(agent, task, "planning") as s:`` (or ``async with``)
        records its duration and success when the block ends; an exception marks it failed and
        is recorded as an error. Also a decorator for sync and async functions (each call is one
        stage). ``s.metric(name, value)`` adds metrics; ``s.report`` holds what the engine found."""
        return Stage(self, agent, task, stage, metrics)

    def breaker(self, name: str, **config: Any) -> Breaker:
        """The circuit breaker ``name`` (settings apply when it is first made; see ``Breaker``)."""
        return Breaker(self, name, **config)

    def rate_limiter(self, name: str, per_second: float, burst: int) -> RateLimiter:
        """The rate limiter ``name`` (a token bucket; settings apply when it is first made)."""
        return RateLimiter(self, name, per_second, burst)

    def bulkhead(self, name: str, max_concurrent: int) -> Bulkhead:
        """The bulkhead ``name``: at most ``max_concurrent`` calls at once."""
        return Bulkhead(self, name, max_concurrent)

    async def aflush(self) -> None:
        """``flush()`` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.flush)

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> "Ace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ace.Ace(backend={self.backend!r}, closed={self.closed})"


class Stage:
    """One timed stage of a task; see ``Ace.stage``."""

    __slots__ = ("_engine", "agent", "task", "stage", "metrics", "report", "error_report", "_started")

    def __init__(self, engine: Ace, agent: str, task: str, stage: str, metrics: Dict[str, float]) -> None:
        self._engine = engine
        self.agent = agent
        self.task = task
        self.stage = stage
        self.metrics: Dict[str, float] = dict(metrics)
        #: What recording the stage found (set when the stage ends).
        self.report: Optional[_ace.Report] = None
        #: What recording its exception found, if it raised.
        self.error_report: Optional[_ace.ErrorReport] = None
        self._started: Optional[float] = None

    def metric(self, name: str, value: float) -> None:
        """Adds a metric (``tokens_in``, ``cost_usd``, ...) to the stage's record."""
        self.metrics[name] = value

    def __enter__(self) -> "Stage":
        self._started = perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self._finish(exc)

    async def __aenter__(self) -> "Stage":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self._finish(exc)

    def _finish(self, exc: Optional[BaseException]) -> None:
        if self._started is None:
            raise RuntimeError("a Stage must be entered before it ends")
        duration = perf_counter() - self._started
        self._started = None
        eng = self._engine
        try:
            if exc is not None and isinstance(exc, Exception):
                self.error_report = eng.record_error(self.agent, self.task, self.stage, exc)
            self.report = eng.record_stage(
                self.agent, self.task, self.stage, duration, exc is None, self.metrics or None
            )
        except Exception:
            if exc is None:
                raise
            # The block's own exception is the one the caller needs to see.
            _log.warning("ace could not record stage %r of task %r", self.stage, self.task, exc_info=True)

    def __call__(self, fn: F) -> F:
        """Decorates ``fn`` so that each call is one stage."""
        engine, agent, task, stage, metrics = self._engine, self.agent, self.task, self.stage, self.metrics
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with Stage(engine, agent, task, stage, metrics):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Stage(engine, agent, task, stage, metrics):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Stage(agent={self.agent!r}, task={self.task!r}, stage={self.stage!r})"
