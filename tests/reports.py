"""Reports for unit tests of alert rules, written as compact summaries.

``report_of`` turns the shape of a replay summary (``join`` counts, ``models``
with ``cumulative``/``windows``/``tags`` metrics) and service figures into a
``Report`` through the same builder the monitor uses.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from predwatch.pipeline.builder import ReportBuilder
from predwatch.pipeline.quality import GAUGES
from predwatch.report import Report

JOIN = {
    "orphan_labels": "predwatch_orphan_labels_total",
    "late_labels": "predwatch_late_labels_total",
    "pending_predictions": "predwatch_pending_predictions",
}


def report_of(summary: dict[str, Any], extra: dict[str, Any] | None = None) -> Report:
    """A report holding the summary's metrics and join counts, and ``extra``'s figures:
    ``consumer_lag`` ``{partition: lag}``, ``seconds_since_last_event``, and
    ``concept_drift`` / ``feature_drift`` ``{model: {version: value}}``."""
    builder = ReportBuilder(clock=0.0)
    for model, versions in summary.get("models", {}).items():
        for version, entry in versions.items():
            _scope(builder, model, version, "", "", entry)
            for tag, values in entry.get("tags", {}).items():
                for value, tag_entry in values.items():
                    _scope(builder, model, version, tag, value, tag_entry)
    join = summary.get("join", {})
    matched, unlabelled = join.get("matched", 0), join.get("unlabelled", 0)
    if matched + unlabelled:
        builder.add("predwatch_label_coverage_ratio", (), matched / (matched + unlabelled),
                    matched + unlabelled)  # fmt: skip
    if "invalid" in join:
        builder.add("predwatch_invalid_events_total", ("predictions", "not_json"), join["invalid"])
    for name, metric in JOIN.items():
        if name in join:
            builder.add(metric, (), join[name])
    for name, value in (extra or {}).items():
        if name == "consumer_lag":
            for partition, lag in value.items():
                builder.add("predwatch_consumer_lag", ("predictions", str(partition)), lag)
        elif name == "seconds_since_last_event":
            builder.add("predwatch_seconds_since_last_event", (), value)
        else:
            metric = {
                "concept_drift": "predwatch_concept_drift_recent",
                "feature_drift": "predwatch_feature_drift",
            }[name]
            for model, versions in value.items():
                for version, number in versions.items():
                    builder.add(metric, (model, version), float(number))
    return builder.build()


def _scope(
    builder: ReportBuilder, model: str, version: str, tag: str, value: str, entry: dict[str, Any]
) -> None:
    windows = [("cumulative", entry.get("cumulative")), *entry.get("windows", {}).items()]
    for window, metrics in windows:
        if not metrics:
            continue
        for key, number in metrics.items():
            if key in GAUGES:
                labels = (model, version, window, tag, value)
                builder.add(GAUGES[key], labels, number, metrics.get("count"))


def flat(document: dict[str, Any] | list[Any], prefix: str = "") -> dict[str, Any]:
    """A nested document as ``{dotted.path: value}``, for comparing summaries value by value."""
    out: dict[str, Any] = {}
    items = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in items:
        if isinstance(value, dict | list):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(exposition: str) -> Samples:
    """Every sample of a /metrics text, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def total(samples: Samples, name: str) -> float:
    """The sum of a sample name over all its labels."""
    return sum(v for (n, _), v in samples.items() if n == name)
