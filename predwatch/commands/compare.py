"""``predwatch compare``: replay prediction and label files, then test whether groups differ.

``--by version`` compares each model's versions (the one with most pairs is the
baseline); ``--split-at TIMESTAMP`` compares each model's pairs before and
after a moment (by prediction time), e.g. a drift detection or a rollout.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from predwatch.commands.common import load, problem, reference_profiles
from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.diagnostics.compare import Comparison, baseline_first, compare_arrays
from predwatch.diagnostics.tree import pair_errors
from predwatch.drift.profile import ReferenceProfile
from predwatch.monitor import Monitor

Groups = dict[str, dict[str, list[Any]]]
Tasks = Mapping[str, str]


def matched_pairs(
    settings: Settings,
    predictions: str,
    labels: str,
    profiles: Sequence[ReferenceProfile] = (),
) -> list[Any]:
    """Every matched pair of a replay of the two files."""

    pairs: list[Any] = []
    monitor = Monitor(settings, profiles)
    monitor.taps.append(lambda batch: pairs.extend(batch.result.matched))
    replay(settings, predictions, labels, monitor)
    return pairs


def group_errors(pairs: list[Any], tasks: Tasks, split_at: float | None) -> Groups:
    """Per model and group (version, or "before"/"after"), the pairs' (id, error) lists."""
    groups: Groups = {}
    for model, task in tasks.items():
        mine = [pair for pair in pairs if pair[0].model == model]
        if not mine:
            continue
        errors = pair_errors(mine, task)
        for (prediction, _), error in zip(mine, errors.tolist(), strict=True):
            if split_at is None:
                group = prediction.version
            else:
                group = "before" if prediction.timestamp < split_at else "after"
            groups.setdefault(model, {}).setdefault(group, []).append((prediction.id, error))
    return groups


def comparisons(groups: Groups, tasks: Tasks, split: bool) -> list[dict[str, Any]]:
    """Every applicable test per model, as JSON-ready dicts with the model's name."""
    out: list[dict[str, Any]] = []
    for model, by_group in groups.items():
        order: list[str]
        if split:
            order = [g for g in ("before", "after") if g in by_group]
        else:
            order = baseline_first({g: len(v) for g, v in by_group.items()})
        if len(order) < 2:
            continue
        errors: dict[str, np.ndarray] = {
            g: np.array([e for _, e in by_group[g]], np.float64) for g in order
        }
        paired: dict[str, dict[str, bool]] | None = None
        if tasks[model] != "regression" and not split:
            paired = {g: {i: e == 0.0 for i, e in by_group[g]} for g in order}
        for c in compare_arrays(errors, tasks[model], paired):
            out.append({"model": model, **c.as_dict()})
    return out


def _number(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The comparisons as a fixed-width text table."""
    header = (
        "model",
        "test",
        "metric",
        "groups",
        "n",
        "estimates",
        "difference",
        "95% CI",
        "effect",
        "p-value",
    )
    lines = [header]
    for r in rows:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in r.items() if k != "model"
        }
        c = Comparison(**fields)
        lines.append(
            (
                r["model"],
                c.test,
                c.metric,
                " vs ".join(c.groups),
                "/".join(str(n) for n in c.sizes),
                "/".join(_number(e) for e in c.estimates),
                _number(c.difference),
                f"[{_number(c.ci_low)}, {_number(c.ci_high)}] {c.ci_of}",
                f"{c.effect} {_number(c.effect_size)}",
                _number(c.p_value),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def main(args: argparse.Namespace) -> int:
    settings = load(args.config)
    tasks = {name: model.task for name, model in settings.models.items()}
    try:
        pairs = matched_pairs(settings, args.predictions, args.labels, reference_profiles(settings))
    except FileNotFoundError as error:
        raise problem(error) from None
    split = args.split_at is not None
    rows = comparisons(group_errors(pairs, tasks, args.split_at), tasks, split)
    if args.json:
        by = {"split_at": args.split_at} if split else {"by": "version"}
        print(json.dumps({**by, "pairs": len(pairs), "comparisons": rows}, indent=2))
    elif rows:
        print(table(rows))
    else:
        print("nothing to compare: each model has fewer than two groups with matched pairs")
    return 0
