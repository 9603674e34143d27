"""Replay throughput and memory of predwatch, side by side with a per-event baseline.

Generates ``--events`` synthetic predictions of the binary model ``fraud`` (ten
features each) and their labels into a temporary directory, then measures two
sides on the same files, each in its own subprocess pinned to one CPU so that
neither pollutes the other's peak memory:

- ``predwatch``: the monitoring core, ``predwatch.consumer.files.replay`` with
  the default windows and drift and diagnostics switched off (decoding, the
  join, cumulative and windowed metrics per model version);
- ``predwatch-all``: the same with the defaults, drift (data drift, feature
  quality, concept drift, estimates, calibration) and diagnostics on.
- ``baseline``: a straightforward consumer: each line validated by a pydantic
  model, the two files interleaved by event time, a dict join by
  ``prediction_id``, and river metrics (Accuracy, Precision, Recall, F1,
  ROCAUC, LogLoss, per model version) updated pair by pair.

Events are predictions plus labels read. The timed span covers reading,
parsing, validation, joining and metric updates; generating the files does
not count. With ``--repeat`` the fastest run of each side is shown. Peak MB
is the child's high-water RSS (``VmHWM``); "run MB" is how much it grew during
the timed span (peak minus the high-water mark after imports). ``--profile``
adds one more, separate predwatch run under cProfile, not shown in the table.

    .venv/bin/python benchmarks/replay_throughput.py                # 200,000 predictions
    .venv/bin/python benchmarks/replay_throughput.py --events 50000 --seed 3
    .venv/bin/python benchmarks/replay_throughput.py --repeat 3         # best of 3 per side
    .venv/bin/python benchmarks/replay_throughput.py --profile /tmp/predwatch.prof
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sides import ROOT, pin_to_one_cpu, profiled, rss_mb, run_side

SIDES = ("predwatch", "predwatch-all", "baseline")
CORE_ONLY = {"drift": {"enabled": False}, "diagnostics": {"enabled": False}}


# --- the two sides, each run in a child process ---------------------------------------------


def run_predwatch(
    predictions: Path, labels: Path, profile: str | None, everything: bool = False
) -> dict[str, Any]:
    from predwatch.commands.common import tune_gc
    from predwatch.config import Settings
    from predwatch.consumer.files import replay

    config: dict[str, Any] = {"models": {"fraud": {"task": "binary"}}}
    settings = Settings.model_validate(config if everything else {**config, **CORE_ONLY})
    tune_gc()  # as `predwatch replay` and `predwatch run` do
    before = rss_mb()
    start = time.perf_counter()
    cpu = time.process_time()
    monitor = profiled(profile, replay, settings, predictions, labels)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    counts = monitor.counts
    versions = monitor.summary()["models"]["fraud"]
    return {
        "events": counts.predictions + counts.labels + counts.invalid,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": rss_mb(),
        "start_mb": before,
        "matched": counts.matched,
        "accuracy": {v: m["cumulative"]["accuracy"] for v, m in versions.items()},
        "roc_auc": {v: m["cumulative"]["roc_auc"] for v, m in versions.items()},
    }


def run_baseline(predictions: Path, labels: Path) -> dict[str, Any]:
    from pydantic import BaseModel, Field
    from river import metrics

    class PredictionMessage(BaseModel):
        prediction_id: str
        model: str
        model_version: str
        timestamp: datetime
        features: dict[str, float | int | str]
        prediction: int
        score: float = Field(ge=0.0, le=1.0)
        tags: dict[str, str]

    class LabelMessage(BaseModel):
        prediction_id: str
        timestamp: datetime
        label: int

    def validated(path: Path, model: type[BaseModel], topic: int) -> Iterator[tuple]:
        with path.open("rb") as lines:
            for line in lines:
                message = model.model_validate_json(line)
                yield message.timestamp, topic, message  # type: ignore[attr-defined]

    def scorers() -> dict[str, Any]:
        return {
            "accuracy": metrics.Accuracy(),
            "precision": metrics.Precision(),
            "recall": metrics.Recall(),
            "f1": metrics.F1(),
            "roc_auc": metrics.ROCAUC(),
            "log_loss": metrics.LogLoss(),
        }

    before = rss_mb()
    start = time.perf_counter()
    cpu = time.process_time()
    pending_predictions: dict[str, Any] = {}
    pending_labels: dict[str, Any] = {}
    per_version: dict[str, dict[str, Any]] = {}
    events = matched = 0
    stream = heapq.merge(
        validated(predictions, PredictionMessage, 0),
        validated(labels, LabelMessage, 1),
        key=lambda item: (item[0], item[1]),
    )
    for _, topic, message in stream:
        events += 1
        key = message.prediction_id
        if topic == 0:
            label = pending_labels.pop(key, None)
            if label is None:
                pending_predictions[key] = message
                continue
            prediction = message
        else:
            prediction = pending_predictions.pop(key, None)
            if prediction is None:
                pending_labels[key] = message
                continue
            label = message
        matched += 1
        scores = per_version.get(prediction.model_version)
        if scores is None:
            scores = per_version[prediction.model_version] = scorers()
        y_true, y_pred = label.label == 1, prediction.prediction == 1
        for name in ("accuracy", "precision", "recall", "f1"):
            scores[name].update(y_true, y_pred)
        scores["roc_auc"].update(y_true, prediction.score)
        scores["log_loss"].update(y_true, prediction.score)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "events": events,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": rss_mb(),
        "start_mb": before,
        "matched": matched,
        "accuracy": {v: s["accuracy"].get() for v, s in sorted(per_version.items())},
        "roc_auc": {v: s["roc_auc"].get() for v, s in sorted(per_version.items())},
    }


def child(side: str, directory: Path, profile: str | None) -> None:
    pin_to_one_cpu()
    predictions, labels = directory / "predictions.jsonl", directory / "labels.jsonl"
    if side.startswith("predwatch"):
        result = run_predwatch(predictions, labels, profile, everything=side == "predwatch-all")
    else:
        result = run_baseline(predictions, labels)
    print(json.dumps(result))


# --- the parent: generate, run each side in a fresh process, compare -----------------------


def measure(side: str, directory: Path, profile: str | None) -> dict[str, Any]:
    args = ["--side", side, "--dir", str(directory)]
    if profile and side == "predwatch":
        args += ["--profile", profile]
    return run_side(__file__, args, f"{side} side")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="predictions to generate (labels come on top; default 200000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help="seconds of out-of-order arrival in each file (default 0)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per side, each in a fresh process; the fastest is shown",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also write a cProfile of the predwatch side to FILE and show it",
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        child(args.side, args.dir, args.profile)
        return

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.synthetic import generate, write_jsonl

    with tempfile.TemporaryDirectory(prefix="predwatch-bench-") as tmp:
        start = time.perf_counter()
        predictions, labels = generate(args.events, seed=args.seed, jitter=args.jitter)
        write_jsonl(tmp, predictions, labels)
        print(
            f"generated {len(predictions):,} predictions and {len(labels):,} labels "
            f"(10 features each, seed {args.seed}) in {time.perf_counter() - start:.1f} s"
        )
        del predictions, labels
        results: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):  # sides alternate, so a noisy moment hits both alike
            for side in SIDES:
                result = measure(side, Path(tmp), None)
                if side not in results or result["seconds"] < results[side]["seconds"]:
                    results[side] = result
        if args.profile:
            measure("predwatch", Path(tmp), args.profile)

    print(
        f"\n{'side':<13} {'events':>9} {'seconds':>8} {'events/s':>10} {'cpu s':>7} "
        f"{'peak MB':>8} {'run MB':>7} {'matched':>8}"
    )
    for side, r in results.items():
        rate = r["events"] / r["seconds"]
        print(
            f"{side:<13} {r['events']:>9,} {r['seconds']:>8.2f} {rate:>10,.0f} "
            f"{r['cpu_seconds']:>7.2f} {r['peak_mb']:>8.1f} {r['peak_mb'] - r['start_mb']:>7.1f} "
            f"{r['matched']:>8,}"
        )
    ours, base = results["predwatch"], results["baseline"]
    speed = (ours["events"] / ours["seconds"]) / (base["events"] / base["seconds"])
    print(
        f"\nratio predwatch/baseline: throughput {speed:.2f}x, "
        f"peak memory {ours['peak_mb'] / base['peak_mb']:.2f}x"
    )
    full = results["predwatch-all"]
    print(
        f"ratio predwatch-all/baseline: throughput "
        f"{(full['events'] / full['seconds']) / (base['events'] / base['seconds']):.2f}x, "
        f"peak memory {full['peak_mb'] / base['peak_mb']:.2f}x"
    )
    for name in ("accuracy", "roc_auc"):
        pairs = ", ".join(
            f"{v}: {ours[name].get(v, float('nan')):.4f} vs {base[name][v]:.4f}"
            for v in sorted(base[name])
        )
        print(f"cross-check {name} (predwatch vs baseline): {pairs}")
    print("(river's ROCAUC is approximate: it counts at 10 score thresholds by default)")
    if args.profile:
        import pstats

        print(f"\nprofile of the predwatch side ({args.profile}), by own time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
