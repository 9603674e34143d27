"""The ``/status`` document: the latest report, arranged for a person or a script to read.

``status_document`` is a pure function of a ``Report`` (and the consumer lag the
service knows): it computes nothing the report does not already hold, it only
picks, orders and labels. One entry per model version carries its headline
metric per window, estimated against realised performance, label coverage,
calibration, drift verdicts per feature, failing segments as rules, its alerts
and, when the report has one, the metric history with its control band. Times
are epoch seconds with an ISO 8601 twin (``*_iso``).

>>> from predwatch.report import Report
>>> summary = {"join": {"matched": 90, "unlabelled": 10},
...            "models": {"fraud": {"v3": {"task": "binary",
...                                         "cumulative": {"count": 90, "accuracy": 0.9}}}}}
>>> doc = status_document(Report(at=0.0, summary=summary), {("predictions", 0): 4})
>>> doc["at_iso"], doc["coverage"], doc["lag"]["total"]
('1970-01-01T00:00:00Z', 0.9, 4)
>>> [(m["model"], m["version"], m["metric"], m["cumulative"]["accuracy"]) for m in doc["models"]]
[('fraud', 'v3', 'accuracy', 0.9)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from predwatch.report import Report, iso

HEADLINE = {"regression": ("mae", "lower")}  # task -> metric, which way is better
DEFAULT_HEADLINE = ("accuracy", "higher")
STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}
DRIFT_KEYS = ("psi", "js", "p_adjusted", "n", "unseen", "out_of_range")


def status_document(
    report: Report,
    lags: Mapping[tuple[str, int], int] | None = None,
    evaluated_at: float | None = None,
) -> dict[str, Any]:
    """The JSON-ready status of ``report``; ``lags`` are records behind per (topic, partition);
    ``evaluated_at`` the event time the alerts were last evaluated at (the service evaluates
    them between full reports, so they may be newer than the figures)."""
    summary = report.summary
    join = dict(summary.get("join", {}))
    alerts = sorted(
        (alert.as_dict() for alert in report.alerts),
        key=lambda a: (STATE_ORDER.get(a["state"], 3), a["rule"], sorted(a["labels"].items())),
    )
    partitions = [
        {"topic": topic, "partition": partition, "records": records}
        for (topic, partition), records in sorted((lags or {}).items())
    ]
    models = [
        _version(report, model, version, entry, alerts)
        for model, versions in sorted(summary.get("models", {}).items())
        for version, entry in sorted(versions.items())
    ]
    return finite(
        {
            "at": _finite(report.at),
            "at_iso": iso(report.at),
            "last_event_time": _finite(report.last_event_time),
            "last_event_time_iso": iso(report.last_event_time),
            "join": join,
            "coverage": _coverage(join),
            "invalid": _invalid(report),
            "lag": {"total": sum(p["records"] for p in partitions), "partitions": partitions},
            "firing": sum(a["state"] == "firing" for a in alerts),
            "alerts_evaluated_at": evaluated_at,
            "alerts_evaluated_at_iso": iso(evaluated_at),
            "alerts": alerts,
            "models": models,
            "comparisons": list(summary.get("comparisons", [])),
            "quality": dict(summary.get("quality", {})),
        }
    )


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, which JSON cannot hold.

    >>> finite({"a": [float("nan"), 1.0, float("inf")]})
    {'a': [None, 1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None


def _coverage(join: Mapping[str, int]) -> float | None:
    """Share of the decided predictions that got their label (pending ones are undecided;
    evicted ones never get it).

    >>> _coverage({"matched": 3, "unlabelled": 1}), _coverage({"matched": 3, "evicted": 3})
    (0.75, 0.5)
    >>> _coverage({}) is None
    True
    """
    matched = join.get("matched", 0)
    settled = matched + join.get("unlabelled", 0) + join.get("evicted", 0)
    return matched / settled if settled else None


def _invalid(report: Report) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (topic, reason), count in sorted(report.invalid.items()):
        out.setdefault(topic, {})[reason] = count
    return out


def _version(
    report: Report,
    model: str,
    version: str,
    entry: Mapping[str, Any],
    alerts: list[dict[str, Any]],
) -> dict[str, Any]:
    task = entry.get("task", "")
    metric, better = HEADLINE.get(task, DEFAULT_HEADLINE)
    mine = [
        a
        for a in alerts
        if a["labels"].get("model") == model and a["labels"].get("version") in (None, version)
    ]
    features = _features(entry.get("drift", {}).get("data", {}))
    return {
        "model": model,
        "version": version,
        "task": task,
        "metric": metric,
        "better": better,
        "cumulative": dict(entry.get("cumulative", {})),
        "windows": [_timed({"name": name, **values}) for name, values in _windows(entry)],
        "estimated": _estimated(entry.get("estimated")),
        "calibration": _calibration(entry.get("calibration")),
        "concept": _concept(entry.get("drift", {}).get("concept")),
        "features": features,
        "drifted": sorted({f["feature"] for f in features if f["drift"]}),
        "segments": [
            {
                "rank": s.rank,
                "rule": s.rule,
                "metric": s.metric,
                "value": s.value,
                "rest": s.rest,
                "lift": s.lift,
                "support": s.support,
            }
            for s in report.segments
            if s.model == model and s.version == version
        ],
        "history": _history(entry.get("history")),
        "alerts": mine,
        "firing": sum(a["state"] == "firing" for a in mine),
    }


def _windows(entry: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, dict(values)) for name, values in entry.get("windows", {}).items()]


def _timed(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with an ISO 8601 twin beside each of its epoch times."""
    for name in ("start", "end", "last_detection_time"):
        if name in document:
            document[name + "_iso"] = iso(document[name])
    return document


def _estimated(estimated: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Per window: the estimate for all its predictions and, on the part already labelled,
    estimate against realised, with the window's label coverage."""
    if estimated is None:
        return None
    windows = []
    for name, window in estimated.get("windows", {}).items():
        evaluated = window.get("evaluated", {})
        predicted = window.get("estimated", {}).get("count") or 0
        labelled = evaluated.get("labelled")
        windows.append(
            _timed(
                {
                    "name": name,
                    "start": window.get("start"),
                    "end": window.get("end"),
                    "estimated": dict(window.get("estimated", {})),
                    "evaluated_estimated": dict(evaluated.get("estimated", {})),
                    "realised": dict(evaluated.get("realised", {})),
                    "labelled": labelled,
                    "coverage": labelled / predicted
                    if labelled is not None and predicted
                    else None,
                }
            )
        )
    return {
        "pending": dict(estimated.get("pending", {})),
        "unscored": estimated.get("unscored", 0),
        "windows": windows,
    }


def _calibration(calibration: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    return {
        "cumulative": dict(calibration.get("cumulative", {})),
        "windows": {name: dict(w) for name, w in calibration.get("windows", {}).items()},
    }


def _concept(concept: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if concept is None:
        return None
    document = _timed(dict(concept))
    document["detections"] = [
        {**d, "event_time_iso": iso(d.get("event_time"))} for d in concept.get("detections", [])
    ]
    return document


def _features(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per window and column, drifting ones first."""
    rows = [
        {
            "window": window,
            "feature": feature,
            "drift": bool(values.get("drift")),
            **{key: values.get(key) for key in DRIFT_KEYS},
        }
        for window, columns in data.items()
        for feature, values in columns.items()
    ]
    return sorted(rows, key=lambda r: (not r["drift"], r["feature"], r["window"]))


def _history(history: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The metric history (closed windows, their statistics and control band), times twinned;
    None when the report has none."""
    if not history:
        return None
    metrics = {}
    for name, series in history.get("metrics", {}).items():
        metrics[name] = {
            **series,
            "points": [_timed(dict(point)) for point in series.get("points", [])],
        }
    return {**history, "metrics": metrics}
