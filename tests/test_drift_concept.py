"""Concept drift detectors on synthetic error streams with known change points (fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from msgspec import msgpack
from pydantic import ValidationError
from river.drift import ADWIN

from predwatch.config import ModelSettings
from predwatch.drift.concept import (
    ConceptDrift,
    ConceptDriftSettings,
    ModelConceptDrift,
)
from predwatch.metrics.errors import pair_errors
from predwatch.records import Label, Prediction
from predwatch.river_adapter import changes
from predwatch.state.codec import from_data, to_data

STABLE = 200_000


def binary_errors(seed: int, rates: list[tuple[float, int]]) -> np.ndarray:
    """0/1 errors: ``(rate, length)`` segments one after another."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n) < rate for rate, n in rates]).astype(np.float64)


def detections_at(drift: ConceptDrift, errors: np.ndarray, batch: int = 4096) -> list[int]:
    times = np.arange(errors.size, dtype=np.float64)
    for start in range(0, errors.size, batch):
        drift.observe(errors[start : start + batch], times[start : start + batch])
    return [d.sequence for d in drift.detections()]


@dataclass
class Stable:
    rate: float
    seed: int


# ADWIN at river's default delta=0.002 never fired on these streams (nor on 10 seeds
# per rate when tried), so the default stays; each case proves silence at one error rate.
STABLE_CASES = [
    Stable(0.02, 11),  # a very good model: rare errors
    Stable(0.10, 12),  # a typical model
    Stable(0.30, 13),  # a weak model
    Stable(0.50, 14),  # the largest variance of a 0/1 error
]


@pytest.mark.parametrize("case", STABLE_CASES, ids=lambda c: f"rate={c.rate}")
def test_adwin_is_silent_on_a_stable_stream_of_200000_errors(case: Stable) -> None:
    drift = ConceptDrift(ConceptDriftSettings())
    assert detections_at(drift, binary_errors(case.seed, [(case.rate, STABLE)])) == []
    assert drift.count == 0 and drift.last_detection_time is None
    assert drift.observed == STABLE


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_adwin_detects_an_abrupt_rise_of_the_error_rate_within_2000_pairs(seed: int) -> None:
    errors = binary_errors(seed, [(0.1, 50_000), (0.3, 5_000)])
    found = detections_at(ConceptDrift(ConceptDriftSettings()), errors)
    assert len(found) == 1
    assert 50_000 <= found[0] < 52_000


@dataclass
class Detector:
    settings: ConceptDriftSettings
    within: int  # pairs after the change by which it must have fired


# Every selectable detector that fits a 0/1 stream finds the 0.1 -> 0.3 jump; the
# benchmark measures their false alarms (DDM and EDDM raise some at river's defaults).
DETECTOR_CASES = [
    Detector(ConceptDriftSettings(detector="adwin", parameters={"delta": 0.0001}), 2_000),
    Detector(ConceptDriftSettings(detector="page_hinkley", parameters={"mode": "up"}), 2_000),
    Detector(ConceptDriftSettings(detector="ddm", warmup=1_000), 4_000),
    Detector(ConceptDriftSettings(detector="hddm_a"), 2_000),
    Detector(ConceptDriftSettings(detector="hddm_w"), 2_000),
    Detector(
        ConceptDriftSettings(
            detector="kswin",
            parameters={"alpha": 0.0001, "window_size": 1000, "stat_size": 300, "seed": 1},
        ),
        4_000,
    ),
]


@pytest.mark.parametrize("case", DETECTOR_CASES, ids=lambda c: c.settings.detector)
def test_each_detector_finds_an_abrupt_change(case: Detector) -> None:
    before = 3_000 if case.settings.detector == "kswin" else 20_000  # KSWIN is slow
    errors = binary_errors(5, [(0.1, before), (0.3, case.within)])
    found = detections_at(ConceptDrift(case.settings), errors)
    assert any(before <= at < before + case.within for at in found)


def test_regression_absolute_errors() -> None:
    rng = np.random.default_rng(31)
    stable = np.abs(rng.normal(0.0, 2.0, STABLE))
    assert detections_at(ConceptDrift(ConceptDriftSettings()), stable) == []
    shifted = np.abs(np.r_[rng.normal(0.0, 2.0, 30_000), rng.normal(1.0, 2.0, 5_000)])
    found = detections_at(ConceptDrift(ConceptDriftSettings()), shifted)
    assert found and 30_000 <= found[0] < 32_000


def test_warmup_hides_early_detections_and_sequences_are_reported() -> None:
    errors = binary_errors(5, [(0.5, 2_000), (0.0, 3_000)])  # a change inside the warm-up
    assert detections_at(ConceptDrift(ConceptDriftSettings()), errors)
    quiet = ConceptDrift(ConceptDriftSettings(warmup=5_000))
    assert detections_at(quiet, errors) == [] and quiet.count == 0
    drift = ConceptDrift(ConceptDriftSettings())
    offsets = np.arange(errors.size) + 10_000
    found = drift.observe(errors, np.arange(errors.size) * 0.5, sequence=offsets)
    assert found and all(d.sequence == d.event_time * 2 + 10_000 for d in found)
    assert drift.last_detection_time == found[-1].event_time


def test_batches_and_a_checkpointed_restart_change_nothing() -> None:
    errors = binary_errors(7, [(0.1, 20_000), (0.4, 5_000), (0.1, 20_000)])
    whole = ConceptDrift(ConceptDriftSettings())
    expected = detections_at(whole, errors, batch=errors.size)
    first = ConceptDrift(ConceptDriftSettings())
    detections_at(first, errors[:21_000], batch=333)
    resumed = from_data(msgpack.decode(msgpack.encode(to_data(first))))
    resumed.observe(errors[21_000:], np.arange(21_000, errors.size, dtype=np.float64))
    assert [d.sequence for d in resumed.detections()] == expected
    assert len(expected) >= 2  # the rise and the fall


def test_model_concept_drift_keeps_a_detector_per_version() -> None:
    def pair(i: int, version: str, predicted: str, actual: str) -> tuple[Prediction, Label]:
        return (
            Prediction(str(i), "m", version, float(i), predicted, None, None, {}, {}),
            Label(str(i), float(i), actual, None),
        )

    rng = np.random.default_rng(3)
    pairs = []
    for i in range(30_000):
        wrong = rng.random() < (0.1 if i < 20_000 else 0.5)
        version = "v2" if i % 2 else "v1"
        pairs.append(pair(i, version, "1", "0" if wrong else "1"))
    model = ModelConceptDrift(ModelSettings(task="binary"), ConceptDriftSettings())
    found = []
    for start in range(0, len(pairs), 1000):
        batch = pairs[start : start + 1000]
        for version in ("v1", "v2"):  # as the monitor feeds it: a version at a time
            mine = [pair for pair in batch if pair[0].version == version]
            times = np.array([p.timestamp for p, _ in mine])
            hits = model.observe(version, pair_errors(mine, "binary"), times)
            found += [(version, hit) for hit in hits]
    report = model.report()
    assert sorted(report) == ["v1", "v2"]
    assert {v for v, _ in found} == {"v1", "v2"}
    for version, detection in found:
        assert detection.event_time >= 20_000 and detection.detector == "adwin"
        assert report[version]["observed"] == 15_000


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"parameters": {"delat": 0.1}}, "'delat' is not a parameter of adwin"),
        ({"detector": "page_hinkley", "parameters": {"mode": "sideways"}}, "mode"),
        ({"detector": "cusum"}, "detector"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=message):
        ConceptDriftSettings.model_validate(settings)


def test_binary_only_detectors_refuse_regression() -> None:
    with pytest.raises(ValueError, match="regression"):
        ModelConceptDrift(ModelSettings(task="regression"), ConceptDriftSettings(detector="ddm"))


class RiverADWIN(ADWIN):
    """ADWIN itself, fed one error at a time through its public ``update``."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adwin_fast_path_signals_where_river_does(seed: int) -> None:
    errors = binary_errors(seed, [(0.1, 8000), (0.4, 6000), (0.05, 9000), (0.5, 5000), (0.2, 7000)])
    fast, public = ADWIN(), RiverADWIN()
    rng = np.random.default_rng(seed)
    fast_hits: list[int] = []
    public_hits: list[int] = []
    start = 0
    while start < errors.size:  # batches of random sizes: changes land anywhere in them
        chunk = errors[start : start + int(rng.integers(1, 3000))].tolist()
        fast_hits += [start + i for i in changes(fast, chunk)]
        public_hits += [start + i for i in changes(public, chunk)]
        start += len(chunk)
    assert len(public_hits) >= 4
    assert fast_hits == public_hits
    assert fast.width == public.width
