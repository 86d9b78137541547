"""Adapters that feed ace from agent frameworks: ``ace.integrations.langchain`` (LangChain and
LangGraph callbacks) and ``ace.integrations.openai_agents`` (an OpenAI Agents SDK tracing
processor). Each imports its framework only when used."""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Tuple

__all__ = ["current_task", "stage_name", "tool_arguments"]

_INVALID = re.compile(r"[^a-z0-9_.-]+")
_MAX = 64


def stage_name(name: str, prefix: str = "") -> str:
    """A framework's run or span name as an ace stage name (lower-case ASCII letters, digits,
    ``_``, ``-``, ``.``, starting with a letter): ``"Search Web"`` with prefix ``"tool."`` is
    ``"tool.search_web"``."""
    cleaned = _INVALID.sub("_", name.strip().lower()).strip("_") or "unnamed"
    if not cleaned[0].isalpha():
        cleaned = "s" + cleaned
    return (prefix + cleaned)[:_MAX]


def current_task(engine: Any) -> Optional[Tuple[str, str]]:
    """The ``(agent, task)`` of the innermost ``with engine.task(agent, task):`` block around the
    caller, or None: what an adapter uses when it is given no task."""
    from ace._engine import current_task as current

    return current()


def tool_arguments(text: str) -> Any:
    """A tool call's arguments as a framework reports them (a JSON text) made into the value
    ``record_tool(args=...)`` digests, so the same call digests alike whether it came as text or
    as a dict: the parsed JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
