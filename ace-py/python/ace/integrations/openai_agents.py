"""The OpenAI Agents SDK: ``AceTracingProcessor`` turns its traces into ace records.

    from agents import add_trace_processor
    from ace.integrations.openai_agents import AceTracingProcessor

    add_trace_processor(AceTracingProcessor(eng))

A trace is a task: the current task (``with eng.task(agent, task):`` around the run) when there
is one, else the trace's ``trace_id``. An agent span names the agent for the spans under it (else
the current task's agent, else ``agent``). Spans become:

- ``response`` (the default Responses model) and ``generation`` (Chat Completions): the stage
  ``llm`` with ``tokens_in`` and ``tokens_out`` from their usage;
- ``function``: a tool call (the tool's name, the digest of its JSON input);
- ``handoff``: the stage ``handoff``; ``guardrail``: the stage ``guardrail.<name>`` with the metric
  ``triggered`` (1 when the tripwire fired);
- others (agent, task, turn, custom, MCP listing, speech): nothing.

A span's error is recorded as an error of its stage. A task taken from the trace id ends with the
trace; a current task is left to the block that opened it.
"""

from __future__ import annotations

import collections
import logging
import threading
from time import perf_counter
from typing import Any, Deque, Dict, Optional, Set, Tuple

from agents.tracing import Span, Trace, TracingProcessor

from ace.integrations import current_task, stage_name, tool_arguments

__all__ = ["AceTracingProcessor"]

_log = logging.getLogger("ace.integrations.openai_agents")


class _Trace:
    """One open trace: the agent whose spans are open in it, its task, whether the trace owns
    the task (ends it), and the agents recorded under it."""

    __slots__ = ("agent", "task", "owned", "agents")

    def __init__(self, agent: str, task: str, owned: bool) -> None:
        self.agent = agent
        self.task = task
        self.owned = owned
        self.agents: Set[str] = set()


class AceTracingProcessor(TracingProcessor):
    """Feeds an ``ace.Ace`` engine from OpenAI Agents SDK traces. ``agent`` names the agent until
    an agent span (or the current task) says otherwise. Interventions land in ``interventions``
    (the newest 1,000) and reach the engine's subscribers."""

    def __init__(self, engine: Any, agent: str = "openai-agent") -> None:
        self.engine = engine
        self.agent = agent
        self.interventions: Deque[Any] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._started: Dict[str, float] = {}
        self._traces: Dict[str, _Trace] = {}

    def on_trace_start(self, trace: Trace) -> None:
        with self._lock:
            self._trace(trace.trace_id)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            state = self._traces.pop(trace.trace_id, None)
        if state is None or not state.owned:
            return
        for agent in sorted(state.agents):
            try:
                self.engine.end_task(agent, state.task)
            except Exception:
                _log.warning("ace could not end task %s", state.task, exc_info=True)

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            self._started[span.span_id] = perf_counter()
            data = span.span_data
            if getattr(data, "type", None) == "agent":
                self._trace(span.trace_id).agent = str(data.name)

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            started = self._started.pop(span.span_id, None)
            state = self._trace(span.trace_id)
            agent, task = state.agent, state.task
        if started is None:
            return
        duration = perf_counter() - started
        data = span.span_data
        kind = getattr(data, "type", None)
        error = span.error
        try:
            if kind == "function":
                self._note(state, agent)
                self._error(agent, task, "tool", error)
                args = tool_arguments(data.input) if isinstance(data.input, str) and data.input else None
                self._keep(self.engine.record_tool(agent, task, str(data.name), duration, not error, args=args))
                return
            stage, metrics = self._stage_of(data, kind)
            if stage is None:
                return
            self._note(state, agent)
            self._error(agent, task, stage, error)
            self._keep(self.engine.record_stage(agent, task, stage, duration, not error, metrics or None))
        except Exception:  # never break the host's run over monitoring
            _log.warning("ace could not record span %s", span.span_id, exc_info=True)

    def _trace(self, trace_id: str) -> "_Trace":
        """The state of a trace (made on first sight; the lock is held)."""
        state = self._traces.get(trace_id)
        if state is None:
            current = current_task(self.engine)
            if current is not None:
                state = _Trace(current[0], current[1], owned=False)
            else:
                state = _Trace(self.agent, trace_id, owned=True)
            self._traces[trace_id] = state
        return state

    def _note(self, state: "_Trace", agent: str) -> None:
        with self._lock:
            state.agents.add(agent)

    def _error(self, agent: str, task: str, stage: str, error: Any) -> None:
        if not error:
            return
        message = str(error.get("message") or "span failed")
        data = error.get("data")
        data = data if isinstance(data, dict) else {}
        detail = data.get("error")
        kind = str(data.get("type") or message)
        self._keep(self.engine.record_error(agent, task, stage, kind, str(detail) if detail else message))

    @staticmethod
    def _stage_of(data: Any, kind: Optional[str]) -> Tuple[Optional[str], Dict[str, float]]:
        metrics: Dict[str, float] = {}
        if kind in ("response", "generation"):
            usage = getattr(data, "usage", None)
            if not usage and kind == "response":
                usage = getattr(getattr(data, "response", None), "usage", None)
            for ours, theirs in (("tokens_in", "input_tokens"), ("tokens_out", "output_tokens")):
                value = usage.get(theirs) if isinstance(usage, dict) else getattr(usage, theirs, None)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[ours] = float(value)
            return "llm", metrics
        if kind == "handoff":
            return "handoff", metrics
        if kind == "guardrail":
            metrics["triggered"] = 1.0 if getattr(data, "triggered", False) else 0.0
            return stage_name(str(data.name), "guardrail."), metrics
        return None, metrics

    def _keep(self, report: Any) -> None:
        if report.intervention is not None:
            self.interventions.append(report.intervention)

    def shutdown(self) -> None:
        self.engine.flush()

    def force_flush(self) -> None:
        self.engine.flush()
