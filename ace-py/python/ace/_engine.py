"""The engine as Python code meets it: ``ace.Ace`` (the Rust handle plus context managers,
decorators and asyncio helpers) and ``Stage``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import uuid
from time import perf_counter
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from ace import _ace
from ace._breaker import Breaker
from ace._limit import Bulkhead, RateLimiter
from ace._retry import Retry
from ace.exceptions import InvalidInputError

__all__ = ["Ace", "Stage", "TaskScope", "current_task"]

_log = logging.getLogger("ace")
F = TypeVar("F", bound=Callable[..., Any])

#: The (agent, task) the running code works on, set by ``with eng.task(...)``. A contextvar:
#: each thread starts without one, and each asyncio task starts with its creator's.
_CURRENT: "contextvars.ContextVar[Optional[Tuple[str, str]]]" = contextvars.ContextVar("ace_current_task", default=None)


def current_task() -> Optional[Tuple[str, str]]:
    """The ``(agent, task)`` of the innermost ``with eng.task(...)`` around the running code,
    or ``None``. Adapters use it when a framework gives no task."""
    return _CURRENT.get()


def _fresh_task(agent: str, hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:16]}"


def _resolve(agent: Optional[str], task: Optional[str], what: str) -> Tuple[str, Optional[str]]:
    """The agent and task to record under: the ones given, else the current task's. The task is
    ``None`` when neither was given nor is current (the caller makes a fresh one)."""
    current = _CURRENT.get()
    if agent is None:
        if current is None:
            raise _ace_invalid("agent", f"{what}: give an agent, or run inside `with eng.task(agent, task):`")
        agent = current[0]
    if task is None and current is not None and current[0] == agent:
        task = current[1]
    return agent, task


def _ace_invalid(field: str, reason: str) -> Exception:
    return InvalidInputError(f"invalid {field}: {reason}", field=field)


class Ace(_ace.Ace):
    """The engine. ``Ace()`` keeps everything in memory; ``Ace("sqlite:///path/ace.db")``,
    ``Ace("postgresql://user@host/db")`` persist; ``Ace(..., cache="redis://host")`` (or a
    ``redis://`` URL alone) shares hot state across processes; ``Ace.from_env()`` reads the
    ``ACE_*``, ``DATABASE_URL`` and ``REDIS_URL`` environment variables. ``config`` overrides
    settings by name (``{"cooldown_seconds": 60}`` or ``{"ACE_COOLDOWN_SECONDS": "60"}``).
    ``clock=ace.ManualClock(start)`` makes every time-based rule (a breaker's open wait, time
    window and half-open limit among them) read that clock: tests move it with ``advance``.

    Recording calls never wait for I/O; ``flush()`` does (and releases the GIL). Use it as a
    context manager to close it at the end.
    """

    @classmethod
    def from_env(cls, *, config: Optional[Dict[str, Any]] = None, **kwargs: Any) -> "Ace":
        """An engine configured from the environment (``config`` overrides it)."""
        return cls(None, config=config, from_env=True, **kwargs)

    def stage(self, agent: Optional[str], task: Optional[str], stage: str, **metrics: float) -> "Stage":
        """Times a stage: ``with eng.stage(agent, task, "planning") as s:`` (or ``async with``)
        records its duration and success when the block ends; an exception marks it failed and
        is recorded as an error. Also a decorator for sync and async functions (each call is one
        stage). ``s.metric(name, value)`` adds metrics; ``s.report`` holds what the engine found.

        ``agent`` or ``task`` ``None``: the current task's (``with eng.task(...)``), resolved
        when the stage starts; with no current task, each stage (each call of a decorated
        function) is a task of its own, with a fresh id, ended when the stage ends."""
        return Stage(self, agent, task, stage, metrics)

    def task(self, agent: str, task: Optional[str] = None, *, end: bool = True) -> "TaskScope":
        """Makes ``(agent, task)`` the current task of the block: ``with eng.task(agent, task):``
        (or ``async with``). Inside it, ``stage``, decorated functions and ``record_tool`` given
        no agent or task record under it, in this thread and in asyncio tasks created inside it.
        Blocks nest (the innermost wins). ``task`` ``None`` makes a fresh id (``scope.task``).
        With ``end`` (the default) the task is ended (``end_task``) when the block exits."""
        return TaskScope(self, agent, task, end)

    def record_tool(
        self,
        agent_id: Optional[str],
        task_id: Optional[str],
        tool: str,
        duration_s: float,
        success: bool = True,
        *,
        args: Any = None,
        args_digest: Optional[str] = None,
        stage: Optional[str] = None,
    ) -> _ace.Report:
        """Records a tool call (see ``_ace.Ace.record_tool``); ``agent_id``/``task_id`` ``None``
        take the current task's (``with eng.task(...)``)."""
        if agent_id is None or task_id is None:
            agent_id, task_id = _resolve(agent_id, task_id, "record_tool")
            if task_id is None:
                raise _ace_invalid("task_id", "record_tool: give a task, or run inside `with eng.task(agent, task):`")
        if args is None:
            return super().record_tool(agent_id, task_id, tool, duration_s, success, args_digest=args_digest, stage=stage)
        return super().record_tool(
            agent_id, task_id, tool, duration_s, success, args=args, args_digest=args_digest, stage=stage
        )

    def breaker(self, name: str, **config: Any) -> Breaker:
        """The circuit breaker ``name`` (settings apply when it is first made; see ``Breaker``)."""
        return Breaker(self, name, **config)

    def retry(self, name: str, **config: Any) -> Retry:
        """The retry ``name`` of this engine (settings as ``ace.Retry``'s, applied when it is first
        made): its counts are the series ``ace_retry_calls_total`` and ``ace_retry_attempts_total``."""
        return Retry(name, engine=self, **config)

    def rate_limiter(self, name: str, per_second: float, burst: int) -> RateLimiter:
        """The rate limiter ``name`` (a token bucket; settings apply when it is first made)."""
        return RateLimiter(self, name, per_second, burst)

    def bulkhead(self, name: str, max_concurrent: int) -> Bulkhead:
        """The bulkhead ``name``: at most ``max_concurrent`` calls at once."""
        return Bulkhead(self, name, max_concurrent)

    async def aflush(self) -> None:
        """``flush()`` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.flush)

    async def aretain(self, days: int) -> int:
        """``retain(days)`` without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.retain, days)

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> "Ace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ace.Ace(backend={self.backend!r}, closed={self.closed})"


class TaskScope:
    """The current task of a block; see ``Ace.task``."""

    __slots__ = ("_engine", "agent", "task", "end", "_tokens")

    def __init__(self, engine: Ace, agent: str, task: Optional[str], end: bool) -> None:
        if not isinstance(agent, str):
            raise _ace_invalid("agent", "must be a str")
        self._engine = engine
        self.agent = agent
        self.task: str = task if task is not None else _fresh_task(agent, "task")
        self.end = end
        self._tokens: "list[contextvars.Token[Optional[Tuple[str, str]]]]" = []

    def __enter__(self) -> "TaskScope":
        self._tokens.append(_CURRENT.set((self.agent, self.task)))
        return self

    def __exit__(self, *exc: Any) -> None:
        _CURRENT.reset(self._tokens.pop())
        if self.end:
            try:
                self._engine.end_task(self.agent, self.task)
            except Exception:
                if exc[0] is None:
                    raise
                _log.warning("ace could not end task %r", self.task, exc_info=True)

    async def __aenter__(self) -> "TaskScope":
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def __repr__(self) -> str:
        return f"TaskScope(agent={self.agent!r}, task={self.task!r})"


class Stage:
    """One timed stage of a task; see ``Ace.stage``."""

    __slots__ = (
        "_engine",
        "agent",
        "task",
        "stage",
        "metrics",
        "report",
        "error_report",
        "_started",
        "_given",
        "_fresh",
        "_token",
    )

    def __init__(
        self, engine: Ace, agent: Optional[str], task: Optional[str], stage: str, metrics: Dict[str, float]
    ) -> None:
        self._engine = engine
        #: The agent and task as given (``None``: the current task's, resolved on entry).
        self._given = (agent, task)
        self._fresh = False
        self._token: "Optional[contextvars.Token[Optional[Tuple[str, str]]]]" = None
        self.agent: Optional[str] = agent
        self.task: Optional[str] = task
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
        agent, task = self._given
        if agent is None or task is None:
            agent, task = _resolve(agent, task, "stage")
            self._fresh = task is None
            if task is None:
                # A task of its own, current while the stage runs.
                task = _fresh_task(agent, self.stage)
                self._token = _CURRENT.set((agent, task))
        self.agent, self.task = agent, task
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
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        eng = self._engine
        agent, task = self.agent, self.task
        assert agent is not None and task is not None  # set on entry
        try:
            if exc is not None and isinstance(exc, Exception):
                self.error_report = eng.record_error(agent, task, self.stage, exc)
            self.report = eng.record_stage(agent, task, self.stage, duration, exc is None, self.metrics or None)
            if self._fresh:
                eng.end_task(agent, task)
        except Exception:
            if exc is None:
                raise
            # The block's own exception is the one the caller needs to see.
            _log.warning("ace could not record stage %r of task %r", self.stage, self.task, exc_info=True)

    def __call__(self, fn: F) -> F:
        """Decorates ``fn`` so that each call is one stage (of the current task, or of a fresh
        task per call when neither a task was given nor one is current)."""
        engine, (agent, task), stage, metrics = self._engine, self._given, self.stage, self.metrics
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
