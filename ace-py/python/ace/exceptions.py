"""The exceptions ace raises. Each carries ``code``, the core's stable error code."""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "AceError",
    "CircuitOpenError",
    "ClosedError",
    "ConfigError",
    "CorruptError",
    "InternalError",
    "InvalidInputError",
    "LimitedError",
    "StoreError",
    "StoreUnavailableError",
    "TimedOutError",
    "error_for_code",
]


class AceError(Exception):
    """Base class of every ace error. ``code`` names the kind of error (stable across releases
    and languages); the message says what went wrong and what to do."""

    code: str = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        for key, value in details.items():
            setattr(self, key, value)


class ConfigError(AceError, ValueError):
    """A setting is missing, malformed or out of range (``key`` names it)."""

    code = "config"
    key: Optional[str] = None


class InvalidInputError(AceError, ValueError):
    """An argument was rejected (``field`` names it); nothing of the call was recorded."""

    code = "invalid_input"
    field: Optional[str] = None


class ClosedError(AceError):
    """The engine was closed; build a new one."""

    code = "closed"


class StoreError(AceError):
    """A store operation failed (``backend`` names the store)."""

    code = "store"
    backend: Optional[str] = None


class StoreUnavailableError(StoreError):
    """A store or cache could not be reached; retrying later may succeed."""

    code = "store_unavailable"


class CorruptError(AceError):
    """Stored data is damaged or was tampered with."""

    code = "corrupt"


class CircuitOpenError(AceError):
    """A circuit breaker turned the call away: ``breaker``, its ``state``, ``retry_after``
    (seconds, when known) and, when the call named an agent and task, the ``intervention`` it
    warrants."""

    code = "circuit_open"
    breaker: Optional[str] = None
    state: Optional[str] = None
    retry_after: Optional[float] = None
    intervention: Any = None


class LimitedError(AceError):
    """A rate limiter or bulkhead turned the call away: ``limiter`` names it, ``retry_after``
    (seconds, rate limiters) says when a token will be there."""

    code = "limited"
    limiter: Optional[str] = None
    retry_after: Optional[float] = None


class TimedOutError(AceError, TimeoutError):
    """An attempt through an ``ace.Policy`` took longer than its ``timeout`` (seconds). Also a
    builtin ``TimeoutError``, so code that catches that catches this."""

    code = "timed_out"
    timeout: Optional[float] = None


class InternalError(AceError):
    """A bug in ace (a Rust panic is caught and raised as this). Please report it."""

    code = "internal"


_BY_CODE = {
    cls.code: cls
    for cls in (
        ConfigError,
        InvalidInputError,
        ClosedError,
        StoreError,
        StoreUnavailableError,
        CorruptError,
        CircuitOpenError,
        LimitedError,
        TimedOutError,
        InternalError,
    )
}


def error_for_code(code: str) -> type[AceError]:
    """The exception class for a core error code (``AceError`` for an unknown one)."""
    return _BY_CODE.get(code, AceError)
