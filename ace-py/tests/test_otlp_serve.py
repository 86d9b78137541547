"""The real OpenTelemetry Python SDK and its stock OTLP/HTTP exporter
(opentelemetry-exporter-otlp-proto-http, protobuf, plain and gzip) sending spans to a real
``ace serve --otlp``: what the listener recorded is read back from the engine's trace file
(``ACE_TRACE_PATH``) and its ``/metrics``, field by field.

The ``ace`` binary comes from ``ACE_BIN`` (ace-py/scripts/test.sh builds it); without one the
test is skipped locally and fails in CI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

otel_trace = pytest.importorskip("opentelemetry.trace")
from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402


def _ace_bin() -> str:
    path = os.environ.get("ACE_BIN", "")
    if path and Path(path).is_file():
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("ACE_BIN must name the built ace binary in CI (ace-py/scripts/test.sh sets it)")
    pytest.skip("no ace binary (set ACE_BIN)")


class Served:
    def __init__(self, proc: subprocess.Popen[str], base: str, trace: Path) -> None:
        self.proc = proc
        self.base = base
        self.trace = trace

    def events(self) -> List[Dict[str, Any]]:
        lines = self.trace.read_text().splitlines() if self.trace.exists() else []
        out = []
        for line in lines:
            event = json.loads(line)
            event.pop("ts")
            out.append(event)
        return out

    def counter(self, outcome: str) -> float:
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as r:
            text = r.read().decode()
        m = re.search(r'^ace_otlp_spans_total\{outcome="%s"\} (\S+)$' % outcome, text, re.M)
        assert m, text
        return float(m.group(1))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    trace = tmp_path / "trace.jsonl"
    env = dict(os.environ, DATABASE_URL="memory", ACE_TRACE_PATH=str(trace), RUST_LOG="warn")
    env.pop("ACE_METRICS_TOKEN", None)
    proc = subprocess.Popen(
        [_ace_bin(), "serve", "--otlp", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # "serving http://127.0.0.1:PORT/ (the live page), /api/, /metrics and /health and ..."
        m = re.search(r"http://([^/\s]+)/", line)
        if not m:
            proc.kill()  # stderr is read to its end only once the process is gone
            stderr = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"ace serve said {line!r}; stderr: {stderr}")
        yield Served(proc, f"http://{m.group(1)}", trace)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _run_agent(served: Served, compression: Compression) -> str:
    """An agent run as an instrumented program emits it; returns the trace id (hex)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "py-travel"}))
    exporter = OTLPSpanExporter(endpoint=f"{served.base}/v1/traces", compression=compression, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent planner",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": "conv-py",
        },
    ) as root:
        with tracer.start_as_current_span("chat gpt-x", attributes={"gen_ai.operation.name": "chat"}) as chat:
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("gen_ai.usage.output_tokens", 30)
            chat.set_attribute("x.vendor.unknown", "kept out")
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.arguments": json.dumps({"units": "c", "city": "Paris"}),
            },
        ):
            with tracer.start_as_current_span("GET /weather", attributes={"http.request.method": "GET"}):
                pass
        with tracer.start_as_current_span(
            "chat gpt-x", attributes={"gen_ai.operation.name": "chat"}, record_exception=False, set_status_on_exception=False
        ) as failed:
            failed.record_exception(TimeoutError("upstream api-1 timed out after 30 s"))
            failed.set_status(Status(StatusCode.ERROR, "timed out"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()
    return trace_id


def _digest() -> str:
    """What ``eng.record_tool(..., args={"city": "Paris", "units": "c"})`` records: FNV-1a 64 of
    the canonical JSON (keys sorted, no spaces)."""
    h = 0xCBF29CE484222325
    for b in b'{"city":"Paris","units":"c"}':
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "016x")


def _expected(task: str) -> List[Dict[str, Any]]:
    who = {"agent": "planner", "task": task}
    return [
        {"type": "stage", **who, "stage": "llm", "success": True, "metrics": {"tokens_in": 120.0, "tokens_out": 30.0}},
        {"type": "stage", **who, "stage": "tool", "success": True, "tool": "get_weather", "args_digest": _digest()},
        {"type": "error", **who, "stage": "llm", "kind": "TimeoutError", "message": "upstream api-1 timed out after 30 s"},
        {"type": "stage", **who, "stage": "llm", "success": False},
        {"type": "stage", **who, "stage": "invoke_agent", "success": True},
        {"type": "task_end", **who},
    ]


def _check(events: List[Dict[str, Any]], task: str) -> None:
    want = _expected(task)
    assert len(events) == len(want), events
    for got, expected in zip(events, want):
        for key, value in expected.items():
            assert got[key] == value, (key, got, expected)
        if got["type"] == "stage":
            assert 0 <= got["duration_s"] < 60, got


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_stock_exporter_feeds_ace_serve(served: Served, compression: Compression) -> None:
    _run_agent(served, compression)
    _check(served.events(), "conv-py")
    assert served.counter("accepted") == 4
    assert served.counter("skipped") == 1
    assert served.counter("rejected") == 0
    # The child spans inherited the agent run's agent and conversation (same export request).
    assert all(e["agent"] == "planner" for e in served.events())
