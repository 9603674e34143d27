"""``predwatch demo``: the whole service on an embedded broker, fed by simulated traffic.

It needs nothing but the installed package: it starts an ``EmbeddedBroker``,
creates the two topics, runs the ``Service`` and a ``Simulator`` on threads of
their own, prints a live view every few seconds, and after ``duration`` seconds
(or Ctrl-C) stops everything and prints a summary.

Accuracy before the concept change is that of the pairs joined before the change
(their predictions all came before it); accuracy after it is that of the pairs
joined from ``2 x label_delay`` seconds after the change on, when nearly every
label of an earlier prediction has arrived.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from predwatch.config import Settings
from predwatch.demo.broker import BrokerError, EmbeddedBroker
from predwatch.demo.simulator import MODEL, Simulator, Traffic
from predwatch.metrics.classification import ClassificationStats
from predwatch.monitor import Monitor
from predwatch.service import Service

__all__ = ["demo_settings", "run_demo"]

PREDICTIONS_TOPIC = "predictions"
LABELS_TOPIC = "labels"
PARTITIONS = 3
WINDOWS = ("last_500", "30s")
TICK = 0.1  # seconds between the main loop's checks
DRAIN_TIMEOUT = 5.0  # seconds to let the service consume what was sent, after the simulator
JOIN_TIMEOUT = 15.0  # seconds to wait for a thread to end


def demo_settings(bootstrap_servers: str, http_port: int = 0) -> Settings:
    """The demo's settings: model ``credit`` (binary), short timeouts, a fresh consumer group."""
    return Settings.model_validate(
        {
            "models": {MODEL: {"task": "binary"}},
            "join": {"label_timeout": 30.0, "grace": 2.0, "idle_timeout": 5.0},
            "metrics": {
                "windows": [{"name": "last_500", "events": 500}, {"name": "30s", "duration": 30.0}],
                "tags": ["region"],
            },
            "kafka": {
                "bootstrap_servers": bootstrap_servers,
                "group_id": f"predwatch-demo-{uuid.uuid4().hex[:12]}",
                "predictions_topic": PREDICTIONS_TOPIC,
                "labels_topic": LABELS_TOPIC,
                # A group join on the embedded broker takes about half the session timeout.
                "session_timeout": 3.0,
            },
            "http": {"host": "127.0.0.1", "port": http_port},
        }
    )


class _Worker(threading.Thread):
    """A daemon thread that keeps the exception its target raised, for the caller to re-raise."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except Exception as error:  # handed to the main thread, which re-raises it
            self.error = error


@dataclass(frozen=True)
class _Accuracy:
    """Correct and total joined pairs of the demo model, cumulative, at one moment."""

    correct: int = 0
    total: int = 0

    def __sub__(self, other: _Accuracy) -> _Accuracy:
        return _Accuracy(self.correct - other.correct, self.total - other.total)

    def text(self) -> str:
        if self.total <= 0:
            return "n/a (no pairs)"
        return f"{self.correct / self.total:.3f} ({self.total} pairs)"

    @property
    def value(self) -> float | None:
        return self.correct / self.total if self.total > 0 else None


def _accuracy(monitor: Monitor) -> _Accuracy:
    """Cumulative correct/total over every version of the demo model (call under the lock)."""
    correct = total = 0
    for (_, tag, _), scope in monitor.metrics[MODEL].scopes():
        if tag is None and isinstance(scope.cumulative, ClassificationStats):
            correct += int(scope.cumulative.confusion.trace())
            total += scope.cumulative.count
    return _Accuracy(correct, total)


def _ratio(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


class _LiveView:
    """Prints one line of the service's figures per call, with the rate since the last one."""

    HEADER = (
        f"{'time':>6} {'events/s':>9} {'joined':>8} {'pending':>8} {'unlabelled':>10} "
        f"{'invalid':>7} {'accuracy':>8} {WINDOWS[0]:>8} {WINDOWS[1]:>6}"
    )

    def __init__(self, service: Service, out: TextIO) -> None:
        self._service = service
        self._out = out
        self._last_time = 0.0
        self._last_events = 0
        self.lines = 0

    def show(self, elapsed: float) -> None:
        with self._service.lock:
            monitor = self._service.monitor
            counts = monitor.counts
            events = counts.predictions + counts.labels + counts.invalid
            row = (counts.matched, counts.pending_predictions, counts.unlabelled, counts.invalid)
            versions = monitor.metrics[MODEL].report(monitor.event_clock)
        report = next(iter(versions.values()), None)  # the demo serves a single version
        cumulative = report["cumulative"]["accuracy"] if report else None
        windows = [report["windows"][w]["accuracy"] if report else None for w in WINDOWS]
        rate = (events - self._last_events) / max(elapsed - self._last_time, 1e-9)
        self._last_time, self._last_events = elapsed, events
        if self.lines == 0:
            print(self.HEADER, file=self._out)
        print(
            f"{elapsed:>5.0f}s {rate:>9.0f} {row[0]:>8} {row[1]:>8} {row[2]:>10} {row[3]:>7} "
            f"{_ratio(cumulative):>8} {_ratio(windows[0]):>8} {_ratio(windows[1]):>6}",
            file=self._out,
            flush=True,
        )
        self.lines += 1


def run_demo(
    duration: float = 60,
    rate: float = 200,
    out: TextIO = sys.stdout,
    http_port: int = 0,
    *,
    change_at: float | None = None,
    label_delay: float = 2.0,
    interval: float | None = None,
    seed: int = 7,
) -> int:
    """Run the demo for ``duration`` seconds at ``rate`` predictions/s; print to ``out``.

    The concept changes at ``change_at`` seconds (default: half of ``duration``);
    the live view comes every ``interval`` seconds (default: 5, or less for short
    runs). Ctrl-C ends the run early, with the summary. Returns 0.
    Raises ``BrokerError`` if the embedded broker cannot start and ``ExporterError``
    if ``http_port`` is taken.
    """
    if duration <= 0 or rate <= 0:
        raise ValueError(f"duration and rate must be positive, got {duration} and {rate}")
    change_at = duration / 2 if change_at is None else change_at
    interval = interval if interval is not None else min(5.0, max(1.0, duration / 6))
    kafka_logger = logging.getLogger("kafka")
    kafka_level = kafka_logger.level
    # kafka-python logs every reconnect attempt; the demo says what matters itself.
    kafka_logger.setLevel(logging.CRITICAL)
    try:
        traffic = Traffic(seed=seed, rate=rate, change_at=change_at, label_delay=label_delay)
        with EmbeddedBroker() as broker:
            broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
            service = Service(demo_settings(broker.bootstrap_servers, http_port))
            simulator = Simulator(
                traffic, broker.bootstrap_servers, PREDICTIONS_TOPIC, LABELS_TOPIC
            )
            print(
                f"predwatch demo: broker {broker.bootstrap_servers}, topics "
                f"{PREDICTIONS_TOPIC} and {LABELS_TOPIC} ({PARTITIONS} partitions each), "
                f"/metrics at {service.url}/metrics",
                file=out,
            )
            print(
                f"model '{MODEL}' serves {rate:g} predictions/s for {duration:g} s; labels "
                f"follow after {label_delay:g} s on average, 10% never; the concept changes "
                f"at {change_at:g} s",
                file=out,
                flush=True,
            )
            _run(service, simulator, duration, change_at, label_delay, interval, out)
    finally:
        kafka_logger.setLevel(kafka_level)
    return 0


def _run(
    service: Service,
    simulator: Simulator,
    duration: float,
    change_at: float,
    label_delay: float,
    interval: float,
    out: TextIO,
) -> None:
    service_stop, simulator_stop = threading.Event(), threading.Event()
    consumer = _Worker("predwatch-service", lambda: service.run(service_stop))
    consumer.start()
    start = time.time()
    producer = _Worker("predwatch-simulator", lambda: simulator.run(simulator_stop, start))
    producer.start()
    view = _LiveView(service, out)
    settled_at = change_at + 2 * label_delay
    at_change: _Accuracy | None = None
    settled: _Accuracy | None = None
    next_view = interval
    elapsed = 0.0
    interrupted = False
    try:
        while elapsed < duration and producer.is_alive() and consumer.is_alive():
            time.sleep(TICK)
            elapsed = time.time() - start
            if at_change is None and elapsed >= change_at:
                with service.lock:
                    at_change = _accuracy(service.monitor)
                print(f"-- the concept changes now ({elapsed:.0f}s) --", file=out, flush=True)
            if settled is None and elapsed >= settled_at:
                with service.lock:
                    settled = _accuracy(service.monitor)
            if elapsed >= next_view:
                view.show(elapsed)
                next_view += interval
    except KeyboardInterrupt:
        interrupted = True
    finally:
        simulator_stop.set()
        producer.join(JOIN_TIMEOUT)
        if not interrupted:
            _drain(service, simulator)
        service_stop.set()
        consumer.join(JOIN_TIMEOUT)
    for worker in (consumer, producer):
        if worker.error is not None:
            raise worker.error
    if simulator.error is not None:
        raise BrokerError(f"the simulator could not send to the embedded broker: {simulator.error}")
    _summary(
        service, simulator, time.time() - start, interrupted, at_change, settled, settled_at, out
    )


def _drain(service: Service, simulator: Simulator) -> None:
    """Wait (a few seconds at most) until the service has read everything that was sent."""
    sent = simulator.stats.predictions + simulator.stats.labels
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        with service.lock:
            counts = service.monitor.counts
            read = counts.predictions + counts.labels + counts.invalid
        if read >= sent:
            return
        time.sleep(TICK)


def _summary(
    service: Service,
    simulator: Simulator,
    elapsed: float,
    interrupted: bool,
    at_change: _Accuracy | None,
    settled: _Accuracy | None,
    settled_at: float,
    out: TextIO,
) -> None:
    with service.lock:
        counts = service.monitor.counts
        final = _accuracy(service.monitor)
    sent = simulator.stats
    before = at_change if at_change is not None else final
    after = final - settled if settled is not None else None
    served_before = _Accuracy(sent.correct_before, sent.labelled_before)
    served_after = _Accuracy(sent.correct_after, sent.labelled_after)
    lines = [
        f"demo {'interrupted' if interrupted else 'finished'} after {elapsed:.1f} s: sent "
        f"{sent.predictions} predictions and {sent.labels} labels"
        + (f" ({sent.send_errors} failed)" if sent.send_errors else ""),
        f"  consumed {counts.predictions} predictions and {counts.labels} labels: "
        f"joined {counts.matched}, pending {counts.pending_predictions}, "
        f"unlabelled {counts.unlabelled}, orphan {counts.orphan_labels}, "
        f"late {counts.late_labels}, duplicate "
        f"{counts.duplicate_predictions + counts.duplicate_labels}, invalid {counts.invalid}",
        f"  accuracy: cumulative {final.text()}",
        f"    before the concept change: {before.text()}",
        f"    after it (pairs joined from {settled_at:g} s on): "
        + (after.text() if after is not None else "n/a (the run ended too early)"),
        f"    as served (the simulator's truth): before {served_before.text()}, "
        f"after {served_after.text()}",
        f"  /metrics was served at {service.url}/metrics (stopped with the demo)",
    ]
    print("\n".join(lines), file=out, flush=True)
