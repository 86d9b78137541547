"""The shapes of a breaker's snapshot and events as Python sees them (``breaker.snapshot()``,
``breaker.subscribe(callback)``), for type checkers: plain dicts at runtime."""

from __future__ import annotations

from typing import Literal, Optional, TypedDict

__all__ = ["BreakerEvent", "BreakerSnapshot", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open", "disabled", "forced_open", "metrics_only"]


class BreakerSnapshot(TypedDict):
    """``breaker.snapshot()``: counts since the breaker was made (``not_permitted_total`` too),
    ``not_permitted`` since the last transition, the window's figures (in half-open, the
    trial's), the backoff ``attempts``; durations in seconds, ``None`` when the breaker times
    nothing (no ``slow_call_seconds``)."""

    name: str
    state: BreakerState
    successes: int
    failures: int
    ignored: int
    slow: int
    not_permitted: int
    not_permitted_total: int
    consecutive_failures: int
    window_calls: int
    window_failures: int
    slow_successes: int
    slow_failures: int
    failure_rate: Optional[float]
    slow_call_rate: Optional[float]
    attempts: int
    total_duration: Optional[float]
    average_duration: Optional[float]


# What ``breaker.subscribe(callback)`` hands its callback: ``kind``, ``breaker`` and ``at``
# always; ``from``, ``to`` and ``why`` for a transition, ``state`` for ``not_permitted``, ``rate``
# for the two rate events. (The functional form: ``from`` is a keyword.)
BreakerEvent = TypedDict(
    "BreakerEvent",
    {
        "kind": Literal[
            "transition", "not_permitted", "failure_rate_exceeded", "slow_call_rate_exceeded", "ignored_error", "reset"
        ],
        "breaker": str,
        "at": Optional[float],
        "from": BreakerState,
        "to": BreakerState,
        "why": str,
        "state": BreakerState,
        "rate": float,
    },
    total=False,
)
