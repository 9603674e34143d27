"""Kafka throughput of predwatch end to end, side by side with raw kafka-python consumption.

Starts one embedded broker (Tansu, in memory), generates ``--events`` synthetic
predictions of the binary model ``fraud`` (ten features each) and their labels,
and produces them once, keyed by ``prediction_id``, to two co-partitioned topics
of three partitions each (producing is not timed). Then, on the same broker and
the same messages, each side consumes both topics from the beginning with a
fresh consumer group, in its own subprocess pinned to one CPU:

- ``raw``: a kafka-python group consumer with exactly the settings predwatch's
  source uses (``predwatch.consumer.client.consumer_settings``: range assignor,
  ``max_poll_records``, session timeout, default fetch sizes) and the same poll
  timeout; it ``json.loads`` every value and does nothing else, until it has
  seen every message (Python's default garbage collector settings).
- ``predwatch``: ``predwatch.service.Service`` as ``predwatch run`` starts it
  (``tune_gc()`` first, HTTP endpoint on port 0, commits after every batch),
  until every message is counted by the monitor and every label has its outcome
  (all labelled predictions joined).

Both sides use the same timing rule: the clock starts when the first ``poll``
returns records, so connecting and the consumer-group join (a few seconds on
Tansu) count for neither; it stops when the side is done. Group join time is
shown separately, and so is the CPU time the side's process used in the timed
span (near 100% means the consumer, not the broker, sets the pace). Each run
takes only a few seconds, so by default every side runs three times, the sides
alternating, and the fastest run of each is shown. ``--profile`` adds one
more, separate predwatch run under cProfile (of the consuming thread), not
shown in the table.

Settings: predwatch's defaults (windows ``last_1000`` and ``1h``, no tag splits,
``max_poll_records`` 5000), except ``join.idle_timeout`` of one hour, so that
expiry depends on event time only and not on how the wall clock compares with
the generated timestamps, and a session timeout of 6 s, for a quicker group
join (both sides).

    .venv/bin/python benchmarks/kafka_throughput.py                 # 100,000, best of 3
    .venv/bin/python benchmarks/kafka_throughput.py --events 20000 --seed 3
    .venv/bin/python benchmarks/kafka_throughput.py --repeat 1          # one run per side
    .venv/bin/python benchmarks/kafka_throughput.py --profile /tmp/predwatch-kafka.prof
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sides import ROOT, pin_to_one_cpu, profiled, run_side

SIDES = ("raw", "predwatch")
PARTITIONS = 3
PREDICTIONS_TOPIC = "bench-predictions"
LABELS_TOPIC = "bench-labels"
TIMEOUT = 120.0  # seconds a side may take before it is declared stuck


def _settings(bootstrap: str, group: str) -> Any:
    from predwatch.config import Settings

    return Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            "join": {"idle_timeout": "1h"},
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": group,
                "predictions_topic": PREDICTIONS_TOPIC,
                "labels_topic": LABELS_TOPIC,
                "session_timeout": "6s",
            },
            "http": {"port": 0},
        }
    )


def _timed_consumer() -> type:
    """A KafkaConsumer that notes when it was made and when a poll first returned records."""
    from kafka import KafkaConsumer

    class TimedConsumer(KafkaConsumer):  # type: ignore[misc]
        def __init__(self, **config: Any) -> None:
            self.created = time.perf_counter()
            self.first_records: float | None = None
            self.first_cpu = 0.0
            super().__init__(**config)

        def poll(self, *args: Any, **kwargs: Any) -> Any:
            records = super().poll(*args, **kwargs)
            if records and self.first_records is None:
                self.first_records = time.perf_counter()
                self.first_cpu = time.process_time()
            return records

    return TimedConsumer


# --- the two sides, each run in a child process ---------------------------------------------


def run_raw(bootstrap: str, expected: int) -> dict[str, Any]:
    from predwatch.consumer.client import consumer_settings
    from predwatch.consumer.kafka import POLL_TIMEOUT_MS

    settings = _settings(bootstrap, f"bench-raw-{uuid.uuid4().hex}")
    consumer = _timed_consumer()(**consumer_settings(settings.kafka))
    consumer.subscribe([PREDICTIONS_TOPIC, LABELS_TOPIC])
    loads = json.loads
    messages = 0
    deadline = time.monotonic() + TIMEOUT
    while messages < expected:
        records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        for batch in records.values():
            for message in batch:
                loads(message.value)
            messages += len(batch)
        if time.monotonic() > deadline:
            sys.exit(f"raw: consumed {messages:,} of {expected:,} messages in {TIMEOUT:g} s")
    end, cpu = time.perf_counter(), time.process_time()
    first = consumer.first_records
    consumer.close(autocommit=False)
    return {
        "messages": messages,
        "seconds": end - first,
        "cpu_seconds": cpu - consumer.first_cpu,
        "join_seconds": first - consumer.created,
        "matched": None,
    }


def timed_service(settings: Any) -> tuple[Any, list[Any]]:
    """The service ``predwatch run`` builds (its logging and garbage collection too), with a
    consumer that notes when the first records came; the consumers it made."""
    from predwatch.commands.common import tune_gc
    from predwatch.consumer.kafka import KafkaSource
    from predwatch.service import Service

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # as `predwatch run` does
    tune_gc()  # as `predwatch run` does
    service = Service(settings)
    consumers: list[Any] = []
    timed = _timed_consumer()

    def factory(**config: Any) -> Any:
        consumers.append(timed(**config))
        return consumers[-1]

    service.source = KafkaSource(
        settings, service.monitor, service.lock, service.health, consumer_factory=factory
    )
    return service, consumers


def run_until_counted(
    service: Any,
    expected: int,
    timeout: float,
    then: Callable[[], object] | None = None,
    run: Callable[[threading.Event], object] | None = None,
) -> dict[str, float]:
    """Run the service (``run``, default ``service.run``) until every message is counted and
    every label has its outcome, or ``timeout``; ``end`` (perf counter) and ``cpu`` (process
    time) of that moment, absent on a timeout. ``then`` is called at that moment."""
    stop = threading.Event()
    finished: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            with service.lock:
                c = service.monitor.counts
                done = c.predictions + c.labels + c.invalid >= expected and c.pending_labels == 0
            if done:
                finished["end"], finished["cpu"] = time.perf_counter(), time.process_time()
                if then is not None:
                    then()
                break
            time.sleep(0.01)
        stop.set()

    watcher = threading.Thread(target=watch, name="bench-watch", daemon=True)
    watcher.start()
    (run or service.run)(stop)
    watcher.join()
    return finished


def run_predwatch(
    bootstrap: str, expected: int, labels: int, profile: str | None
) -> dict[str, Any]:
    service, consumers = timed_service(_settings(bootstrap, f"bench-predwatch-{uuid.uuid4().hex}"))
    finished = run_until_counted(
        service, expected, TIMEOUT, run=lambda stop: profiled(profile, service.run, stop)
    )
    counts = service.monitor.counts
    seen = counts.predictions + counts.labels + counts.invalid
    if "end" not in finished:
        sys.exit(
            f"predwatch: consumed {seen:,} of {expected:,} messages "
            f"({counts.pending_labels:,} labels pending) in {TIMEOUT:g} s"
        )
    consumer = consumers[-1]
    return {
        "messages": seen,
        "seconds": finished["end"] - consumer.first_records,
        "cpu_seconds": finished["cpu"] - consumer.first_cpu,
        "join_seconds": consumer.first_records - consumer.created,
        "matched": counts.matched,
        "labels": labels,
        "invalid": counts.invalid,
        "late": counts.late_labels,
        "orphan": counts.orphan_labels,
    }


def child(args: argparse.Namespace) -> None:
    pin_to_one_cpu()
    if args.side == "raw":
        result = run_raw(args.bootstrap, args.expected)
    else:
        result = run_predwatch(args.bootstrap, args.expected, args.labels, args.profile)
    print(json.dumps(result))


# --- the parent: broker, data, each side in a fresh process, compare -----------------------


def produce(bootstrap: str, predictions: list[dict], labels: list[dict]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    for topic, messages in ((PREDICTIONS_TOPIC, predictions), (LABELS_TOPIC, labels)):
        for message in messages:
            producer.send(
                topic,
                key=message["prediction_id"].encode(),
                value=json.dumps(message, separators=(",", ":")).encode(),
            )
    producer.flush(120)
    producer.close()


def measure(
    side: str, bootstrap: str, expected: int, labels: int, profile: str | None = None
) -> dict[str, Any]:
    args = [
        "--side",
        side,
        "--bootstrap",
        bootstrap,
        "--expected",
        str(expected),
        "--labels",
        str(labels),
    ]
    if profile:
        args += ["--profile", profile]
    return run_side(__file__, args, f"{side} side")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="predictions to generate (labels come on top; default 100000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per side, each in a fresh process; the fastest is shown",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also write a cProfile of the predwatch side to FILE and show it",
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        child(args)
        return

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.broker import EmbeddedBroker
    from predwatch.demo.synthetic import generate

    with EmbeddedBroker() as broker:
        broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
        start = time.perf_counter()
        predictions, labels = generate(args.events, seed=args.seed)
        produce(broker.bootstrap_servers, predictions, labels)
        expected, n_labels = len(predictions) + len(labels), len(labels)
        print(
            f"produced {len(predictions):,} predictions and {n_labels:,} labels "
            f"(10 features each, seed {args.seed}) to 2 topics x {PARTITIONS} partitions "
            f"in {time.perf_counter() - start:.1f} s (not timed)"
        )
        del predictions, labels
        results: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):  # sides alternate, so a noisy moment hits both alike
            for side in SIDES:
                result = measure(side, broker.bootstrap_servers, expected, n_labels)
                if side not in results or result["seconds"] < results[side]["seconds"]:
                    results[side] = result
        if args.profile:
            measure("predwatch", broker.bootstrap_servers, expected, n_labels, args.profile)

    print(
        "\ntimed from the first poll that returned records to the end "
        "(connect and group join excluded on both sides; shown as 'join s')"
    )
    print(
        f"{'side':<10} {'messages':>9} {'seconds':>8} {'messages/s':>11} {'join s':>7} "
        f"{'cpu s':>6} {'cpu %':>6} {'matched':>8}"
    )
    for side, r in results.items():
        rate = r["messages"] / r["seconds"]
        matched = "-" if r["matched"] is None else f"{r['matched']:,}"
        print(
            f"{side:<10} {r['messages']:>9,} {r['seconds']:>8.2f} {rate:>11,.0f} "
            f"{r['join_seconds']:>7.2f} {r['cpu_seconds']:>6.2f} "
            f"{100 * r['cpu_seconds'] / r['seconds']:>5.0f}% {matched:>8}"
        )
    ours, raw = results["predwatch"], results["raw"]
    ratio = (ours["messages"] / ours["seconds"]) / (raw["messages"] / raw["seconds"])
    print(f"\nratio predwatch/raw: {ratio:.2f} (target >= 0.6)")
    print(
        f"predwatch joined {ours['matched']:,} of {ours['labels']:,} labels "
        f"({ours['late']:,} late, {ours['orphan']:,} orphan, {ours['invalid']:,} invalid)"
    )
    if args.profile:
        import pstats

        print(f"\nprofile of the predwatch side's consuming thread ({args.profile}), by own time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
