"""Pending predictions on disk: RocksDB (``rocksdict``) against LMDB, through the same store.

Each store runs in its own child process, so that its peak resident memory
(``VmHWM``) is its own. The child decodes 100,000 generated predictions of the
binary model ``fraud`` (ten features each) with predwatch's decoder, then adds
``--events`` pending predictions to one ``DiskPendingStore`` by repeating that
batch with new ids and later timestamps, committing every ``--commit-every``
changes as the checkpoints would. It then reads ``--gets`` random ids, matches
(pops) a ``--matched`` share of them, and expires the rest with ``pop_due`` in
steps of the watermark. It reports adds/s, gets/s, pops/s, expiries/s, bytes on
disk per pending prediction (the directory after the fill) and the peak RSS
against the RSS before the store was opened.

    .venv/bin/python benchmarks/disk_store.py                       # 1,000,000 each
    .venv/bin/python benchmarks/disk_store.py --events 10000000 --stores rocksdb
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BATCH = 100_000
LABEL_WINDOW = 30 * 86400.0


class LmdbBackend:
    """LMDB (``lmdb``) behind predwatch's disk-store backend protocol, for the comparison."""

    def __init__(self, path: str, map_size: int = 1 << 40) -> None:
        import lmdb

        self._env = lmdb.open(path, map_size=map_size, readahead=False, max_dbs=0, sync=True)
        self._read = self._env.begin()

    def get(self, key: bytes) -> bytes | None:
        value = self._read.get(key)
        return None if value is None else bytes(value)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        cursor = self._read.cursor()
        if not cursor.set_range(start):
            return
        for key, value in cursor:
            if key >= stop:
                return
            yield key, value

    def write(
        self,
        ranges: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        puts: list[tuple[bytes, bytes]],
    ) -> None:
        doomed = [key for start, stop in ranges for key, _ in self.scan(start, stop)]
        self._read.abort()
        with self._env.begin(write=True) as txn:
            for key in doomed:
                txn.delete(key)
            for key in deletes:
                txn.delete(key)
            for key, value in puts:
                txn.put(key, value)
        self._read = self._env.begin()

    def close(self) -> None:
        self._read.abort()
        self._env.close()


def peak_rss() -> tuple[int, int]:
    """(VmHWM, VmRSS) of this process, in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(fields[name].split()[0]) * 1024 for name in ("VmHWM", "VmRSS"))  # type: ignore[return-value]


def directory_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def run_one(
    store_name: str, events: int, commit_every: int, gets: int, matched: float
) -> dict[str, Any]:
    from predwatch.config import Settings
    from predwatch.demo.synthetic import generate
    from predwatch.events import Decoder
    from predwatch.records import Raw
    from predwatch.state.disk_store import DiskDatabase, RocksBackend

    predictions, _ = generate(BATCH, seed=0, unlabelled=1.0)
    decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
    batch, invalid = decoder.predictions([Raw(json.dumps(p).encode()) for p in predictions])
    assert not invalid
    del predictions
    span = batch[-1].timestamp - batch[0].timestamp + 1.0
    rss_before = peak_rss()[1]

    path = tempfile.mkdtemp(prefix=f"pending-{store_name}-", dir=os.environ.get("BENCH_DIR"))
    backend = RocksBackend(path) if store_name == "rocksdb" else LmdbBackend(path)
    database = DiskDatabase(backend)
    store = database.store("predictions-0")
    figures: dict[str, Any] = {"store": store_name, "events": events}

    commits: list[float] = []

    def commit_if_due() -> None:
        if store.uncommitted >= commit_every:
            began = time.perf_counter()
            database.commit({b"checkpoint": b"x" * 1000})
            commits.append(time.perf_counter() - began)

    def ids(count: int) -> list[str]:
        rng = random.Random(1)
        return [f"{r // BATCH}-{batch[r % BATCH].id}" for r in rng.sample(range(events), count)]

    start = time.perf_counter()
    rounds = -(-events // BATCH)
    for r in range(rounds):
        shift = r * span
        for p in batch[: min(BATCH, events - r * BATCH)]:
            moved = p._replace(id=f"{r}-{p.id}", timestamp=p.timestamp + shift)
            store.add(moved, moved.timestamp + LABEL_WINDOW)
            commit_if_due()
    database.commit({b"checkpoint": b"x" * 1000})
    figures["adds_per_s"] = events / (time.perf_counter() - start)
    figures["commit_ms"] = 1000 * sum(commits) / max(1, len(commits))
    figures["disk_bytes_per_pending"] = directory_bytes(path) / events
    assert len(store) == events

    sample = ids(gets)
    start = time.perf_counter()
    for key in sample:
        assert store.get(key) is not None
    figures["gets_per_s"] = gets / (time.perf_counter() - start)

    popped = sample[: int(gets * matched)]
    start = time.perf_counter()
    for key in popped:
        assert store.pop(key) is not None
        commit_if_due()
    database.commit()
    figures["pops_per_s"] = len(popped) / (time.perf_counter() - start)

    start, expired, steps = time.perf_counter(), 0, 100
    first = batch[0].timestamp + LABEL_WINDOW
    for step in range(1, steps + 1):
        mark = first + rounds * span * step / steps
        expired += len(store.pop_due(mark))
        database.commit()
    figures["expiries_per_s"] = expired / (time.perf_counter() - start)
    assert len(store) == 0 and expired == events - len(popped), (len(store), expired)
    database.close()
    shutil.rmtree(path)
    hwm, _ = peak_rss()
    figures["rss_before_mb"] = rss_before / 1e6
    figures["peak_rss_mb"] = hwm / 1e6
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--stores", default="rocksdb,lmdb", help="rocksdb, lmdb or both")
    parser.add_argument("--commit-every", type=int, default=100_000, help="changes per commit")
    parser.add_argument("--gets", type=int, default=100_000, help="random reads")
    parser.add_argument("--matched", type=float, default=0.5, help="share of the reads popped")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        figures = run_one(args.child, args.events, args.commit_every, args.gets, args.matched)
        print(json.dumps(figures))
        return

    print(
        f"{args.events:,} pending predictions, ten features each, "
        f"a commit every {args.commit_every:,} changes"
    )
    columns = [  # (heading, figure, width)
        ("store", "store", 8),
        ("adds/s", "adds_per_s", 9),
        ("gets/s", "gets_per_s", 9),
        ("pops/s", "pops_per_s", 9),
        ("expiries/s", "expiries_per_s", 11),
        ("disk B/pred", "disk_bytes_per_pending", 12),
        ("commit ms", "commit_ms", 10),
        ("RSS before MB", "rss_before_mb", 14),
        ("peak RSS MB", "peak_rss_mb", 12),
    ]
    print(" ".join(f"{heading:>{width}}" for heading, _, width in columns))
    for name in args.stores.split(","):
        command = [sys.executable, __file__, "--child", name, "--events", str(args.events)]
        command += ["--commit-every", str(args.commit_every), "--gets", str(args.gets)]
        command += ["--matched", str(args.matched)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(
            " ".join(
                f"{figures[key]:>{width}}" if key == "store" else f"{figures[key]:>{width},.0f}"
                for _, key, width in columns
            )
        )


if __name__ == "__main__":
    main()
