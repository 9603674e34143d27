"""An online decision tree on each matched pair's error: where in the feature space a model errs.

The tree is river's Hoeffding tree: a classifier on "was this prediction wrong"
for classification, a regressor on the absolute error for regression, learned
from the pair's features and tags (as ``tags.<name>``).

How it adapts: **rotation**, not river's adaptive trees. A Hoeffding adaptive
tree replaces a subtree when an alternate one predicts its target with a lower
0/1 loss; but errors are a minority almost everywhere, so every node of both
trees predicts "correct" and the alternate practically never wins, while each
pair costs about five times a plain tree's update (ADWIN and naive Bayes in
every node). So plain trees are rotated instead: a tree learns ``window``
sampled pairs, then a successor starts learning beside it and takes over once it
has learned ``window // 2`` pairs. The serving tree therefore always describes
the last ``window // 2`` to ``window * 1.5`` sampled pairs, updates cost at most
twice a single tree's (1.5 times on average), and ``rotate()`` starts a
successor at once, e.g. when a concept-drift detector fires.

Pairs are sampled by a hash of their prediction id (``hash_unit``), never at
random, so replaying the same files learns the same trees.

>>> from predwatch.diagnostics.settings import DiagnosticsSettings
>>> tree = ErrorTree("binary", DiagnosticsSettings(sample_rate=0.5, grace_period=50))
>>> rows = [{"amount": float(i % 100), "country": "BR" if i % 3 else "DE"} for i in range(3000)]
>>> errors = [1.0 if r["amount"] > 80 else 0.0 for r in rows]
>>> tree.learn_rows(rows, errors)
>>> tree.learned, tree.root.feature, round(tree.root.threshold)
(3000, 'amount', 81)
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from river import tree as river_tree

from predwatch.diagnostics.compare import Comparison, ErrorStats, compare_versions
from predwatch.diagnostics.segments import Segment, find_segments
from predwatch.diagnostics.settings import DiagnosticsSettings
from predwatch.metrics.errors import pair_errors
from predwatch.records import Label, Prediction
from predwatch.river_adapter import tree_root

if TYPE_CHECKING:
    from predwatch.config import ModelSettings

Pair = tuple[Prediction, Label]
Row = dict[str, Any]
TAG_PREFIX = "tags."
_FIRST, _ID, _VERSION = itemgetter(0), attrgetter("id"), attrgetter("version")
_SCALE = float(2**32)


def hash_unit(prediction_id: str) -> float:
    """A number in [0, 1) fixed by the prediction id: the same on every run and machine.

    >>> hash_unit("a1") == hash_unit("a1"), 0.0 <= hash_unit("a1") < 1.0
    (True, True)
    """
    return zlib.crc32(prediction_id.encode()) / _SCALE


def hash_units(prediction_ids: list[str]) -> list[float]:
    """``hash_unit`` of each id, with no Python call per id (a whole batch's pairs).

    >>> hash_units(["a1", "b2"]) == [hash_unit("a1"), hash_unit("b2")]
    True
    """
    # A crc32 is exact in a float64 and the scale a power of two: the same numbers.
    codes = np.fromiter(map(zlib.crc32, map(str.encode, prediction_ids)), np.float64)
    return (codes / _SCALE).tolist()  # type: ignore[no-any-return]


def feature_rows(
    pairs: Sequence[Pair], use_tags: bool = True, exclude: Sequence[str] = ()
) -> list[Row]:
    """The tree's input for each pair: scalar features, and tags as ``tags.<name>``.

    Features still held as raw JSON are decoded in one call for the whole batch.
    Values that are neither numbers nor strings (null, lists, objects) are left
    out, as are the ``exclude`` names.

    >>> p = Prediction("a", "m", "v", 0.0, "1", None, None, b'{"x": 2, "y": null}', {"r": "eu"})
    >>> feature_rows([(p, Label("a", 1.0, "1", 1.0))])
    [{'x': 2, 'tags.r': 'eu'}]
    """
    raw = [p.features for p, _ in pairs]
    if any(not isinstance(f, dict) for f in raw):
        parts = [f if not isinstance(f, dict) else msgspec.json.encode(f) for f in raw]
        decoded = msgspec.json.decode(b"[" + b",".join(parts) + b"]")  # type: ignore[arg-type]
    else:
        decoded = raw
    dropped = set(exclude)
    rows: list[Row] = []
    for (prediction, _), features in zip(pairs, decoded, strict=True):
        row = {
            k: v
            for k, v in (features if isinstance(features, dict) else {}).items()
            if isinstance(v, int | float | str) and k not in dropped
        }
        if use_tags:
            for name, value in prediction.tags.items():
                row[TAG_PREFIX + name] = value
        rows.append(row)
    return rows


class ErrorTree:
    """A rotated Hoeffding tree on the errors of one model version (see the module docs).

    ``learn(pairs)`` takes a batch of matched pairs, learns the share whose id
    hashes below ``sample_rate``, and returns how many it learned.
    """

    def __init__(self, task: str, settings: DiagnosticsSettings) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task must be binary, multiclass or regression, not {task!r}")
        self.task = task
        self._settings = settings
        self._current: Any = self._new_learner()
        self._current_learned = 0
        self._successor: Any = None
        self._successor_learned = 0
        self._learned = 0
        self._rotations = 0

    def _new_learner(self) -> Any:
        s = self._settings
        common: dict[str, Any] = {
            "grace_period": s.grace_period,
            "max_depth": s.max_depth,
            "delta": s.split_confidence,
            "tau": s.tie_threshold,
        }
        if self.task == "regression":
            # Mean leaves: the default linear-model leaves cannot take categorical features.
            return river_tree.HoeffdingTreeRegressor(
                leaf_prediction="mean", splitter=river_tree.splitter.QOSplitter(), **common
            )
        # Majority-class leaves: the tree's splits, not its predictions, are what is read,
        # and naive-Bayes leaves would triple the cost of each update.
        return river_tree.HoeffdingTreeClassifier(leaf_prediction="mc", **common)

    @property
    def learned(self) -> int:
        """Pairs learned so far, by every tree this one has rotated through."""
        return self._learned

    @property
    def rotations(self) -> int:
        """How many times a successor has taken over."""
        return self._rotations

    @property
    def root(self) -> Any:
        """The serving tree's root node (a river branch or leaf), or None before any pair."""
        return tree_root(self._current)

    def rotate(self) -> None:
        """Start a successor now (if none is learning yet), e.g. on a concept-drift signal."""
        if self._successor is None:
            self._successor = self._new_learner()
            self._successor_learned = 0

    def learn(
        self,
        pairs: Sequence[Pair],
        errors: np.ndarray | None = None,
        units: Sequence[float] | None = None,
    ) -> int:
        """Learn the sampled share of ``pairs``; ``errors`` as ``pair_errors`` gives them,
        ``units`` as ``hash_unit`` does (both are computed when not given)."""
        rate = self._settings.sample_rate
        if units is None:
            units = [hash_unit(p.id) for p, _ in pairs]
        chosen = [i for i, u in enumerate(units) if u < rate]
        if not chosen:
            return 0
        if errors is None:
            errors = pair_errors(pairs, self.task)
        s = self._settings
        rows = feature_rows([pairs[i] for i in chosen], s.use_tags, s.exclude_features)
        self.learn_rows(rows, errors[chosen].tolist())
        return len(chosen)

    def learn_rows(self, rows: Sequence[Row], errors: Sequence[float]) -> None:
        """Learn rows as they are, without sampling (``feature_rows`` builds them)."""
        window = self._settings.window
        regression = self.task == "regression"
        for row, error in zip(rows, errors, strict=True):
            target: Any = error if regression else error > 0.5
            self._current.learn_one(row, target)
            self._current_learned += 1
            if self._successor is None and self._current_learned >= window:
                self.rotate()
            elif self._successor is not None:
                self._successor.learn_one(row, target)
                self._successor_learned += 1
                if self._successor_learned >= window // 2:
                    self._current, self._current_learned = self._successor, self._successor_learned
                    self._successor, self._successor_learned = None, 0
                    self._rotations += 1
        self._learned += len(rows)


@dataclass
class _Version:
    tree: ErrorTree
    rows: deque[Row]
    errors: deque[float]
    stats: ErrorStats = field(default_factory=ErrorStats)
    held_out_seen: int = 0  # held-out pairs ever seen


class ModelDiagnostics:
    """Error trees, failing segments and version statistics of one model, per version.

    >>> from predwatch.config import ModelSettings
    >>> diagnostics = ModelDiagnostics(ModelSettings(task="binary"),
    ...                                DiagnosticsSettings(sample_rate=0.5, min_support=20))
    >>> def pair(i):  # wrong exactly where x > 7
    ...     p = Prediction(str(i), "m", "v1", float(i), "1", None, None, {"x": i % 10}, {})
    ...     return p, Label(str(i), float(i), "0" if i % 10 > 7 else "1", None)
    >>> pairs = [pair(i) for i in range(6000)]
    >>> diagnostics.update(pairs, clock=6000.0)
    >>> diagnostics.segments_for_alerts("v1")
    'x > 7.5 (error 100% vs 0%, 612 pairs)'
    >>> diagnostics.report(clock=6000.0)["v1"]["segments"][0]["rule"]
    'x > 7.5'
    """

    def __init__(self, model: ModelSettings, settings: DiagnosticsSettings, name: str = "") -> None:
        self.name = name
        self.task = model.task
        self._settings = settings
        self._versions: dict[str, _Version] = {}

    def _version(self, version: str) -> _Version:
        state = self._versions.get(version)
        if state is None:
            size = self._settings.recent_pairs
            state = _Version(
                ErrorTree(self.task, self._settings), deque(maxlen=size), deque(maxlen=size)
            )
            self._versions[version] = state
        return state

    @property
    def versions(self) -> list[str]:
        return sorted(self._versions)

    def stats(self, version: str) -> ErrorStats:
        """Sufficient statistics of every matched pair's error of ``version``."""
        return self._version(version).stats

    def update(self, pairs: Sequence[Pair], clock: float) -> None:
        """Add matched pairs of this model (any versions); ``clock`` is the monitor's clock."""
        s = self._settings
        if not pairs or not s.enabled:
            return
        predictions = list(map(_FIRST, pairs))
        versions = list(map(_VERSION, predictions))
        by_version: dict[str, list[int]] = {}
        if versions.count(versions[0]) == len(versions):  # one version, as nearly always
            by_version[versions[0]] = list(range(len(versions)))
        else:
            for i, version in enumerate(versions):
                by_version.setdefault(version, []).append(i)
        errors = pair_errors(pairs, self.task)
        units = hash_units(list(map(_ID, predictions)))
        low, high = s.sample_rate, s.sample_rate + s.held_out_rate
        for version, rows in by_version.items():
            state = self._version(version)
            mine = [pairs[i] for i in rows] if len(rows) < len(pairs) else list(pairs)
            own_errors = errors[rows]
            own_units = [units[i] for i in rows]
            state.stats.update(own_errors)
            state.tree.learn(mine, own_errors, own_units)
            held = [i for i, u in enumerate(own_units) if low <= u < high]
            if held:
                state.rows.extend(
                    feature_rows([mine[i] for i in held], s.use_tags, s.exclude_features)
                )
                state.errors.extend(own_errors[held].tolist())
                state.held_out_seen += len(held)

    def rotate(self, version: str | None = None) -> None:
        """Start successor trees (of one version, or all), e.g. after a concept drift."""
        for name, state in self._versions.items():
            if version is None or name == version:
                state.tree.rotate()

    def held_out(self, version: str) -> int:
        """Held-out pairs of ``version`` seen so far (segments change only when this grows)."""
        state = self._versions.get(version)
        return 0 if state is None else state.held_out_seen

    def segments(self, version: str) -> list[Segment]:
        """The top failing segments of ``version`` now: a search over its tree and held-out
        pairs, which changes nothing (the same state gives the same segments)."""
        state = self._versions.get(version)
        if state is None:
            return []
        s = self._settings
        return find_segments(
            state.tree.root,
            list(state.rows),
            np.fromiter(state.errors, np.float64),
            self.task,
            top_k=s.top_k,
            min_support=s.min_support,
            alpha=s.alpha,
            merge_alpha=s.merge_alpha,
        )

    def segments_for_alerts(self, version: str, limit: int = 3) -> str:
        """The top segments as one line, for alert annotations ("" when there are none)."""
        return segments_line(self.segments(version)[:limit])

    def report(self, clock: float) -> dict[str, Any]:
        """Per version: ``{"segments": [...], "pairs", "learned", "held_out", "rotations"}``."""
        return {
            version: {
                "segments": [seg.as_dict() for seg in self.segments(version)],
                "pairs": state.stats.n,
                "learned": state.tree.learned,
                "held_out": len(state.rows),
                "rotations": state.tree.rotations,
            }
            for version, state in sorted(self._versions.items())
        }

    def comparisons(self) -> list[Comparison]:
        """Each version against the one with most pairs (see ``compare_versions``)."""
        return compare_versions({v: s.stats for v, s in self._versions.items()}, self.task)


def segments_line(segments: Sequence[Segment]) -> str:
    """Segments as one line, as alert annotations carry them ("" when there are none)."""
    parts = []
    for seg in segments:
        if seg.metric == "error_rate":
            figures = f"error {seg.value:.0%} vs {seg.rest:.0%}"
        else:
            figures = f"MAE {seg.value:.4g} vs {seg.rest:.4g}"
        parts.append(f"{seg.rule} ({figures}, {seg.support} pairs)")
    return "; ".join(parts)
