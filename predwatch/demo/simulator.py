"""Traffic of a served credit model whose world changes at a known time, produced to Kafka.

``Traffic`` is the pure, seeded part: it trains a Hoeffding tree on the start of a
``river.datasets.synth.Agrawal`` stream (classification function 0) and then serves
it, one prediction after another, as wire-format messages with their delayed labels.
At ``change_at`` seconds the labels start to follow another classification function
(an abrupt concept change), so the model's accuracy falls from about 0.94 to about 0.5.
With a ``Segment``, the change is confined to one region of the feature space instead
(one region tag and large loans), which also grows at the change: there the labels turn
into the reverse of what the model learnt, elsewhere they stay as they were, and the
loans' distribution drifts.
``Simulator`` sends that traffic to the predictions and labels topics in real time.

>>> traffic = Traffic(seed=3, rate=50.0, change_at=1.0, train_size=500)
>>> served = list(traffic.until(2.0, start=0.0))
>>> first = served[0].prediction
>>> first["model"], len(first["features"]), sorted(first["tags"]), first["prediction"] in (0, 1)
('credit', 10, ['region'], True)
>>> [s.prediction for s in served] == [s.prediction for s in traffic.until(2.0, start=0.0)]
True
>>> all(s.changed == (s.offset >= 1.0) for s in served)
True
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from river import tree
from river.datasets import synth

__all__ = ["MODEL", "Segment", "Served", "SimulationStats", "Simulator", "Traffic"]

log = logging.getLogger(__name__)

MODEL = "credit"
VERSION = "v1"
REGIONS = ("eu", "us", "apac")
BEFORE_FUNCTION = 0  # Agrawal's concept the model is trained on
AFTER_FUNCTION = 2  # the concept after the change; the tree scores ~0.5 on it
PERTURBATION = 0.05  # feature noise, so that even before the change accuracy is below 1
TICK = 0.01  # seconds between the producer's checks for due messages
DELIVERY_TIMEOUT_MS = 3000
MAX_LOAN = 500_000.0  # Agrawal's loans are uniform on [0, 500000]

Message = dict[str, Any]


def _stamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _features(x: dict[str, Any]) -> dict[str, Any]:
    """Agrawal's nine features, rounded as a producer would send them, plus loan-to-income."""
    features: dict[str, Any] = {
        name: round(float(value), 2) if isinstance(value, float) else int(value)
        for name, value in x.items()
    }
    income = float(x["salary"]) + float(x["commission"])
    features["loan_to_income"] = round(float(x["loan"]) / income, 4) if income > 0 else 0.0
    return features


@dataclass(frozen=True)
class Segment:
    """Where the concept changes, when the change is local: predictions tagged ``region``
    with a ``loan`` above ``min_loan``. From the change on, a share ``share`` of the traffic
    is moved into the segment (a new population of applicants, so ``loan`` drifts), and the
    label of every prediction in it is the reverse of what the model learnt.

    >>> Segment().rule
    'tags.region = apac and loan > 400000'
    """

    region: str = "apac"
    min_loan: float = 400_000.0
    share: float = 0.3

    def __post_init__(self) -> None:
        if self.region not in REGIONS or not 0 <= self.min_loan < MAX_LOAN:
            raise ValueError(f"region must be one of {REGIONS} and min_loan below {MAX_LOAN:g}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {self.share}")

    @property
    def rule(self) -> str:
        """The segment as predwatch's segments read (tags are ``tags.<name>``)."""
        return f"tags.region = {self.region} and loan > {self.min_loan:g}"

    def holds(self, region: str, loan: float) -> bool:
        return region == self.region and loan > self.min_loan


@dataclass(frozen=True)
class Served:
    """One served prediction: its message, and its label's message unless it is never labelled.

    ``offset`` and ``label_offset`` are seconds after the start of the traffic;
    ``correct`` says whether the prediction equals the true label.
    """

    offset: float
    prediction: Message
    label: Message | None
    label_offset: float | None
    changed: bool
    correct: bool


class Traffic:
    """Seeded, deterministic traffic of the model ``credit``; building it trains the model.

    Predictions arrive at ``rate`` per second on average (Poisson); a label follows
    each after an exponential delay of mean ``label_delay`` seconds, except for a
    share ``unlabelled`` that never get one. From ``change_at`` seconds on, the true
    labels follow Agrawal's classification function ``AFTER_FUNCTION``, or, with a
    ``segment``, those in the segment are reversed.
    """

    def __init__(
        self,
        seed: int = 7,
        rate: float = 200.0,
        change_at: float = 30.0,
        label_delay: float = 2.0,
        unlabelled: float = 0.1,
        train_size: int = 3000,
        segment: Segment | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if label_delay < 0 or not 0.0 <= unlabelled <= 1.0:
            raise ValueError("label_delay must be >= 0 and unlabelled between 0 and 1")
        self.seed = seed
        self.rate = rate
        self.change_at = change_at
        self.label_delay = label_delay
        self.unlabelled = unlabelled
        self.train_size = train_size
        self.segment = segment
        self.model = tree.HoeffdingTreeClassifier(grace_period=100)
        for x, y in itertools.islice(self._stream(BEFORE_FUNCTION, seed), train_size):
            self.model.learn_one(_features(x), y)

    @staticmethod
    def _stream(function: int, seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
        generator = synth.Agrawal(
            classification_function=function, seed=seed, perturbation=PERTURBATION
        )
        return iter(generator)

    def events(self, start: float) -> Iterator[Served]:
        """The endless traffic, in serving order; ``start`` is the epoch time of offset 0.

        The same traffic and ``start`` always give the same events.
        """
        rng = np.random.default_rng(self.seed)
        before = self._stream(BEFORE_FUNCTION, self.seed)
        for _ in itertools.islice(before, self.train_size):  # the samples the model learnt
            pass
        after = self._stream(AFTER_FUNCTION, self.seed + 1)
        offset = 0.0
        for index in itertools.count():
            offset += float(rng.exponential(1.0 / self.rate))
            changed = offset >= self.change_at
            if self.segment is None:
                x, y = next(after if changed else before)
                region = REGIONS[int(rng.integers(len(REGIONS)))]
            else:
                x, y, region = self._local(self.segment, changed, before, after, rng)
            features = _features(x)
            score = float(self.model.predict_proba_one(features).get(1, 0.0))
            predicted = int(score >= 0.5)
            delay = float(rng.exponential(self.label_delay)) if self.label_delay > 0 else 0.0
            labelled = bool(rng.random() >= self.unlabelled)
            prediction_id = f"{MODEL}-{self.seed:x}-{index:09d}"
            label_offset = offset + delay if labelled else None
            yield Served(
                offset=offset,
                prediction={
                    "prediction_id": prediction_id,
                    "model": MODEL,
                    "model_version": VERSION,
                    "timestamp": _stamp(start + offset),
                    "features": features,
                    "prediction": predicted,
                    "score": round(score, 4),
                    "tags": {"region": region},
                },
                label=(
                    {
                        "prediction_id": prediction_id,
                        "timestamp": _stamp(start + label_offset),
                        "label": int(y),
                    }
                    if label_offset is not None
                    else None
                ),
                label_offset=label_offset,
                changed=changed,
                correct=predicted == int(y),
            )

    @staticmethod
    def _local(
        segment: Segment,
        changed: bool,
        before: Iterator[tuple[dict[str, Any], Any]],
        after: Iterator[tuple[dict[str, Any], Any]],
        rng: np.random.Generator,
    ) -> tuple[dict[str, Any], Any, str]:
        """One applicant and its label when the change is confined to ``segment``."""
        x, y = next(before)
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        if not changed:
            return x, y, region
        loan = float(x["loan"])
        if rng.random() < segment.share:  # one of the new population
            region, loan = segment.region, float(rng.uniform(segment.min_loan, MAX_LOAN))
        if segment.holds(region, loan):
            y = 1 - int(y)  # the reverse of what the model learnt
        return {**x, "loan": loan}, y, region

    def until(self, seconds: float, start: float) -> Iterator[Served]:
        """The events served in the first ``seconds`` of the traffic."""
        return itertools.takewhile(lambda served: served.offset < seconds, self.events(start))


@dataclass
class SimulationStats:
    """What a simulator has sent so far, and the served accuracy before and after the change
    (the truth a monitor should find, from labelled predictions only)."""

    predictions: int = 0
    labels: int = 0
    send_errors: int = 0
    correct_before: int = 0
    labelled_before: int = 0
    correct_after: int = 0
    labelled_after: int = 0

    def count(self, served: Served) -> None:
        self.predictions += 1
        if served.label is None:
            return
        if served.changed:
            self.labelled_after += 1
            self.correct_after += served.correct
        else:
            self.labelled_before += 1
            self.correct_before += served.correct


def _close(producer: Any, timeout: float) -> None:
    """Close the producer within about ``timeout`` seconds, giving up on undelivered messages."""
    try:
        producer.close(timeout=timeout)
    except KafkaTimeoutError:
        log.warning("simulator gave up on messages it could not deliver; is the broker gone?")
        # kafka-python's close() raises from its flush before it force-closes the I/O thread
        # (and its __del__ then raises again); force that thread closed, which fails the
        # batches still held, so that a second close() completes at once.
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(timeout)
        try:
            producer.close(timeout=0)
        except KafkaTimeoutError:
            log.warning("simulator's Kafka producer did not close cleanly")


def _encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class Simulator:
    """Sends a ``Traffic`` to Kafka in real time, keyed by prediction id, until stopped.

    Each prediction is sent when its offset is due, each label when its delay has
    passed; labels still waiting when ``stop`` is set are never sent.
    """

    def __init__(
        self,
        traffic: Traffic,
        bootstrap_servers: str,
        predictions_topic: str = "predictions",
        labels_topic: str = "labels",
        clock: Callable[[], float] = time.time,
        producer_factory: Callable[..., Any] = KafkaProducer,
        on_send: Callable[[str, Message], None] | None = None,
    ) -> None:
        self.traffic = traffic
        self.bootstrap_servers = bootstrap_servers
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self._clock = clock
        self._producer_factory = producer_factory
        self._on_send = on_send  # sees every message handed to the producer, e.g. to record it
        self.stats = SimulationStats()
        self.error: Exception | None = None

    def start(self, stop: threading.Event, start: float | None = None) -> threading.Thread:
        """Run on a daemon thread of its own; see ``run``."""
        thread = threading.Thread(
            target=self.run, args=(stop, start), name="predwatch-simulator", daemon=True
        )
        thread.start()
        return thread

    def run(self, stop: threading.Event, start: float | None = None) -> None:
        """Produce until ``stop`` is set; ``start`` (epoch seconds, default now) is offset 0.

        A broker that cannot be reached ends the run; ``error`` then says why.
        """
        try:
            producer = self._producer_factory(
                bootstrap_servers=self.bootstrap_servers,
                client_id="predwatch-simulator",
                linger_ms=5,
                # Give up on a message after a few seconds, so that closing never hangs
                # on a broker that went away (Ctrl-C in a terminal stops it too).
                request_timeout_ms=DELIVERY_TIMEOUT_MS - 1000,
                delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            )
        except KafkaError as error:
            log.error("simulator cannot reach Kafka at %s: %s", self.bootstrap_servers, error)
            self.error = error
            return
        try:
            self._produce(producer, stop, self._clock() if start is None else start)
        finally:
            _close(producer, timeout=DELIVERY_TIMEOUT_MS / 1000 + 1)

    def _produce(self, producer: Any, stop: threading.Event, start: float) -> None:
        events = self.traffic.events(start)
        upcoming = next(events)
        due_labels: list[tuple[float, int, Message]] = []  # heap of (label offset, seq, label)
        sequence = itertools.count()
        while not stop.is_set():
            elapsed = self._clock() - start
            while upcoming.offset <= elapsed:
                self._send(producer, self.predictions_topic, upcoming.prediction)
                self.stats.count(upcoming)
                if upcoming.label is not None and upcoming.label_offset is not None:
                    heapq.heappush(
                        due_labels, (upcoming.label_offset, next(sequence), upcoming.label)
                    )
                upcoming = next(events)
            while due_labels and due_labels[0][0] <= elapsed:
                self._send(producer, self.labels_topic, heapq.heappop(due_labels)[2])
                self.stats.labels += 1
            stop.wait(TICK)

    def _send(self, producer: Any, topic: str, message: Message) -> None:
        if self._on_send is not None:
            self._on_send(topic, message)
        future = producer.send(topic, key=message["prediction_id"].encode(), value=_encode(message))
        future.add_errback(self._failed, topic)

    def _failed(self, topic: str, error: Exception) -> None:
        if self.stats.send_errors == 0:
            log.warning("simulator failed to send to %s: %s", topic, error)
        self.stats.send_errors += 1
