"""The OpenAI Agents SDK: ``AceTracingProcessor`` turns its traces into ace records.

    from agents import add_trace_processor
    from ace.integrations.openai_agents import AceTracingProcessor

    add_trace_processor(AceTracingProcessor(eng))

A trace is a task (its ``trace_id``); an agent span names the agent for the spans under it;
function spans are stages ``tool.<name>``, generation spans ``llm`` (with ``tokens_in`` and
``tokens_out`` from their usage), handoffs ``handoff``, guardrails ``guardrail.<name>``; other
spans are ignored. A span's error is recorded as an error of its stage. The task ends with the
trace.
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter
from typing import Any, Dict, List, Optional, Tuple

from agents.tracing import Span, Trace, TracingProcessor

from ace.integrations import stage_name

__all__ = ["AceTracingProcessor"]

_log = logging.getLogger("ace.integrations.openai_agents")


class AceTracingProcessor(TracingProcessor):
    """Feeds an ``ace.Ace`` engine from OpenAI Agents SDK traces. ``agent`` names the agent until
    an agent span says otherwise. Interventions land in ``interventions`` (newest last) and reach
    the engine's subscribers."""

    def __init__(self, engine: Any, agent: str = "openai-agent") -> None:
        self.engine = engine
        self.agent = agent
        self.interventions: List[Any] = []
        self._lock = threading.Lock()
        self._started: Dict[str, float] = {}
        # trace id -> the agent whose spans are open in it
        self._agents: Dict[str, str] = {}

    def on_trace_start(self, trace: Trace) -> None:
        with self._lock:
            self._agents.setdefault(trace.trace_id, self.agent)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            agent = self._agents.pop(trace.trace_id, self.agent)
        try:
            self.engine.end_task(agent, trace.trace_id)
        except Exception:
            _log.warning("ace could not end task %s", trace.trace_id, exc_info=True)

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            self._started[span.span_id] = perf_counter()
            data = span.span_data
            if getattr(data, "type", None) == "agent":
                self._agents[span.trace_id] = str(data.name)

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            started = self._started.pop(span.span_id, None)
            agent = self._agents.get(span.trace_id, self.agent)
        stage, metrics = self._stage_of(span)
        if stage is None or started is None:
            return
        task = span.trace_id
        error = span.error
        try:
            if error:
                message = str(error.get("message") or "span failed")
                data = error.get("data") or {}
                kind = str(data.get("error") or data.get("type") or "SpanError") if isinstance(data, dict) else "SpanError"
                self._keep(self.engine.record_error(agent, task, stage, kind, message).intervention)
            report = self.engine.record_stage(agent, task, stage, perf_counter() - started, not error, metrics or None)
            self._keep(report.intervention)
        except Exception:  # never break the host's run over monitoring
            _log.warning("ace could not record span %s", span.span_id, exc_info=True)

    @staticmethod
    def _stage_of(span: Span[Any]) -> Tuple[Optional[str], Dict[str, float]]:
        data = span.span_data
        kind = getattr(data, "type", None)
        metrics: Dict[str, float] = {}
        if kind == "function":
            return stage_name(str(data.name), "tool."), metrics
        if kind == "generation":
            usage = getattr(data, "usage", None) or {}
            for ours, theirs in (("tokens_in", "input_tokens"), ("tokens_out", "output_tokens")):
                if isinstance(usage.get(theirs), (int, float)):
                    metrics[ours] = float(usage[theirs])
            return "llm", metrics
        if kind == "handoff":
            return "handoff", metrics
        if kind == "guardrail":
            return stage_name(str(data.name), "guardrail."), metrics
        return None, metrics

    def _keep(self, intervention: Any) -> None:
        if intervention is not None:
            self.interventions.append(intervention)

    def shutdown(self) -> None:
        self.engine.flush()

    def force_flush(self) -> None:
        self.engine.flush()
