"""Memory per pending prediction: what a prediction waiting for its label costs the join.

Decodes ``--events`` generated predictions of the binary model ``fraud`` (ten
features each, as the other benchmarks generate them) with predwatch's decoder
and adds them to one partition's join, with no label, so every one stays
pending. It reports the bytes the join holds per pending prediction in its
compact in-memory store (``tracemalloc``: the memory allocated while adding
them and still held), next to two figures measured the same way in the same
run: the layout the join had before the store (the decoded records in a dict by
id, a heap of (deadline, id) tuples), and the raw JSON message bytes kept in a
dict by id, what a store of whole messages would hold.

    .venv/bin/python benchmarks/pending_memory.py                 # 100,000 predictions
    .venv/bin/python benchmarks/pending_memory.py --events 20000
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any


def held_bytes(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes allocated by ``build`` and still held when it returns, and what it returned."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="predictions (default 100000)")
    args = parser.parse_args(argv)

    from predwatch.config import Settings
    from predwatch.demo.synthetic import generate
    from predwatch.events import Decoder
    from predwatch.records import Raw
    from predwatch.windowing.join import PartitionJoin
    from predwatch.windowing.pending import CompactStore, StoreFactory

    predictions, _ = generate(args.events, seed=0, unlabelled=1.0)
    messages = [json.dumps(p).encode() for p in predictions]
    decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))

    def join_them(store: StoreFactory = CompactStore) -> PartitionJoin:
        decoded, invalid = decoder.predictions([Raw(m) for m in messages])
        assert not invalid and len(decoded) == args.events
        join = PartitionJoin(
            label_timeout=30 * 86400,
            grace=60,
            idle_timeout=1e9,
            expired_id_memory=100_000,
            store=store,
        )
        join.process(decoded, [], now=0.0)
        assert join.pending_predictions == args.events
        return join

    def raw_dict() -> dict[str, bytes]:
        # A copy of each message, as a store of whole messages would hold it.
        return {
            p["prediction_id"]: bytes(bytearray(m))
            for p, m in zip(predictions, messages, strict=True)
        }

    def decoded_dict() -> tuple[dict[str, Any], list[tuple[float, str]]]:
        # The join's layout before the compact store: the records, and a deadline heap.
        decoded, _ = decoder.predictions([Raw(m) for m in messages])
        by_id = {p.id: p for p in decoded}
        heap: list[tuple[float, str]] = []
        for p in decoded:
            heapq.heappush(heap, (p.timestamp + 30 * 86400, p.id))
        return by_id, heap

    rows = [("predwatch join (compact store)", held_bytes(join_them)[0])]
    # Without the latest 512 to 1,024 kept unpacked: what each packed one costs.
    all_packed = partial(join_them, partial(CompactStore, recent=0))
    rows.append(("  the same, every one packed", held_bytes(all_packed)[0]))
    rows.append(("before: decoded records, deadline heap", held_bytes(decoded_dict)[0]))
    rows.append(("baseline: raw message bytes by id", held_bytes(raw_dict)[0]))
    print(f"{args.events:,} pending predictions, ten features each")
    print(f"{'side':<40} {'MB':>8} {'bytes per prediction':>22}")
    for name, size in rows:
        print(f"{name:<40} {size / 1e6:8.1f} {size / args.events:22,.0f}")


if __name__ == "__main__":
    main()
