"""The one module that touches river's internals, so a new river release breaks only here.

Elsewhere predwatch uses river's public API: a drift detector's ``update`` and
``drift_detected``, a Hoeffding tree's ``learn_one``. Three things need more,
and each has a contract test in ``tests/test_river_adapter.py`` run against the
installed river (``pyproject.toml`` pins river below its next minor release):

- ADWIN's window helper ``_helper.update`` and its ``_drift_detected`` flag:
  ``changes`` calls the helper straight from C between changes, a fraction of
  the cost of ``ADWIN.update`` per error.
- A Hoeffding tree's root node ``_root``: the tree's splits are what the
  diagnostics read (``tree_root``).
- The branch classes of ``river.tree.nodes.branch`` and a multiway branch's
  ``_r_mapping`` from child index to value or slot (``multiway_key``).

The detectors by name (``DETECTORS``) are public API; they live here so that
river is imported only by the modules that use it, never by the settings.

>>> detector = make_detector("adwin", {"delta": 0.01})
>>> found = changes(detector, [0.0] * 2000 + [1.0] * 200)  # the errors jump at 2000
>>> len(found), 2000 <= found[0] < 2050
(1, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress, count, islice
from typing import Any

from river import drift as river_drift
from river.base import BinaryDriftDetector, DriftDetector
from river.drift import ADWIN
from river.drift import binary as river_binary
from river.tree.nodes.branch import (
    NominalBinaryBranch,
    NominalMultiwayBranch,
    NumericBinaryBranch,
    NumericMultiwayBranch,
)

__all__ = [
    "DETECTORS",
    "Detector",
    "NominalBinaryBranch",
    "NominalMultiwayBranch",
    "NumericBinaryBranch",
    "NumericMultiwayBranch",
    "changes",
    "make_detector",
    "multiway_key",
    "tree_root",
]

Detector = DriftDetector | BinaryDriftDetector
DETECTORS: dict[str, type[Detector]] = {
    "adwin": river_drift.ADWIN,
    "page_hinkley": river_drift.PageHinkley,
    "kswin": river_drift.KSWIN,
    "ddm": river_binary.DDM,
    "eddm": river_binary.EDDM,
    "hddm_a": river_binary.HDDMA,
    "hddm_w": river_binary.HDDMW,
}
"""river's detector class for each name ``drift.concept.detector`` accepts."""


def make_detector(name: str, parameters: Mapping[str, Any]) -> Detector:
    """A fresh river detector; river raises ``ValueError`` on a bad parameter value."""
    return DETECTORS[name](**parameters)


def changes(detector: Any, errors: list[float]) -> list[int]:
    """Feed ``errors`` to a river detector; the positions where it signalled a change."""
    if type(detector) is ADWIN and hasattr(detector, "_helper"):
        return _adwin_changes(detector, errors)
    update = detector.update
    return [i for i, error in enumerate(errors) if (update(error), detector.drift_detected)[1]]


def _adwin_changes(adwin: ADWIN, errors: list[float]) -> list[int]:
    """``changes`` for river's ADWIN, the default detector, at a fraction of the cost: between
    changes its window's own update is called straight from C (``ADWIN.update`` wraps it
    with a check that starts a new window after a change, which the public call here does).
    ``tests/test_drift_concept.py`` checks both give the same changes."""
    hits: list[int] = []
    i = 0
    while i < len(errors):
        adwin.update(errors[i])  # the public call: a new window after a change
        if not adwin.drift_detected:
            steps = map(adwin._helper.update, islice(errors, i + 1, None))
            found = next(compress(count(i + 1), steps), None)  # stops at the first change
            if found is None:
                break
            adwin._drift_detected = True  # as ADWIN.update records it
            i = found
        hits.append(i)
        i += 1
    return hits


def tree_root(learner: Any) -> Any:
    """A Hoeffding tree's root node (a branch or a leaf), or None before it learned anything."""
    return learner._root


def multiway_key(branch: NominalMultiwayBranch | NumericMultiwayBranch, child: int) -> Any:
    """What routes to ``child`` of a multiway branch: the category (nominal), or the slot
    number ``s`` of ``s * radius <= x < (s + 1) * radius`` (numeric)."""
    return branch._r_mapping[child]
