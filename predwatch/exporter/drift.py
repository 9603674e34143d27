"""Metric families of drift, data quality, performance estimates and calibration.

They are read from the monitor's ``figures()`` at scrape time, like the quality
gauges. Label values are bounded: features come from the reference profile
(plus ``@prediction`` and ``@score``), windows from the config.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

VERSION = ["model", "version"]
WINDOW = ["model", "version", "window"]
FEATURE = ["model", "version", "window", "feature"]
ESTIMATED = ("accuracy", "precision", "recall", "f1")

FEATURE_GAUGES = {  # report key -> (name, help)
    "psi": (
        "predwatch_feature_drift_psi",
        "Population stability index of the window vs the reference.",
    ),
    "js": (
        "predwatch_feature_drift_js_distance",
        "Jensen-Shannon distance (base 2) of the window vs the reference.",
    ),
    "p_adjusted": (
        "predwatch_feature_drift_p_value",
        "Benjamini-Hochberg adjusted p-value "
        "(Kolmogorov-Smirnov for numeric columns, chi-square for categorical).",
    ),
    "drift": (
        "predwatch_feature_drift_detected",
        "1 when the column drifts: enough samples, "
        "PSI past its threshold and an adjusted p-value below alpha; else 0.",
    ),
    "n": ("predwatch_feature_drift_samples", "Values of the column in the window."),
    "unseen": (
        "predwatch_feature_unseen_values",
        "Values of a category the reference never saw, in the window.",
    ),
    "out_of_range": (
        "predwatch_feature_out_of_range_values",
        "Numeric values outside the reference's range, in the window.",
    ),
}


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def drift_families(figures: dict[str, Any]) -> list[Metric]:
    """Every drift, quality, estimate and calibration family, always yielded."""
    features = {key: _gauge(name, doc, FEATURE) for key, (name, doc) in FEATURE_GAUGES.items()}
    concept = CounterMetricFamily(
        "predwatch_concept_drift",
        "Concept drift detections on the error stream.",
        labels=[*VERSION, "detector"],
    )
    last = _gauge(
        "predwatch_concept_drift_last_timestamp_seconds",
        "Event time of the pair where the latest concept drift was detected.",
        VERSION,
    )
    estimated = {
        m: _gauge(
            f"predwatch_estimated_{m}_ratio",
            f"{m.capitalize()} estimated from scores (CBPE) for the predictions "
            'of a window, or those still waiting for labels (window="pending").',
            WINDOW,
        )
        for m in ESTIMATED
    }
    evaluated = {
        m: _gauge(
            f"predwatch_evaluated_{m}_ratio",
            f"{m.capitalize()} of the latest window whose labels have all arrived: "
            "the estimate and the realised value side by side (source).",
            [*WINDOW, "source"],
        )
        for m in ESTIMATED
    }
    calibration = _gauge(
        "predwatch_calibration_error_ratio",
        "Expected calibration error of the score over the window.",
        WINDOW,
    )
    issues = CounterMetricFamily(
        "predwatch_feature_issues",
        "Feature values missing, null, of the wrong type or not finite (the event is still used).",
        labels=["model", "feature", "kind"],
    )

    for model, versions in figures["models"].items():
        for version, entry in versions.items():
            drift = entry.get("drift", {})
            for window, columns in drift.get("data", {}).items():
                for feature, values in columns.items():
                    for key, family in features.items():
                        if values.get(key) is not None:
                            family.add_metric([model, version, window, feature], float(values[key]))
            if "concept" in drift:
                c = drift["concept"]
                concept.add_metric([model, version, c["detector"]], c["count"])
                if c["last_detection_time"] is not None:
                    last.add_metric([model, version], c["last_detection_time"])
            _estimates(entry.get("estimated"), [model, version], estimated, evaluated)
            for window, values in _calibration_windows(entry.get("calibration")):
                if values.get("ece") is not None:
                    calibration.add_metric([model, version, window], values["ece"])
    for model, by_feature in figures.get("quality", {}).items():
        for feature, kinds in by_feature.items():
            for kind, count in kinds.items():
                issues.add_metric([model, feature, kind], count)
    return [
        *features.values(),
        concept,
        last,
        *estimated.values(),
        *evaluated.values(),
        calibration,
        issues,
    ]


def _estimates(
    report: dict[str, Any] | None,
    labels: list[str],
    estimated: dict[str, GaugeMetricFamily],
    evaluated: dict[str, GaugeMetricFamily],
) -> None:
    if report is None:
        return
    windows = [("pending", report["pending"])]
    windows += [(name, w["estimated"]) for name, w in report["windows"].items()]
    for window, metrics in windows:
        for key, family in estimated.items():
            if metrics.get(key) is not None:
                family.add_metric([*labels, window], metrics[key])
    for name, w in report["windows"].items():
        for source in ("estimated", "realised"):
            metrics = w["evaluated"][source]
            for key, family in evaluated.items():
                if metrics.get(key) is not None:
                    family.add_metric([*labels, name, source], metrics[key])


def _calibration_windows(report: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    if report is None:
        return []
    return [("cumulative", report["cumulative"]), *report["windows"].items()]
