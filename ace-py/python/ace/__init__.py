"""ace: an in-process oversight engine for AI agents.

Record what your agents do, and ace tells you when they go wrong and what to do about it::

    import ace

    eng = ace.Ace()                      # in memory; ace.Ace("sqlite:///ace.db") persists
    with eng.stage("agent-1", "task-1", "planning") as s:
        ...                              # an exception marks the stage failed
    if s.report.intervention:
        print(s.report.intervention.strategy)
"""

from __future__ import annotations

import atexit as _atexit
import os as _os

from ace import _ace
from ace._ace import (
    ErrorReport,
    Guarded,
    Intervention,
    ManualClock,
    Permit,
    Playbooks,
    Report,
    Server,
    Signal,
    __version__,
    args_digest,
    args_digest_json,
    replay,
    sync_log_level,
)
from ace._breaker import Breaker
from ace._breaker_types import BreakerEvent, BreakerSnapshot
from ace._engine import Ace, Stage, TaskScope, current_task
from ace._limit import Bulkhead, RateLimiter
from ace._policy import Policy
from ace._retry import Retry
from ace.exceptions import (
    AceError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    CorruptError,
    InternalError,
    InvalidInputError,
    LimitedError,
    StoreError,
    StoreUnavailableError,
    TimedOutError,
)

#: The distribution this package comes from. Other PyPI distributions (``ace``,
#: ``ace-framework``) also install a top-level ``ace`` package; installed beside this one they
#: overwrite its files. ``python -c "import ace; print(ace.__distribution__)"`` prints
#: ``agent-ace`` when ``import ace`` is ours; :func:`conflicting_distributions` names the others.
__distribution__ = "agent-ace"


def conflicting_distributions() -> list[str]:
    """The installed distributions other than ``agent-ace`` that also provide ``import ace``.

    An empty list means ``import ace`` is this package alone. Any name returned is a package
    whose files share the ``ace/`` directory with ours: uninstall one of the two (or use separate
    virtualenvs).
    """
    from importlib.metadata import packages_distributions

    names = packages_distributions().get("ace", [])
    return sorted({n for n in names if n.lower().replace("_", "-") != __distribution__})


__all__ = [
    "Ace",
    "AceError",
    "Breaker",
    "BreakerEvent",
    "BreakerSnapshot",
    "Bulkhead",
    "CircuitOpenError",
    "ClosedError",
    "ConfigError",
    "CorruptError",
    "ErrorReport",
    "Guarded",
    "InternalError",
    "Intervention",
    "InvalidInputError",
    "LimitedError",
    "ManualClock",
    "Permit",
    "Playbooks",
    "Policy",
    "RateLimiter",
    "Report",
    "Retry",
    "Server",
    "Signal",
    "Stage",
    "StoreError",
    "StoreUnavailableError",
    "TaskScope",
    "TimedOutError",
    "__distribution__",
    "__version__",
    "args_digest",
    "args_digest_json",
    "conflicting_distributions",
    "current_task",
    "replay",
    "sync_log_level",
]

# At exit, ace's own threads stop calling into Python before the interpreter finalizes (a
# thread that waits for the GIL then would abort the process).
_atexit.register(_ace._before_exit)

if hasattr(_os, "register_at_fork"):
    # No thread is inside SQLite at the fork (the child would inherit its locks held), and a
    # forked child rebuilds its engines on first use (the parent's writer thread is gone).
    _os.register_at_fork(
        before=_ace._before_fork,
        after_in_parent=_ace._after_fork_parent,
        after_in_child=_ace._after_fork_child,
    )
