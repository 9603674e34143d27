"""The report: what the monitor found at one tick, immutable, read by everyone else.

The monitor computes a report on a cadence of event time (``Monitor.tick``);
the exporter, ``/status``, ``/alerts``, the replay summary and alert
annotations read the latest one. A report is never changed after it is made,
so readers need no lock and never see half a batch.

Figures are rows: the family's name in the catalogue (``predwatch.catalogue``),
the values of its labels in catalogue order, the value, and how many samples
it rests on where that is known.

>>> row = Value("predwatch_accuracy_ratio", ("fraud", "v3", "cumulative", "", ""), 0.93, 812)
>>> report = Report(at=60.0, values={row.metric: (row,)})
>>> [v.value for v in report.select("accuracy", model="fraud", window="cumulative")]
[0.93]
>>> report.select("accuracy", model="credit")
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from predwatch.catalogue import CATALOGUE, FIGURES


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Value:
    """One family's value for one set of labels (in the family's catalogue label order)."""

    metric: str
    labels: tuple[str, ...]
    value: float
    samples: int | None = None

    def label(self, name: str) -> str:
        """The value of label ``name``, "" when the family has no such label."""
        names = CATALOGUE[self.metric].labels
        return self.labels[names.index(name)] if name in names else ""


@dataclass(frozen=True, slots=True)
class Segment:
    """A failing segment as people read it: the rule, its error and the rest's."""

    model: str
    version: str
    rank: int
    id: str
    rule: str
    metric: str  # "error_rate" or "mae"
    value: float
    rest: float
    lift: float
    support: int


@dataclass(frozen=True, slots=True)
class Delays:
    """A model's label-delay histogram: counts per bucket (upper bounds) and the sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert that is pending, firing, or resolved recently."""

    rule: str
    state: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None
    threshold: float
    since: float | None
    starts_at: float | None
    ends_at: float | None
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; times as epoch seconds and, beside them, ISO 8601."""
        document: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        document["labels"], document["annotations"] = dict(self.labels), dict(self.annotations)
        for name in ("since", "starts_at", "ends_at"):
            document[name + "_iso"] = iso(document[name])
        return document


@dataclass(frozen=True)
class Report:
    """Everything the monitor reports at event time ``at``.

    ``join`` holds the outcome counts; ``values`` every figure by family; ``segments``
    the top failing segments per model version; ``alerts`` every alert that is
    not inactive; ``summary`` the JSON document of ``predwatch replay``.
    """

    at: float = -math.inf
    join: Mapping[str, int] = field(default_factory=_empty)
    invalid: Mapping[tuple[str, str], int] = field(default_factory=_empty)
    values: Mapping[str, tuple[Value, ...]] = field(default_factory=_empty)
    segments: tuple[Segment, ...] = ()
    delays: Mapping[str, Delays] = field(default_factory=_empty)
    watermarks: Mapping[int, float] = field(default_factory=_empty)
    last_event_time: float = -math.inf
    alerts: tuple[Alert, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=_empty, compare=False)

    def select(self, figure: str, **labels: str) -> list[Value]:
        """The values of ``figure`` (a figure or family name) whose labels equal those given."""
        spec = FIGURES.get(figure) or CATALOGUE[figure]
        wanted = [(spec.labels.index(k), v) for k, v in labels.items() if k in spec.labels]
        if len(wanted) < len(labels):
            return []
        rows = self.values.get(spec.metric, ())
        return [row for row in rows if all(row.labels[i] == v for i, v in wanted)]

    def alerts_of(self, model: str | None = None) -> list[Alert]:
        """The alerts about ``model`` (every alert when None)."""
        return [a for a in self.alerts if model is None or a.labels.get("model") == model]


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC, for JSON next to the number.

    >>> iso(0.0), iso(None)
    ('1970-01-01T00:00:00Z', None)
    """
    if seconds is None or not math.isfinite(seconds):
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z").replace(".000Z", "Z")
