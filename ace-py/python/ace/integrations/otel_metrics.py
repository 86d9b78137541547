"""ace's metrics to an OTLP backend through the application's own OpenTelemetry SDK: a metric
producer that turns the engine's families (``Ace.metrics_text()``) into OpenTelemetry
``MetricsData``, and ``register_producer``, which adds a producer's metrics to everything a
``MetricReader`` collects::

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from ace.integrations.otel import AceMetricProducer, register_producer

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(metric_readers=[reader])
    register_producer(reader, AceMetricProducer(eng))

The OpenTelemetry specification gives readers a ``MetricProducer`` list; ``opentelemetry-sdk``
(through 1.45) does not implement it yet, so ``register_producer`` wraps the collection
callback the ``MeterProvider`` hands the reader (``MetricReader._collect``) and appends the
producer's scope to what it returns, under the provider's resource. ``AceMetricProducer`` has
the specification's ``produce()``; once the SDK takes ``metric_producers=[...]``, pass it there.

Mapping: a counter becomes a monotonic cumulative ``Sum`` named after the family (without
``_total``), a gauge (or an undeclared family) a ``Gauge``, a histogram a cumulative
``Histogram`` with the same bucket bounds (no min and max: the exposition has none); labels
become attributes, the family's help its description, ``# UNIT`` (or a ``_seconds`` / ``_bytes``
name) its unit; the scope is ``ace`` at the package's version. Other types (summary, info,
stateset) are left out and counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ace import _exposition
from ace._exposition import Family, Sample

__all__ = ["AceMetricProducer", "register_producer"]

_log = logging.getLogger("ace.integrations.otel")

_UNITS = (("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1"))
_Labels = Tuple[Tuple[str, str], ...]


class AceMetricProducer:
    """Produces an ``ace.Ace`` engine's metrics as OpenTelemetry ``MetricsData``, read from
    ``metrics_text()`` at each collection.

    ``resource`` is used only when the reader's own provider reports nothing to merge into
    (default: the provider's resource, else ``Resource.create()``). Cumulative points start at
    ``start_time_unix_nano`` (default: when the producer was made) unless the exposition has a
    ``_created`` sample. ``counts`` says how collections went: ``collections``, ``failed`` (the
    engine refused or the text did not parse; nothing of that collection was produced),
    ``unmapped`` (families of a type OpenTelemetry has no point for, left out).
    ``produce()`` never raises."""

    def __init__(
        self,
        engine: Any,
        *,
        resource: Optional[Resource] = None,
        start_time_unix_nano: Optional[int] = None,
    ) -> None:
        if not callable(getattr(engine, "metrics_text", None)):
            raise TypeError(f"AceMetricProducer takes an ace.Ace engine, not {type(engine).__name__}")
        if resource is not None and not isinstance(resource, Resource):
            raise TypeError(f"resource must be an opentelemetry Resource, not {type(resource).__name__}")
        start = start_time_unix_nano
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
            raise TypeError("start_time_unix_nano must be a non-negative int")
        from ace import __version__

        self.engine = engine
        self.resource = resource
        self.scope = InstrumentationScope("ace", __version__)
        self.start_time_unix_nano = time.time_ns() if start is None else start
        self.counts: Dict[str, int] = {"collections": 0, "failed": 0, "unmapped": 0}
        self._lock = threading.Lock()

    def produce(self, timeout_millis: float = 10_000) -> MetricsData:
        """The engine's metrics now, under ``resource`` (``Resource.create()`` when None), as one
        ``ResourceMetrics`` with one ``ScopeMetrics``; empty when the engine is closed or failed."""
        scope = self.scope_metrics()
        if scope is None:
            return MetricsData(resource_metrics=[])
        if self.resource is None:
            self.resource = Resource.create()  # once: it runs the resource detectors
        rm = ResourceMetrics(resource=self.resource, scope_metrics=[scope], schema_url="")
        return MetricsData(resource_metrics=[rm])

    def scope_metrics(self) -> Optional[ScopeMetrics]:
        """The engine's metrics now as one ``ScopeMetrics``, or None (closed engine, failure)."""
        try:
            if getattr(self.engine, "closed", False):
                return None
            text = self.engine.metrics_text()
            now = time.time_ns()
            metrics: List[Metric] = []
            unmapped = 0
            for family in _exposition.parse(text).values():
                metric = self._metric(family, now)
                if metric is None:
                    unmapped += 1
                elif _has_points(metric):
                    metrics.append(metric)
        except Exception:
            with self._lock:
                self.counts["failed"] += 1
            _log.warning("ace's metrics could not be read for OpenTelemetry; skipped", exc_info=True)
            return None
        with self._lock:
            self.counts["collections"] += 1
            self.counts["unmapped"] += unmapped
        return ScopeMetrics(scope=self.scope, metrics=metrics, schema_url="")

    def _metric(self, family: Family, now: int) -> Optional[Metric]:
        kind = family.type
        if kind == "counter":
            data: Any = Sum(
                data_points=self._numbers(family, now, "_total"),
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
                is_monotonic=True,
            )
        elif kind in ("gauge", "unknown", "untyped"):
            data = Gauge(data_points=self._numbers(family, now, ""))
        elif kind == "histogram":
            data = Histogram(
                data_points=self._histograms(family, now),
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
            )
        else:
            return None
        return Metric(name=family.name, description=family.help or None, unit=_unit(family), data=data)

    def _starts(self, family: Family) -> Dict[_Labels, int]:
        return {
            _key(s.labels): _nanos(s.value)
            for s in family.samples
            if s.name == family.name + "_created" and math.isfinite(s.value) and s.value >= 0
        }

    def _numbers(self, family: Family, now: int, suffix: str) -> List[NumberDataPoint]:
        starts = self._starts(family)
        return [
            NumberDataPoint(
                attributes=dict(s.labels),
                start_time_unix_nano=starts.get(_key(s.labels), self.start_time_unix_nano),
                time_unix_nano=now,
                value=s.value,
            )
            for s in family.samples
            if s.name == family.name + suffix
        ]

    def _histograms(self, family: Family, now: int) -> List[HistogramDataPoint]:
        series: Dict[_Labels, Dict[str, Any]] = {}
        starts = self._starts(family)
        for s in family.samples:
            suffix = s.name[len(family.name) :]
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            one = series.setdefault(_key(labels), {"labels": labels, "buckets": [], "sum": 0.0, "count": None})
            if suffix == "_bucket":
                bound = _exposition.bucket_bound(s.labels)
                if bound is not None and not math.isnan(bound):
                    one["buckets"].append((bound, s.value))
            elif suffix == "_sum":
                one["sum"] = s.value
            elif suffix == "_count":
                one["count"] = s.value
        points = []
        for key, one in series.items():
            bounds, counts = _per_bucket(one["buckets"], one["count"])
            total = one["count"] if one["count"] is not None else sum(counts)
            if not one["buckets"] and one["count"] is None:
                continue  # only a _created sample
            points.append(
                HistogramDataPoint(
                    attributes=one["labels"],
                    start_time_unix_nano=starts.get(key, self.start_time_unix_nano),
                    time_unix_nano=now,
                    count=int(total),
                    sum=one["sum"],
                    bucket_counts=counts,
                    explicit_bounds=bounds,
                    # The exposition has no min or max; None leaves the OTLP fields unset.
                    min=None,  # type: ignore[arg-type]
                    max=None,  # type: ignore[arg-type]
                )
            )
        return points


def _key(labels: Dict[str, str]) -> _Labels:
    return tuple(sorted(labels.items()))


def _nanos(seconds: float) -> int:
    whole = math.floor(seconds)
    return int(whole) * 1_000_000_000 + int(round((seconds - whole) * 1e9))


def _unit(family: Family) -> str:
    if family.unit:
        return family.unit
    for suffix, unit in _UNITS:
        if family.name.endswith(suffix):
            return unit
    return ""


def _has_points(metric: Metric) -> bool:
    return bool(metric.data.data_points)


def _per_bucket(cumulative: List[Tuple[float, Any]], count: Any) -> Tuple[List[float], List[int]]:
    """OpenMetrics' cumulative ``le`` buckets as OpenTelemetry's finite bounds and per-bucket
    counts (one more count than bounds: the last is above the highest bound)."""
    cumulative = sorted(cumulative, key=lambda b: b[0])
    bounds = [b for b, _ in cumulative if not math.isinf(b)]
    counts: List[int] = []
    below = 0
    for bound, seen in cumulative:
        if math.isinf(bound):
            continue
        seen = int(seen)
        counts.append(max(seen - below, 0))
        below = max(below, seen)
    top = [int(seen) for b, seen in cumulative if math.isinf(b) and b > 0]
    everything = top[0] if top else (int(count) if count is not None else below)
    counts.append(max(everything - below, 0))
    return bounds, counts


def register_producer(reader: MetricReader, producer: Any) -> None:
    """Adds ``producer``'s metrics (anything with ``produce(timeout_millis)`` returning
    ``MetricsData``, such as ``AceMetricProducer``) to every collection of ``reader``, before or
    after the reader is given to a ``MeterProvider``. Its scopes join the provider's resource;
    when the provider has nothing to report, the producer's own resource is used. A producer
    that raises is logged and skipped: collection goes on without it."""
    if not isinstance(reader, MetricReader):
        raise TypeError(f"register_producer takes an opentelemetry MetricReader, not {type(reader).__name__}")
    if not callable(getattr(producer, "produce", None)):
        raise TypeError(f"a metric producer has a produce() method; {type(producer).__name__} has none")
    if not hasattr(reader, "_collect") or not callable(getattr(reader, "_set_collect_callback", None)):
        raise TypeError(
            "this opentelemetry-sdk's MetricReader has no collection callback to add a producer to; "
            "if it takes metric_producers=[...], pass the producer there"
        )
    producers: Optional[List[Any]] = reader.__dict__.get("_ace_producers")
    if producers is not None:
        if producer not in producers:
            producers.append(producer)
        return
    producers = [producer]
    reader.__dict__["_ace_producers"] = producers
    set_callback = reader._set_collect_callback

    def set_merging_callback(func: Optional[Callable[..., Any]]) -> None:
        set_callback(None if func is None else _merging(func, producers))

    reader.__dict__["_set_collect_callback"] = set_merging_callback
    current = getattr(reader, "_collect", None)
    if current is not None:
        reader._collect = _merging(current, producers)


def _merging(collect: Callable[..., Any], producers: Sequence[Any]) -> Callable[..., Any]:
    def merged(reader: MetricReader, timeout_millis: float = 10_000) -> Optional[MetricsData]:
        data = collect(reader, timeout_millis=timeout_millis)
        extra: List[ScopeMetrics] = []
        fallback: Optional[Resource] = None
        for producer in producers:
            try:
                produced = producer.produce(timeout_millis=timeout_millis)
                for rm in produced.resource_metrics:
                    extra.extend(rm.scope_metrics)
                    fallback = fallback or rm.resource
            except Exception:
                _log.warning("a metric producer failed; its metrics were skipped", exc_info=True)
        if not extra:
            return data  # type: ignore[no-any-return]
        if data is None or not data.resource_metrics:
            resource = _provider_resource(collect) or fallback or Resource.create()
            alone = ResourceMetrics(resource=resource, scope_metrics=extra, schema_url="")
            return MetricsData(resource_metrics=[alone])
        first, *rest = data.resource_metrics
        joined = ResourceMetrics(
            resource=first.resource, scope_metrics=[*first.scope_metrics, *extra], schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=[joined, *rest])

    return merged


def _provider_resource(collect: Callable[..., Any]) -> Optional[Resource]:
    """The resource of the MeterProvider whose collection ``collect`` is, when it can be seen."""
    config = getattr(getattr(collect, "__self__", None), "_sdk_config", None)
    resource = getattr(config, "resource", None)
    return resource if isinstance(resource, Resource) else None
