"""predwatch's metrics against scikit-learn, an independent implementation, on the same data.

Hypothesis makes the data; scikit-learn computes the expected value from the
raw pairs, never from predwatch's statistics. predwatch reports None where a
metric is undefined; the reference below says None in the same places, from
the data alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from predwatch.config import Settings
from predwatch.events import Decoder, Label, Prediction, Raw
from predwatch.metrics.classification import (
    ClassificationStats,
    binary_metrics,
    multiclass_metrics,
)
from predwatch.metrics.model import ModelMetrics
from predwatch.metrics.regression import RegressionStats, regression_metrics

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------
# scikit-learn references: plain arrays of pairs in, metric dicts out
# ---------------------------------------------------------------------------


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def sk_binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict[str, Any]:
    """Binary metrics, positive class 1; score metrics over the pairs whose score is not NaN."""
    y, pred = np.asarray(y, np.intp), np.asarray(pred, np.intp)
    expected: dict[str, Any] = {"count": int(y.size)}
    if y.size == 0:
        expected.update(accuracy=None, precision=None, recall=None, f1=None)
    else:
        expected["accuracy"] = accuracy_score(y, pred)
        for name, metric in (
            ("precision", precision_score),
            ("recall", recall_score),
            ("f1", f1_score),
        ):
            expected[name] = _nan_to_none(
                metric(y, pred, labels=[0, 1], pos_label=1, zero_division=np.nan)
            )
    expected.update(log_loss=None, brier=None, roc_auc=None)
    if score is not None:
        scored = ~np.isnan(score)
        ys, ss = y[scored], score[scored]
        if ys.size:
            expected["log_loss"] = log_loss(ys, ss, labels=[0, 1])
            expected["brier"] = brier_score_loss(ys, ss, labels=[0, 1])
            if np.unique(ys).size == 2:
                expected["roc_auc"] = roc_auc_score(ys, ss)
    return expected


def sk_multiclass(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, Any]:
    """Accuracy, macro scores over labels in y or pred, log loss of the rows that are not NaN."""
    expected: dict[str, Any] = {"count": len(y)}
    if len(y) == 0:
        expected.update(accuracy=None, macro_precision=None, macro_recall=None, macro_f1=None)
    else:
        expected["accuracy"] = accuracy_score(y, pred)
        for name, metric in (
            ("macro_precision", precision_score),
            ("macro_recall", recall_score),
            ("macro_f1", f1_score),
        ):
            expected[name] = metric(y, pred, average="macro", zero_division=0)
    expected["log_loss"] = None
    if proba is not None:
        known = ~np.isnan(proba).any(axis=1)
        if known.any():
            rows = proba[known] / proba[known].sum(axis=1, keepdims=True)
            expected["log_loss"] = log_loss(
                np.asarray(y)[known], rows, labels=list(range(n_classes))
            )
    return expected


def sk_regression(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, R² (None for fewer than 2 or constant labels), MAPE on labels != 0, bias."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.size == 0:
        return {"count": 0, "mae": None, "rmse": None, "mape": None, "r2": None, "bias": None}
    nonzero = y != 0
    constant = y.size < 2 or bool(np.all(y == y[0]))
    return {
        "count": int(y.size),
        "mae": mean_absolute_error(y, pred),
        "rmse": root_mean_squared_error(y, pred),
        "mape": (
            mean_absolute_percentage_error(y[nonzero], pred[nonzero]) if nonzero.any() else None
        ),
        "r2": None if constant else r2_score(y, pred),
        "bias": float(np.mean(pred - y)),
    }


# Some metrics sit near 0 by cancellation (bias, R² of a poor model); an absolute
# slack proportional to the size of the terms keeps "1e-9 relative" meaningful there.
def _regression_slack(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.size == 0:
        return {}
    error = np.abs(pred - y)
    slack = {"bias": 1e-12 * float(error.mean())}
    deviation = float(((y - y.mean()) ** 2).sum())
    if deviation > 0:
        slack["r2"] = 1e-12 * float((error**2).sum()) / deviation
    return slack


def assert_metrics(
    actual: dict[str, Any],
    expected: dict[str, Any],
    rel: float = 1e-9,
    tolerance: dict[str, float] | None = None,
    where: str = "",
) -> None:
    """Every expected key matches: None for None, else within ``rel`` (or an absolute tolerance)."""
    tolerance = tolerance or {}
    for key, want in expected.items():
        got = actual[key]
        label = f"{where}{key}: predwatch {got!r}, scikit-learn {want!r}"
        if want is None or got is None:
            assert got is None and want is None, label
        elif key in tolerance and key == "roc_auc":
            assert abs(got - want) <= tolerance[key], label
        else:
            assert math.isclose(got, want, rel_tol=rel, abs_tol=tolerance.get(key, 1e-12)), label


# ---------------------------------------------------------------------------
# Binary classification: ClassificationStats + binary_metrics
# ---------------------------------------------------------------------------

scores_01 = st.floats(0.001, 0.999, allow_nan=False)


@st.composite
def binary_data(draw: st.DrawFn, with_missing_scores: bool = False) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 200))
    y = draw(hnp.arrays(np.intp, n, elements=st.integers(0, 1)))
    pred = draw(hnp.arrays(np.intp, n, elements=st.integers(0, 1)))
    score = draw(hnp.arrays(np.float64, n, elements=scores_01))
    if with_missing_scores:
        missing = draw(hnp.arrays(np.bool_, n, elements=st.booleans()))
        score = np.where(missing, np.nan, score)
    return y, pred, score


def _auc_binning_bound(y: np.ndarray, score: np.ndarray) -> float:
    """Largest AUC error the documented binning allows on this data.

    Scores are binned evenly in logit over [-10, 10] in 2048 bins, and a positive and a
    negative in one bin count as half a win; only pairs of *different* scores sharing a
    bin can then be off, each by one half. Hypothesis likes near-equal scores, so generic
    data gets this bound; the realistic distributions below get the fixed 0.005.
    """
    s = np.clip(score, 1e-15, 1 - 1e-15)
    bins = np.clip(np.floor((np.log(s / (1 - s)) + 10.0) * 2048 / 20.0), 0, 2047)
    off = 0
    for b in np.unique(bins):
        here = bins == b
        pos, neg = score[here & (y == 1)], score[here & (y == 0)]
        off += int((pos[:, None] != neg[None, :]).sum())
    pairs = int((y == 1).sum()) * int((y == 0).sum())
    return 0.5 * off / pairs + 1e-12 if pairs else 0.0


def _binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict[str, Any]:
    stats = ClassificationStats()
    stats.update(y, pred, score=score, positive=1)
    return binary_metrics(stats, positive=1)


@FAST
@given(binary_data())
def test_binary_metrics_match_sklearn(data: tuple[np.ndarray, ...]) -> None:
    y, pred, score = data
    assert_metrics(
        _binary(y, pred, score),
        sk_binary(y, pred, score),
        tolerance={"roc_auc": _auc_binning_bound(y, score)},
    )


@FAST
@given(binary_data(with_missing_scores=True))
def test_binary_score_metrics_cover_only_scored_pairs(data: tuple[np.ndarray, ...]) -> None:
    # NaN marks a prediction that carried no score: confusion metrics count it, score metrics not.
    y, pred, score = data
    scored = ~np.isnan(score)
    assert_metrics(
        _binary(y, pred, score),
        sk_binary(y, pred, score),
        tolerance={"roc_auc": _auc_binning_bound(y[scored], score[scored])},
    )


@dataclass
class BinaryCase:
    y: list[int]
    pred: list[int]
    score: list[float] | None = None


BINARY_EDGE_CASES = [
    # No positives at all: recall and F1 undefined, precision too since nothing predicted 1.
    BinaryCase([0, 0, 0], [0, 0, 0], [0.1, 0.2, 0.3]),
    # Positives never predicted: precision undefined (None), recall 0, F1 0.
    BinaryCase([1, 1, 0], [0, 0, 0], [0.4, 0.3, 0.2]),
    # Only positives: ROC AUC undefined with one class, log loss and Brier still defined.
    BinaryCase([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8]),
    # No scores at all: every score metric is None.
    BinaryCase([1, 0, 1, 0], [1, 1, 0, 0], None),
]


@pytest.mark.parametrize("case", BINARY_EDGE_CASES)
def test_binary_edge_cases(case: BinaryCase) -> None:
    y, pred = np.array(case.y, np.intp), np.array(case.pred, np.intp)
    score = None if case.score is None else np.array(case.score, np.float64)
    assert_metrics(_binary(y, pred, score), sk_binary(y, pred, score), tolerance={"roc_auc": 0.005})


def test_binary_metrics_of_no_pairs_are_none() -> None:
    m = binary_metrics(ClassificationStats(), positive=1)
    assert m["count"] == 0
    assert all(
        m[k] is None
        for k in ("accuracy", "precision", "recall", "f1", "log_loss", "brier", "roc_auc")
    )


# --- ROC AUC from logit-binned histograms -----------------------------------


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class AucCase:
    name: str
    scores: Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, labels) -> scores
    positive_rate: float = 0.4
    tolerance: float = 0.005


AUC_CASES = [
    # Uniform scores unrelated to the label: AUC near 0.5, bins fine near the middle.
    AucCase("uniform_noise", lambda rng, y: rng.random(y.size)),
    # Uniform scores, label drawn with that probability: a calibrated, middling model.
    AucCase("uniform_calibrated", lambda rng, y: rng.random(y.size)),
    # Beta-distributed scores, positives skewed high: a typical decent model.
    AucCase(
        "beta", lambda rng, y: np.where(y == 1, rng.beta(5, 2, y.size), rng.beta(2, 5, y.size))
    ),
    # U-shaped beta scores piled up near 0 and 1.
    AucCase(
        "beta_u_shaped",
        lambda rng, y: np.where(y == 1, rng.beta(0.5, 0.1, y.size), rng.beta(0.1, 0.5, y.size)),
    ),
    # A confident classifier: logits around ±6, most scores within 0.01 of 0 or 1.
    AucCase(
        "confident",
        lambda rng, y: _logistic(
            np.where(y == 1, rng.normal(6, 3, y.size), rng.normal(-6, 3, y.size))
        ),
    ),
    # A fraud-style model on rare positives: calibrated scores mostly below 1e-4, and the
    # positives it misses sit in that tail too (scores ~1e-5 .. 1e-7 ranked among negatives).
    AucCase(
        "fraud_tail",
        lambda rng, y: _logistic(
            np.where(y == 1, rng.normal(-5, 4, y.size), rng.normal(-12, 3, y.size))
        ),
        positive_rate=0.1,
    ),
]


@pytest.mark.parametrize("case", AUC_CASES, ids=lambda c: c.name)
@FEW
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(200, 2000))
def test_roc_auc_close_to_sklearn(case: AucCase, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < case.positive_rate).astype(np.intp)
    if case.name == "uniform_calibrated":
        score = rng.random(n)
        y = (rng.random(n) < score).astype(np.intp)
    else:
        score = case.scores(rng, y)
    score = np.clip(score, 0.0, 1.0)
    got = _binary(y, y, score)["roc_auc"]
    if np.unique(y).size < 2:
        assert got is None
        return
    want = roc_auc_score(y, score)
    assert got is not None and abs(got - want) <= case.tolerance, (got, want)


@dataclass
class TieCase:
    values: list[float]  # the only scores that occur; every pair shares its score with many
    positive_rate: float


TIE_CASES = [
    # A score rounded to one decimal: nine distinct values, heavy ties everywhere.
    TieCase([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], 0.5),
    # A hard 0/1 scorer: two values, the exact extremes (clipped into the end bins).
    TieCase([0.0, 1.0], 0.3),
    # Scores close together near 0 and near 1 (still in distinct logit bins).
    TieCase([0.001, 0.002, 0.005, 0.5, 0.995, 0.998, 0.999], 0.2),
    # Everything tied on one value: AUC exactly 0.5.
    TieCase([0.37], 0.5),
]


@pytest.mark.parametrize("case", TIE_CASES)
@FEW
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 1000))
def test_roc_auc_of_tied_scores_is_exact(case: TieCase, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.array(case.values)
    index = rng.integers(0, values.size, n)
    # Labels depend on the score so the exact AUC is far from 0.5 (except with one value).
    y = (rng.random(n) < (0.2 + 0.6 * index / max(1, values.size - 1))).astype(np.intp)
    assume(np.unique(y).size == 2)
    score = values[index]
    got = _binary(y, y, score)["roc_auc"]
    assert got is not None
    assert math.isclose(got, roc_auc_score(y, score), rel_tol=1e-12, abs_tol=1e-12)


# ---------------------------------------------------------------------------
# Multiclass: ClassificationStats + multiclass_metrics
# ---------------------------------------------------------------------------


@st.composite
def multiclass_data(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 150))
    # Labels may use only some of the k classes, so unseen classes must be left out.
    y = draw(hnp.arrays(np.intp, n, elements=st.integers(0, k - 1)))
    pred = draw(hnp.arrays(np.intp, n, elements=st.integers(0, k - 1)))
    weights = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.01, 1.0)))
    return y, pred, weights, k


@FAST
@given(multiclass_data())
def test_multiclass_metrics_match_sklearn(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    y, pred, weights, k = data
    rows = weights / weights.sum(axis=1, keepdims=True)
    stats = ClassificationStats()
    stats.update(y, pred, true_probability=rows[np.arange(y.size), y])
    assert_metrics(multiclass_metrics(stats), sk_multiclass(y, pred, weights, k))


def test_multiclass_macro_average_skips_classes_never_seen() -> None:
    # Class 1 appears nowhere in this batch; a macro average over 3 classes would be wrong.
    stats = ClassificationStats()
    stats.update(np.array([0, 0, 1]), np.array([0, 1, 1]))  # grows the matrix to 3x3 later
    stats.update(np.array([2, 2]), np.array([2, 0]))
    y, pred = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0])
    assert_metrics(multiclass_metrics(stats), sk_multiclass(y, pred, None, 3))
    only_two = ClassificationStats()
    only_two.update(np.array([0, 2, 2]), np.array([2, 2, 0]))
    assert_metrics(
        multiclass_metrics(only_two),
        sk_multiclass(np.array([0, 2, 2]), np.array([2, 2, 0]), None, 3),
    )


# ---------------------------------------------------------------------------
# Regression: RegressionStats + regression_metrics
# ---------------------------------------------------------------------------

# scikit-learn's MAPE divides by max(|label|, 2.2e-16); labels far above that keep the two
# definitions equal (predwatch divides by |label|, leaving out labels equal to 0).
reals = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-6)


@st.composite
def regression_data(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 200))
    y = draw(hnp.arrays(np.float64, n, elements=reals | st.just(0.0)))
    pred = draw(hnp.arrays(np.float64, n, elements=reals))
    # Labels equal but for their last few bits make R² ill-conditioned for any implementation,
    # so such draws get one label moved by 1; exactly constant labels are the edge cases of
    # test_regression_edge_cases.
    if np.ptp(y) <= 1e-6 * max(1.0, float(np.abs(y).max())):
        y[0] += 1.0
    return y, pred


def _regression(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    stats = RegressionStats()
    stats.update(y, pred)
    return regression_metrics(stats)


@FAST
@given(regression_data())
def test_regression_metrics_match_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, pred = data
    assert_metrics(
        _regression(y, pred), sk_regression(y, pred), tolerance=_regression_slack(y, pred)
    )


@dataclass
class OffsetCase:
    offset: float
    spread: float  # standard deviation of the labels around the offset


OFFSET_CASES = [
    # Labels 1e6 + N(0, 1): a sum of squares minus n·mean² would lose ~12 of 16 digits.
    OffsetCase(1e6, 1.0),
    # Negative offset, same magnitude.
    OffsetCase(-1e6, 1.0),
    # Labels 1e6 + N(0, 0.001) (e.g. a sensor reading): spread/offset = 1e-9.
    OffsetCase(1e6, 1e-3),
    # Labels 1e8 + N(0, 1) (e.g. epoch-millisecond-scale targets): spread/offset = 1e-8.
    OffsetCase(1e8, 1.0),
]


@pytest.mark.parametrize("case", OFFSET_CASES, ids=lambda c: f"{c.offset:g}+N(0,{c.spread:g})")
@FEW
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 500), batches=st.integers(1, 8))
def test_r2_exact_for_large_labels_with_small_spread(
    case: OffsetCase, seed: int, n: int, batches: int
) -> None:
    # scikit-learn's two-pass formula is exact to ~1e-14 here (checked against fractions),
    # so merged batches must agree with it to 1e-9 as well.
    rng = np.random.default_rng(seed)
    y = case.offset + rng.normal(0, case.spread, n)
    pred = y + rng.normal(0, case.spread / 2, n)
    stats = RegressionStats()
    for chunk_y, chunk_p in zip(
        np.array_split(y, batches), np.array_split(pred, batches), strict=True
    ):
        stats.update(chunk_y, chunk_p)
    assert_metrics(
        regression_metrics(stats), sk_regression(y, pred), tolerance=_regression_slack(y, pred)
    )


@dataclass
class RegressionCase:
    y: list[float]
    pred: list[float]


REGRESSION_EDGE_CASES = [
    # Constant labels: R² undefined (None), where scikit-learn would force 0 or 1.
    RegressionCase([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]),
    # Constant labels whose float mean is not the label itself (0.1 * 3 / 3 != 0.1):
    # R² must still be None, not 1 - SSE / (rounding residue) ~ -5e33.
    RegressionCase([0.1, 0.1, 0.1], [1.1, 1.1, 1.1]),
    # The same with another value and count.
    RegressionCase([3.3] * 7, [4.3] * 7),
    # Every label 0: MAPE undefined (None), the others defined.
    RegressionCase([0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.5, 0.0]),
    # Some labels 0: MAPE over the others only, by design.
    RegressionCase([0.0, 4.0, -2.0, 0.0], [3.0, 5.0, -1.0, -7.0]),
    # One pair: R² undefined.
    RegressionCase([5.0], [4.0]),
]


@pytest.mark.parametrize("case", REGRESSION_EDGE_CASES)
def test_regression_edge_cases(case: RegressionCase) -> None:
    y, pred = np.array(case.y), np.array(case.pred)
    expected = sk_regression(y, pred)
    assert_metrics(_regression(y, pred), expected, tolerance=_regression_slack(y, pred))
    split = RegressionStats()  # the same pairs in two batches
    split.update(y[:1], pred[:1])
    split.update(y[1:], pred[1:])
    assert_metrics(regression_metrics(split), expected, tolerance=_regression_slack(y, pred))


# ---------------------------------------------------------------------------
# Mergeability: batch splits and separately built statistics
# ---------------------------------------------------------------------------


@dataclass
class MergeCase:
    name: str
    data: st.SearchStrategy[Any]
    new: Callable[[], Any]
    update: Callable[[Any, Any, slice], None]  # (stats, data, rows): add those rows
    report: Callable[[Any], dict[str, Any]]
    slack: Callable[[Any], dict[str, float]] = field(default=lambda data: {})


def _update_binary(stats: ClassificationStats, data: Any, rows: slice) -> None:
    y, pred, score = data
    stats.update(y[rows], pred[rows], score=score[rows], positive=1)


def _update_multiclass(stats: ClassificationStats, data: Any, rows: slice) -> None:
    y, pred, weights, _ = data
    true_probability = (weights / weights.sum(axis=1, keepdims=True))[np.arange(y.size), y]
    stats.update(y[rows], pred[rows], true_probability=true_probability[rows])


def _update_regression(stats: RegressionStats, data: Any, rows: slice) -> None:
    stats.update(data[0][rows], data[1][rows])


MERGE_CASES = [
    # Binary confusion, score sums and AUC histograms add up exactly.
    MergeCase(
        "binary",
        binary_data(with_missing_scores=True),
        ClassificationStats,
        _update_binary,
        lambda s: binary_metrics(s, positive=1),
    ),
    # Multiclass confusion matrices of different sizes merge (batches see different classes).
    MergeCase(
        "multiclass", multiclass_data(), ClassificationStats, _update_multiclass, multiclass_metrics
    ),
    # Regression sums and Chan's merge of label moments.
    MergeCase(
        "regression",
        regression_data(),
        RegressionStats,
        _update_regression,
        regression_metrics,
        lambda d: _regression_slack(d[0], d[1]),
    ),
]


@pytest.mark.parametrize("case", MERGE_CASES, ids=lambda c: c.name)
@FAST
@given(data=st.data())
def test_split_updates_and_merges_equal_one_update(case: MergeCase, data: st.DataObject) -> None:
    values = data.draw(case.data)
    n = len(values[0])
    whole = case.new()
    case.update(whole, values, slice(0, n))
    expected = case.report(whole)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    parts = [slice(a, b) for a, b in zip([0, *cuts], [*cuts, n], strict=True)]

    incremental = case.new()  # one object updated batch by batch
    for rows in parts:
        case.update(incremental, values, rows)
    built = []
    for rows in parts:
        stats = case.new()
        case.update(stats, values, rows)
        built.append(stats)
    merged = case.new()  # separately built statistics, merged in any order
    for i in data.draw(st.permutations(range(len(built)))):
        merged.merge(built[i])
    into_first = built[0]  # merging into a non-empty one, e.g. another instance's
    for other in built[1:]:
        into_first.merge(other)

    slack = case.slack(values)
    for name, stats in (
        ("incremental", incremental),
        ("merged", merged),
        ("into_first", into_first),
    ):
        assert_metrics(case.report(stats), expected, rel=1e-9, tolerance=slack, where=f"{name} ")
        if name != "regression" and "roc_auc" in expected:
            # Histograms add exactly, so AUC is identical, not merely close.
            assert case.report(stats)["roc_auc"] == expected["roc_auc"]


def test_classification_update_in_batches_grows_the_matrix() -> None:
    # A later batch with a higher class index grows the matrix and keeps earlier counts.
    y = np.array([0, 1, 1, 3, 3, 2, 0])
    pred = np.array([0, 1, 0, 3, 2, 2, 3])
    stats = ClassificationStats()
    stats.update(y[:3], pred[:3])
    stats.update(y[3:], pred[3:])
    assert_metrics(multiclass_metrics(stats), sk_multiclass(y, pred, None, 4))


# ---------------------------------------------------------------------------
# ModelMetrics end to end: decoded records, versions, tags, windows, clock
# ---------------------------------------------------------------------------

COUNT_WINDOW = 7
DURATION = 120.0
MAX_TAG_VALUES = 3
REGIONS = ["eu", "us", "ap", "sa", "af"]  # more than MAX_TAG_VALUES: the rest become "other"
DEVICES = ["ios", "web"]

# Spellings of one class on the wire: the canonical class is what scikit-learn sees.
SPELLINGS: dict[Any, list[Any]] = {
    1: [1, "1", True, 1.0],
    0: [0, "0", False, 0.0],
    2: [2, "2", 2.0],
    "cat": ["cat"],
    "dog": ["dog"],
}
MULTI_CLASSES = [0, 1, 2, "cat", "dog"]


@dataclass
class Pair:
    """One matched pair as the reference keeps it: canonical values and the raw messages."""

    version: str
    timestamp: float
    region: str | None
    device: str | None
    actual: Any
    predicted: Any
    score: float | None = None
    proba: np.ndarray | None = None  # over MULTI_CLASSES, unnormalised


def _make_pairs(task: str, rng: np.random.Generator, n: int) -> list[Pair]:
    pairs = []
    base = rng.uniform(1000, 1300)  # epoch seconds: negative times are invalid
    for i in range(n):
        # Event time mostly rises, with some out-of-order pairs up to 200 s older.
        timestamp = float(round(base + 3.0 * i - rng.exponential(20) * (rng.random() < 0.3), 3))
        region = None if rng.random() < 0.15 else str(rng.choice(REGIONS))
        device = None if rng.random() < 0.3 else str(rng.choice(DEVICES))
        version = str(rng.choice(["v1", "v2", "v3"], p=[0.5, 0.35, 0.15]))
        pair = Pair(version, timestamp, region, device, None, None)
        if task == "binary":
            pair.actual = int(rng.random() < 0.4)
            pair.score = float(
                np.clip(rng.beta(2 + 3 * pair.actual, 5 - 3 * pair.actual), 0.001, 0.999)
            )
            pair.predicted = int(pair.score > 0.5) if rng.random() < 0.9 else 1 - pair.actual
            if rng.random() < 0.1:
                pair.score = None
        elif task == "multiclass":
            pair.actual = MULTI_CLASSES[int(rng.integers(0, len(MULTI_CLASSES)))]
            good = rng.random() < 0.6
            pair.predicted = (
                pair.actual if good else MULTI_CLASSES[int(rng.integers(0, len(MULTI_CLASSES)))]
            )
            if rng.random() < 0.9:
                pair.proba = rng.uniform(0.05, 1.0, len(MULTI_CLASSES))
        else:
            pair.actual = 0.0 if rng.random() < 0.1 else float(rng.normal(50, 20))
            pair.predicted = pair.actual + float(rng.normal(2, 5))
        pairs.append(pair)
    return pairs


def _spell(rng: np.random.Generator, value: Any) -> Any:
    options = SPELLINGS[value]
    return options[int(rng.integers(0, len(options)))]


def _raw_messages(task: str, rng: np.random.Generator, index: int, pair: Pair) -> tuple[Raw, Raw]:
    tags = {k: v for k, v in (("region", pair.region), ("device", pair.device)) if v is not None}
    message: dict[str, Any] = {
        "prediction_id": f"p{index}",
        "model": "m",
        "model_version": pair.version,
        "timestamp": pair.timestamp,
        "tags": tags,
    }
    if task == "regression":
        message["prediction"] = pair.predicted
        label: Any = int(pair.actual) if pair.actual == 0 else pair.actual
    else:
        message["prediction"] = _spell(rng, pair.predicted)
        label = _spell(rng, pair.actual)
    if pair.score is not None:
        message["score"] = pair.score
    if pair.proba is not None:
        message["probabilities"] = {
            str(c): float(p) for c, p in zip(MULTI_CLASSES, pair.proba, strict=True)
        }
    return Raw(json.dumps(message)), Raw(
        json.dumps(
            {"prediction_id": f"p{index}", "timestamp": pair.timestamp + 60.0, "label": label}
        )
    )


def _reference(task: str, pairs: list[Pair]) -> dict[str, Any]:
    if not pairs:
        return (
            sk_regression(np.array([]), np.array([]))
            if task == "regression"
            else (
                sk_binary(np.array([]), np.array([]), None)
                if task == "binary"
                else sk_multiclass([], [], None, len(MULTI_CLASSES))
            )
        )
    if task == "regression":
        return sk_regression(
            np.array([p.actual for p in pairs]), np.array([p.predicted for p in pairs])
        )
    if task == "binary":
        scores = None
        if any(p.score is not None for p in pairs):
            scores = np.array([np.nan if p.score is None else p.score for p in pairs])
        return sk_binary(
            np.array([p.actual for p in pairs]), np.array([p.predicted for p in pairs]), scores
        )
    index = {c: i for i, c in enumerate(MULTI_CLASSES)}
    proba = None
    if any(p.proba is not None for p in pairs):
        proba = np.array(
            [np.full(len(MULTI_CLASSES), np.nan) if p.proba is None else p.proba for p in pairs]
        )
    return sk_multiclass(
        [index[p.actual] for p in pairs],
        [index[p.predicted] for p in pairs],
        proba,
        len(MULTI_CLASSES),
    )


def _slack(task: str, pairs: list[Pair]) -> dict[str, float]:
    tolerance: dict[str, float] = {}
    scored = [p for p in pairs if p.score is not None]
    if task == "binary" and scored:
        # A few dozen pairs per scope: one near-tie in a bin already moves AUC by > 0.005.
        tolerance["roc_auc"] = _auc_binning_bound(
            np.array([p.actual for p in scored]), np.array([p.score for p in scored])
        )
    if task == "regression" and pairs:
        tolerance.update(
            _regression_slack(
                np.array([p.actual for p in pairs]), np.array([p.predicted for p in pairs])
            )
        )
    return tolerance


def _check_scope(
    task: str, entry: dict[str, Any], pairs: list[Pair], clock: float, where: str
) -> None:
    """Cumulative, count window and time window of one scope against scikit-learn."""
    assert_metrics(
        entry["cumulative"],
        _reference(task, pairs),
        tolerance=_slack(task, pairs),
        where=f"{where} cumulative ",
    )
    last = pairs[-COUNT_WINDOW:]
    assert_metrics(
        entry["windows"]["last"],
        _reference(task, last),
        tolerance=_slack(task, last),
        where=f"{where} last ",
    )
    window = entry["windows"]["recent"]
    start, end = window["start"], window["end"]
    # The window spans `duration`, ends after the clock and starts within one step of it.
    assert math.isclose(end - start, DURATION)
    assert clock - DURATION < start <= clock - DURATION * 11 / 12 + 1e-9
    inside = [p for p in pairs if start <= p.timestamp < end]
    assert_metrics(
        window,
        _reference(task, inside),
        tolerance=_slack(task, inside),
        where=f"{where} recent [{start}, {end}) ",
    )


@dataclass
class EndToEndCase:
    task: str
    positive_label: Any = 1


END_TO_END_CASES = [
    # Binary with 1/"1"/True/1.0 and 0/"0"/False/0.0 spellings of the two classes.
    EndToEndCase("binary"),
    # Binary whose positive class is configured as True: still the class spelled 1 or "1".
    EndToEndCase("binary", positive_label=True),
    # Multiclass with mixed spellings (2/"2"/2.0) and probabilities on some predictions.
    EndToEndCase("multiclass"),
    # Regression, with some labels 0 (left out of MAPE).
    EndToEndCase("regression"),
]


@pytest.mark.parametrize("case", END_TO_END_CASES, ids=lambda c: f"{c.task}-{c.positive_label}")
@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 90),
    batches=st.integers(1, 6),
    idle=st.sampled_from([0.0, 0.0, 25.0, 500.0]),
)
def test_model_metrics_report_matches_sklearn(
    case: EndToEndCase, seed: int, n: int, batches: int, idle: float
) -> None:
    rng = np.random.default_rng(seed)
    config = Settings.model_validate(
        {
            "models": {"m": {"task": case.task, "positive_label": case.positive_label}},
            "metrics": {
                "windows": [
                    {"name": "last", "events": COUNT_WINDOW},
                    {"name": "recent", "duration": DURATION},
                ],
                "tags": ["region", "device"],
                "max_tag_values": MAX_TAG_VALUES,
            },
        }
    )
    decoder = Decoder(config)
    metrics = ModelMetrics(config.models["m"], config.metrics)
    pairs = _make_pairs(case.task, rng, n)

    clock = -math.inf
    cuts = sorted(rng.integers(0, n + 1, batches - 1).tolist())
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        raws = [_raw_messages(case.task, rng, i, pairs[i]) for i in range(a, b)]
        predictions, bad_p = decoder.predictions([p for p, _ in raws])
        labels, bad_l = decoder.labels([label for _, label in raws])
        assert not bad_p and not bad_l
        if not predictions:
            continue
        # The monitor's clock: the largest prediction time seen so far.
        clock = max(clock, *(p.timestamp for p in predictions))
        matched: list[tuple[Prediction, Label]] = list(zip(predictions, labels, strict=True))
        metrics.update(matched, clock)

    report_clock = clock + idle
    report = metrics.report(report_clock)

    # Reference tag values: the first MAX_TAG_VALUES distinct values in arrival order.
    seen: dict[str, list[str]] = {"region": [], "device": []}

    def tag_value(tag: str, value: str | None) -> str:
        if value is None:
            return "missing"
        if value not in seen[tag] and len(seen[tag]) < MAX_TAG_VALUES:
            seen[tag].append(value)
        return value if value in seen[tag] else "other"

    mapped = [(tag_value("region", p.region), tag_value("device", p.device)) for p in pairs]

    versions = sorted({p.version for p in pairs})
    assert sorted(report) == versions
    for version in versions:
        entry = report[version]
        assert entry["task"] == case.task
        mine = [(p, m) for p, m in zip(pairs, mapped, strict=True) if p.version == version]
        _check_scope(case.task, entry, [p for p, _ in mine], report_clock, version)
        for t, tag in enumerate(("region", "device")):
            values = sorted({m[t] for _, m in mine})
            assert sorted(entry["tags"][tag]) == values, (version, tag)
            for value in values:
                part = [p for p, m in mine if m[t] == value]
                _check_scope(
                    case.task,
                    entry["tags"][tag][value],
                    part,
                    report_clock,
                    f"{version} {tag}={value}",
                )


def test_binary_classes_agree_across_spellings() -> None:
    # 1, "1", True and 1.0 are one class; 0, "0", False another: accuracy counts them equal.
    config = Settings.model_validate(
        {"models": {"m": {"task": "binary"}}, "metrics": {"windows": []}}
    )
    decoder = Decoder(config)
    spellings = [(1, "1"), (True, 1), ("1", 1.0), (0, False), ("0", 0.0), (False, "0")]
    predictions, _ = decoder.predictions(
        [
            Raw(
                json.dumps({"prediction_id": str(i), "model": "m", "timestamp": i, "prediction": p})
            )
            for i, (p, _) in enumerate(spellings)
        ]
    )
    labels, _ = decoder.labels(
        [
            Raw(json.dumps({"prediction_id": str(i), "timestamp": i, "label": a}))
            for i, (_, a) in enumerate(spellings)
        ]
    )
    metrics = ModelMetrics(config.models["m"], config.metrics)
    metrics.update(list(zip(predictions, labels, strict=True)), clock=10.0)
    cumulative = metrics.report(10.0)["unversioned"]["cumulative"]
    y = [1, 1, 1, 0, 0, 0]
    assert_metrics(cumulative, sk_binary(np.array(y), np.array(y), None))
    assert cumulative["accuracy"] == 1.0
