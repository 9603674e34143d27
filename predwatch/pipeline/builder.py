"""Collects what the stages report at a tick and freezes it into a ``Report``.

>>> builder = ReportBuilder(clock=60.0)
>>> builder.add("predwatch_accuracy_ratio", ("fraud", "v3", "cumulative", "", ""), 0.9, 400)
>>> _ = builder.version("fraud", "v3", "binary")
>>> report = builder.build()
>>> report.select("accuracy")[0].value, report.summary["models"]["fraud"]["v3"]["task"]
(0.9, 'binary')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from predwatch.catalogue import CATALOGUE
from predwatch.report import Alert, Delays, Report, Segment, Value


class ReportBuilder:
    """A report in the making: values by family, the summary's sections, segments, delays."""

    def __init__(
        self,
        clock: float,
        wanted: frozenset[str] | None = None,
        previous: Report | None = None,
        fresh: bool = False,
    ) -> None:
        self.clock = clock
        self._wanted = wanted
        self.previous = previous if previous is not None else Report()
        self.fresh = fresh  # recompute what the stages would otherwise reuse from before
        self._values: dict[str, list[Value]] = {}
        self.join: dict[str, int] = {}
        self.invalid: dict[tuple[str, str], int] = {}
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        self.quality: dict[str, Any] = {}
        self.comparisons: list[dict[str, Any]] = []
        self.segments: list[Segment] = []
        self.delays: dict[str, Delays] = {}
        self.watermarks: dict[int, float] = {}
        self.partitions: dict[int, dict[str, int]] = {}
        self.last_event_time = -math.inf
        self.alerts: tuple[Alert, ...] = ()
        self.transitions: list[dict[str, Any]] = []

    def add(
        self, metric: str, labels: tuple[str, ...], value: float | None, samples: int | None = None
    ) -> None:
        """One value of a catalogued family; undefined (None or NaN) values are left out."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        assert len(labels) == len(CATALOGUE[metric].labels), metric
        self._values.setdefault(metric, []).append(Value(metric, labels, float(value), samples))

    def wants(self, *metrics: str) -> bool:
        """Whether any of these families is needed: all are, unless the report is made only
        for the alert rules (whose families are ``wanted``)."""
        return self._wanted is None or not self._wanted.isdisjoint(metrics)

    @property
    def full(self) -> bool:
        """Whether every figure is wanted (not only those alert rules watch)."""
        return self._wanted is None

    def version(self, model: str, version: str, task: str) -> dict[str, Any]:
        """The summary entry of one model version, created (with its task) when first asked."""
        versions = self.models.setdefault(model, {})
        entry = versions.get(version)
        if entry is None:
            entry = versions[version] = {"task": task}
        return entry

    def build(self) -> Report:
        models = {
            name: dict(sorted(versions.items()))
            for name, versions in self.models.items()
            if versions
        }
        summary = {
            "join": dict(self.join),
            "models": models,
            "quality": self.quality,
            "comparisons": self.comparisons,
            "alerts": self.transitions,
            "partitions": {str(p): counts for p, counts in sorted(self.partitions.items())},
        }
        return Report(
            at=self.clock,
            join=MappingProxyType(dict(self.join)),
            invalid=MappingProxyType(dict(self.invalid)),
            values=MappingProxyType({k: tuple(v) for k, v in self._values.items()}),
            segments=tuple(self.segments),
            delays=MappingProxyType(dict(self.delays)),
            watermarks=MappingProxyType(dict(self.watermarks)),
            last_event_time=self.last_event_time,
            alerts=self.alerts,
            summary=MappingProxyType(summary),
        )


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, str]:
    """A read-only copy of a mapping of strings."""
    return MappingProxyType(dict(mapping))
