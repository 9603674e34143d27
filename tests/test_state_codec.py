"""Checkpoint data: allowlisted types round-trip, others are refused, a monitor resumes.

The codec rebuilds objects only from an allowlist; a checkpoint naming any other
callable (``os.system``, ``builtins.eval``, ...) must be refused before anything
of it runs.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from predwatch.config import Settings
from predwatch.demo.synthetic import generate
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.state import envelope
from predwatch.state.codec import StateError, from_data, to_data
from predwatch.state.envelope import fingerprint, seal, unseal


@dataclass
class Case:
    name: str
    value: Any


ROUND_TRIPS = [
    Case("scalars", [None, True, False, 0, -7, 2**63 - 1, 1.5, "text", b"\x00\xff"]),
    Case("big int", [2**80, -(2**70)]),
    Case("infinities", [math.inf, -math.inf]),
    Case("dict with tuple keys", {("fraud", "v1"): 3, ("fraud", "v2"): {"a": [1, 2]}}),
    Case("tuple, set, frozenset", ((1, "a"), {1, 2, 3}, frozenset({"x", "y"}))),
    Case("deque with maxlen", deque([1, 2, 3], maxlen=5)),
    Case("deque without maxlen", deque(["a"])),
    Case("ordered dict", OrderedDict([("b", 1), ("a", 2)])),
    Case("counter", Counter({("labels", "bad"): 4, ("predictions", "x"): 1})),
    Case("float array", np.arange(12, dtype=np.float64).reshape(3, 4) / 7),
    Case("int array", np.array([1, -2, 3], dtype=np.int32)),
    Case("bool array", np.array([True, False])),
    Case("string array", np.array(["eu", "us"])),
    Case("numpy scalar", np.float32(0.25)),
]


@pytest.mark.parametrize("case", ROUND_TRIPS, ids=lambda c: c.name)
def test_allowed_values_round_trip(case: Case) -> None:
    back = from_data(to_data(case.value))
    assert type(back) is type(case.value)
    if isinstance(case.value, np.ndarray):
        assert back.dtype == case.value.dtype and back.shape == case.value.shape
        np.testing.assert_array_equal(back, case.value)
    else:
        assert back == case.value
    if isinstance(case.value, deque):
        assert back.maxlen == case.value.maxlen
    if isinstance(case.value, OrderedDict):
        assert list(back) == list(case.value)


def test_nan_and_defaultdict_and_sharing() -> None:
    shared = [1, 2]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    counts: defaultdict[str, list[int]] = defaultdict(list, {"a": [1]})
    back = from_data(
        to_data({"nan": math.nan, "one": shared, "two": shared, "counts": counts, "cycle": cyclic})
    )
    assert math.isnan(back["nan"])
    assert back["one"] is back["two"]  # shared before, shared after
    assert back["cycle"][0] is back["cycle"]
    assert back["counts"]["new"] == [] and back["counts"]["a"] == [1]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (lambda: 0, "<lambda>"),
        (Fraction(1, 3), "fractions.Fraction"),
        (print, "builtins.print"),
        (defaultdict(lambda: 0), "defaultdict"),
        (np.array([object()]), "numpy array of Python objects"),
        (pickle.loads, "pickle"),
    ],
    ids=[
        "lambda",
        "other module",
        "builtin function",
        "defaultdict factory",
        "object array",
        "pickle",
    ],
)
def test_other_types_are_refused_when_written(value: Any, named: str) -> None:
    with pytest.raises(StateError, match="cannot write") as error:
        to_data({"inside": [value]})
    assert named in str(error.value)


def test_a_refusal_names_where_the_value_is() -> None:
    monitor = Monitor(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
    monitor.alerts.bad = Fraction(1, 2)  # type: ignore[attr-defined]
    with pytest.raises(StateError, match=r"fractions.Fraction .* \(in AlertEngine\)"):
        monitor.state()


def nested(data: list[Any], depth: int) -> list[Any]:
    """``data`` inside itself ``depth`` times."""
    for _ in range(depth):
        data = ["list", 0, [data]]
    return data


@pytest.mark.parametrize(
    "data",
    [
        ["name", "os:system"],
        ["name", "builtins:eval"],
        ["name", "subprocess:Popen"],
        ["name", "predwatch.state.codec:importlib.import_module"],  # imported, not defined there
        ["name", "predwatch.monitor:math"],  # a module reached through an allowed one
        ["object", 0, "os:PathLike", None, [], [], None],
        ["object", 0, "predwatch.monitor:Monitor.snapshot.<locals>.x", None, [], [], None],
        ["object", 0, "predwatch.monitor:_raw_of", None, [], [], None],  # a function, not a class
        ["struct", 0, "predwatch.monitor:Monitor", []],
        ["opaque", 0, "predwatch.monitor:Monitor", [], b""],
        ["method", ["name", "builtins:print"], "__call__"],
        ["defaultdict", 0, "os.system", []],
        ["ndarray", "|O", [1], b"\x00" * 8],
        ["unknown", 1],
        [
            "object",
            0,
            "predwatch.monitor:LabelFits",
            None,
            ["__class__", ["name", "predwatch.monitor:Monitor"]],
            [],
            None,
        ],
        ["object", 0, "predwatch.monitor:LabelFits", None, [], [["x", 1]], None],
        ["opaque", 0, "river._river_rust.drift:AdaptiveWindowing", [0.002, 32, 5, 5, 10], b"?"],
        nested(["list", 0, []], 5000),
    ],
    ids=lambda d: str(d[:2])[:40],
)
def test_data_naming_anything_else_is_refused_when_read(data: list[Any]) -> None:
    with pytest.raises(StateError):
        from_data(data)


SETTINGS = Settings.model_validate(
    {
        "models": {"fraud": {"task": "binary"}},
        "join": {"label_timeout": 600, "grace": 60, "idle_timeout": "1d"},
        "metrics": {
            "windows": [{"name": "last_500", "events": 500}, {"name": "hour", "duration": "1h"}],
            "tags": ["region"],
        },
        "drift": {"reference": {"first": 1500}, "min_samples": 200},
        "diagnostics": {"sample_rate": 0.8, "grace_period": 100},
    }
)
PREDICTIONS, LABELS = generate(6000, seed=3, rate=2.0, label_delay=100.0, timestamps="epoch")


def feed(monitor: Monitor, lo: int, hi: int) -> None:
    """Predictions ``lo:hi`` and the labels stamped in their span, as one batch."""
    low = PREDICTIONS[lo]["timestamp"] if lo else -math.inf
    high = PREDICTIONS[hi - 1]["timestamp"]
    predictions = [Raw(json.dumps(p).encode()) for p in PREDICTIONS[lo:hi]]
    labels = [Raw(json.dumps(x).encode()) for x in LABELS if low <= x["timestamp"] < high]
    monitor.process(0, predictions, labels, high)


def classes_in(data: Any, found: set[str]) -> set[str]:
    if isinstance(data, list):
        if data and data[0] in ("object", "struct", "opaque") and isinstance(data[2], str):
            found.add(data[2])
        for item in data:
            classes_in(item, found)
    elif isinstance(data, dict):
        for item in data.values():
            classes_in(item, found)
    return found


INDEXED = {"list", "dict", "tuple", "set", "frozenset", "deque", "OrderedDict", "Counter"}
INDEXED |= {"defaultdict", "object", "struct", "opaque", "random", "ref"}


def canonical(data: Any) -> Any:
    """Checkpoint data with the items of sets sorted, as their order is arbitrary, and so
    without the numbers of shared objects, which follow that order."""
    if isinstance(data, dict):
        return {key: canonical(value) for key, value in data.items()}
    if isinstance(data, list):
        items = [canonical(item) for item in data]
        if items and isinstance(items[0], str) and items[0] in INDEXED:
            items[1] = None
        if items and items[0] in ("set", "frozenset"):
            items[2] = sorted(items[2], key=repr)
        return items
    return data


def test_a_real_monitor_resumes_with_identical_results() -> None:
    straight = Monitor(SETTINGS)
    for lo in range(0, 4000, 500):
        feed(straight, lo, lo + 500)
    state = straight.state()
    classes = classes_in(state, set())
    expected = {  # what a monitor with windows, drift and diagnostics holds
        "predwatch.windowing.join:PartitionJoin",
        "predwatch.records:Prediction",
        "predwatch.metrics.classification:ClassificationStats",
        "predwatch.metrics.windows:CountWindow",
        "predwatch.metrics.windows:TimeWindow",
        "predwatch.drift.profile:ReferenceProfile",
        "predwatch.drift.estimate:PerformanceEstimator",
        "predwatch.drift.calibration:ModelCalibration",
        "predwatch.drift.calibration:CalibrationStats",
        "river.drift.adwin:ADWIN",
        "river._river_rust.drift:AdaptiveWindowing",
        "river.tree.hoeffding_tree_classifier:HoeffdingTreeClassifier",
        "predwatch.alerts.engine:AlertEngine",
    }
    assert expected <= classes, expected - classes
    resumed = Monitor.restore(SETTINGS, straight.snapshot())
    # Every value, the bytes of ADWIN's compiled window included (sets in any order).
    assert canonical(resumed.state()) == canonical(state)
    for lo in range(4000, 6000, 500):
        feed(straight, lo, lo + 500)
        feed(resumed, lo, lo + 500)
    assert resumed.summary() == straight.summary()
    assert resumed.model_counts == straight.model_counts


def test_pickle_is_not_a_checkpoint() -> None:
    monitor = Monitor(SETTINGS)
    with pytest.raises(StateError, match="not a predwatch checkpoint"):
        Monitor.restore(SETTINGS, pickle.dumps({"joins": {}}))
    assert monitor.counts.predictions == 0


@dataclass
class Damage:
    name: str
    change: Any  # bytes -> bytes
    reason: str


def _flip_last(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0xFF])


DAMAGES = [
    Damage("truncated", lambda b: b[: len(b) // 2], "it is truncated"),
    Damage("one byte missing", lambda b: b[:-1], "it is truncated"),
    Damage("a byte flipped", _flip_last, "it is corrupt"),
    Damage("empty", lambda b: b"", "it is not a predwatch checkpoint"),
    Damage("another file", lambda b: b"\x89PNG\r\n" + b, "it is not a predwatch checkpoint"),
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.name)
def test_damaged_snapshots_are_refused_with_the_reason(damage: Damage) -> None:
    monitor = Monitor(SETTINGS)
    feed(monitor, 0, 300)
    with pytest.raises(StateError, match=damage.reason):
        Monitor.restore(SETTINGS, damage.change(monitor.snapshot()))


def test_other_settings_and_other_formats_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = Monitor(SETTINGS).snapshot()
    other = SETTINGS.model_copy(update={"join": SETTINGS.join.model_copy(update={"grace": 1.0})})
    with pytest.raises(StateError, match="other settings of diagnostics, drift, fields"):
        Monitor.restore(other, blob)
    # Settings that do not shape state (the HTTP port) keep the fingerprint.
    served = SETTINGS.model_copy(update={"http": SETTINGS.http.model_copy(update={"port": 1})})
    assert fingerprint(served) == fingerprint(SETTINGS)
    monkeypatch.setattr(envelope, "FORMAT", 99)
    future = seal({}, fingerprint(SETTINGS))
    monkeypatch.undo()
    with pytest.raises(StateError, match=r"it has format 99 .* but this predwatch reads format 3"):
        unseal(future, fingerprint(SETTINGS))


def test_a_vectordict_of_a_regression_leaf_round_trips() -> None:
    # river keeps a regression leaf's linear model weights in its compiled VectorDict.
    from river.utils import VectorDict

    weights = VectorDict({"x": 0.25, "y": -3.0})
    back = from_data(to_data({"weights": weights, "again": weights}))
    assert type(back["weights"]) is VectorDict
    assert dict(back["weights"]) == {"x": 0.25, "y": -3.0}
    assert back["again"] is back["weights"]
