"""The demo: seeded traffic with a known concept change, its producer, and a whole short run."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
import pytest

from predwatch.cli import build_parser
from predwatch.config import Settings
from predwatch.demo.app import run_demo
from predwatch.demo.simulator import Served, Simulator, Traffic
from predwatch.monitor import Monitor
from predwatch.records import Raw

CHANGE_AT = 10.0


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return Traffic(seed=11, rate=100.0, change_at=CHANGE_AT, label_delay=2.0, unlabelled=0.1)


@pytest.fixture(scope="module")
def served(traffic: Traffic) -> list[Served]:
    return list(traffic.until(2 * CHANGE_AT, start=1_800_000_000.0))


def _accuracy(events: list[Served]) -> float:
    labelled = [e for e in events if e.label is not None]
    return float(
        np.mean(
            [
                e.label["label"] == e.prediction["prediction"]  # type: ignore[index]
                for e in labelled
            ]
        )
    )


def test_same_seed_gives_the_same_traffic(traffic: Traffic, served: list[Served]) -> None:
    again = Traffic(seed=11, rate=100.0, change_at=CHANGE_AT, label_delay=2.0, unlabelled=0.1)
    assert list(again.until(2 * CHANGE_AT, start=1_800_000_000.0)) == served
    other = Traffic(seed=12, rate=100.0, change_at=CHANGE_AT, train_size=500)
    assert [e.prediction for e in other.until(1.0, 1_800_000_000.0)] != [
        e.prediction for e in served if e.offset < 1.0
    ]


def test_traffic_follows_the_wire_contract(served: list[Served]) -> None:
    assert 1500 < len(served) < 2500  # 100/s over 20 s, Poisson
    ids = [e.prediction["prediction_id"] for e in served]
    assert len(set(ids)) == len(ids)
    for event in served:
        message = event.prediction
        assert message["model"] == "credit" and len(message["features"]) == 10
        assert message["tags"]["region"] in ("eu", "us", "apac")
        assert message["prediction"] == int(message["score"] >= 0.5)
        if event.label is not None:
            assert event.label["prediction_id"] == message["prediction_id"]
            assert event.label_offset is not None and event.label_offset >= event.offset
    unlabelled = sum(e.label is None for e in served) / len(served)
    assert 0.06 < unlabelled < 0.14
    delays = [e.label_offset - e.offset for e in served if e.label_offset is not None]
    assert 1.6 < np.mean(delays) < 2.4


def test_accuracy_drops_at_the_concept_change(served: list[Served]) -> None:
    before = [e for e in served if e.offset < CHANGE_AT]
    after = [e for e in served if e.offset >= CHANGE_AT]
    assert all(not e.changed for e in before) and all(e.changed for e in after)
    assert _accuracy(before) > 0.85
    assert _accuracy(after) < 0.65
    # Just before and just after the change, too: the change is abrupt.
    assert _accuracy([e for e in before if e.offset >= CHANGE_AT - 3]) > 0.8
    assert _accuracy([e for e in after if e.offset < CHANGE_AT + 3]) < 0.7


def test_the_monitor_sees_the_traffic_as_generated(served: list[Served]) -> None:
    """Replayed through the core, every labelled prediction joins and scores as generated."""
    settings = Settings.model_validate({"models": {"credit": {"task": "binary"}}})
    monitor = Monitor(settings)
    predictions = [Raw(json.dumps(e.prediction).encode()) for e in served]
    labels = [Raw(json.dumps(e.label).encode()) for e in served if e.label is not None]
    monitor.process(0, predictions, labels, now=1_800_000_000.0 + 2 * CHANGE_AT)
    assert monitor.counts.invalid == 0
    assert monitor.counts.matched == len(labels)
    accuracy = monitor.summary()["models"]["credit"]["v1"]["cumulative"]["accuracy"]
    assert accuracy == pytest.approx(_accuracy(served))


@dataclass
class _Sent:
    topic: str
    key: bytes
    value: bytes


class _FakeFuture:
    def add_errback(self, *_: Any) -> _FakeFuture:
        return self


class _FakeProducer:
    """Records what is sent; sets ``stop`` once ``limit`` messages went out."""

    def __init__(self, stop: threading.Event, limit: int, **_: Any) -> None:
        self.sent: list[_Sent] = []
        self._stop, self._limit = stop, limit
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> _FakeFuture:
        self.sent.append(_Sent(topic, key, value))
        if len(self.sent) >= self._limit:
            self._stop.set()
        return _FakeFuture()

    def close(self, timeout: float) -> None:
        self.closed = True


def test_simulator_sends_predictions_then_their_labels_when_due(traffic: Traffic) -> None:
    stop = threading.Event()
    producer = _FakeProducer(stop, limit=600)
    ticks = iter(np.arange(0.0, 1000.0, 0.05))  # a fake clock: 50 ms per look
    simulator = Simulator(
        traffic,
        "unused:9092",
        "p",
        "l",
        clock=lambda: float(next(ticks)),
        producer_factory=lambda **_: producer,
    )
    simulator.run(stop, start=0.0)
    assert producer.closed
    order = {s.key: i for i, s in enumerate(producer.sent) if s.topic == "p"}
    labels = [(i, s) for i, s in enumerate(producer.sent) if s.topic == "l"]
    assert labels and all(order[s.key] < i for i, s in labels)
    assert simulator.stats.predictions == len(order)
    assert simulator.stats.labels == len(labels)


def test_demo_parser_takes_duration_and_rate() -> None:
    parser = build_parser()
    args = parser.parse_args(["demo", "--duration", "5", "--rate", "50"])
    assert (args.duration, args.rate, args.http_port) == (5.0, 50.0, 0)
    assert args.verb == "demo"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--rate", "0"])


def test_demo_runs_end_to_end_and_shows_the_change() -> None:
    out = StringIO()
    assert run_demo(duration=12, rate=100, out=out) == 0
    text = out.getvalue()
    view_lines = re.findall(r"^\s+\d+s\s+\d+\s+\d+", text, flags=re.MULTILINE)
    assert len(view_lines) >= 2, text
    joined = re.search(r"joined (\d+)", text)
    assert joined and int(joined.group(1)) > 0, text
    before = re.search(r"before the concept change: ([\d.]+)", text)
    after = re.search(r"after it \(pairs joined from [\d.]+ s on\): ([\d.]+)", text)
    assert before and after, text
    assert float(after.group(1)) < float(before.group(1)) - 0.2, text
    assert re.search(r"/metrics was served at http://127\.0\.0\.1:\d+/metrics", text), text
