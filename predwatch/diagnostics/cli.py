"""``predwatch compare``: replay prediction and label files, then test whether groups differ.

``--by version`` compares each model's versions (the one with most pairs is the
baseline); ``--split-at TIMESTAMP`` compares each model's pairs before and
after a moment (by prediction time), e.g. a drift detection or a rollout.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="predwatch")
>>> add_compare_parser(parser.add_subparsers())
>>> args = parser.parse_args(["compare", "--config", "c.yaml", "--predictions", "p",
...                           "--labels", "l", "--split-at", "2026-11-27T04:00:00Z"])
>>> args.split_at, args.by
(1795752000.0, None)
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from predwatch.diagnostics.compare import Comparison, baseline_first, compare_arrays

Groups = dict[str, dict[str, list[Any]]]
Tasks = Mapping[str, str]


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC unless it says otherwise) or of a number."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2026-11-27T04:00:00Z) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def add_compare_parser(subparsers: Any) -> None:
    """Add ``compare`` to the ``predwatch`` command's subparsers."""
    compare = subparsers.add_parser(
        "compare", help="test whether model versions, or before and after a time, differ"
    )
    compare.add_argument("--config", required=True, help="YAML config file")
    compare.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    compare.add_argument("--labels", required=True, help="JSON Lines file of labels")
    how = compare.add_mutually_exclusive_group(required=True)
    how.add_argument("--by", choices=["version"], help="compare each model's versions")
    how.add_argument(
        "--split-at",
        type=parse_timestamp,
        metavar="TIMESTAMP",
        help="compare pairs predicted before and after this time",
    )
    compare.add_argument("--json", action="store_true", help="print one JSON document")
    compare.set_defaults(run=cmd_compare)


def matched_pairs(settings: Any, predictions: str, labels: str) -> list[Any]:
    """Every matched pair of a replay of the two files."""
    from predwatch.consumer.files import replay
    from predwatch.monitor import Monitor

    pairs: list[Any] = []
    monitor = Monitor(settings)
    monitor.taps.append(lambda batch: pairs.extend(batch.result.matched))
    replay(settings, predictions, labels, monitor)
    return pairs


def group_errors(pairs: list[Any], tasks: Tasks, split_at: float | None) -> Groups:
    """Per model and group (version, or "before"/"after"), the pairs' (id, error) lists."""
    from predwatch.diagnostics.tree import pair_errors

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


def cmd_compare(args: argparse.Namespace) -> int:
    from predwatch.config import load_settings

    settings = load_settings(args.config)
    tasks = {name: model.task for name, model in settings.models.items()}
    pairs = matched_pairs(settings, args.predictions, args.labels)
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
