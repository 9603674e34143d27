"""What each rule sees: the figures of a report turned into observations, one per alert key,
with the current value and its number of samples.

A rule may watch any figure of the catalogue (``predwatch.catalogue.FIGURES``).
Its ``model``, ``version`` and ``window`` pick values; ``tags`` picks tag
values of quality metrics, features of drift figures, partitions of the
consumer lag or metrics of the history's band (``catalogue.PARTS``). Labels a
rule cannot pick (a lag's topic, an invalid event's reason) are summed.

>>> from predwatch.alerts.settings import RuleSettings
>>> from predwatch.pipeline.builder import ReportBuilder
>>> builder = ReportBuilder(clock=0.0)
>>> builder.add("predwatch_accuracy_ratio", ("fraud", "v3", "cumulative", "", ""), 0.87, 400)
>>> builder.add("predwatch_label_coverage_ratio", (), 0.9, 100)
>>> report = builder.build()
>>> rule = RuleSettings(name="AccuracyLow", metric="accuracy", below=0.9)
>>> [(o.key.model, o.key.version, o.key.window, o.value, o.samples)
...  for o in observe(rule, report)]
[('fraud', 'v3', 'cumulative', 0.87, 400)]
>>> coverage = RuleSettings(name="CoverageLow", metric="label_coverage", below=0.95)
>>> [(o.value, o.samples) for o in observe(coverage, report)]
[(0.9, 100)]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from predwatch.alerts.settings import RuleSettings
from predwatch.catalogue import FIGURES, PARTS, Spec
from predwatch.report import Report, Value


class AlertKey(NamedTuple):
    """What one alert is about; fields that do not apply to a figure are ``""``."""

    rule: str
    model: str = ""
    version: str = ""
    window: str = ""
    tag: str = ""
    tag_value: str = ""


@dataclass(frozen=True)
class Observation:
    """The current value of a rule's figure for one key; ``samples`` None means "enough"."""

    key: AlertKey
    value: float
    samples: int | None


def observe(rule: RuleSettings, report: Report) -> Iterator[Observation]:
    """Every key ``rule`` matches in ``report`` with a defined value, in key order."""
    spec = FIGURES.get(rule.metric)
    if spec is None:
        return
    sums: dict[AlertKey, tuple[float, int | None, int]] = {}
    for row in report.values.get(spec.metric, ()):
        key = _key(rule, spec, row)
        if key is None or not math.isfinite(row.value):
            continue
        total, samples, rows = sums.get(key, (0.0, None, 0))
        sums[key] = (total + row.value, row.samples if rows == 0 else None, rows + 1)
    for key in sorted(sums, key=_order):
        total, samples, _ = sums[key]
        yield Observation(key, total, samples)


def observe_all(rules: list[RuleSettings], report: Report) -> dict[AlertKey, Observation]:
    """Observations of every rule, keyed and in rule order."""
    return {o.key: o for rule in rules for o in observe(rule, report)}


def _key(rule: RuleSettings, spec: Spec, row: Value) -> AlertKey | None:
    """The alert key of a row, or None when the rule does not pick it."""
    fields = dict(zip(spec.labels, row.labels, strict=True))
    model, version = fields.get("model", ""), fields.get("version", "")
    if "model" in fields and rule.model not in ("*", model):
        return None
    if "version" in fields and rule.version not in ("*", version):
        return None
    window = ""
    if "window" in fields:
        window = fields["window"]
        if window != rule.window:
            return None
    tag, tag_value = fields.get("tag", ""), fields.get("tag_value", "")
    if "tag" in fields:
        if not _picks(rule, tag, tag_value, whole=""):
            return None
    else:
        for part in PARTS:
            if part in fields:
                tag, tag_value = part, fields[part]
                if not _picks(rule, tag, tag_value, whole=None):
                    return None
    return AlertKey(rule.name, model, version, window, tag, tag_value)


def _picks(rule: RuleSettings, tag: str, value: str, whole: str | None) -> bool:
    """Whether the rule's ``tags`` select this tag value. With no ``tags``, a rule watches the
    version as a whole (``whole``, the tag of unsplit values), or every part when None."""
    if rule.tags is None:
        return whole is None or tag == whole
    if tag == whole:
        return False
    if rule.tags == "*":
        return True
    return tag in rule.tags and rule.tags[tag] in ("*", value)


def _order(key: AlertKey) -> tuple[object, ...]:
    """Keys sorted by name, with partitions 0, 1, ..., 10 in numeric order."""
    value = key.tag_value
    number = int(value) if value.isdigit() else math.inf
    return (key.model, key.version, key.window, key.tag, number, value)
