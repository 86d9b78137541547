"""ace's metrics through the real OpenTelemetry SDK: ``AceMetricProducer`` registered on a real
``InMemoryMetricReader`` (checked value by value against ``metrics_text()`` as prometheus_client's
own parser reads it), and end to end, the stock ``OTLPMetricExporter`` pushing to a local HTTP
server that decodes the body with opentelemetry-proto's ``ExportMetricsServiceRequest``. Also the
exposition parser on escapes, ``+Inf``, ``NaN`` and malformed lines, and collection going on when
the engine fails."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    Gauge,
    Histogram,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from prometheus_client.openmetrics.parser import text_string_to_metric_families  # noqa: E402

import ace  # noqa: E402
from ace import _exposition  # noqa: E402
from ace.exceptions import InvalidInputError  # noqa: E402
from ace.integrations.otel import AceMetricProducer, register_producer  # noqa: E402

Key = Tuple[Tuple[str, str], ...]


def _busy(eng: ace.Ace) -> None:
    """Known events: five stages of two agents (one failed, one slow), a tool call, an error."""
    for i in range(4):
        eng.record_stage("agent-a", f"t{i}", "planning", 0.1 * (i + 1), True)
    eng.record_stage("agent-\"b\"\\x", "t9", "planning", 7.5, False)
    eng.record_tool("agent-a", "t0", "search", 0.02, True)
    eng.record_error("agent-a", "t1", "planning", "TimeoutError", "the model took too long")


class _Seen:
    """The engine, keeping each text metrics_text() returned: what a collection read (gauges such
    as context staleness move between two reads)."""

    def __init__(self, eng: ace.Ace) -> None:
        self.eng = eng
        self.texts: List[str] = []

    @property
    def closed(self) -> bool:
        return self.eng.closed

    def metrics_text(self) -> str:
        self.texts.append(self.eng.metrics_text())
        return self.texts[-1]


def _expected(text: str) -> Dict[str, Any]:
    """metrics_text() read by prometheus_client (an independent parser): family -> type, help,
    {labels: value} or for histograms {labels: (count, sum, {le: cumulative})}."""
    out: Dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        series: Dict[Key, Any] = {}
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            if fam.type == "histogram":
                count, total, buckets = series.get(key, (None, None, {}))
                if s.name.endswith("_bucket"):
                    buckets[float(s.labels["le"])] = s.value
                elif s.name.endswith("_count"):
                    count = s.value
                elif s.name.endswith("_sum"):
                    total = s.value
                series[key] = (count, total, buckets)
            elif not s.name.endswith("_created"):
                series[key] = s.value
        out[fam.name] = (fam.type, fam.documentation, series)
    return out


def _ace_scope(data: Any) -> Tuple[Any, Any]:
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            if sm.scope.name == "ace":
                return rm, sm
    raise AssertionError("no ace scope in the collected data")


def _key(attributes: Any) -> Key:
    return tuple(sorted((k, str(v)) for k, v in dict(attributes).items()))


def test_in_memory_reader_collects_every_family_value_by_value(eng: ace.Ace) -> None:
    _busy(eng)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "billing"}))
    seen = _Seen(eng)
    producer = AceMetricProducer(seen)
    register_producer(reader, producer)
    # The application's own instruments keep arriving beside ace's.
    provider.get_meter("app").create_counter("app_requests").add(3)
    data = reader.get_metrics_data()
    (text,) = seen.texts
    expected = _expected(text)
    provider.shutdown()

    rm, sm = _ace_scope(data)
    assert rm.resource.attributes["service.name"] == "billing"
    assert sm.scope.version == ace.__version__
    assert any(m.name == "app_requests" for s in rm.scope_metrics for m in s.metrics)
    got = {m.name: m for m in sm.metrics}
    kinds = {"counter": 0, "gauge": 0, "histogram": 0}
    for name, (kind, help_text, series) in expected.items():
        if not series:
            continue  # a family with no series yet has no points to send
        metric = got.pop(name)
        assert metric.description == help_text, name
        kinds[kind] += 1
        points = {_key(p.attributes): p for p in metric.data.data_points}
        assert set(points) == set(series), name
        if kind == "counter":
            assert isinstance(metric.data, Sum) and metric.data.is_monotonic, name
            assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
            for key, value in series.items():
                assert points[key].value == value, (name, key)
        elif kind == "gauge":
            assert isinstance(metric.data, Gauge), name
            for key, value in series.items():
                assert points[key].value == value or (math.isnan(value) and math.isnan(points[key].value))
        else:
            assert isinstance(metric.data, Histogram), name
            assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
            for key, (count, total, buckets) in series.items():
                p = points[key]
                assert (p.count, p.sum) == (count, total), (name, key)
                bounds = sorted(b for b in buckets if not math.isinf(b))
                assert list(p.explicit_bounds) == bounds, name
                cumulative = [sum(p.bucket_counts[: i + 1]) for i in range(len(p.bucket_counts))]
                assert cumulative == [buckets[b] for b in bounds] + [buckets[math.inf]], (name, key)
    assert not got, f"metrics OpenTelemetry has that the exposition has not: {sorted(got)}"
    assert kinds["counter"] and kinds["histogram"] and kinds["gauge"], kinds
    assert producer.counts["collections"] == 1 and producer.counts["failed"] == 0


def test_known_events_arrive_as_their_values(eng: ace.Ace) -> None:
    _busy(eng)
    reader = InMemoryMetricReader()
    register_producer(reader, AceMetricProducer(eng))  # before the provider: order does not matter
    provider = MeterProvider(metric_readers=[reader])
    _, sm = _ace_scope(reader.get_metrics_data())
    provider.shutdown()
    by_name = {m.name: m for m in sm.metrics}
    # The odd agent id arrives unescaped as an attribute value.
    agents = {p.attributes.get("agent_id") for m in sm.metrics for p in m.data.data_points}
    assert 'agent-"b"\\x' in agents and "agent-a" in agents
    stages = by_name["ace_stage_duration_seconds"]
    assert isinstance(stages.data, Histogram) and stages.unit == "s"
    points = {(p.attributes["agent_id"], p.attributes["stage"]): p for p in stages.data.data_points}
    planning = points[("agent-a", "planning")]
    assert planning.count == 4 and math.isclose(planning.sum, 1.0)
    assert sum(planning.bucket_counts) == 4 and len(planning.bucket_counts) == len(planning.explicit_bounds) + 1
    slow = points[('agent-"b"\\x', "planning")]
    assert (slow.count, slow.sum) == (1, 7.5)
    assert slow.bucket_counts[-1] == 1 or slow.explicit_bounds[-1] >= 7.5
    (error,) = by_name["ace_errors"].data.data_points
    assert error.value == 1 and error.attributes["agent_id"] == "agent-a" and error.attributes["stage"] == "planning"
    assert by_name["ace_errors"].data.is_monotonic


def test_a_failing_or_closed_engine_never_breaks_collection() -> None:
    class Broken:
        closed = False

        def metrics_text(self) -> str:
            raise RuntimeError("boom")

    class Garbage(Broken):
        def metrics_text(self) -> str:
            return 'ace_x{agent="unterminated} 1\n'

    reader = InMemoryMetricReader()
    broken, garbage = AceMetricProducer(Broken()), AceMetricProducer(Garbage())
    register_producer(reader, broken)
    register_producer(reader, garbage)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("app").create_counter("app_requests").add(1)
    data = reader.get_metrics_data()
    names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert names == ["app_requests"]
    assert broken.counts["failed"] == 1 and garbage.counts["failed"] == 1
    provider.shutdown()

    closed = ace.Ace()
    closed.close()
    assert AceMetricProducer(closed).produce().resource_metrics == []


def test_produce_alone_names_ace_and_its_resource(eng: ace.Ace) -> None:
    _busy(eng)
    data = AceMetricProducer(eng, resource=Resource({"service.name": "x"}), start_time_unix_nano=5).produce()
    (rm,) = data.resource_metrics
    assert rm.resource.attributes["service.name"] == "x"
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version) == ("ace", ace.__version__)
    assert all(p.start_time_unix_nano == 5 for m in sm.metrics for p in m.data.data_points)
    assert '"name": "ace' in data.to_json()  # the SDK's own serialisation takes it


def test_bad_arguments_are_typed_errors(eng: ace.Ace) -> None:
    with pytest.raises(TypeError, match="ace.Ace engine"):
        AceMetricProducer(object())
    with pytest.raises(TypeError, match="Resource"):
        AceMetricProducer(eng, resource={"service.name": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start_time_unix_nano"):
        AceMetricProducer(eng, start_time_unix_nano=-1)
    with pytest.raises(TypeError, match="MetricReader"):
        register_producer(object(), AceMetricProducer(eng))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="produce"):
        register_producer(InMemoryMetricReader(), eng)


def test_parser_reads_escapes_infinities_nan_and_exemplars() -> None:
    text = "\n".join(
        [
            "# HELP ace_q A help with a \\\\ backslash and a\\nnewline.",
            "# TYPE ace_q counter",
            "# UNIT ace_q requests",
            'ace_q_total{a="x\\"y",b="back\\\\slash",c="new\\nline",d="} # {",e=""} 7 1700000000.5 # {trace_id="ab"} 1.0',
            "ace_q_total 3",
            "ace_q_created 1700000000.25",
            "# TYPE ace_h histogram",
            'ace_h_bucket{le="0.5"} 2',
            'ace_h_bucket{le="1.0"} 2',
            'ace_h_bucket{le="+Inf"} 5',
            "ace_h_count 5",
            "ace_h_sum 12.5",
            "# TYPE ace_g gauge",
            "ace_g NaN",
            'ace_g{k="v",} -Inf',
            "undeclared_thing 2.5e3",
            "# EOF",
        ]
    )
    fams = _exposition.parse(text)
    q = fams["ace_q"]
    assert (q.type, q.unit, q.help) == ("counter", "requests", "A help with a \\ backslash and a\nnewline.")
    assert q.samples[0].labels == {"a": 'x"y', "b": "back\\slash", "c": "new\nline", "d": "} # {", "e": ""}
    assert q.samples[0].value == 7 and isinstance(q.samples[0].value, int)
    assert math.isnan(fams["ace_g"].samples[0].value) and fams["ace_g"].samples[1].value == -math.inf
    assert fams["undeclared_thing"].samples[0].value == 2500.0
    assert [s.value for s in fams["ace_h"].samples[:3]] == [2, 2, 5]

    class Fixed:
        closed = False

        def metrics_text(self) -> str:
            return text

    (sm,) = AceMetricProducer(Fixed()).produce().resource_metrics[0].scope_metrics
    got = {m.name: m for m in sm.metrics}
    (h,) = got["ace_h"].data.data_points
    assert (list(h.explicit_bounds), list(h.bucket_counts), h.count, h.sum) == ([0.5, 1.0], [2, 0, 3], 5, 12.5)
    labelled, bare = got["ace_q"].data.data_points
    assert bare.start_time_unix_nano == 1_700_000_000_250_000_000 and bare.value == 3
    assert labelled.start_time_unix_nano != bare.start_time_unix_nano and labelled.attributes["d"] == "} # {"
    assert got["ace_q"].unit == "requests"
    assert got["undeclared_thing"].data.data_points[0].value == 2500.0


@pytest.mark.parametrize(
    "line",
    [
        'ace_x{a="1"',
        'ace_x{a="1} 2',
        "ace_x{a=1} 2",
        'ace_x{a="1"}2',
        "ace_x",
        "ace_x one",
        "ace_x 1_000",
        "9ace 1",
        'ace_x{a="\\',
    ],
)
def test_parser_rejects_malformed_lines_with_their_number(line: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        _exposition.parse("# TYPE ace_x gauge\n" + line + "\n")
    assert e.value.field == "text" and e.value.line == 2  # type: ignore[attr-defined]


class _Collector(BaseHTTPRequestHandler):
    bodies: List[Tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Tuple[str, List[Tuple[str, bytes]]]]:
    _Collector.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics", _Collector.bodies
    server.shutdown()
    server.server_close()


def test_otlp_exporter_pushes_ace_families_end_to_end(eng: ace.Ace, collector: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    url, bodies = collector
    _busy(eng)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "billing"}))
    seen = _Seen(eng)
    register_producer(reader, AceMetricProducer(seen))
    assert provider.force_flush(10_000)
    expected = _expected(seen.texts[0])
    provider.shutdown()

    assert bodies and bodies[0][0] == "/v1/metrics"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(bodies[0][1])
    (rm,) = request.resource_metrics
    assert {a.key: a.value.string_value for a in rm.resource.attributes}["service.name"] == "billing"
    (sm,) = [s for s in rm.scope_metrics if s.scope.name == "ace"]
    assert sm.scope.version == ace.__version__
    arrived = {m.name: m for m in sm.metrics}
    sent = {name for name, (_, _, series) in expected.items() if series}
    assert set(arrived) == sent
    for name in sent:
        kind, help_text, series = expected[name]
        m = arrived[name]
        assert m.description == help_text
        if kind == "counter":
            assert m.sum.is_monotonic and m.sum.aggregation_temporality == 2  # CUMULATIVE
            got = {_key({a.key: a.value.string_value for a in p.attributes}): p for p in m.sum.data_points}
            for key, value in series.items():
                p = got[key]
                assert (p.as_int if p.HasField("as_int") else p.as_double) == value, (name, key)
        elif kind == "histogram":
            assert m.histogram.aggregation_temporality == 2
            got = {_key({a.key: a.value.string_value for a in p.attributes}): p for p in m.histogram.data_points}
            for key, (count, total, buckets) in series.items():
                p = got[key]
                assert (p.count, p.sum) == (count, total)
                assert list(p.explicit_bounds) == sorted(b for b in buckets if not math.isinf(b))
                assert sum(p.bucket_counts) == count and not p.HasField("min")
        else:
            assert m.HasField("gauge")
