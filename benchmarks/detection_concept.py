"""Concept drift detection on river's synthetic streams with known change points.

For each generator and seed, a Hoeffding tree learns 5,000 events of the first
concept and is then frozen; it scores ``STABLE`` events of that concept and
``AFTER`` events during and after the change, and its 0/1 errors go through
predwatch's ``ConceptDrift`` with each detector. Per generator and detector the
table gives: the share of seeds whose change was detected (a detection at or
after the change starts, within ``AFTER`` events), mean and max delay (events
from the start of the change to the first such detection), and false alarms
(detections before the change) per 100,000 stable events.

Abrupt changes switch concept at ``STABLE``; gradual ones are
``river.datasets.synth.ConceptDriftStream`` with ``width=GRADUAL_WIDTH`` centred
at ``STABLE + GRADUAL_WIDTH``: the new concept's share is 0.03% at ``STABLE``
(where delays are counted from), 50% at the centre and 99.97% at ``STABLE + 2 *
GRADUAL_WIDTH``.
KSWIN is left out: it runs a KS test per event (~0.3 ms), too slow for this table.

Run: ``.venv/bin/python benchmarks/detection_concept.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from river import tree
from river.datasets import synth

from predwatch.drift.concept import ConceptDrift, ConceptDriftSettings

SEEDS = range(10)
TRAIN = 5_000
STABLE = 30_000
AFTER = 10_000
GRADUAL_WIDTH = 2_000
DETECTORS: dict[str, ConceptDriftSettings] = {
    "adwin": ConceptDriftSettings(),
    "page_hinkley": ConceptDriftSettings(detector="page_hinkley"),
    "page_hinkley_up": ConceptDriftSettings(
        detector="page_hinkley", parameters={"mode": "up", "threshold": 100.0}
    ),
    "ddm": ConceptDriftSettings(detector="ddm"),
    "eddm": ConceptDriftSettings(detector="eddm"),
    "hddm_a": ConceptDriftSettings(detector="hddm_a"),
    "hddm_w": ConceptDriftSettings(detector="hddm_w"),
}
GENERATORS = ("agrawal_abrupt", "agrawal_gradual", "sea_abrupt", "sea_gradual")


def _concept(family: str, which: int, seed: int) -> Any:
    if family == "agrawal":  # classification function 0, then 2
        return synth.Agrawal(classification_function=(0, 2)[which], seed=seed, perturbation=0.05)
    return synth.SEA(variant=(0, 3)[which], seed=seed, noise=0.02)  # threshold 8, then 9.5


def _stream(generator: str, seed: int) -> Iterator[tuple[Any, Any]]:
    family, kind = generator.split("_")
    before, after = _concept(family, 0, 1000 + seed), _concept(family, 1, 2000 + seed)
    if kind == "abrupt":  # ConceptDriftStream overflows with width=1; switch by hand
        return itertools.chain(itertools.islice(iter(before), STABLE), iter(after))
    return iter(
        synth.ConceptDriftStream(
            stream=before,
            drift_stream=after,
            position=STABLE + GRADUAL_WIDTH,
            width=GRADUAL_WIDTH,
            seed=seed,
        )
    )


def errors(generator: str, seed: int) -> np.ndarray:
    """The frozen model's 0/1 errors on ``STABLE + AFTER`` events of the stream."""
    model = tree.HoeffdingTreeClassifier(grace_period=100)
    for x, y in itertools.islice(_concept(generator.split("_")[0], 0, seed), TRAIN):
        model.learn_one(x, y)
    predict = model.predict_one
    stream = itertools.islice(_stream(generator, seed), STABLE + AFTER)
    return np.fromiter((predict(x) != y for x, y in stream), np.float64, STABLE + AFTER)


def _run(task: tuple[str, int]) -> tuple[str, int, float, float, dict[str, list[int]]]:
    generator, seed = task
    errs = errors(generator, seed)
    times = np.arange(errs.size, dtype=np.float64)
    found = {}
    for name, settings in DETECTORS.items():
        drift = ConceptDrift(settings)
        for start in range(0, errs.size, 5_000):  # batches, as the monitor feeds them
            drift.observe(errs[start : start + 5_000], times[start : start + 5_000])
        found[name] = [d.sequence for d in drift.detections()]
    return generator, seed, float(errs[:STABLE].mean()), float(errs[-AFTER // 2 :].mean()), found


def concept_drift_table(seeds: range = SEEDS, workers: int | None = None) -> list[dict[str, Any]]:
    """One row per generator and detector; see the module docstring for the columns."""
    tasks = [(g, s) for g in GENERATORS for s in seeds]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        results = list(pool.map(_run, tasks))
    rows = []
    for generator in GENERATORS:
        runs = [r for r in results if r[0] == generator]
        for name in DETECTORS:
            delays, alarms = [], 0
            for _, _, _, _, found in runs:
                alarms += sum(1 for at in found[name] if at < STABLE)
                after = [at - STABLE for at in found[name] if at >= STABLE]
                if after:
                    delays.append(after[0])
            rows.append(
                {
                    "generator": generator,
                    "detector": name,
                    "seeds": len(runs),
                    "error_before": float(np.mean([r[2] for r in runs])),
                    "error_after": float(np.mean([r[3] for r in runs])),
                    "detection_rate": len(delays) / len(runs),
                    "mean_delay": float(np.mean(delays)) if delays else None,
                    "max_delay": max(delays) if delays else None,
                    "false_alarms_per_100k": alarms / (len(runs) * STABLE) * 100_000,
                }
            )
    return rows


def _format(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'generator':<16} {'detector':<16} {'err before':>10} {'err after':>9} "
        f"{'detected':>8} {'mean delay':>10} {'max delay':>9} {'FA/100k':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        mean = "-" if r["mean_delay"] is None else f"{r['mean_delay']:.0f}"
        worst = "-" if r["max_delay"] is None else str(r["max_delay"])
        lines.append(
            f"{r['generator']:<16} {r['detector']:<16} {r['error_before']:>10.3f} "
            f"{r['error_after']:>9.3f} {r['detection_rate']:>8.0%} {mean:>10} {worst:>9} "
            f"{r['false_alarms_per_100k']:>8.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    began = time.perf_counter()
    table = concept_drift_table()
    print(
        f"{len(SEEDS)} seeds; {STABLE:,} stable events and {AFTER:,} after the change "
        f"per seed; model: Hoeffding tree trained on {TRAIN:,} events, frozen"
    )
    print(_format(table))
    print(f"({time.perf_counter() - began:.0f} s)")
