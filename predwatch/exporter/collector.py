"""The Prometheus collector: the monitor's latest report, rendered at scrape time.

Every family comes from the catalogue (``predwatch.catalogue``): its name,
type, help and labels. Values come from the report the monitor made at its
last tick, which is immutable, so a scrape takes no lock, computes nothing and
never holds up consumption; what a scrape shows never depends on who scraped
before. Consumer health (lag, readiness, last poll) and the sinks' counts are
read live from the service. Every family is always yielded, with no samples
where there is nothing to report, so the exposition always lists the whole
catalogue (docs/metrics.md).

>>> from prometheus_client import CollectorRegistry
>>> from predwatch.config import Settings
>>> from predwatch.events import Raw
>>> from predwatch.monitor import Monitor
>>> monitor = Monitor(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> registry = CollectorRegistry()
>>> registry.register(ReportCollector(lambda: monitor.report))
>>> _ = monitor.process(0, [Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 1, '
...     b'"prediction": 1}')], [Raw(b'{"prediction_id": "a", "timestamp": 2, "label": 1}')], 2.0)
>>> joined = {"model": "fraud", "version": "unversioned"}
>>> registry.get_sample_value("predwatch_joined_total", joined)  # no report yet
>>> _ = monitor.refresh(now=2.0)
>>> registry.get_sample_value("predwatch_joined_total", joined)
1.0
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from predwatch.catalogue import CATALOGUE, Spec
from predwatch.exporter.health import Health
from predwatch.report import Report
from predwatch.safe_text import label_value

# Families read live from the service rather than from the report.
LIVE = frozenset(
    {
        "predwatch_consumer_lag",
        "predwatch_ready",
        "predwatch_last_poll_timestamp_seconds",
        "predwatch_alert_notifications",
    }
)
Notifications = Callable[[], dict[tuple[str, str], int]]


class ReportCollector(Collector):
    """Yields predwatch's metric families from ``report()``, the monitor's latest report.

    ``health`` (optional) gives consumer lag, readiness and poll time;
    ``notifications`` what each alert sink did.
    """

    def __init__(
        self,
        report: Callable[[], Report],
        health: Health | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        self._report = report
        self._health = health
        self._notifications = notifications

    def collect(self) -> Iterator[Metric]:
        report = self._report()
        for spec in CATALOGUE.values():
            family = _family(spec)
            if spec.metric in LIVE:
                self._live(spec, family)
            elif spec.kind == "histogram":
                _delays(report, family)
            else:
                _values(report, spec, family)
            yield family

    def _live(self, spec: Spec, family: Any) -> None:
        health = self._health
        if spec.metric == "predwatch_alert_notifications":
            counts = self._notifications() if self._notifications else {}
            for (sink, result), count in sorted(counts.items()):
                family.add_metric([sink, result], count)
        elif health is None:
            return
        elif spec.metric == "predwatch_consumer_lag":
            for (topic, partition), records in sorted(health.lags().items()):
                family.add_metric([topic, str(partition)], records)
        elif spec.metric == "predwatch_ready":
            family.add_metric([], 1.0 if health.ready else 0.0)
        elif health.last_poll is not None:
            family.add_metric([], health.last_poll)


def _family(spec: Spec) -> Any:
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(spec.metric, spec.help, labels=labels)
    if spec.kind == "histogram":
        return HistogramMetricFamily(spec.metric, spec.help, labels=labels)
    return GaugeMetricFamily(spec.metric, spec.help, labels=labels)


def _values(report: Report, spec: Spec, family: Any) -> None:
    """The report's values of one family; some families are kept outside ``values``."""
    metric = spec.metric
    if metric == "predwatch_watermark_timestamp_seconds":
        for partition, mark in sorted(report.watermarks.items()):
            family.add_metric([str(partition)], mark)
    elif metric == "predwatch_last_event_timestamp_seconds":
        if math.isfinite(report.last_event_time):
            family.add_metric([], report.last_event_time)
    elif metric == "predwatch_report_timestamp_seconds":
        if math.isfinite(report.at):
            family.add_metric([], report.at)
    elif metric == "predwatch_alerts":
        states = Counter((a.rule, a.state) for a in report.alerts)
        for (rule, state), count in sorted(states.items()):
            if state in ("pending", "firing"):
                family.add_metric([label_value(rule), state], count)
    for row in report.values.get(metric, ()):
        # Label values come from events (versions, tag values, classes, rules): made safe here.
        family.add_metric([label_value(text) for text in row.labels], row.value)


def _delays(report: Report, family: Any) -> None:
    for model, delays in sorted(report.delays.items()):
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*delays.bounds, math.inf], delays.counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric([label_value(model)], buckets, sum_value=delays.total)
