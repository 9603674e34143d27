"""Data drift: statistics against scipy, verdicts on stable and shifted streams, exact windows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from predwatch.config import Settings, WindowSettings
from predwatch.demo.synthetic import generate
from predwatch.drift.data import PREDICTION, SCORE, DataDrift
from predwatch.drift.profile import ProfileBuilder
from predwatch.drift.settings import DataDriftSettings
from predwatch.drift.statistics import (
    chi2_homogeneity,
    js_distance,
    ks_binned,
    psi,
)
from predwatch.events import Decoder, Raw
from predwatch.records import Prediction

counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)


@given(counts, counts)
def test_js_distance_matches_scipy(a: list[int], b: list[int]) -> None:
    k = min(len(a), len(b))
    a, b = a[:k], b[:k]
    if sum(a) == 0 or sum(b) == 0:
        return
    assert js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2), abs=1e-9)


@given(counts)
def test_psi_is_zero_for_equal_shares_and_positive_otherwise(a: list[int]) -> None:
    if sum(a) == 0:
        return
    assert psi(a, [2 * x for x in a]) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, a[::-1]) >= 0.0


@settings(max_examples=50)
@given(
    st.lists(st.integers(0, 9), min_size=5, max_size=300),
    st.lists(st.integers(0, 9), min_size=5, max_size=300),
)
def test_ks_binned_matches_ks_2samp_when_each_value_has_its_bin(x: list[int], y: list[int]) -> None:
    stat, p = ks_binned(np.bincount(x, minlength=10), np.bincount(y, minlength=10))
    expected = ks_2samp(x, y, method="asymp")
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_ks_binned_is_conservative_with_coarse_bins() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 2000), rng.normal(0.1, 1, 2000)
    edges = np.quantile(x, np.linspace(0.1, 0.9, 9))
    bx = np.bincount(np.searchsorted(edges, x, side="right"), minlength=10)
    by = np.bincount(np.searchsorted(edges, y, side="right"), minlength=10)
    assert ks_binned(bx, by)[0] <= ks_2samp(x, y).statistic


@given(counts, counts)
def test_chi2_matches_scipy_after_dropping_empty_columns(a: list[int], b: list[int]) -> None:
    k = min(len(a), len(b))
    table = np.array([a[:k], b[:k]])
    kept = table[:, table.sum(axis=0) > 0]
    if kept.shape[1] < 2 or (kept.sum(axis=1) == 0).any():
        assert chi2_homogeneity(a[:k], b[:k]) == (0.0, 1.0)
        return
    expected = chi2_contingency(kept)
    stat, p = chi2_homogeneity(a[:k], b[:k])
    assert stat == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)


# --- verdicts on streams ---------------------------------------------------------------------

SETTINGS = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
WINDOWS = [WindowSettings(name="last_1000", events=1000), WindowSettings(name="1h", duration=3600)]


def _stream(
    n: int, seed: int, change: Callable[[int, dict[str, Any]], None] | None = None
) -> list[Prediction]:
    messages, _ = generate(n, seed=seed)
    if change is not None:
        for i, message in enumerate(messages):
            change(i, message["features"])
    decoded, invalid = Decoder(SETTINGS).predictions(Raw(msgspec.json.encode(m)) for m in messages)
    assert not invalid
    return decoded


def observe(drift: DataDrift, predictions: list[Prediction], clock: float) -> None:
    """Feed predictions of any versions, a version at a time in sorted order, as the
    monitor does."""
    for version in sorted({p.version for p in predictions}):
        drift.observe(version, [p for p in predictions if p.version == version], clock)


def _run(
    drift: DataDrift, stream: list[Prediction], batch: int = 500
) -> list[tuple[int, str, str, str]]:
    """Feed ``stream`` in batches; every (events seen, version, window, column) flagged."""
    flagged = []
    clock = 0.0
    for start in range(0, len(stream), batch):
        part = stream[start : start + batch]
        clock = max(clock, max(p.timestamp for p in part))
        observe(drift, part, clock)
        for version, windows in drift.report(clock).items():
            for window, columns in windows.items():
                flagged += [
                    (start + len(part), version, window, name)
                    for name, entry in columns.items()
                    if entry["drift"]
                ]
    return flagged


def test_stable_stream_raises_no_alarm() -> None:
    # 60,000 events keep the test fast; benchmarks/detection_data.py runs 200,000 per seed.
    for seed in (0, 1):
        drift = DataDrift("fraud", DataDriftSettings(), WINDOWS)
        assert _run(drift, _stream(60_000, seed), batch=1000) == []
        report = drift.report(1e12)
        assert set(report) == {"v3", "v4"}  # both versions built their reference and compared


def test_covariate_shift_is_detected_within_5000_events() -> None:
    change_at = 20_000

    def triple_amount(i: int, features: dict[str, Any]) -> None:
        if i >= change_at:
            features["amount"] = round(features["amount"] * 3, 2)

    drift = DataDrift("fraud", DataDriftSettings(), WINDOWS)
    flagged = _run(drift, _stream(30_000, 3, triple_amount))
    assert all(at > change_at for at, *_ in flagged)  # nothing before the change
    first = min(at for at, _, _, column in flagged if column == "amount")
    assert first - change_at <= 5000
    entry = drift.report(1e12)["v3"]["last_1000"]["amount"]
    assert entry["out_of_range"] > 0 and entry["drift"]


def _scale_amount(factor: float, after: int) -> Callable[[int, dict[str, Any]], None]:
    def change(i: int, features: dict[str, Any]) -> None:
        if i >= after:
            features["amount"] *= factor

    return change


def test_small_windows_never_flag() -> None:
    stream = _stream(12_000, 5, _scale_amount(10.0, after=5000))
    drift = DataDrift("fraud", DataDriftSettings(), [WindowSettings(name="w", events=400)])
    assert _run(drift, stream) == []
    entry = drift.report(1e12)["v3"]["w"]["amount"]
    assert entry["n"] == 400 and entry["psi"] > 1 and entry["p_adjusted"] < 1e-6  # big, but few


def test_large_stable_window_does_not_flag_a_tiny_shift() -> None:
    stream = _stream(80_000, 6, _scale_amount(1.2, after=5000))
    drift = DataDrift(
        "fraud",
        DataDriftSettings(reference={"first": 5000, "per_version": False}),
        [WindowSettings(name="all", events=100_000)],
    )
    observe(drift, stream, clock=stream[-1].timestamp)
    entry = drift.report(1e12)["v3"]["all"]["amount"]
    assert entry["n"] > 50_000 and entry["ks_p"] < 1e-4  # significant...
    assert entry["psi"] < 0.2 and not entry["drift"]  # ...but below the effect-size floor


def test_count_window_is_exact_across_uneven_batches() -> None:
    stream = _stream(9000, 7)
    profile = ProfileBuilder("fraud", None)
    profile.add(stream[:3000])
    built = profile.build()
    settings = DataDriftSettings(reference={"path": "unused.json"})
    rolling = DataDrift("fraud", settings, [WindowSettings(name="w", events=1234)], [built])
    rng = np.random.default_rng(0)
    start = 3000
    while start < len(stream):
        size = int(rng.integers(1, 900))
        observe(rolling, stream[start : start + size], clock=0.0)
        start += size
    window = rolling.report(0.0)["v3"]["w"]
    assert window["amount"]["n"] == 1234
    fresh = DataDrift("fraud", settings, [WindowSettings(name="w", events=1234)], [built])
    fresh.observe("v3", [p for p in stream if p.version == "v3"][-1234:], clock=0.0)
    assert fresh.report(0.0)["v3"]["w"] == window  # windows are per version: v3's last 1234


def test_time_window_forgets_old_buckets_and_auto_reference_per_version() -> None:
    stream = _stream(8000, 8)
    drift = DataDrift(
        "fraud",
        DataDriftSettings(reference={"first": 1000}),
        [WindowSettings(name="10m", duration=600)],
    )
    observe(drift, stream, clock=stream[-1].timestamp)
    assert set(drift.references()) == {"v3", "v4"} and drift.collecting() == {}
    now = drift.report(stream[-1].timestamp)["v3"]["10m"]
    later = drift.report(stream[-1].timestamp + 3600)["v3"]["10m"]
    assert now["amount"]["n"] > 0 and later["amount"]["n"] == 0
    assert later["amount"]["psi"] is None and not later["amount"]["drift"]
    assert {PREDICTION, SCORE} <= set(now)
