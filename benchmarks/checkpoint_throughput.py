"""What checkpointing costs Kafka consumption: predwatch without and with checkpoints.

Starts one embedded broker (Tansu, in memory), produces ``--events`` generated
predictions of the binary model ``fraud`` (ten features each) and their labels
once (untimed) to two co-partitioned topics of three partitions, as
``kafka_throughput.py`` does, with its settings (predwatch's defaults, a one-hour
``join.idle_timeout``, a 6 s session timeout). The generated labels come a mean
of five minutes (event time) after their prediction and a tenth never come, so
with the default one-hour ``join.label_timeout`` some ten thousand predictions
stay pending in event time. Everything is produced first, so the consumer
catches up on a backlog, as after an outage, and reads the labels topic (smaller
messages) ahead of the predictions: at a checkpoint up to some hundred thousand
labels wait for their predictions too. A checkpoint also carries the memory of
ended ids (``join.expired_id_memory``), which grows with the stream. Then each side
runs ``predwatch.service.Service`` as ``predwatch run`` starts it, in a fresh
process pinned to one CPU with a fresh consumer group, until every message is
counted and every labelled prediction is joined:

- ``off``: no ``state.dir``; offsets are committed after every batch;
- ``on``: ``state.dir`` (a fresh temporary directory per run; ``--source
  topic``: ``state.topic`` instead, a fresh Kafka topic per run, where each
  partition's state goes) with the default ``state.checkpoint_every`` of 10 s:
  the consuming thread makes the state under the monitor's lock, writes it
  durably and only then commits the offsets.

Both are timed from the first poll that returned records until the end, so the
group join counts for neither (the first checkpoint is due 10 s after the
consumer started, the join included). Each round runs both sides back to back;
the cost is judged by the median of the rounds' ratios (as in
``drift_cost.py``), which one lucky run on a shared machine cannot move. The
``on`` side also shows the checkpoints written in the timed span, their mean
size, the mean time a checkpoint took (state, write and commit), the
predictions and labels pending at the last one, and the share of the timed span
spent checkpointing; the one written on shutdown, after the timed span, is not
counted. The ratio is what a user gets, and it is more than the checkpoints'
share alone: with checkpoints, offsets are committed once per checkpoint
instead of after every batch, which saves a commit round trip per poll. Issue
11 asks that checkpointing cost at most 15% of throughput at the default
interval.

    .venv/bin/python benchmarks/checkpoint_throughput.py            # 500,000 predictions, 3 rounds
    .venv/bin/python benchmarks/checkpoint_throughput.py --events 100000 --repeat 5
    .venv/bin/python benchmarks/checkpoint_throughput.py --every 2s  # another interval
    .venv/bin/python benchmarks/checkpoint_throughput.py --source topic  # to a Kafka topic
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from kafka_throughput import (
    LABELS_TOPIC,
    PARTITIONS,
    PREDICTIONS_TOPIC,
    _settings,
    produce,
    run_until_counted,
    timed_service,
)
from sides import ROOT, pin_to_one_cpu, run_side

SIDES = ("off", "on")
BUDGET = 0.15  # the most checkpointing may cost, as a share of the throughput without it
TIMEOUT = 300.0  # seconds a side may take before it is declared stuck


# --- a side, in a child process --------------------------------------------------------------


def consume(bootstrap: str, expected: int, state: dict[str, Any] | None) -> dict[str, Any]:
    """Run the service until every message is counted; throughput and checkpoints written."""
    from predwatch.config import StateSettings

    pin_to_one_cpu()
    settings = _settings(bootstrap, f"bench-checkpoint-{uuid.uuid4().hex}")
    if state is not None:
        settings = settings.model_copy(update={"state": StateSettings.model_validate(state)})
    service, consumers = timed_service(settings)
    written: list[dict[str, Any]] = []  # one per checkpoint file written
    _note_checkpoints(service.source, service.monitor, written)
    # Checkpoints once more on shutdown, after the timed span.
    finished = run_until_counted(service, expected, TIMEOUT)
    counts = service.monitor.counts
    seen = counts.predictions + counts.labels + counts.invalid
    if "end" not in finished:
        sys.exit(f"state {state}: consumed {seen:,} of {expected:,} in {TIMEOUT:g} s")
    timed_span = [w for w in written if w["end"] <= finished["end"]]
    return {
        "messages": seen,
        "seconds": finished["end"] - consumers[-1].first_records,
        "matched": counts.matched,
        "checkpoints": len(timed_span),
        "checkpoint_bytes": [w["bytes"] for w in timed_span],
        "checkpoint_seconds": [w["seconds"] for w in timed_span],
        "pending": [w["pending"] for w in timed_span],
        "all_checkpoints": len(written),
    }


def _note_checkpoints(source: Any, monitor: Any, written: list[dict[str, Any]]) -> None:
    """Note every checkpoint ``source`` writes: its size (all partitions' with a state
    topic), how long ``source.save`` took (state, write, commit) and the predictions and
    labels pending then. A save that writes nothing (nothing changed, or no state
    configured) is not noted."""
    import predwatch.state.checkpoints as local
    import predwatch.state.partition_topic as topic

    sealed: list[int] = []  # bytes of every sealed checkpoint, in order
    for module in (local, topic):

        def noted_seal(data: Any, fingerprint: str, seal: Any = module.seal) -> bytes:
            blob: bytes = seal(data, fingerprint)
            sealed.append(len(blob))
            return blob

        module.seal = noted_seal  # patched where each store calls it
    save = source.save

    def noted_save() -> Any:
        before, begin = len(sealed), time.perf_counter()
        counts = monitor.counts
        pending = (counts.pending_predictions, counts.pending_labels)
        durable = save()
        if len(sealed) > before:
            end = time.perf_counter()
            size = sum(sealed[before:])
            written.append({"end": end, "seconds": end - begin, "bytes": size, "pending": pending})
        return durable

    source.save = noted_save


# --- the parent ------------------------------------------------------------------------------


def measure(side: str, bootstrap: str, expected: int, every: str, source: str) -> dict[str, Any]:
    args = ["--side", side, "--bootstrap", bootstrap, "--expected", str(expected)]
    with tempfile.TemporaryDirectory(prefix="predwatch-checkpoints-") as state_dir:
        if side == "on":
            where = state_dir if source == "dir" else f"bench-state-{uuid.uuid4().hex}"
            args += ["--state", json.dumps({source: where, "checkpoint_every": every})]
        result = run_side(__file__, args, f"checkpoints-{side} side")
    result["rate"] = result["messages"] / result["seconds"]
    return result


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def report(runs: dict[str, list[dict[str, Any]]], every: str, source: str) -> None:
    print(
        "\ntimed from the first poll that returned records until every message was counted"
        f"\n{'state.' + source:<11} {'messages':>9} {'best s':>7} {'best msg/s':>11} "
        f"{'median msg/s':>13} {'worst msg/s':>12}"
    )
    for side in SIDES:
        rates = [r["rate"] for r in runs[side]]
        best = max(runs[side], key=lambda r: r["rate"])
        print(
            f"{side:<11} {best['messages']:>9,} {best['seconds']:>7.2f} {best['rate']:>11,.0f} "
            f"{statistics.median(rates):>13,.0f} {min(rates):>12,.0f}"
        )
    rounds = [on["rate"] / off["rate"] for off, on in zip(runs["off"], runs["on"], strict=True)]
    paired = statistics.median(rounds)
    print(
        "\nper round on/off: "
        + ", ".join(f"{r:.3f}" for r in rounds)
        + f"  (cost {1 - max(rounds):.1%} .. {1 - min(rounds):.1%}; median {1 - paired:.1%})"
    )
    print(
        f"\ncheckpoints of the 'on' side (state.{source}, state.checkpoint_every {every}), "
        "in the timed span:"
    )
    for i, r in enumerate(runs["on"], 1):
        size = _mean([float(b) for b in r["checkpoint_bytes"]])
        took = _mean(r["checkpoint_seconds"])
        share = sum(r["checkpoint_seconds"]) / r["seconds"]
        pending = (
            "{:,} predictions and {:,} labels".format(*r["pending"][-1])
            if r["pending"]
            else "nothing"
        )
        print(
            f"  round {i}: {r['checkpoints']} written in {r['seconds']:.1f} s"
            + (f", mean {size / 1e6:.1f} MB, mean {took:.2f} s each" if size and took else "")
            + f" ({share:.0%} of the span), {pending} pending at the last"
            + f" ({r['all_checkpoints']} with the one on shutdown)"
        )
    print(
        f"\nbudget {BUDGET:.0%}, judged by the median round: "
        f"{'met' if 1 - paired <= BUDGET else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=500_000, help="predictions (labels on top; default 500000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both sides (default 3)")
    parser.add_argument(
        "--every", default="10s", help="state.checkpoint_every of the 'on' side (default 10s)"
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--source",
        choices=("dir", "topic"),
        default="dir",
        help="where the 'on' side checkpoints: state.dir (default) or state.topic (Kafka)",
    )
    parser.add_argument("--state", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(consume(args.bootstrap, args.expected, args.state)))
        return

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.broker import EmbeddedBroker
    from predwatch.demo.synthetic import generate

    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with EmbeddedBroker() as broker:
        broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
        start = time.perf_counter()
        predictions, labels = generate(args.events, seed=args.seed)
        produce(broker.bootstrap_servers, predictions, labels)
        expected = len(predictions) + len(labels)
        print(
            f"produced {len(predictions):,} predictions and {len(labels):,} labels "
            f"(seed {args.seed}) to 2 topics x {PARTITIONS} partitions "
            f"in {time.perf_counter() - start:.1f} s (not timed)"
        )
        del predictions, labels
        for _ in range(args.repeat):  # sides alternate, so a noisy moment hits both alike
            for side in SIDES:
                bootstrap = broker.bootstrap_servers
                runs[side].append(measure(side, bootstrap, expected, args.every, args.source))
    report(runs, args.every, args.source)


if __name__ == "__main__":
    main()
