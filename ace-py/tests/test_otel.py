"""ace.integrations.otel with the real OpenTelemetry SDK: GenAI spans in (checked field by field
in the trace the engine writes), bad spans counted and skipped, interventions out as span events."""

import json

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import ace
from ace.integrations.otel import AceSpanProcessor, attach_events, report_events


def _provider(processor, service="checkout"):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test"), exporter


def _events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _span(tracer, name, **attributes):
    return tracer.start_as_current_span(name, attributes=attributes)


def test_genai_spans_become_stages_tool_calls_tokens_and_errors(tmp_path):
    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    proc = AceSpanProcessor(eng)
    _, tracer, _ = _provider(proc)
    with _span(tracer, "invoke_agent support", **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support", "gen_ai.conversation.id": "conv-7"}):
        with _span(tracer, "chat gpt-4.1", **{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 64}):
            pass
        for order in ("A1", "A1", "B2"):
            with _span(tracer, "execute_tool lookup", **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", "gen_ai.tool.call.arguments": json.dumps({"order": order})}):
                pass
        with pytest.raises(ConnectionError):
            with _span(tracer, "execute_tool refund", **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund"}):
                raise ConnectionError("connection to payments-3:443 refused")
        with _span(tracer, "embeddings", **{"gen_ai.operation.name": "embeddings", "gen_ai.usage.input_tokens": 33}):
            pass
        with _span(tracer, "retrieval docs", **{"gen_ai.operation.name": "retrieval"}) as span:
            span.set_attribute("error.type", "TimeoutError")
            span.set_status(Status(StatusCode.ERROR, "index timed out"))
        with _span(tracer, "GET /orders", **{"http.request.method": "GET"}):
            pass
    eng.close()

    assert proc.counts == {"recorded": 8, "skipped": 1, "malformed": 0, "ignored_attributes": 0, "oversize": 0, "failed": 0}
    events = _events(path)
    assert {(e["agent"], e["task"]) for e in events} == {("support", "conv-7")}, "agent and task come down from the agent span"
    stages = [e for e in events if e["type"] == "stage"]
    assert [e.get("tool") or e["stage"] for e in stages] == ["llm", "lookup", "lookup", "lookup", "refund", "embeddings", "retrieval", "invoke_agent"]
    llm = stages[0]
    assert llm["metrics"] == {"tokens_in": 812.0, "tokens_out": 64.0} and llm["success"] is True and llm["duration_s"] >= 0
    lookups = stages[1:4]
    assert all(s["success"] for s in lookups)
    assert lookups[0]["args_digest"] == lookups[1]["args_digest"] != lookups[2]["args_digest"], "equal arguments, equal digests"
    refund = stages[4]
    assert refund["success"] is False and "args_digest" not in refund
    assert stages[5]["metrics"] == {"tokens_in": 33.0}
    assert stages[6]["success"] is False
    assert stages[7]["success"] is True, "the agent caught the tool's exception"
    errors = [(e["stage"], e["kind"], e["message"]) for e in events if e["type"] == "error"]
    assert errors == [
        ("tool", "ConnectionError", "connection to payments-3:443 refused"),
        ("retrieval", "TimeoutError", "index timed out"),
    ]
    assert events[-1]["type"] == "task_end"


def test_agent_falls_back_to_the_service_and_task_to_the_trace(tmp_path):
    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    proc = AceSpanProcessor(eng)
    _, tracer, exporter = _provider(proc, service="billing-worker")
    with _span(tracer, "chat", **{"gen_ai.operation.name": "chat", "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 2}):
        pass
    eng.close()
    (span,) = exporter.get_finished_spans()
    stage, end = _events(path)
    assert (stage["agent"], stage["task"]) == ("billing-worker", format(span.context.trace_id, "032x"))
    assert stage["metrics"] == {"tokens_in": 10.0, "tokens_out": 2.0}, "the pre-1.27 usage names still count"
    assert end["type"] == "task_end" and end["task"] == stage["task"], "the trace's task ends with its root span"


def test_malformed_and_oversize_attributes_are_counted_never_raised(tmp_path):
    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    proc = AceSpanProcessor(eng, max_argument_chars=1000)
    _, tracer, _ = _provider(proc, service="svc")
    bad = [
        {"gen_ai.operation.name": 7},  # not a string: malformed
        {"gen_ai.operation.name": ""},  # empty: malformed
        {"gen_ai.operation.name": "x" * 10_000},  # oversize name: malformed
        {"gen_ai.operation.name": "execute_tool"},  # no tool name: malformed
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": ["a", "b"]},  # not a string: malformed
    ]
    for attrs in bad:
        with tracer.start_as_current_span("bad", attributes=attrs):
            pass
    odd = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": "many",  # ignored
        "gen_ai.usage.output_tokens": -5,  # ignored
        "gen_ai.agent.name": "a" * 300,  # too long for an id: ignored, the service name stands in
        "gen_ai.conversation.id": "bad\x00id",  # control character: ignored
        "some.vendor.attribute": "whatever",  # unknown: not even counted
    }
    with tracer.start_as_current_span("odd", attributes=odd):
        pass
    with tracer.start_as_current_span("big", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "upload", "gen_ai.tool.call.arguments": "x" * 5000}):
        pass
    counts = proc.counts
    eng.close()
    with tracer.start_as_current_span("late", attributes={"gen_ai.operation.name": "chat"}):
        pass  # the engine is closed: the record fails, the span still ends
    assert counts == {"recorded": 2, "skipped": 0, "malformed": 5, "ignored_attributes": 4, "oversize": 1, "failed": 0}
    assert proc.counts["failed"] == 1
    stages = [e for e in _events(path) if e["type"] == "stage"]
    assert [(s["agent"], s.get("tool") or s["stage"]) for s in stages] == [("svc", "llm"), ("svc", "upload")]
    assert "metrics" not in stages[0] or stages[0]["metrics"] == {}
    assert "args_digest" not in stages[1], "oversize arguments: the call is kept, without a digest"


def test_interventions_and_signals_go_onto_the_open_spans():
    eng = ace.Ace()
    attach_events(eng)
    attach_events(eng)  # once per engine, however often it is called
    proc = AceSpanProcessor(eng)
    _, tracer, exporter = _provider(proc)
    with _span(tracer, "invoke_agent support", **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}):
        for host in range(3):
            with pytest.raises(ConnectionError):
                with _span(tracer, "execute_tool lookup", **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}):
                    raise ConnectionError(f"connection to orders-{host}:5432 refused")
    assert proc.interventions, "three recurring errors in one task call for an intervention"
    found = proc.interventions[0]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    agent_events = spans["invoke_agent support"].events
    marks = [e for e in agent_events if e.name == "ace.intervention"]
    assert marks, "the intervention is on the agent span, the nearest open ancestor"
    assert dict(marks[0].attributes) == {
        "ace.intervention.id": found.id,
        "ace.intervention.strategy": found.strategy,
        "ace.intervention.reason": found.reason,
        "ace.intervention.severity": found.severity,
        "ace.agent": "support",
        "ace.task": found.task,
    }
    kinds = [e.attributes["ace.signal.kind"] for e in agent_events if e.name == "ace.signal"]
    assert set(s.kind for s in found.signals) <= set(kinds)
    assert all(not any(e.name.startswith("ace.") for e in s.events) for s in spans.values() if s.name != "invoke_agent support")

    # The application's own records land on its current span.
    with tracer.start_as_current_span("handle ticket") as span:
        reports = [eng.record_error("bot", "t-2", "execution", "ConnectionError", f"connection to db-{p}:5432 refused") for p in range(3)]
    issued = [r.intervention for r in reports if r.intervention is not None]
    (mine,) = [s for s in exporter.get_finished_spans() if s.name == "handle ticket"]
    ids = [e.attributes["ace.intervention.id"] for e in mine.events if e.name == "ace.intervention"]
    assert issued and ids == [i.id for i in issued]
    with_one = next(r for r in reports if r.intervention is not None)
    assert [name for name, _ in report_events(with_one)][0] == "ace.intervention"
    for r in reports:
        if r.intervention is None:
            assert [name for name, _ in report_events(r)] == ["ace.signal"] * len(r.signals)
    eng.close()
