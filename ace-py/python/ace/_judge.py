"""Runs a Python judge on a daemon thread of its own (see ace-py/src/hooks.rs): while the
judge's code runs, no Rust frame is on that thread's stack, so a judge still busy when the
interpreter exits is ended there without aborting the process."""

from __future__ import annotations

import threading
from typing import Any, Callable


def _run(judge: Callable[[Any], Any], proposal: Any, reply: Any) -> None:
    try:
        answer = judge(proposal)
    except BaseException as e:  # noqa: BLE001 - reported through sys.unraisablehook by fail()
        reply.fail(e, judge)
        return
    reply.send(answer)


def start(judge: Callable[[Any], Any], proposal: Any, reply: Any) -> None:
    """Starts `judge(proposal)` on a daemon thread; its answer goes to `reply.send`."""
    threading.Thread(target=_run, args=(judge, proposal, reply), name="ace-judge", daemon=True).start()
