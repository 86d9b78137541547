"""Adapters that feed ace from agent frameworks: ``ace.integrations.langchain`` (LangChain and
LangGraph callbacks) and ``ace.integrations.openai_agents`` (an OpenAI Agents SDK tracing
processor). Each imports its framework only when used."""

from __future__ import annotations

import re

__all__ = ["stage_name"]

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
