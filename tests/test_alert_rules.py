"""Alert rules: the ``alerts:`` settings, ``check_alerts`` sentences, and what rules observe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError
from reports import report_of

from predwatch.alerts.engine import AlertEngine, format_value, render_annotations
from predwatch.alerts.rules import AlertKey, Observation, observe
from predwatch.alerts.settings import AlertSettings, RuleSettings, check_alerts
from predwatch.catalogue import FIGURES
from predwatch.config import Settings

CONFIG = Settings.model_validate(
    {
        "models": {
            "fraud": {"task": "binary"},
            "churn": {"task": "binary"},
            "price": {"task": "regression"},
        },
        "metrics": {"windows": [{"name": "1h", "duration": "1h"}], "tags": ["region"]},
    }
)


def rule(**fields: Any) -> RuleSettings:
    return RuleSettings.model_validate({"name": "R", "metric": "accuracy", "below": 0.9, **fields})


def scope(accuracy: float | None, count: int = 1000) -> dict[str, Any]:
    metrics = {"count": count, "accuracy": accuracy}
    return {"cumulative": metrics, "windows": {"1h": dict(metrics, accuracy=0.5)}}


SUMMARY: dict[str, Any] = {
    "join": {"matched": 300, "unlabelled": 100, "invalid": 7},
    "models": {
        "fraud": {
            "v3": {
                "task": "binary",
                **scope(0.8),
                "tags": {"region": {"eu": scope(0.7, 50), "us": scope(None)}},
            },
            "v4": {"task": "binary", **scope(0.95), "tags": {}},
        },
        "churn": {"v1": {"task": "binary", **scope(0.85)}},
        "price": {
            "v1": {"task": "regression", "cumulative": {"count": 9, "mae": 3.5}, "windows": {}}
        },
    },
}


def test_the_issue_example_parses_with_durations() -> None:
    alerts = AlertSettings.model_validate(
        {
            "rules": [
                {
                    "name": "FraudAccuracyLow",
                    "model": "fraud",
                    "metric": "accuracy",
                    "window": "1h",
                    "below": 0.9,
                    "clear": 0.92,
                    "for": "5m",
                    "min_samples": 500,
                    "severity": "page",
                    "labels": {"team": "risk"},
                    "annotations": {"summary": "Accuracy of {{model}} {{version}} is {{value}}"},
                }
            ]
        }
    )
    fraud = alerts.rules[0]
    assert (fraud.for_, fraud.keep_firing_for, fraud.threshold, fraud.clear_at) == (
        300.0,
        0.0,
        0.9,
        0.92,
    )
    assert alerts.evaluate_every == 15.0 and check_alerts(alerts, CONFIG) == []


@dataclass
class Invalid:
    rule: dict[str, Any]
    message: str  # a fragment of the validation error


INVALID = [
    # No threshold at all, and two thresholds, are both refused.
    Invalid({"name": "X", "metric": "accuracy"}, "rule 'X': give exactly one of 'below'"),
    Invalid({"name": "X", "metric": "accuracy", "below": 1, "above": 2}, "exactly one"),
    # Hysteresis on the wrong side of the threshold could never resolve.
    Invalid(
        {"name": "X", "metric": "accuracy", "below": 0.9, "clear": 0.8},
        "'clear' (0.8) must be at or above 'below' (0.9)",
    ),
    Invalid(
        {"name": "X", "metric": "mae", "above": 5, "clear": 6},
        "'clear' (6) must be at or below 'above' (5)",
    ),
    # Rule labels may not override the labels predwatch sets.
    Invalid(
        {"name": "X", "metric": "accuracy", "below": 1, "labels": {"model": "m"}},
        "'labels' may not set model",
    ),
    # Metrics are split per tag, never per combination of tags.
    Invalid(
        {"name": "X", "metric": "accuracy", "below": 1, "tags": {"a": "1", "b": "2"}},
        "'tags' selects one tag",
    ),
    # A misspelt key is refused, as everywhere in the config.
    Invalid({"name": "X", "metric": "accuracy", "below": 1, "fro": "5m"}, "fro"),
    Invalid({"name": "X", "metric": "accuracy", "below": 1, "for": "5 minutes"}, "not a duration"),
]


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.message[:30])
def test_invalid_rules_are_refused_naming_the_rule(case: Invalid) -> None:
    with pytest.raises(ValidationError, match=case.message.replace("(", r"\(").replace(")", r"\)")):
        AlertSettings.model_validate({"rules": [case.rule]})


def test_rule_names_are_unique_including_builtin_rules() -> None:
    with pytest.raises(ValidationError, match="repeated: NoEvents"):
        AlertSettings.model_validate(
            {
                "rules": [{"name": "NoEvents", "metric": "count", "above": 1}],
                "builtin": {"no_events": True},
            }
        )


def test_builtin_rules_switch_on_with_true_or_parameters() -> None:
    alerts = AlertSettings.model_validate(
        {
            "builtin": {
                "concept_drift": True,
                "label_coverage": {"enabled": True, "below": 0.8, "for": "1h"},
                "consumer_lag": {"enabled": False},
            }
        }
    )
    rules = {r.name: r for r in alerts.all_rules()}
    assert list(rules) == ["ConceptDriftDetected", "LabelCoverageLow"]
    assert rules["LabelCoverageLow"].threshold == 0.8 and rules["LabelCoverageLow"].for_ == 3600
    assert rules["ConceptDriftDetected"].keep_firing_for == 3600  # a detection stays visible
    assert all(r.metric in FIGURES for r in rules.values())


@dataclass
class Problem:
    rule: dict[str, Any]
    sentences: list[str]  # what check_alerts says, exactly


PROBLEMS = [
    # A misspelt metric names the rule and lists the metrics of that model's task.
    Problem(
        {"name": "FraudAccuracyLow", "model": "fraud", "metric": "acuracy", "below": 0.9},
        [
            "alerts.rules[0] (FraudAccuracyLow): unknown metric 'acuracy'; did you mean "
            "'accuracy'? every figure a rule may watch is listed in docs/metrics.md"
        ],
    ),
    # Unknown model and window names are listed against what is configured.
    Problem(
        {"name": "A", "model": "frud", "metric": "accuracy", "window": "1hr", "below": 1},
        [
            "alerts.rules[0] (A): unknown model 'frud'; configured models: fraud, churn, "
            "price (or '*' for every model)",
            "alerts.rules[0] (A): unknown window '1hr'; configured windows: cumulative, 1h",
        ],
    ),
    # A metric of another task.
    Problem(
        {"name": "B", "model": "fraud", "metric": "mae", "above": 1},
        [
            "alerts.rules[0] (B): metric 'mae' is only computed for regression models, "
            "not for model 'fraud'"
        ],
    ),
    # Join figures are global: no model, no window, no tags.
    Problem(
        {
            "name": "C",
            "model": "fraud",
            "metric": "label_coverage",
            "window": "1h",
            "tags": "*",
            "below": 0.5,
        },
        [
            "alerts.rules[0] (C): metric 'label_coverage' is one figure for all models; "
            "remove 'model' and 'version'",
            "alerts.rules[0] (C): metric 'label_coverage' is not kept per window; remove 'window'",
            "alerts.rules[0] (C): metric 'label_coverage' is not split by tag; remove 'tags'",
        ],
    ),
    # Tags must be among metrics.tags; partitions are the parts of consumer lag.
    Problem(
        {"name": "D", "metric": "accuracy", "tags": {"regoin": "eu"}, "below": 1},
        ["alerts.rules[0] (D): unknown tag 'regoin'; split by: region"],
    ),
    Problem({"name": "E", "metric": "consumer_lag", "tags": {"partition": "3"}, "above": 1}, []),
    # A threshold a ratio can never cross: the rule would fire for ever (or never).
    Problem(
        {"name": "F", "metric": "accuracy", "below": 1.5},
        [
            "alerts.rules[0] (F): 'below: 1.5' is outside the values 'accuracy' can take "
            "[0, 1], so the rule could never change state; give a threshold inside that range"
        ],
    ),
    # A misspelt template variable would reach on-call as literal braces.
    Problem(
        {"name": "G", "metric": "accuracy", "below": 0.9, "annotations": {"s": "{{modle}} low"}},
        [
            "alerts.rules[0] (G): annotation 's' names an unknown variable {{modle}}; known: "
            "alertname, clear, direction, last_drift, metric, min_samples, model, rule, "
            "samples, scope, severity, tag, tag_value, threshold, top_segments, value, "
            "version, window"
        ],
    ),
    # Figures beyond the quality metrics: the estimate per window (and "pending"), a
    # feature's drift score picked by feature.
    Problem({"name": "H", "metric": "estimated_accuracy", "window": "pending", "below": 0.8}, []),
    Problem(
        {
            "name": "I",
            "metric": "feature_drift_psi",
            "window": "1h",
            "above": 0.2,
            "tags": {"feature": "amount"},
        },
        [],
    ),
    Problem(
        {"name": "J", "model": "price", "metric": "calibration_error", "above": 0.1},
        [
            "alerts.rules[0] (J): metric 'calibration_error' is only computed for binary "
            "models, not for model 'price'"
        ],
    ),
]


@pytest.mark.parametrize("case", PROBLEMS, ids=lambda c: c.rule["name"])
def test_check_alerts_names_the_rule(case: Problem) -> None:
    alerts = AlertSettings.model_validate({"rules": [case.rule]})
    assert check_alerts(alerts, CONFIG) == case.sentences


@dataclass
class Expansion:
    rule: dict[str, Any]
    keys: list[tuple[str, ...]]  # (model, version, window, tag, tag_value) observed
    extra: dict[str, Any] = field(default_factory=dict)


EXPANSIONS = [
    # "*" expands to every model that has the metric, each version, sorted.
    Expansion(
        {},
        [
            ("churn", "v1", "cumulative", "", ""),
            ("fraud", "v3", "cumulative", "", ""),
            ("fraud", "v4", "cumulative", "", ""),
        ],
    ),
    # A model and a version select one key.
    Expansion({"model": "fraud", "version": "v4", "window": "1h"}, [("fraud", "v4", "1h", "", "")]),
    # tags "*": every tag value separately, none whose value is undefined (us is None).
    Expansion({"model": "fraud", "tags": "*"}, [("fraud", "v3", "cumulative", "region", "eu")]),
    Expansion({"tags": {"region": "eu"}}, [("fraud", "v3", "cumulative", "region", "eu")]),
    # A metric of another task matches only models of that task.
    Expansion(
        {"metric": "mae", "above": 1, "below": None}, [("price", "v1", "cumulative", "", "")]
    ),
    # Join figures: one global key.
    Expansion({"metric": "invalid", "above": 1, "below": None}, [("", "", "", "", "")]),
    # Extra figures: per partition, filtered by the part, and per model version.
    Expansion(
        {"metric": "consumer_lag", "above": 1, "below": None},
        [("", "", "", "partition", "2"), ("", "", "", "partition", "10")],
        {"consumer_lag": {"10": 5, "2": 7}},
    ),
    Expansion(
        {"metric": "consumer_lag", "above": 1, "below": None, "tags": {"partition": "10"}},
        [("", "", "", "partition", "10")],
        {"consumer_lag": {"10": 5, "2": 7}},
    ),
    Expansion(
        {"metric": "concept_drift", "above": 0.5, "below": None, "model": "fraud"},
        [("fraud", "v3", "", "", "")],
        {"concept_drift": {"fraud": {"v3": True}, "churn": {"v1": 0}}},
    ),
    # An extra figure that is not given yields nothing.
    Expansion({"metric": "seconds_since_last_event", "above": 1, "below": None}, []),
]


@pytest.mark.parametrize("case", EXPANSIONS, ids=lambda c: str(c.rule))
def test_observe_expands_to_matching_keys(case: Expansion) -> None:
    observed = list(observe(rule(**case.rule), report_of(SUMMARY, case.extra)))
    assert [tuple(o.key)[1:] for o in observed] == case.keys


def test_observations_carry_the_window_count_and_coverage_its_denominator() -> None:
    (window,) = observe(rule(model="fraud", version="v3", window="1h"), report_of(SUMMARY))
    assert (window.value, window.samples) == (0.5, 1000)
    (coverage,) = observe(rule(metric="label_coverage"), report_of(SUMMARY))
    assert (coverage.value, coverage.samples) == (0.75, 400)
    (invalid,) = observe(rule(metric="invalid", above=1, below=None), report_of(SUMMARY))
    assert invalid.samples is None  # counts need no sample gate
    assert list(observe(rule(metric="label_coverage"), report_of({"join": {"matched": 0}}))) == []


def test_annotations_render_values_thresholds_and_context() -> None:
    fraud = rule(
        model="fraud",
        window="1h",
        clear=0.92,
        annotations={
            "summary": "Accuracy of {{model}} {{version}} ({{window}}) is {{value}} "
            "(< {{threshold}}, clears at {{ clear }})",
            "segments": "worst: {{top_segments}}; {{unknown}} stays",
        },
    )
    key = AlertKey("R", "fraud", "v3", "1h")
    annotations = render_annotations(
        fraud,
        key,
        Observation(key, 0.8873720136518771, 812),
        lambda model, version: {"top_segments": "region=eu"} if version == "v3" else {},
    )
    assert annotations == {
        "summary": "Accuracy of fraud v3 (1h) is 0.8874 (< 0.9, clears at 0.92)",
        "segments": "worst: region=eu; {{unknown}} stays",
    }


def test_default_summary_and_seconds_formatting() -> None:
    idle = rule(metric="seconds_since_last_event", above=600, below=None)
    annotations = render_annotations(idle, AlertKey("R"), Observation(AlertKey("R"), 900.0, None))
    assert annotations == {"summary": "seconds_since_last_event of predwatch is 15m (above 10m)"}
    assert [format_value(v) for v in (1e-5, -0.25, 3.0, 123456.789)] == [
        "1e-05",
        "-0.25",
        "3",
        "123457",
    ]


def test_builtin_annotations_read_well() -> None:
    alerts = AlertSettings.model_validate(
        {"builtin": {"consumer_lag": {"enabled": True, "for": 0, "above": 1000}}}
    )
    engine = AlertEngine(alerts)
    (fired,) = engine.evaluate(report_of({}, {"consumer_lag": {"3": 25000}}), 0.0)
    assert fired.annotations["summary"] == (
        "Consumer lag of partition 3 is 25000 messages (> 1000)"
    )
    assert fired.labels == {"alertname": "ConsumerLagHigh", "partition": "3", "severity": "warning"}
