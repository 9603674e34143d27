"""Metric families of diagnostics: the top failing segments and the version comparisons.

Segments are exported by rank (1..K), so the label set stays bounded however
often the segments change; ``predwatch_segment_info`` carries each rank's
rule and stable id.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

SEGMENT = ["model", "version", "rank"]


def diagnostics_families(figures: dict[str, Any]) -> list[Metric]:
    """Segment and comparison gauges, always yielded."""
    error_ratio = GaugeMetricFamily(
        "predwatch_segment_error_ratio",
        "Error rate of the failing segment at this rank (classification models).",
        labels=SEGMENT,
    )
    absolute_error = GaugeMetricFamily(
        "predwatch_segment_mean_absolute_error",
        "Mean absolute error of the failing segment at this rank (regression models).",
        labels=SEGMENT,
    )
    lift = GaugeMetricFamily(
        "predwatch_segment_lift_ratio",
        "The segment's error divided by the model version's overall error.",
        labels=SEGMENT,
    )
    support = GaugeMetricFamily(
        "predwatch_segment_pairs",
        "Held-out pairs the segment's figures are counted on.",
        labels=SEGMENT,
    )
    info = GaugeMetricFamily(
        "predwatch_segment_info",
        "The rule and stable id of the segment at this rank (value 1).",
        labels=[*SEGMENT, "segment_id", "rule"],
    )
    p_value = GaugeMetricFamily(
        "predwatch_version_comparison_p_value",
        "p-value of the difference between two model versions serving together "
        "(two-proportion z test on accuracy, Welch's t test on absolute errors).",
        labels=["model", "metric", "baseline", "candidate"],
    )
    for model, versions in figures["models"].items():
        for version, entry in versions.items():
            for rank, segment in enumerate(entry.get("segments", []), 1):
                labels = [model, version, str(rank)]
                target = error_ratio if segment["metric"] == "error_rate" else absolute_error
                target.add_metric(labels, segment["value"])
                lift.add_metric(labels, segment["lift"])
                support.add_metric(labels, segment["support"])
                info.add_metric([*labels, segment["id"], segment["rule"]], 1)
    for comparison in figures.get("comparisons", []):
        groups = comparison["groups"]
        if len(groups) == 2 and comparison["p_value"] is not None:
            p_value.add_metric(
                [comparison["model"], comparison["metric"], *groups], comparison["p_value"]
            )
    return [error_ratio, absolute_error, lift, support, info, p_value]
