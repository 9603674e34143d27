"""``python -m predwatch.demo.produce``: the demo's traffic, sent to a Kafka cluster until stopped.

``predwatch demo`` runs everything in one process on an embedded broker; this entry point
is the traffic alone, for a real cluster (the docker-compose stack runs it as its ``traffic``
service). It creates the predictions and labels topics with the same partition count (they
must be co-partitioned), then runs the ``Simulator`` of ``predwatch.demo.simulator``: the
model ``credit`` at ``--rate`` predictions per second, labels after ``--label-delay``
seconds on average (10% never), and an abrupt concept change ``--change-at`` seconds after
the start. SIGTERM or Ctrl-C stops it; so does ``--duration``. Exit codes: 0 after a stop,
2 when Kafka cannot be reached or refuses the topics.

>>> args = build_parser().parse_args(["--bootstrap-servers", "kafka:9092", "--rate", "50"])
>>> args.bootstrap_servers, args.rate, args.partitions, args.change_at, args.duration
('kafka:9092', 50.0, 3, 600.0, None)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from predwatch.demo.simulator import MODEL, Simulator, Traffic

__all__ = ["ProduceError", "build_parser", "create_topics", "main", "run"]

log = logging.getLogger("predwatch.demo.produce")

MAX_BACKOFF = 10.0  # seconds between attempts to reach a broker that is still starting
ATTEMPT = 5.0  # seconds one attempt to reach the broker may take


class ProduceError(RuntimeError):
    """Kafka cannot be reached, or the topics cannot be made; the message says which."""


def _admin(bootstrap_servers: str, stop: threading.Event, wait: float) -> KafkaAdminClient:
    """An admin client, retrying with backoff for ``wait`` seconds while the broker starts."""
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                client_id="predwatch-traffic",
                # Short attempts, so that the loop below says what it is waiting for.
                bootstrap_timeout_ms=int(min(ATTEMPT, wait) * 1000),
                request_timeout_ms=10_000,
            )
        except KafkaError as error:
            if stop.is_set() or time.monotonic() + delay > deadline:
                raise ProduceError(
                    f"cannot reach Kafka at {bootstrap_servers} within {wait:g} s "
                    f"({type(error).__name__}); check --bootstrap-servers"
                ) from None
            log.info("waiting for Kafka at %s (%s)", bootstrap_servers, type(error).__name__)
            stop.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def create_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int,
    stop: threading.Event | None = None,
    wait: float = 120.0,
) -> dict[str, int]:
    """Create ``topics`` with ``partitions`` each (existing ones are left as they are).

    Waits up to ``wait`` seconds for the broker. Returns each topic's partition count as
    the broker reports it; raises ``ProduceError`` if the counts differ, since predwatch
    joins partition N of both topics and refuses topics that are not co-partitioned.
    """
    stop = stop or threading.Event()
    admin = _admin(bootstrap_servers, stop, wait)
    try:
        spec = {name: {"num_partitions": partitions, "replication_factor": 1} for name in topics}
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(spec, timeout_ms=int(wait * 1000))
        deadline = time.monotonic() + wait
        while True:
            counts = {
                t["name"]: len(t["partitions"])
                for t in admin.describe_topics(list(topics))
                if t["error_code"] == 0
            }
            if len(counts) == len(topics) or time.monotonic() > deadline or stop.is_set():
                break
            time.sleep(0.1)
    except KafkaError as error:
        raise ProduceError(f"Kafka at {bootstrap_servers} refused the topics: {error}") from None
    finally:
        admin.close()
    missing = [t for t in topics if t not in counts]
    if missing:
        raise ProduceError(f"topics {', '.join(missing)} did not appear within {wait:g} s")
    if len(set(counts.values())) > 1:
        raise ProduceError(
            f"the topics exist with different partition counts {counts}; predwatch needs the "
            "same count on both: delete them or choose other names with --predictions-topic "
            "and --labels-topic"
        )
    return counts


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m predwatch.demo.produce",
        description=(
            f"Send the demo's traffic (model '{MODEL}', an abrupt concept change at a known "
            "time) to the predictions and labels topics of a Kafka cluster, until stopped."
        ),
        epilog="example: python -m predwatch.demo.produce --bootstrap-servers kafka:9092 "
        "--rate 200 --change-at 600",
    )
    parser.add_argument("--bootstrap-servers", required=True, help="comma-separated host:port list")
    parser.add_argument(
        "--rate", type=_positive, default=200.0, help="predictions per second (default 200)"
    )
    parser.add_argument(
        "--change-at",
        type=_positive,
        default=600.0,
        help="seconds after the start when the concept changes (default 600)",
    )
    parser.add_argument(
        "--label-delay",
        type=_positive,
        default=2.0,
        help="mean seconds between a prediction and its label (default 2)",
    )
    parser.add_argument(
        "--duration", type=_positive, default=None, help="stop after this many seconds"
    )
    parser.add_argument("--predictions-topic", default="predictions")
    parser.add_argument("--labels-topic", default="labels")
    parser.add_argument(
        "--partitions", type=int, default=3, help="partitions of each new topic (default 3)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic (default 7)")
    parser.add_argument(
        "--wait",
        type=_positive,
        default=120.0,
        help="seconds to wait for Kafka to accept connections at the start (default 120)",
    )
    parser.add_argument(
        "--report-every", type=_positive, default=30.0, help="seconds between progress lines"
    )
    return parser


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run(args: argparse.Namespace, stop: threading.Event) -> Simulator:
    """Create the topics and produce until ``stop`` is set or ``args.duration`` has passed
    (then ``stop`` is set, which ends the simulator's thread).

    Returns the simulator, whose ``stats`` say what was sent and ``error`` why it ended early.
    """
    topics = [args.predictions_topic, args.labels_topic]
    counts = create_topics(args.bootstrap_servers, topics, args.partitions, stop, args.wait)
    traffic = Traffic(
        seed=args.seed, rate=args.rate, change_at=args.change_at, label_delay=args.label_delay
    )
    simulator = Simulator(
        traffic, args.bootstrap_servers, args.predictions_topic, args.labels_topic
    )
    log.info(
        "sending model '%s' at %g predictions/s to %s (%d partitions each); the concept "
        "changes after %g s",
        MODEL,
        args.rate,
        " and ".join(topics),
        counts[args.predictions_topic],
        args.change_at,
    )
    start = time.time()
    thread = simulator.start(stop, start)
    end = start + args.duration if args.duration is not None else float("inf")
    next_report = start + args.report_every
    while thread.is_alive() and not stop.is_set():
        now = time.time()
        if now >= end:
            break
        stop.wait(min(1.0, end - now))
        if time.time() >= next_report:
            sent = simulator.stats
            log.info(
                "%.0f s: sent %d predictions and %d labels%s",
                time.time() - start,
                sent.predictions,
                sent.labels,
                f" ({sent.send_errors} failed)" if sent.send_errors else "",
            )
            next_report += args.report_every
    stop.set()
    thread.join()
    return simulator


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every reconnect attempt; this module says what matters itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        simulator = run(args, stop)
    except ProduceError as error:
        print(f"predwatch traffic: {error}", file=sys.stderr)
        return 2
    sent = simulator.stats
    if simulator.error is not None:
        print(
            f"predwatch traffic: cannot send to Kafka at {args.bootstrap_servers} "
            f"({simulator.error}); check --bootstrap-servers",
            file=sys.stderr,
        )
        return 2
    log.info("stopped after sending %d predictions and %d labels", sent.predictions, sent.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
