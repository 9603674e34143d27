"""``python -m predwatch.demo.record DIR``: the demo's traffic as files, without a broker.

Writes ``predictions.jsonl`` and ``labels.jsonl`` (each in the order the demo sends them:
predictions as served, labels as their delays pass) and the demo's ``config.yaml``, so
that ``predwatch replay`` runs on the demo's story in a few seconds. The traffic is the
demo's (``predwatch.demo.story``): the concept changes half way, inside one segment. It
starts at 2026-11-27T00:00:00Z, so the same options always write the same files.

``Recorder`` writes the same files from a live run (``predwatch demo --record DIR``).

>>> import tempfile
>>> directory = Path(tempfile.mkdtemp())
>>> record(directory, minutes=0.5, rate=10.0)  # doctest: +ELLIPSIS
Recorded(predictions=..., labels=...)
>>> sorted(p.name for p in directory.iterdir())
['config.yaml', 'labels.jsonl', 'predictions.jsonl']
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from predwatch.demo.config import LABELS_TOPIC, write_config
from predwatch.demo.story import demo_traffic
from predwatch.demo.synthetic import START

__all__ = ["Recorded", "Recorder", "main", "record"]

PREDICTIONS, LABELS, CONFIG = "predictions.jsonl", "labels.jsonl", "config.yaml"


class Recorded(NamedTuple):
    predictions: int
    labels: int


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def record(
    directory: str | Path,
    minutes: float = 2.0,
    rate: float = 200.0,
    *,
    change_at: float | None = None,
    label_delay: float = 2.0,
    seed: int = 7,
    start: float = START,
) -> Recorded:
    """Write ``minutes`` of the demo's traffic at ``rate`` predictions/s to ``directory``;
    the concept changes at ``change_at`` seconds (default: half way)."""
    seconds = minutes * 60.0
    change_at = seconds / 2 if change_at is None else change_at
    traffic = demo_traffic(rate, change_at, label_delay, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    served = list(traffic.until(seconds, start))
    labelled = sorted((s for s in served if s.label_offset is not None), key=_label_offset)
    with (directory / PREDICTIONS).open("w", encoding="utf-8") as out:
        out.writelines(_line(s.prediction) for s in served)
    with (directory / LABELS).open("w", encoding="utf-8") as out:
        out.writelines(_line(s.label) for s in labelled if s.label is not None)
    write_config(directory / CONFIG, rate, change_at)
    return Recorded(len(served), len(labelled))


def _label_offset(served: Any) -> float:
    return float(served.label_offset)


class Recorder:
    """Writes the messages a live simulator sends (its ``on_send``) to ``directory``.

    The simulator's thread calls it while the demo's thread may read ``recorded``: a
    lock keeps the two files and the counts in step.
    """

    def __init__(self, directory: str | Path, rate: float, change_at: float) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_config(self.directory / CONFIG, rate, change_at)
        self._files: dict[str, IO[str]] = {
            "predictions": (self.directory / PREDICTIONS).open("w", encoding="utf-8"),
            "labels": (self.directory / LABELS).open("w", encoding="utf-8"),
        }
        self._counts = {"predictions": 0, "labels": 0}
        self._lock = threading.Lock()

    def __call__(self, topic: str, message: dict[str, Any]) -> None:
        kind = "labels" if topic == LABELS_TOPIC else "predictions"
        with self._lock:
            self._files[kind].write(_line(message))
            self._counts[kind] += 1

    @property
    def recorded(self) -> Recorded:
        with self._lock:
            return Recorded(self._counts["predictions"], self._counts["labels"])

    def close(self) -> None:
        with self._lock:
            for file in self._files.values():
                file.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m predwatch.demo.record",
        description="Write the demo's traffic (a concept change half way, inside one "
        "segment) as predictions.jsonl, labels.jsonl and config.yaml in DIR, for "
        "predwatch replay. The same options always write the same files.",
        epilog="example: python -m predwatch.demo.record --minutes 2 demo-traffic && "
        "predwatch replay --config demo-traffic/config.yaml --predictions "
        "demo-traffic/predictions.jsonl --labels demo-traffic/labels.jsonl",
    )
    parser.add_argument("directory", metavar="DIR", help="where to write the files")
    parser.add_argument("--minutes", type=float, default=2.0, help="length of traffic (2)")
    parser.add_argument("--rate", type=float, default=200.0, help="predictions per second (200)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic (7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0:
        print("predwatch record: --minutes and --rate must be positive", file=sys.stderr)
        return 2
    recorded = record(args.directory, args.minutes, args.rate, seed=args.seed)
    print(
        f"wrote {recorded.predictions} predictions and {recorded.labels} labels to "
        f"{args.directory}/ (the concept changes after {args.minutes * 30:g} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
