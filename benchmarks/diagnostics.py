"""Diagnostics: validation of failing segments and version comparisons, and their cost on replay.

Three tables, printed:

1. **Segments.** A stream of binary predictions whose errors are injected only
   in ``country == "BR" and amount > 500`` (40% wrong inside, 5% outside; about
   2% of traffic), ``--pairs`` pairs per seed, 10 seeds, default diagnostics
   settings. For the top segment: its rule, held-out support, and precision and
   recall of its membership against the true segment on 20,000 fresh pairs.
   Passing: both >= 0.8 in at least 9 of 10 seeds. Then the same stream with
   uniform errors (5% everywhere): passing when no segment is reported.
2. **Version comparisons.** Two versions with accuracies 0.90 and 0.87, 20,000
   pairs each, and two equal versions (0.90), 100 seeds each: how often the
   two-proportion z test (and Welch's t test on absolute errors of a regression
   twin) calls the difference significant at 0.05.
3. **Throughput cost.** ``predwatch.consumer.files.replay`` of generated files
   (``predwatch.demo.synthetic``, default settings) without and with an error
   tree per model version, learned from the matched pairs as the monitor would
   (``ModelDiagnostics.update`` on each batch's matched pairs, one report at the
   end), at several sampling rates; each side in its own process pinned to one CPU.

    .venv/bin/python benchmarks/diagnostics.py                  # all three
    .venv/bin/python benchmarks/diagnostics.py --only cost --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COUNTRIES = ("BR", "DE", "FR", "GB", "IN", "NG", "US")
REGIONS = ("eu", "us", "apac")


def injected_stream(
    n: int,
    seed: int,
    uniform: bool = False,
    task: str = "binary",
    inside: float = 0.4,
    outside: float = 0.05,
) -> tuple[list[Any], np.ndarray]:
    """``n`` matched pairs of version ``v1`` and the mask of the true segment
    ``country == "BR" and amount > 500``; errors inside it at ``inside``, elsewhere
    ``outside`` (``uniform``: ``outside`` everywhere). Regression: absolute errors
    of mean 3 inside and 1 outside."""
    from predwatch.records import Label, Prediction

    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(5.0, 1.2, n), 2)
    age, hour = rng.integers(0, 3650, n), rng.integers(0, 24, n)
    country, region = rng.integers(0, len(COUNTRIES), n), rng.integers(0, len(REGIONS), n)
    segment = (country == 0) & (amount > 500)
    hot = np.zeros(n, bool) if uniform else segment
    wrong = rng.random(n) < np.where(hot, inside, outside)
    error = rng.exponential(np.where(hot, 3.0, 1.0))
    pairs = []
    for i in range(n):
        features = {
            "amount": float(amount[i]),
            "account_age_days": int(age[i]),
            "hour": int(hour[i]),
            "country": COUNTRIES[country[i]],
        }
        pid = f"{seed}-{i}"
        if task == "regression":
            value: str | float = float(error[i])
            label = Label(pid, float(i), "0", 0.0)
        else:
            value, label = "1", Label(pid, float(i), "0" if wrong[i] else "1", None)
        prediction = Prediction(
            pid, "m", "v1", float(i), value, None, None, features, {"region": REGIONS[region[i]]}
        )
        pairs.append((prediction, label))
    return pairs, segment


def segment_run(
    n: int, seed: int, uniform: bool, task: str = "binary", settings: Any = None
) -> dict[str, Any]:
    """Feed ``injected_stream`` in batches of 1000; the top segment and its membership scores."""
    from predwatch.config import ModelSettings
    from predwatch.diagnostics.settings import DiagnosticsSettings
    from predwatch.diagnostics.tree import ModelDiagnostics, feature_rows

    diagnostics = ModelDiagnostics(ModelSettings(task=task), settings or DiagnosticsSettings())
    pairs, _ = injected_stream(n, seed, uniform, task)
    for start in range(0, n, 1000):
        diagnostics.update(pairs[start : start + 1000], clock=float(start))
    segments = diagnostics.segments("v1")
    result: dict[str, Any] = {"seed": seed, "segments": len(segments)}
    if segments:
        fresh, truth = injected_stream(20_000, 1000 + seed, uniform, task)
        member = np.array([segments[0].matches(row) for row in feature_rows(fresh)])
        hit = int((member & truth).sum())
        result.update(
            rule=segments[0].rule,
            support=segments[0].support,
            precision=hit / max(int(member.sum()), 1),
            recall=hit / max(int(truth.sum()), 1),
        )
    return result


def print_segments(n: int) -> None:
    print(f"1. segments: {n:,} pairs per seed, errors 40% in BR & amount > 500, 5% elsewhere")
    print(f"{'seed':>4}  {'top rule':<38} {'support':>7} {'precision':>9} {'recall':>6}  pass")
    passed = 0
    for seed in range(10):
        r = segment_run(n, seed, uniform=False)
        ok = r.get("precision", 0) >= 0.8 and r.get("recall", 0) >= 0.8
        passed += ok
        print(
            f"{seed:>4}  {r.get('rule', '(none)'):<38} {r.get('support', 0):>7} "
            f"{r.get('precision', 0):>9.2f} {r.get('recall', 0):>6.2f}  {'yes' if ok else 'NO'}"
        )
    print(f"described the injected segment in {passed}/10 seeds (needed: 9)")
    reported = [segment_run(n, seed, uniform=True)["segments"] for seed in range(10)]
    print(f"uniform errors: segments reported per seed {reported} (needed: all 0)\n")


def print_comparisons() -> None:
    from predwatch.diagnostics.compare import ErrorStats, two_proportions, welch_from_stats
    from predwatch.diagnostics.settings import DiagnosticsSettings

    alpha = DiagnosticsSettings().comparison_alpha
    print(
        "2. version comparisons: 20,000 pairs per version, 100 seeds; significant at "
        f"{alpha} (the default comparison_alpha) and at 0.05"
    )
    for name, accuracy_b in (("0.90 vs 0.87", 0.87), ("0.90 vs 0.90", 0.90)):
        p_values = []
        for seed in range(100):
            rng = np.random.default_rng(seed)
            a = int((rng.random(20_000) < 0.90).sum())
            b = int((rng.random(20_000) < accuracy_b).sum())
            p_values.append(two_proportions(a, 20_000, b, 20_000).p_value)
        print(
            f"  accuracy {name}: two-proportion z significant in "
            f"{sum(p < alpha for p in p_values)}/100 (0.05: {sum(p < 0.05 for p in p_values)})"
        )
    for name, scale_b in (("MAE 1.00 vs 1.05", 1.05), ("MAE 1.00 vs 1.00", 1.00)):
        p_values = []
        for seed in range(100):
            rng = np.random.default_rng(seed)
            sa, sb = ErrorStats(), ErrorStats()
            sa.update(rng.exponential(1.0, 20_000))
            sb.update(rng.exponential(scale_b, 20_000))
            p_values.append(welch_from_stats(sa, sb).p_value)
        print(
            f"  regression {name}: Welch t significant in "
            f"{sum(p < alpha for p in p_values)}/100 (0.05: {sum(p < 0.05 for p in p_values)})"
        )
    print()


def run_side(rate: float | None, directory: Path) -> dict[str, Any]:
    """One replay with the monitor's own diagnostics at ``rate`` (None: switched off), timed;
    drift is off on both sides so that only diagnostics differ."""
    from predwatch.commands.common import tune_gc
    from predwatch.config import Settings
    from predwatch.consumer.files import replay
    from predwatch.diagnostics.tree import ModelDiagnostics
    from predwatch.monitor import Monitor

    diagnostics_settings = {"enabled": False} if rate is None else {"sample_rate": rate}
    settings = Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            "drift": {"enabled": False},
            "diagnostics": diagnostics_settings,
        }
    )
    monitor = Monitor(settings)
    diagnostics = monitor.diagnostics["fraud"]
    spent = [0.0]  # seconds inside diagnostics calls
    update = diagnostics.update

    def timed(pairs: Any, clock: float) -> None:
        began = time.perf_counter()
        update(pairs, clock)
        spent[0] += time.perf_counter() - began

    diagnostics.update = timed  # type: ignore[method-assign]
    tune_gc()
    start = time.perf_counter()
    replay(settings, directory / "predictions.jsonl", directory / "labels.jsonl", monitor)
    began = time.perf_counter()
    report = ModelDiagnostics.report(diagnostics, monitor.event_clock) if rate else {}
    spent[0] += time.perf_counter() - began
    seconds = time.perf_counter() - start
    counts = monitor.counts
    return {
        "events": counts.predictions + counts.labels,
        "seconds": seconds,
        "matched": counts.matched,
        "diagnostics_seconds": spent[0],
        "learned": sum(v["learned"] for v in report.values()),
        "segments": sum(len(v["segments"]) for v in report.values()),
    }


def print_cost(events: int, rates: list[float], repeat: int) -> None:
    from predwatch.demo.synthetic import generate, write_jsonl

    print(
        f"3. replay throughput without and with diagnostics ({events:,} predictions, "
        f"best of {repeat}, one CPU)"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="predwatch-diag-") as tmp:
        write_jsonl(tmp, *generate(events, seed=0))
        sides: list[float | None] = [None, *rates]
        best: dict[float | None, dict[str, Any]] = {}
        for _ in range(repeat):
            for rate in sides:
                command = [sys.executable, __file__, "--side", str(rate), "--dir", tmp]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                if rate not in best or result["seconds"] < best[rate]["seconds"]:
                    best[rate] = result
    plain = best[None]["events"] / best[None]["seconds"]
    # "cost": throughput lost against the plain side; "share": the part of the same run's
    # time spent inside diagnostics calls, which noise from other processes barely moves.
    print(
        f"{'side':<22} {'events':>9} {'seconds':>8} {'events/s':>10} {'learned':>8} "
        f"{'segments':>8} {'cost':>6} {'diag s':>7} {'share':>6}"
    )
    for rate in sides:
        r = best[rate]
        speed = r["events"] / r["seconds"]
        name = "replay" if rate is None else f"+ diagnostics {rate:g}"
        print(
            f"{name:<22} {r['events']:>9,} {r['seconds']:>8.2f} {speed:>10,.0f} "
            f"{r['learned']:>8,} {r['segments']:>8} {1 - speed / plain:>6.1%} "
            f"{r['diagnostics_seconds']:>7.2f} {r['diagnostics_seconds'] / r['seconds']:>6.1%}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["segments", "comparisons", "cost"])
    parser.add_argument("--pairs", type=int, default=200_000, help="pairs per segment seed")
    parser.add_argument("--events", type=int, default=200_000, help="predictions for the cost")
    parser.add_argument("--rates", default="0.05,0.1,0.2", help="sampling rates for the cost")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        rate = None if args.side == "None" else float(args.side)
        print(json.dumps(run_side(rate, args.dir)))
        return
    sys.path.insert(0, str(ROOT))
    if args.only in (None, "segments"):
        print_segments(args.pairs)
    if args.only in (None, "comparisons"):
        print_comparisons()
    if args.only in (None, "cost"):
        print_cost(args.events, [float(r) for r in args.rates.split(",")], args.repeat)


if __name__ == "__main__":
    main()
