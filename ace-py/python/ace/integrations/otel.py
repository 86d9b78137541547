"""OpenTelemetry: ``AceSpanProcessor`` feeds an engine from the spans an instrumented program
already emits (GenAI semantic conventions), and ``attach_events`` puts what ace decides back on
the spans as events. ``AceMetricProducer`` and ``register_producer`` (from
``ace.integrations.otel_metrics``) send the engine's metrics through the SDK's metric readers.

    from opentelemetry.sdk.trace import TracerProvider
    from ace.integrations.otel import AceSpanProcessor, attach_events

    provider.add_span_processor(AceSpanProcessor(eng))
    attach_events(eng)

Spans are read under the GenAI semantic conventions of OpenTelemetry semantic-conventions 1.44
(``gen_ai.*``, status Development), by ``gen_ai.operation.name``:

- ``invoke_agent``: the stage ``invoke_agent`` (its duration and success), then the task ends;
- ``chat``, ``text_completion``, ``generate_content``: the stage ``llm`` with ``tokens_in`` and
  ``tokens_out`` from ``gen_ai.usage.input_tokens`` / ``output_tokens``; ``embeddings``: the stage
  ``embeddings`` with ``tokens_in``;
- ``execute_tool``: a tool call (``gen_ai.tool.name``, the digest of ``gen_ai.tool.call.arguments``
  when present);
- any other operation: a stage of that name.

The agent is ``gen_ai.agent.name``, else the nearest enclosing span's, else the resource's
``service.name``; the task is ``gen_ai.conversation.id``, else the enclosing span's, else the
trace id. A failed span (``error.type``, status ``ERROR``, an ``exception`` event) is recorded as
an error of its stage. When the local root span of a trace ends, the tasks recorded under it end.
Spans without ``gen_ai.operation.name`` are skipped; ``counts`` says how many of each.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import math
import threading
from typing import Any, Deque, Dict, List, Mapping, Optional, Set, Tuple

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from ace.integrations import stage_name, tool_arguments
from ace.integrations.otel_metrics import AceMetricProducer, register_producer

__all__ = [
    "AceMetricProducer",
    "AceSpanProcessor",
    "SEMCONV_VERSION",
    "attach_events",
    "register_producer",
    "report_events",
]

#: The version of the OpenTelemetry semantic conventions whose GenAI attributes are read.
SEMCONV_VERSION = "1.44.0"

_log = logging.getLogger("ace.integrations.otel")

_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_MAX_ID = 256  # bytes, as the engine takes agent and task ids
_MAX_NAME = 256  # characters of an operation or tool name
_OPEN_LIMIT = 65_536  # open spans and traces whose context is kept
_TOKENS = (
    ("tokens_in", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
    ("tokens_out", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
)

# The span an event about the record being made belongs on: while the processor records an
# ended span, its nearest open ancestor (the ended span takes no more events).
_TARGET: contextvars.ContextVar[Optional[Any]] = contextvars.ContextVar("ace_otel_target", default=None)


class _Open:
    """What a started span hands down to the spans under it."""

    __slots__ = ("agent", "task", "span")

    def __init__(self, agent: Optional[str], task: Optional[str], span: Span) -> None:
        self.agent = agent
        self.task = task
        self.span = span


class AceSpanProcessor(SpanProcessor):
    """Records GenAI spans into an ``ace.Ace`` engine when they end (see the module's text).

    ``on_start`` and ``on_end`` never raise and never wait: they read the span and make the
    engine's recording calls, which return without I/O. ``max_argument_chars`` bounds the tool
    arguments hashed for the digest (a longer value is recorded without a digest and counted as
    ``oversize``). Interventions land in ``interventions`` (the newest 1,000) and reach the
    engine's subscribers."""

    def __init__(self, engine: Any, *, max_argument_chars: int = 65_536) -> None:
        self.engine = engine
        self.max_argument_chars = max_argument_chars
        self.interventions: Deque[Any] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = dict.fromkeys(
            ("recorded", "skipped", "malformed", "ignored_attributes", "oversize", "failed"), 0
        )
        # span id -> what it hands down (agent, task, the live span)
        self._open: Dict[int, _Open] = {}
        # trace id -> the (agent, task) pairs recorded under it, ended with its local root
        self._tasks: Dict[int, Set[Tuple[str, str]]] = {}

    # -- the SpanProcessor interface ---------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        try:
            attrs = span.attributes or {}
            parent = self._parent_of(span)
            agent = _text(attrs.get("gen_ai.agent.name")) or (parent.agent if parent else None)
            task = _text(attrs.get("gen_ai.conversation.id")) or (parent.task if parent else None)
            ctx = span.get_span_context()
            with self._lock:
                if len(self._open) < _OPEN_LIMIT:
                    self._open[ctx.span_id] = _Open(agent, task, span)
        except Exception:  # never break the host's span over monitoring
            self._count("failed")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._record(span)
        except Exception:  # never break the host's span over monitoring
            self._count("failed")
            _log.debug("ace could not record span %r", getattr(span, "name", None), exc_info=True)

    def shutdown(self) -> None:
        if getattr(self.engine, "closed", False):
            return
        try:
            self.engine.flush()
        except Exception:
            _log.warning("ace could not flush at shutdown", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self.engine.flush()
            return True
        except Exception:
            _log.warning("ace could not flush", exc_info=True)
            return False

    @property
    def counts(self) -> Dict[str, int]:
        """How many spans were ``recorded``, ``skipped`` (no ``gen_ai.operation.name``),
        ``malformed`` (an operation or tool name that is not a usable string, a missing end time:
        not recorded), ``failed`` (the engine refused the record, or the span could not be read),
        and how many ``ignored_attributes`` (a known attribute of the wrong type or size, read as
        absent) and ``oversize`` tool arguments (recorded without a digest)."""
        with self._lock:
            return dict(self._counts)

    # -- recording ---------------------------------------------------------------------------

    def _record(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            self._count("malformed")
            return
        with self._lock:
            mine = self._open.pop(ctx.span_id, None)
        try:
            self._record_genai(span, ctx.trace_id, mine)
        finally:
            parent = span.parent
            if parent is None or parent.is_remote:
                self._end_trace(ctx.trace_id)

    def _record_genai(self, span: ReadableSpan, trace_id: int, mine: Optional[_Open]) -> None:
        attrs: Mapping[str, Any] = span.attributes or {}
        operation = attrs.get("gen_ai.operation.name")
        if operation is None:
            self._count("skipped")
            return
        if not isinstance(operation, str) or not operation.strip() or len(operation) > _MAX_NAME:
            self._count("malformed")
            return
        if span.start_time is None or span.end_time is None or span.end_time < span.start_time:
            self._count("malformed")
            return
        duration = (span.end_time - span.start_time) / 1e9
        agent, task = self._who(span, trace_id, attrs, mine)
        failed, error = _failure(span, attrs)
        parent = self._parent_of(span)
        token = _TARGET.set(parent.span if parent is not None else None)
        try:
            if operation == "execute_tool":
                tool = attrs.get("gen_ai.tool.name")
                if not isinstance(tool, str) or not tool.strip() or len(tool) > _MAX_NAME:
                    self._count("malformed")
                    return
                stage = "tool"
                if error is not None:
                    self._keep(self.engine.record_error(agent, task, stage, error[0], error[1]))
                self._keep(self.engine.record_tool(agent, task, tool, duration, not failed, args=self._arguments(attrs)))
            else:
                stage, metrics = self._stage_of(operation, attrs)
                if error is not None:
                    self._keep(self.engine.record_error(agent, task, stage, error[0], error[1]))
                self._keep(self.engine.record_stage(agent, task, stage, duration, not failed, metrics or None))
            self._count("recorded")
            if operation == "invoke_agent":
                self.engine.end_task(agent, task)
            else:
                self._note_task(span, trace_id, agent, task)
        finally:
            _TARGET.reset(token)

    def _stage_of(self, operation: str, attrs: Mapping[str, Any]) -> Tuple[str, Dict[str, float]]:
        metrics: Dict[str, float] = {}
        if operation in _LLM_OPERATIONS or operation == "embeddings":
            for ours, theirs in _TOKENS:
                value = self._number(attrs, theirs)
                if value is not None:
                    metrics[ours] = value
            return ("llm" if operation in _LLM_OPERATIONS else "embeddings"), metrics
        return stage_name(operation), metrics

    def _who(self, span: ReadableSpan, trace_id: int, attrs: Mapping[str, Any], mine: Optional[_Open]) -> Tuple[str, str]:
        agent = self._id(attrs, "gen_ai.agent.name") or (mine.agent if mine else None)
        if agent is None:
            resource = getattr(span, "resource", None)
            agent = self._id(resource.attributes if resource is not None else {}, "service.name") or "unknown_service"
        task = self._id(attrs, "gen_ai.conversation.id") or (mine.task if mine else None)
        if task is None:
            task = format(trace_id, "032x")
        return agent, task

    def _arguments(self, attrs: Mapping[str, Any]) -> Any:
        args = attrs.get("gen_ai.tool.call.arguments")
        if args is None:
            return None
        if not isinstance(args, str):
            self._count("ignored_attributes")
            return None
        if len(args) > self.max_argument_chars:
            self._count("oversize")
            return None
        return tool_arguments(args)

    # -- helpers -----------------------------------------------------------------------------

    def _parent_of(self, span: ReadableSpan) -> Optional[_Open]:
        parent = span.parent
        if parent is None:
            return None
        with self._lock:
            return self._open.get(parent.span_id)

    def _id(self, attrs: Mapping[str, Any], key: str) -> Optional[str]:
        value = attrs.get(key)
        if value is None:
            return None
        text = _text(value)
        if text is None:
            self._count("ignored_attributes")
        return text

    def _number(self, attrs: Mapping[str, Any], keys: Tuple[str, ...]) -> Optional[float]:
        for key in keys:
            value = attrs.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                self._count("ignored_attributes")
                return None
            return float(value)
        return None

    def _note_task(self, span: ReadableSpan, trace_id: int, agent: str, task: str) -> None:
        parent = span.parent
        if parent is None or parent.is_remote:
            self.engine.end_task(agent, task)
            return
        with self._lock:
            tasks = self._tasks.get(trace_id)
            if tasks is None:
                if len(self._tasks) >= _OPEN_LIMIT:
                    return
                tasks = self._tasks[trace_id] = set()
            tasks.add((agent, task))

    def _end_trace(self, trace_id: int) -> None:
        with self._lock:
            tasks = self._tasks.pop(trace_id, None)
        for agent, task in tasks or ():
            try:
                self.engine.end_task(agent, task)
            except Exception:
                self._count("failed")

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _keep(self, report: Any) -> None:
        if report.intervention is not None:
            self.interventions.append(report.intervention)
        elif report.signals and any(e is self.engine for e in _ATTACHED):
            _add(_TARGET.get(), report_events(report))


def _text(value: Any) -> Optional[str]:
    """An attribute usable as an agent or task id, or None."""
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    if not text or len(text.encode("utf-8", "replace")) > _MAX_ID or not text.isprintable():
        return None
    return text


def _failure(span: ReadableSpan, attrs: Mapping[str, Any]) -> Tuple[bool, Optional[Tuple[str, str]]]:
    """Whether the span failed, and the (kind, message) of its error: the first ``exception``
    event, else ``error.type`` with the status description."""
    status = span.status
    failed = status is not None and status.status_code is StatusCode.ERROR
    description = (status.description if status is not None else None) or ""
    error_type = attrs.get("error.type")
    if error_type is not None:
        failed = True
    for event in span.events or ():
        if event.name != "exception":
            continue
        e_attrs = event.attributes or {}
        kind = _short(e_attrs.get("exception.type")) or _short(error_type) or "Exception"
        message = e_attrs.get("exception.message")
        return True, (kind, message if isinstance(message, str) and message else description or kind)
    if failed:
        kind = _short(error_type) or "SpanError"
        return True, (kind, description or kind)
    return False, None


def _short(value: Any) -> Optional[str]:
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_NAME]
    return None


# -- OpenTelemetry out ---------------------------------------------------------------------------

# The engines whose interventions and signals go onto spans (see attach_events).
_ATTACHED: List[Any] = []


def attach_events(engine: Any) -> None:
    """Puts what ``engine`` decides on spans. Each intervention becomes the event
    ``ace.intervention`` (``ace.intervention.id``, ``.strategy``, ``.reason``, ``.severity``,
    ``ace.agent``, ``ace.task``), followed by one ``ace.signal`` event per signal behind it
    (``ace.signal.kind``, ``.severity``, ``.message``, ``ace.agent``, ``ace.task``,
    ``ace.stage``). The span is the one current where the recording call was made or, for a
    record ``AceSpanProcessor`` makes as a span ends, that span's nearest open ancestor, which
    then also gets the signals that raised no intervention. Nothing is added when no span is
    recording. Call it once per engine."""
    if any(e is engine for e in _ATTACHED):
        return
    _ATTACHED.append(engine)

    def on_intervention(intervention: Any) -> None:
        _add(_TARGET.get() or trace_api.get_current_span(), report_events(intervention))

    engine.subscribe(on_intervention)


def report_events(found: Any) -> List[Tuple[str, Dict[str, Any]]]:
    """The span events for an ``Intervention``, or for a ``Report`` / ``ErrorReport`` (its
    intervention's, else one ``ace.signal`` per signal), as ``(name, attributes)`` pairs for
    ``span.add_event``."""
    intervention = found if hasattr(found, "strategy") else found.intervention
    if intervention is None:
        return [("ace.signal", _signal_attributes(s)) for s in found.signals]
    events: List[Tuple[str, Dict[str, Any]]] = [
        (
            "ace.intervention",
            {
                "ace.intervention.id": int(intervention.id),
                "ace.intervention.strategy": str(intervention.strategy),
                "ace.intervention.reason": str(intervention.reason),
                "ace.intervention.severity": str(intervention.severity),
                "ace.agent": str(intervention.agent),
                "ace.task": str(intervention.task),
            },
        )
    ]
    events.extend(("ace.signal", _signal_attributes(s)) for s in intervention.signals)
    return events


def _signal_attributes(signal: Any) -> Dict[str, Any]:
    attributes: Dict[str, Any] = {
        "ace.signal.kind": str(signal.kind),
        "ace.signal.severity": str(signal.severity),
        "ace.signal.message": str(signal.message),
        "ace.agent": str(signal.agent),
    }
    if signal.task is not None:
        attributes["ace.task"] = str(signal.task)
    if signal.stage is not None:
        attributes["ace.stage"] = str(signal.stage)
    return attributes


def _add(span: Any, events: List[Tuple[str, Dict[str, Any]]]) -> None:
    if span is None or not events or not span.is_recording():
        return
    for name, attributes in events:
        span.add_event(name, attributes)
