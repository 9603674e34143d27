"""What each rule sees: a summary document (``Monitor.summary()``) and extra figures turned into
observations, one per alert key, with the current value and its number of samples.

>>> from predwatch.alerts.settings import RuleSettings
>>> summary = {"join": {"matched": 90, "unlabelled": 10},
...            "models": {"fraud": {"v3": {"task": "binary",
...                "cumulative": {"count": 400, "accuracy": 0.87}, "windows": {}}}}}
>>> rule = RuleSettings(name="AccuracyLow", metric="accuracy", below=0.9)
>>> [(o.key.model, o.key.version, o.key.window, o.value, o.samples)
...  for o in observe(rule, summary)]
[('fraud', 'v3', 'cumulative', 0.87, 400)]
>>> coverage = RuleSettings(name="CoverageLow", metric="label_coverage", below=0.95)
>>> [(o.value, o.samples) for o in observe(coverage, summary)]
[(0.9, 100)]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from predwatch.alerts.settings import FIGURES, Figure, RuleSettings

Extra = Mapping[str, Any]
"""Figures not in the summary, by name: a number (``seconds_since_last_event``), a mapping of
parts to numbers (``consumer_lag``: ``{partition: lag}``), or ``{model: {version: number}}``
for per-version figures (``concept_drift``)."""


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


def observe(
    rule: RuleSettings, summary: Mapping[str, Any], extra: Extra | None = None
) -> Iterator[Observation]:
    """Every key ``rule`` matches in ``summary`` and ``extra`` with a defined value."""
    figure = FIGURES.get(rule.metric)
    if figure is None:
        return
    extra = extra or {}
    if figure.scope == "window":
        yield from _window_figures(rule, summary.get("models") or {})
    elif figure.scope == "version":
        yield from _version_figures(rule, extra.get(rule.metric) or {})
    elif figure.from_summary:
        yield from _join_figure(rule, summary.get("join") or {})
    else:
        yield from _global_figure(rule, figure, extra.get(rule.metric))


def observe_all(
    rules: list[RuleSettings], summary: Mapping[str, Any], extra: Extra | None = None
) -> dict[AlertKey, Observation]:
    """Observations of every rule, keyed and in rule order."""
    return {o.key: o for rule in rules for o in observe(rule, summary, extra)}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _matches(pattern: str, name: str) -> bool:
    return pattern in ("*", name)


def _observation(key: AlertKey, value: Any, samples: Any) -> Iterator[Observation]:
    number = _number(value)
    if number is not None:
        count = _number(samples)
        yield Observation(key, number, None if samples is None else int(count or 0))


def _models(rule: RuleSettings, models: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for model in sorted(models):
        if _matches(rule.model, model) and isinstance(models[model], Mapping):
            for version in sorted(models[model]):
                if _matches(rule.version, version):
                    yield model, version, models[model][version]


def _window_figures(rule: RuleSettings, models: Mapping[str, Any]) -> Iterator[Observation]:
    for model, version, entry in _models(rule, models):
        for tag, tag_value, scope in _scopes(rule, entry):
            if rule.window == "cumulative":
                data = scope.get("cumulative")
            else:
                data = (scope.get("windows") or {}).get(rule.window)
            if isinstance(data, Mapping):
                key = AlertKey(rule.name, model, version, rule.window, tag, tag_value)
                yield from _observation(key, data.get(rule.metric), data.get("count", 0))


def _scopes(rule: RuleSettings, entry: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """The version as a whole, or the tag values the rule selects."""
    if rule.tags is None:
        yield "", "", entry
        return
    tags = entry.get("tags") or {}
    wanted = dict.fromkeys(tags, "*") if rule.tags == "*" else rule.tags
    for tag, value in wanted.items():
        values = tags.get(tag) or {}
        for name in sorted(values) if value == "*" else [value]:
            if isinstance(values.get(name), Mapping):
                yield tag, name, values[name]


def _version_figures(rule: RuleSettings, values: Any) -> Iterator[Observation]:
    if isinstance(values, Mapping):
        for model, version, value in _models(rule, values):
            yield from _observation(AlertKey(rule.name, model, version), value, None)


def _join_figure(rule: RuleSettings, join: Mapping[str, Any]) -> Iterator[Observation]:
    key = AlertKey(rule.name)
    if rule.metric == "label_coverage":
        # Predictions whose fate is known: matched or expired without a label.
        settled = (_number(join.get("matched")) or 0) + (_number(join.get("unlabelled")) or 0)
        if settled > 0:
            yield from _observation(key, (_number(join.get("matched")) or 0) / settled, settled)
    else:
        yield from _observation(key, join.get(rule.metric), None)


def _global_figure(rule: RuleSettings, figure: Figure, value: Any) -> Iterator[Observation]:
    if not isinstance(value, Mapping):
        yield from _observation(AlertKey(rule.name), value, None)
        return
    part = figure.part or "part"
    wanted = rule.tags.get(part, "*") if isinstance(rule.tags, dict) else "*"
    for name in sorted(value, key=_part_order):
        if _matches(wanted, str(name)):
            key = AlertKey(rule.name, tag=part, tag_value=str(name))
            yield from _observation(key, value[name], None)


def _part_order(name: Any) -> tuple[int, str]:
    """Partitions 0, 1, ..., 10 in numeric order; other names after them."""
    text = str(name)
    return (int(text), "") if text.isdigit() else (1 << 62, text)
