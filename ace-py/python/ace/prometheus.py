"""ace's metrics in ``prometheus_client``'s registry, so an app that already serves ``/metrics``
exposes them with no extra listener::

    from prometheus_client import REGISTRY
    from ace.prometheus import AceCollector

    REGISTRY.register(AceCollector(eng))
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["AceCollector"]


class AceCollector(Collector):
    """Collects an engine's metrics (read from ``Ace.metrics_text()`` at each scrape)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        if self.engine.closed:
            return
        yield from text_string_to_metric_families(self.engine.metrics_text())  # type: ignore[no-untyped-call]
