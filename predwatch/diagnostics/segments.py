"""Failing segments: an error tree's leaves as readable rules, tested on held-out pairs.

``find_segments`` walks a river tree (``NumericBinaryBranch``: ``feature <= threshold``
left; ``NominalBinaryBranch``: ``feature == value`` left; the multiway branches:
one child per value or per slot of width ``radius``) into one rule per leaf,
then evaluates every rule on held-out pairs it counts itself (a pair lacking a
rule's feature does not match it). Each leaf with at least ``min_support``
pairs is tested against the rest (two-proportion z test, or Welch's t test on
absolute errors), with Benjamini-Hochberg across leaves. A significant leaf
that errs more than the rest is simplified: a condition is dropped while the
pairs it excluded err no less than the segment (at ``merge_alpha``), which
joins leaves that a split on an irrelevant feature cut apart; then each
numeric threshold moves to where the held-out pairs separate best. The
simplified rules are tested again (Benjamini-Hochberg with the leaves' count),
ranked by excess errors, ``support * (error - rest's error)``, and a segment
mostly (over half) inside a better-ranked one is left out.

A segment's id hashes its rule with thresholds rounded to two significant
digits, so that a tree relearning ``amount > 503.2`` as ``amount > 498.7``
keeps the id of the segment.

>>> from river import tree
>>> from predwatch.river_adapter import tree_root
>>> learner = tree.HoeffdingTreeClassifier(grace_period=50, delta=1e-3, leaf_prediction="mc")
>>> rows = [{"amount": float(i % 100), "country": "BR" if i % 4 else "DE"} for i in range(4000)]
>>> errors = np.array([float(r["amount"] > 80 and i % 3 == 0) for i, r in enumerate(rows)])
>>> for r, e in zip(rows, errors): learner.learn_one(r, bool(e))
>>> top = find_segments(tree_root(learner), rows, errors, "binary")[0]
>>> top.rule, top.support, round(top.value, 2), top.lift > 5
('amount > 80.5', 760, 0.33, True)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control

from predwatch.diagnostics.compare import ErrorStats, two_proportions, welch_from_stats
from predwatch.river_adapter import (
    NominalBinaryBranch,
    NominalMultiwayBranch,
    NumericBinaryBranch,
    NumericMultiwayBranch,
    multiway_key,
)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Condition:
    """One test of a rule: ``feature > value``, ``feature <= value``, ``in`` or ``not in`` a set."""

    feature: str
    op: str  # ">", "<=", "in", "not in"
    value: float | frozenset[str]

    def matches(self, row: Row) -> bool:
        x = row.get(self.feature)
        if x is None:
            return False
        if self.op in ("in", "not in"):
            return (x in self.value) == (self.op == "in")  # type: ignore[operator]
        if not isinstance(x, int | float):
            return False
        return x > self.value if self.op == ">" else x <= self.value  # type: ignore[operator]


def rule_text(conditions: Sequence[Condition], digits: int = 4) -> str:
    """Conditions merged per feature and sorted: ``amount > 500 and country in {AR, BR}``."""
    parts: list[str] = []
    for feature in sorted({c.feature for c in conditions}):
        mine = [c for c in conditions if c.feature == feature]
        above = [float(c.value) for c in mine if c.op == ">"]  # type: ignore[arg-type]
        below = [float(c.value) for c in mine if c.op == "<="]  # type: ignore[arg-type]
        low, high = (max(above) if above else None), (min(below) if below else None)
        if low is not None and high is not None:
            parts.append(f"{low:.{digits}g} < {feature} <= {high:.{digits}g}")
        elif low is not None:
            parts.append(f"{feature} > {low:.{digits}g}")
        elif high is not None:
            parts.append(f"{feature} <= {high:.{digits}g}")
        kept = [c.value for c in mine if c.op == "in"]
        if kept:
            values = sorted(frozenset.intersection(*kept))  # type: ignore[arg-type]
            parts.append(
                f"{feature} = {values[0]}"
                if len(values) == 1
                else f"{feature} in {{{', '.join(values)}}}"
            )
        dropped = sorted(set().union(*[c.value for c in mine if c.op == "not in"]))  # type: ignore[arg-type]
        if dropped:
            parts.append(
                f"{feature} != {dropped[0]}"
                if len(dropped) == 1
                else f"{feature} not in {{{', '.join(dropped)}}}"
            )
    return " and ".join(parts) or "all"


def segment_id(conditions: Sequence[Condition]) -> str:
    """A stable id: a hash of the rule with thresholds at two significant digits."""
    return hashlib.blake2b(rule_text(conditions, 2).encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Segment:
    """A rule and how the held-out pairs it matches err, compared with the rest."""

    id: str
    rule: str
    conditions: tuple[Condition, ...]
    support: int
    metric: str  # "error_rate" or "mean_absolute_error"
    value: float
    rest: float
    overall: float
    lift: float
    p_value: float
    q_value: float  # Benjamini-Hochberg adjusted
    excess: float  # support * (value - rest)

    def matches(self, row: Row) -> bool:
        return all(c.matches(row) for c in self.conditions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "support": self.support,
            "metric": self.metric,
            "value": self.value,
            "rest": self.rest,
            "overall": self.overall,
            "lift": self.lift,
            "p_value": self.p_value,
            "q_value": self.q_value,
        }


def _children_conditions(node: Any) -> list[list[Condition]]:
    """The condition each child of a river branch adds to its path."""
    f = node.feature
    if isinstance(node, NumericBinaryBranch):
        threshold = float(node.threshold)
        return [[Condition(f, "<=", threshold)], [Condition(f, ">", threshold)]]
    if isinstance(node, NominalBinaryBranch):
        value = frozenset([node.value])
        return [[Condition(f, "in", value)], [Condition(f, "not in", value)]]
    if isinstance(node, NominalMultiwayBranch):
        return [
            [Condition(f, "in", frozenset([multiway_key(node, i)]))]
            for i in range(len(node.children))
        ]
    if isinstance(node, NumericMultiwayBranch):
        out = []
        for i in range(len(node.children)):
            low = multiway_key(node, i) * node.radius  # the slot is low <= x < low + radius
            out.append(
                [
                    Condition(f, ">", math.nextafter(low, -math.inf)),
                    Condition(f, "<=", math.nextafter(low + node.radius, -math.inf)),
                ]
            )
        return out
    raise TypeError(f"unknown river branch {type(node).__name__}")


def leaf_rules(root: Any) -> list[tuple[Condition, ...]]:
    """Every leaf's path from the root, as conditions."""
    if root is None:
        return []
    rules: list[tuple[Condition, ...]] = []
    stack: list[tuple[Any, tuple[Condition, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        children = getattr(node, "children", None)
        if not children:
            rules.append(path)
            continue
        for child, added in zip(children, _children_conditions(node), strict=True):
            if child is not None:
                stack.append((child, (*path, *added)))
    return rules


class _Columns:
    """Held-out rows as columns, so a condition is one vectorised comparison."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self._rows = rows
        self._numeric: dict[str, np.ndarray] = {}
        self._nominal: dict[str, np.ndarray] = {}

    def mask(self, c: Condition) -> np.ndarray:
        if c.op in ("in", "not in"):
            column = self._nominal.get(c.feature)
            if column is None:
                column = np.array([r.get(c.feature) for r in self._rows], dtype=object)
                self._nominal[c.feature] = column
            values: Any = c.value
            inside = np.array([x in values for x in column], dtype=np.bool_)
            present = np.array([x is not None for x in column], dtype=np.bool_)
            return inside if c.op == "in" else present & np.logical_not(inside)
        numbers = self.numbers(c.feature)
        with np.errstate(invalid="ignore"):
            return numbers > c.value if c.op == ">" else numbers <= c.value  # type: ignore[operator]

    def numbers(self, feature: str) -> np.ndarray:
        """The feature as floats, NaN where a row lacks it or holds a string."""
        numbers = self._numeric.get(feature)
        if numbers is None:
            numbers = np.array([_number(r.get(feature)) for r in self._rows], np.float64)
            self._numeric[feature] = numbers
        return numbers

    def rule_mask(self, conditions: Sequence[Condition]) -> np.ndarray:
        mask = np.ones(len(self._rows), bool)
        for c in conditions:
            mask &= self.mask(c)
        return mask


def _number(x: Any) -> float:
    return float(x) if isinstance(x, int | float) else math.nan


def _test(inside: np.ndarray, errors: np.ndarray, task: str) -> tuple[float, float, float]:
    """Segment mean, rest mean and the two-sided p-value of their difference."""
    a, b = ErrorStats(), ErrorStats()
    a.update(errors[~inside])
    b.update(errors[inside])
    if a.n < 2 or b.n < 2:
        return b.mean, a.mean, 1.0
    if task == "regression":
        c = welch_from_stats(a, b)
    else:
        c = two_proportions(a.total, a.n, b.total, b.n, metric="error_rate")
    p = c.p_value if math.isfinite(c.p_value) else 1.0
    return b.mean, a.mean, p


def _simplify(
    conditions: tuple[Condition, ...],
    columns: _Columns,
    errors: np.ndarray,
    task: str,
    merge_alpha: float,
) -> tuple[Condition, ...]:
    """Drop, one at a time, the condition whose excluded pairs err most like the segment,
    while they do not err significantly less (at ``merge_alpha``)."""
    while len(conditions) > 1:
        inside = columns.rule_mask(conditions)
        best, best_p = None, merge_alpha
        for i in range(len(conditions)):
            rest = conditions[:i] + conditions[i + 1 :]
            added = columns.rule_mask(rest) & ~inside
            if not added.any():
                continue  # implied by another condition: dropped by ``_tightest`` at the end
            either = inside | added
            seg, extra, p = _test(inside[either], errors[either], task)
            p = 1.0 if extra >= seg else p
            if p >= best_p:
                best, best_p = rest, p
        if best is None:
            break
        conditions = best
    return _tightest(conditions)


def _refine(
    conditions: tuple[Condition, ...], columns: _Columns, errors: np.ndarray, min_support: int
) -> tuple[Condition, ...]:
    """Move each numeric threshold to where the held-out pairs separate best (the largest
    pooled z of the segment's mean error against the rest's): a tree places thresholds
    from estimates (Gaussian, or quantised, per leaf) and on fewer pairs."""
    for i, c in enumerate(conditions):
        if c.op not in (">", "<="):
            continue
        others = conditions[:i] + conditions[i + 1 :]
        base = columns.rule_mask(others) & ~np.isnan(columns.numbers(c.feature))
        values = columns.numbers(c.feature)[base]
        if values.size <= min_support:
            continue
        order = np.argsort(values if c.op == "<=" else -values, kind="stable")
        x, e = values[order], errors[base][order]
        n_in = np.arange(1, x.size + 1, dtype=np.float64)
        s_in = np.cumsum(e)
        n_out = errors.size - n_in
        with np.errstate(invalid="ignore", divide="ignore"):
            # The pooled z statistic; the pooled variance is the same for every threshold.
            z = (s_in / n_in - (errors.sum() - s_in) / n_out) * np.sqrt(n_in * n_out)
        # A threshold sits between distinct values, with enough pairs on the segment's side.
        valid = (n_in >= min_support) & (n_out >= min_support) & np.append(x[1:] != x[:-1], False)
        if not valid.any():
            continue
        best = int(np.argmax(np.where(valid & np.isfinite(z), z, -np.inf)))
        threshold = float((x[best] + x[best + 1]) / 2)
        conditions = (*conditions[:i], Condition(c.feature, c.op, threshold), *conditions[i + 1 :])
    return conditions


def _tightest(conditions: tuple[Condition, ...]) -> tuple[Condition, ...]:
    """Without the numeric bounds another bound on the same feature implies."""
    kept = []
    for c in conditions:
        same = [o for o in conditions if o.feature == c.feature and o.op == c.op]
        if c.op == ">" and any(o.value > c.value for o in same):  # type: ignore[operator]
            continue
        if c.op == "<=" and any(o.value < c.value for o in same):  # type: ignore[operator]
            continue
        if c not in kept:
            kept.append(c)
    return tuple(kept)


def find_segments(
    root: Any,
    rows: Sequence[Row],
    errors: np.ndarray,
    task: str,
    *,
    top_k: int = 5,
    min_support: int = 100,
    alpha: float = 0.01,
    merge_alpha: float = 0.001,
) -> list[Segment]:
    """The top ``top_k`` significant failing segments of a tree, evaluated on ``rows``."""
    errors = np.asarray(errors, np.float64)
    if root is None or errors.size == 0:
        return []
    columns = _Columns(rows)
    overall = float(errors.mean())
    tested: list[tuple[tuple[Condition, ...], float, float, float]] = []
    for rule in leaf_rules(root):
        inside = columns.rule_mask(rule)
        if rule and min_support <= int(inside.sum()) < errors.size:
            tested.append((rule, *_test(inside, errors, task)))
    q_values = false_discovery_control([p for *_, p in tested]).tolist()  # Benjamini-Hochberg
    found: dict[str, tuple[tuple[Condition, ...], float, float, float, int]] = {}
    for (rule, value, rest, _), q in zip(tested, q_values, strict=True):
        if q > alpha or value <= rest:
            continue
        rule = _refine(
            _simplify(rule, columns, errors, task, merge_alpha), columns, errors, min_support
        )
        inside = columns.rule_mask(rule)
        found[segment_id(rule)] = (rule, *_test(inside, errors, task), int(inside.sum()))
    # Benjamini-Hochberg again over the simplified rules, as if every other leaf had p = 1.
    final = sorted(found.items(), key=lambda item: item[1][3])
    p_values = [p for _, (_, _, _, p, _) in final] + [1.0] * (len(tested) - len(final))
    adjusted = false_discovery_control(p_values).tolist()[: len(final)]
    segments = [
        Segment(
            sid,
            rule_text(rule),
            rule,
            support,
            "mean_absolute_error" if task == "regression" else "error_rate",
            value,
            rest,
            overall,
            value / overall if overall > 0 else math.inf,
            p,
            q,
            support * (value - rest),
        )
        for (sid, (rule, value, rest, p, support)), q in zip(final, adjusted, strict=True)
        if q <= alpha and value > rest and support >= min_support
    ]
    # A segment mostly inside a better one adds nothing to read.
    chosen: list[tuple[Segment, np.ndarray]] = []
    for segment in sorted(segments, key=lambda s: -s.excess):
        inside = columns.rule_mask(segment.conditions)
        if all((inside & other).sum() <= 0.5 * segment.support for _, other in chosen):
            chosen.append((segment, inside))
    return [segment for segment, _ in chosen[:top_k]]
