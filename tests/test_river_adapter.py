"""The contract of every river internal predwatch touches, checked on the installed river.

``predwatch/river_adapter.py`` is the only module that reaches into river; each test here
states one assumption it makes. When river changes one of them, the test that fails names
it, and the pin in ``pyproject.toml`` keeps users on a river that holds them.
"""

from __future__ import annotations

import inspect
import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
from river import drift as river_drift
from river import tree as river_tree

from predwatch import river_adapter
from predwatch.drift.settings import BINARY_ONLY, DETECTOR_PARAMETERS, ConceptDriftSettings
from predwatch.river_adapter import (
    DETECTORS,
    NominalMultiwayBranch,
    NumericBinaryBranch,
    NumericMultiwayBranch,
    changes,
    make_detector,
    multiway_key,
    tree_root,
)


def test_every_detector_name_of_the_settings_is_a_river_detector() -> None:
    names = ConceptDriftSettings.model_fields["detector"].annotation.__args__  # type: ignore[union-attr]
    assert set(DETECTORS) == set(names) == set(DETECTOR_PARAMETERS)
    for name, cls in DETECTORS.items():
        detector = make_detector(name, {})
        assert type(detector) is cls
        detector.update(1.0 if name in BINARY_ONLY else 0.5)
        assert detector.drift_detected in (True, False)  # the public flag predwatch reads


@pytest.mark.parametrize("name", sorted(DETECTOR_PARAMETERS))
def test_settings_list_each_detectors_parameters(name: str) -> None:
    # The settings validate parameters without importing river, from a table; it must list
    # exactly the constructor's keyword arguments (``window``, a list of values, excepted).
    parameters = set(inspect.signature(DETECTORS[name]).parameters) - {"window"}
    assert set(DETECTOR_PARAMETERS[name]) == parameters


def test_a_bad_parameter_value_is_refused_by_river() -> None:
    with pytest.raises(ValueError, match="mode"):
        make_detector("page_hinkley", {"mode": "sideways"})


def errors(seed: int) -> list[float]:
    rng = random.Random(seed)
    rates = [(0.1, 6000), (0.45, 3000), (0.05, 6000)]
    return [float(rng.random() < rate) for rate, n in rates for _ in range(n)]


def test_adwin_helper_update_signals_where_adwin_update_does() -> None:
    # ``_helper.update(x)`` returns True exactly when ``ADWIN.update(x)`` would set
    # ``drift_detected``, and keeps the same window; setting ``_drift_detected`` makes the
    # public flag read True (the next public update then starts a new window).
    data = errors(3)
    public, inner = river_drift.ADWIN(), river_drift.ADWIN()
    public_hits, inner_hits = [], []
    for i, x in enumerate(data):
        public.update(x)
        if public.drift_detected:
            public_hits.append(i)
        if inner_hits and inner_hits[-1] == i - 1:
            inner.update(x)  # after a change, the public call starts the new window
            if inner.drift_detected:
                inner_hits.append(i)
        elif inner._helper.update(x):
            inner_hits.append(i)
            inner._drift_detected = True
            assert inner.drift_detected
    assert len(public_hits) >= 2
    assert inner_hits == public_hits
    assert inner.width == public.width


def test_changes_finds_what_adwin_finds_one_by_one() -> None:
    data = errors(4)
    one_by_one = river_drift.ADWIN()
    expected = [
        i for i, x in enumerate(data) if (one_by_one.update(x), one_by_one.drift_detected)[1]
    ]
    assert changes(river_drift.ADWIN(), data) == expected
    assert changes(river_drift.PageHinkley(mode="up"), data) is not None  # the public path


def learn(learner: Any, rows: list[dict[str, Any]], target: Any) -> Any:
    for row in rows:
        learner.learn_one(row, target(row))
    return learner


def test_tree_root_is_none_then_the_first_split() -> None:
    learner = river_tree.HoeffdingTreeClassifier(grace_period=50, delta=1e-3)
    assert tree_root(learner) is None
    rows = [{"amount": float(i % 100), "noise": float((i * 7) % 13)} for i in range(3000)]
    learn(learner, rows, lambda r: r["amount"] > 70)
    root = tree_root(learner)
    assert isinstance(root, NumericBinaryBranch)
    assert root.feature == "amount" and 60 < root.threshold < 80
    assert len(root.children) == 2


def test_nominal_multiway_key_is_the_category_of_each_child() -> None:
    learner = river_tree.HoeffdingTreeClassifier(grace_period=50, delta=1e-3)
    colours = ["red", "green", "blue"]
    rows = [{"colour": colours[i % 3]} for i in range(3000)]
    learn(learner, rows, lambda r: r["colour"] == "red")
    root = tree_root(learner)
    assert isinstance(root, NominalMultiwayBranch)
    keys = [multiway_key(root, i) for i in range(len(root.children))]
    assert sorted(keys) == sorted(colours)
    for i, key in enumerate(keys):  # the key of child i routes to child i
        assert root.branch_no({"colour": key}) == i


@dataclass
class Slot:
    value: float
    slot: int  # floor(value / radius)


def test_numeric_multiway_key_is_the_slot_of_each_child() -> None:
    radius = 2.5
    slots = [Slot(7.0, 2), Slot(-1.0, -1), Slot(0.5, 0)]
    branch = NumericMultiwayBranch({}, "x", (radius, [s.slot for s in slots]), 0, *["leaf"] * 3)
    for i, expected in enumerate(slots):
        key = multiway_key(branch, i)
        assert key == expected.slot == math.floor(expected.value / radius)
        assert branch.branch_no({"x": expected.value}) == i
        low = key * radius  # the child holds low <= x < low + radius, as segments reads it
        assert branch.branch_no({"x": low}) == i
        assert branch.branch_no({"x": low + 0.99 * radius}) == i


def test_only_the_adapter_reaches_into_river() -> None:
    # No other module of predwatch uses a private attribute of a river object.
    import pathlib
    import re

    package = pathlib.Path(river_adapter.__file__).parent
    private = re.compile(r"\._(root|helper|drift_detected|r_mapping|mapping)\b|river\.tree\.nodes")
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "river_adapter.py" and private.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
