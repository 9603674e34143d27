"""CBPE against realised metrics (scikit-learn) on calibrated synthetic models; ECE against
an independent numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from predwatch.batches import Columns
from predwatch.config import MetricSettings, ModelSettings, WindowSettings
from predwatch.drift.calibration import (
    CalibrationStats,
    ModelCalibration,
    expected_calibration_error,
)
from predwatch.drift.estimate import (
    ExpectedConfusion,
    PerformanceEstimator,
    outcome_columns,
    to_fixed,
)
from predwatch.records import Label, Prediction

BINARY = ModelSettings(task="binary")


def calibrated(seed: int, n: int, a: float = 2.0, b: float = 3.0) -> tuple[np.ndarray, ...]:
    """Scores from Beta(a, b), labels drawn as Bernoulli(score): a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    score = rng.beta(a, b, n)
    actual = rng.random(n) < score
    return score, score >= 0.5, actual


def records(
    score: np.ndarray,
    predicted: np.ndarray,
    actual: np.ndarray,
    version: str = "v1",
    spacing: float = 1.0,
) -> tuple[list[Prediction], list[Label]]:
    predictions = [
        Prediction(
            str(i),
            "m",
            version,
            i * spacing,
            "1" if predicted[i] else "0",
            float(score[i]),
            None,
            {},
            {},
        )
        for i in range(len(score))
    ]
    labels = [
        Label(str(i), i * spacing + 1, "1" if actual[i] else "0", float(actual[i]))
        for i in range(len(score))
    ]
    return predictions, labels


def arriving(predictions: list[Prediction]) -> Columns:
    return outcome_columns(predictions, "1")


def matched(pairs: list[tuple[Prediction, Label]]) -> Columns:
    """Matched pairs as the monitor gives them: with ``actual`` of the positive class."""
    columns = outcome_columns([p for p, _ in pairs], "1")
    columns["actual"] = np.array([label.value == "1" for _, label in pairs], bool)
    return columns


def realised(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(actual, predicted),
        "precision": precision_score(actual, predicted),
        "recall": recall_score(actual, predicted),
        "f1": f1_score(actual, predicted),
    }


@pytest.mark.parametrize(("seed", "a", "b"), [(1, 2.0, 3.0), (2, 0.5, 0.5), (3, 5.0, 1.0)])
def test_cbpe_estimate_is_within_003_of_realised_on_a_calibrated_model(
    seed: int, a: float, b: float
) -> None:
    score, predicted, actual = calibrated(seed, 20_000, a, b)
    estimate = ExpectedConfusion()
    estimate.add(predicted, to_fixed(score))
    truth = realised(predicted, actual)
    for name, value in truth.items():
        assert estimate.metrics()[name] == pytest.approx(value, abs=0.03), name


def test_estimator_windows_compare_estimate_and_realised_like_sklearn() -> None:
    windows = [
        WindowSettings(name="last_5000", events=5000),
        WindowSettings(name="1h", duration=3600.0),
    ]
    estimator = PerformanceEstimator(BINARY, windows)
    score, predicted, actual = calibrated(4, 30_000)
    predictions, labels = records(score, predicted, actual, spacing=0.5)  # 4 hours of traffic
    labelled = np.random.default_rng(4).random(len(score)) >= 0.1
    delay = 1_000  # labels of prediction i arrive with prediction i + delay
    for start in range(0, len(score) + delay, 500):
        clock = predictions[min(start + 499, len(score) - 1)].timestamp
        if arrived := predictions[start : start + 500]:
            estimator.arrived("v1", arriving(arrived), clock)
        ended = range(max(0, start - delay), max(0, min(start + 500 - delay, len(score))))
        estimator.resolved(
            "v1", matched([(predictions[i], labels[i]) for i in ended if labelled[i]])
        )
        estimator.resolved("v1", arriving([predictions[i] for i in ended if not labelled[i]]))
        report = estimator.report(clock)["v1"]
        assert report["windows"]["1h"]["estimated"]["count"] <= 7200
    # The count window's evaluated pairs are the last 5000 labelled ones.
    last = np.flatnonzero(labelled)[-5000:]
    evaluated = report["windows"]["last_5000"]["evaluated"]
    assert evaluated["labelled"] == 5000
    for name, value in realised(predicted[last], actual[last]).items():
        assert evaluated["realised"][name] == pytest.approx(value, abs=1e-12)
        assert evaluated["estimated"][name] == pytest.approx(value, abs=0.03)
    # The time window's evaluated span is the last hour whose predictions all ended.
    span = report["windows"]["1h"]["evaluated"]
    times = np.array([p.timestamp for p in predictions])
    inside = (times >= span["start"]) & (times < span["end"])
    assert inside.sum() == pytest.approx(7200, abs=1)
    assert span["labelled"] == int((inside & labelled).sum())
    for name, value in realised(predicted[inside & labelled], actual[inside & labelled]).items():
        assert span["realised"][name] == pytest.approx(value, abs=1e-12)
        assert span["estimated"][name] == pytest.approx(value, abs=0.03)
    # Nothing is pending any more: the sums are exactly zero, not nearly.
    pending = estimator.versions["v1"].pending
    assert (pending.positive, pending.negative, pending.positive_score, pending.negative_score) == (
        0,
        0,
        0,
        0,
    )


def test_pending_estimate_follows_the_predictions_still_waiting() -> None:
    estimator = PerformanceEstimator(BINARY, [])
    score, predicted, actual = calibrated(5, 10_000)
    predictions, labels = records(score, predicted, actual)
    estimator.arrived("v1", arriving(predictions), clock=10_000.0)
    estimator.resolved("v1", matched(list(zip(predictions[:6000], labels[:6000], strict=True))))
    pending = estimator.report(10_000.0)["v1"]["pending"]
    check = ExpectedConfusion()
    check.add(predicted[6000:], to_fixed(score[6000:]))
    assert pending == check.metrics() and pending["count"] == 4000
    unscored = Prediction("x", "m", "v1", 1.0, "1", None, None, {}, {})
    estimator.arrived("v1", arriving([unscored]), clock=10_000.0)
    assert estimator.report(10_000.0)["v1"]["unscored"] == 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), max_size=200), st.randoms())
def test_adding_and_removing_in_any_order_leaves_exactly_zero(
    rows: list[tuple[bool, float]], rng: object
) -> None:
    estimate = ExpectedConfusion()
    predicted = np.array([r[0] for r in rows], bool)
    score = to_fixed(np.array([r[1] for r in rows], np.float64))
    for start in range(0, len(rows), 7):
        estimate.add(predicted[start : start + 7], score[start : start + 7])
    order = list(range(len(rows)))
    rng.shuffle(order)  # type: ignore[attr-defined]
    for i in order:
        estimate.add(predicted[i : i + 1], score[i : i + 1], sign=-1)
    assert (estimate.positive, estimate.negative) == (0, 0)
    assert (estimate.positive_score, estimate.negative_score) == (0, 0)


def reference_ece(score: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """ECE computed directly: np.digitize on the inner edges, mean score vs positive rate."""
    index = np.digitize(score, np.linspace(0, 1, bins + 1)[1:-1])
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = abs(score[members].mean() - actual[members].mean())
            total += members.sum() / len(score) * gap
    return total


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ece_matches_an_independent_numpy_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = np.r_[rng.random(5000), [0.0, 1.0, 0.5]]
    actual = rng.random(score.size) < score**2  # miscalibrated on purpose
    whole = CalibrationStats()
    whole.update(score, actual)
    assert expected_calibration_error(whole) == pytest.approx(reference_ece(score, actual))
    halves = CalibrationStats()
    for part in (slice(0, 2000), slice(2000, None)):
        piece = CalibrationStats()
        piece.update(score[part], actual[part])
        halves.merge(piece)
    assert expected_calibration_error(halves) == pytest.approx(expected_calibration_error(whole))
    assert sum(row["count"] for row in whole.reliability()) == score.size


def test_model_calibration_per_window_and_small_for_a_calibrated_model() -> None:
    score, predicted, actual = calibrated(6, 20_000)
    predictions, labels = records(score, predicted, actual)
    calibration = ModelCalibration(
        BINARY,
        MetricSettings(
            windows=[
                WindowSettings(name="last_1000", events=1000),
                WindowSettings(name="1h", duration=3600.0),
            ]
        ),
    )
    pairs = list(zip(predictions, labels, strict=True))
    for start in range(0, len(pairs), 1000):
        calibration.add("v1", matched(pairs[start : start + 1000]), clock=float(start + 999))
    report = calibration.report(clock=19_999.0)["v1"]
    assert report["cumulative"]["count"] == 20_000
    assert report["cumulative"]["ece"] < 0.02
    assert report["windows"]["last_1000"]["ece"] == pytest.approx(
        reference_ece(score[-1000:], actual[-1000:])
    )
    in_hour = slice(int(report["windows"]["1h"]["start"]), None)
    assert report["windows"]["1h"]["ece"] == pytest.approx(
        reference_ece(score[in_hour], actual[in_hour])
    )


def test_non_binary_models_are_refused() -> None:
    with pytest.raises(ValueError, match="binary"):
        PerformanceEstimator(ModelSettings(task="regression"), [])
    with pytest.raises(ValueError, match="binary"):
        ModelCalibration(ModelSettings(task="multiclass"), MetricSettings())


def test_reading_the_estimate_changes_nothing_it_reports_later() -> None:
    windows = [WindowSettings(name="10m", duration=600.0)]  # buckets of 50 s
    read, unread = PerformanceEstimator(BINARY, windows), PerformanceEstimator(BINARY, windows)
    early, now, late = (
        Prediction(str(i), "m", "v1", t, "1", 0.8, None, {}, {})
        for i, t in enumerate((1000.0, 2000.0, 1100.0))
    )
    for estimator in (read, unread):
        estimator.arrived("v1", arriving([early, now]), clock=2000.0)
        estimator.resolved("v1", matched([(now, Label("1", 2001.0, "1", 1.0))]))
        estimator.resolved("v1", matched([(early, Label("0", 2002.0, "1", 1.0))]))
    read.report(2000.0)  # everything has ended: the evaluated span could move on to now
    for estimator in (read, unread):  # ... but a prediction from 15 minutes ago arrives
        estimator.arrived("v1", arriving([late]), clock=2000.0)
    assert read.report(2000.0) == unread.report(2000.0)
    evaluated = unread.report(2000.0)["v1"]["windows"]["10m"]["evaluated"]
    # The span waits for the late prediction: it ends before its bucket (1100-1150 s).
    assert (evaluated["start"], evaluated["end"], evaluated["labelled"]) == (500.0, 1100.0, 1)
