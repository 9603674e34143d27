"""Data-drift detection on streams with known change points: rate, delay and false alarms.

Each seed draws the synthetic ``fraud`` traffic (``predwatch.demo.synthetic``,
ten features, versions v3/v4) and runs ``predwatch.drift.DataDrift`` with the
default settings (reference: each version's first 5000 predictions; windows
``last_1000`` and ``1h``), reporting every ``--every`` predictions:

- ``stable``: ``--stable`` unchanged events; every alarm onset (a column of a
  window going from not drifted to drifted) is a false alarm.
- ``abrupt amount x3``: from event 20,000 every ``amount`` is tripled.
- ``gradual amount x1->x3``: from event 20,000 ``amount`` is scaled by a factor
  rising linearly from 1 to 3 over 10,000 events.
- ``abrupt country mix``: from event 20,000 a third of the ``country`` values
  become ``NG``.
- ``abrupt new category``: from event 20,000 a fifth of the ``device`` values
  are a category never seen in the reference.

Delay is the number of events after the change until the first report that
flags a column; an alarm before the change counts as a false alarm.

    .venv/bin/python benchmarks/detection_data.py              # 10 seeds, 200,000 stable events
    .venv/bin/python benchmarks/detection_data.py --seeds 3 --stable 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predwatch.config import Settings
from predwatch.demo.synthetic import generate
from predwatch.drift.data import DataDrift
from predwatch.drift.settings import DataDriftSettings
from predwatch.events import Decoder, Raw

CHANGE_AT = 20_000
AFTER = 20_000  # events observed after the change
Change = Callable[[int, dict[str, Any]], None]


def _abrupt_amount(i: int, f: dict[str, Any]) -> None:
    if i >= CHANGE_AT:
        f["amount"] = round(f["amount"] * 3, 2)


def _gradual_amount(i: int, f: dict[str, Any]) -> None:
    if i >= CHANGE_AT:
        f["amount"] = round(f["amount"] * (1 + 2 * min(1.0, (i - CHANGE_AT) / 10_000)), 2)


def _country_mix(i: int, f: dict[str, Any]) -> None:
    if i >= CHANGE_AT and i % 3 == 0:
        f["country"] = "NG"


def _new_device(i: int, f: dict[str, Any]) -> None:
    if i >= CHANGE_AT and i % 5 == 0:
        f["device"] = "smart-tv"


SCENARIOS: dict[str, Change] = {
    "abrupt amount x3": _abrupt_amount,
    "gradual amount x1->x3": _gradual_amount,
    "abrupt country mix": _country_mix,
    "abrupt new category": _new_device,
}


def run(n: int, seed: int, change: Change | None, every: int) -> tuple[list[int], float]:
    """Positions (events seen) of alarm onsets, and seconds spent in observe()."""
    settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
    messages, _ = generate(n, seed=seed, unlabelled=0.0)
    if change is not None:
        for i, message in enumerate(messages):
            change(i, message["features"])
    decoder = Decoder(settings)
    drift = DataDrift("fraud", DataDriftSettings(), settings.metrics.windows)
    flagged: set[tuple[str, str, str]] = set()
    onsets: list[int] = []
    clock, spent = 0.0, 0.0
    for start in range(0, n, every):
        chunk = messages[start : start + every]
        batch, _ = decoder.predictions(Raw(msgspec.json.encode(m)) for m in chunk)
        clock = max(clock, max(p.timestamp for p in batch))
        began = time.perf_counter()
        for version in sorted({p.version for p in batch}):  # as the monitor feeds it
            drift.observe(version, [p for p in batch if p.version == version], clock)
        spent += time.perf_counter() - began
        now = {
            (version, window, column)
            for version, windows in drift.report(clock).items()
            for window, columns in windows.items()
            for column, entry in columns.items()
            if entry["drift"]
        }
        if now - flagged:
            onsets.append(start + len(batch))
        flagged = now
    return onsets, spent


def data_drift_table(
    seeds: int = 10, stable: int = 200_000, every: int = 500
) -> list[dict[str, Any]]:
    """One row per scenario: detection rate, mean and max delay, false alarms per 100,000."""
    rows = []
    false_alarms, stable_events, spent = 0, 0, 0.0
    for seed in range(seeds):
        onsets, seconds = run(stable, seed, None, every)
        false_alarms += len(onsets)
        stable_events += stable
        spent += seconds
    rows.append(
        dict(
            scenario="stable",
            runs=seeds,
            detected=None,
            mean_delay=None,
            max_delay=None,
            false_per_100k=1e5 * false_alarms / stable_events,
            us_per_prediction=1e6 * spent / stable_events,
        )
    )
    for name, change in SCENARIOS.items():
        delays: list[int] = []
        false_alarms = 0
        for seed in range(seeds):
            onsets, _ = run(CHANGE_AT + AFTER, 100 + seed, change, every)
            false_alarms += sum(1 for at in onsets if at <= CHANGE_AT)
            after = [at - CHANGE_AT for at in onsets if at > CHANGE_AT]
            if after:
                delays.append(after[0])
        rows.append(
            dict(
                scenario=name,
                runs=seeds,
                detected=len(delays) / seeds,
                mean_delay=sum(delays) / len(delays) if delays else None,
                max_delay=max(delays) if delays else None,
                false_per_100k=1e5 * false_alarms / (seeds * CHANGE_AT),
                us_per_prediction=None,
            )
        )
    return rows


def _cell(value: Any, spec: str) -> str:
    width = int("".join(c for c in spec.split(".")[0].split(",")[0] if c.isdigit()))
    return f"{'-':>{width}}" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--stable", type=int, default=200_000, help="stable events per seed")
    parser.add_argument("--every", type=int, default=500, help="predictions per batch and report")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = data_drift_table(args.seeds, args.stable, args.every)
    print(
        f"data drift, {args.seeds} seeds, change at event {CHANGE_AT:,}, "
        f"report every {args.every} events ({time.perf_counter() - started:.0f} s)\n"
    )
    print(
        f"{'scenario':<24} {'detected':>8} {'mean delay':>10} {'max delay':>9} "
        f"{'false/100k':>10} {'us/pred':>7}"
    )
    # us/pred: DataDrift.observe per prediction on the stable streams, reference building included
    for r in rows:
        print(
            f"{r['scenario']:<24} {_cell(r['detected'], '>8.0%')} "
            f"{_cell(r['mean_delay'], '>10,.0f')} {_cell(r['max_delay'], '>9,')} "
            f"{r['false_per_100k']:>10.2f} {_cell(r['us_per_prediction'], '>7.2f')}"
        )


if __name__ == "__main__":
    main()
