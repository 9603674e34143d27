"""A hostile corpus: what an attacker or a careless producer writes to the topics, each message
with the reason predwatch must count it under, mixed into valid traffic whose outcome is known.

The same ``seed`` always gives the same corpus. Valid events come from
``predwatch.demo.synthetic.generate`` (model ``fraud``); the hostile ones use
the models of ``CONFIG`` and never a valid event's id, except the labels
``maybe`` which target valid predictions that get no other label.

>>> corpus = build(seed=1, valid=200)
>>> len(corpus.valid_predictions), len({h.category for h in corpus.hostile})
(200, 19)
>>> all(h.reason for h in corpus.hostile), corpus.hostile == build(seed=1, valid=200).hostile
(True, True)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from predwatch.demo.synthetic import generate
from predwatch.monitor import Changes, Monitor
from predwatch.records import Invalid, Label, Prediction

CONFIG: dict[str, Any] = {
    "models": {"fraud": {"task": "binary"}, "price": {"task": "regression"}},
    # Nothing expires while a test runs: outcomes depend on the events alone.
    "join": {"label_timeout": "30d", "grace": "60s", "idle_timeout": "1h"},
    "metrics": {"windows": [{"name": "1h", "duration": "1h"}], "tags": ["region"]},
}
HUGE = int("9" * 400)  # overflows a float
DEEP = 10_000


@dataclass(frozen=True)
class Hostile:
    """One hostile message and the reason it must be counted under. ``where`` it is hostile:
    ``kafka`` only for what a file cannot hold (an empty line) or what needs a processing
    clock (a time in the future); ``files`` only for a message without a time (Kafka gives it
    the record's); ``join`` for what only the join can refuse, knowing the prediction (a
    label outside its binary model's classes)."""

    category: str
    topic: str  # "predictions" or "labels"
    value: bytes
    reason: str
    where: str = "both"


@dataclass
class Corpus:
    valid_predictions: list[bytes]
    valid_labels: list[bytes]
    hostile: list[Hostile] = field(default_factory=list)
    predictions: list[bytes] = field(default_factory=list)  # the mix, in topic order
    labels: list[bytes] = field(default_factory=list)

    def reasons(self, *where: str) -> Counter[tuple[str, str]]:
        """How many hostile messages of each (topic, reason) the ``where`` mix holds."""
        return Counter((h.topic, h.reason) for h in self.hostile if h.where in (*where, "both"))

    def mix(self, *where: str) -> tuple[list[bytes], list[bytes]]:
        """The predictions and labels of the mix for ``files`` or ``kafka`` (and ``join``)."""
        skip = {h.value for h in self.hostile if h.where not in (*where, "both")}
        return (
            [x for x in self.predictions if x not in skip],
            [x for x in self.labels if x not in skip],
        )


def _encode(message: Any) -> bytes:
    return json.dumps(message).encode()


def _prediction(n: int, at: float, **fields: Any) -> dict[str, Any]:
    message = {"prediction_id": f"h-{n}", "model": "fraud", "timestamp": at, "prediction": 1}
    message.update(fields)
    return {k: v for k, v in message.items() if v is not _DROP}


_DROP = object()  # a field left out


def hostile_messages(at: float, now: float, oversize: int = 1_100_000) -> list[Hostile]:
    """Every category once or more; ``at`` is a valid event time, ``now`` the processing clock
    a Kafka test runs at, ``oversize`` the size of the messages that must be too large."""
    n = iter(range(10**6))
    out: list[Hostile] = []

    def p(category: str, reason: str, where: str = "both", **fields: Any) -> None:
        value = _encode(_prediction(next(n), at, **fields))
        out.append(Hostile(category, "predictions", value, reason, where))

    def raw(category: str, topic: str, value: bytes, reason: str, where: str = "both") -> None:
        out.append(Hostile(category, topic, value, reason, where))

    def lab(category: str, reason: str, where: str = "both", **fields: Any) -> None:
        message = {"prediction_id": f"h-{next(n)}", "timestamp": at, "label": 1, **fields}
        message = {k: v for k, v in message.items() if v is not _DROP}
        out.append(Hostile(category, "labels", _encode(message), reason, where))

    deep = b"[" * DEEP + b"]" * DEEP
    raw("deep", "predictions", deep, "too_deep")
    raw("deep", "labels", b'{"prediction_id": "h-deep", "label": ' + deep + b"}", "too_deep")
    p("deep", "too_deep", features={"x": json.loads("[" * 40 + "]" * 40)})
    for name in ("timestamp", "prediction", "score"):
        p("huge_int", f"out_of_range:{name}", **{name: HUGE})
    p("huge_int", "out_of_range:prediction", model="price", prediction=-HUGE)
    p("huge_int", "out_of_range:probabilities", probabilities={"0": HUGE, "1": 1})
    p("huge_int", "out_of_range:features", features={"amount": HUGE})
    p("huge_int", "out_of_range:model_version", model_version=HUGE)
    p("huge_int", "too_long:prediction_id", prediction_id=HUGE)
    lab("huge_int", "out_of_range:label", label=HUGE)
    lab("huge_int", "out_of_range:timestamp", timestamp=HUGE)
    for stamp in (1e308, 6e17, "9999-12-31T23:59:59Z", -5, "1960-01-01T00:00:00Z"):
        p("timestamp", "out_of_range:timestamp", timestamp=stamp)
        lab("timestamp", "out_of_range:timestamp", timestamp=stamp)
    for value in (1e308, -1e308):
        p("regression_extreme", "out_of_range:prediction", model="price", prediction=value)
        lab("regression_extreme", "out_of_range:label", label=value)
    nan = b'{"prediction_id": "h-nan%d", "model": "price", "timestamp": %d, "prediction": %s}'
    for i, token in enumerate((b"NaN", b"Infinity", b"-Infinity", b"1e999")):
        raw("non_finite", "predictions", nan % (i, int(at), token), "non_finite:prediction")
    raw(
        "non_finite",
        "labels",
        b'{"prediction_id": "h-i", "label": NaN, "timestamp": 1}',
        "non_finite:label",
    )
    p("non_finite", "non_finite:score", score=float("nan"))
    p("non_finite", "bad_timestamp", timestamp=float("inf"))
    p("wrong_type", "bad_type:prediction_id", prediction_id=[1])
    p("wrong_type", "bad_type:model", model=5)
    p("wrong_type", "bad_type:features", features="x")
    p("wrong_type", "bad_type:tags", tags=["region"])
    p("wrong_type", "bad_type:tags", tags={"region": {"nested": 1}})
    p("wrong_type", "bad_type:score", score="high")
    p("wrong_type", "bad_type:probabilities", probabilities=[0.5])
    p("wrong_type", "bad_timestamp", timestamp=True)
    p("wrong_type", "bad_timestamp", timestamp="yesterday")
    p("wrong_type", "bad_timestamp", timestamp="2026-11-27T04:00:00")  # no zone
    p("wrong_type", "bad_type:prediction", model="price", prediction="a lot")
    p("wrong_type", "bad_type:prediction", prediction={"class": 1})
    p("wrong_type", "out_of_range:score", score=1.5)
    lab("wrong_type", "bad_type:label", label=[1])
    lab("wrong_type", "bad_type:prediction_id", prediction_id="")
    for name in ("prediction_id", "model", "prediction"):
        p("missing_field", "missing_field:" + name, **{name: _DROP})
    p("missing_field", "missing_field:timestamp", "files", timestamp=_DROP)
    lab("missing_field", "missing_field:label", label=_DROP)
    lab("missing_field", "missing_field:timestamp", "files", timestamp=_DROP)
    p("unknown_model", "unknown_model", model="nope")
    p("unknown_model", "unknown_model", model="")
    big = "x" * oversize
    p("oversized", "too_large", features={"blob": big})
    raw(
        "oversized",
        "labels",
        b'{"prediction_id": "h-big", "label": "' + big.encode() + b'"}',
        "too_large",
    )
    long = "y" * 5000
    p("long_string", "too_long:prediction_id", prediction_id=long)
    p("long_string", "too_long:model_version", model_version=long)
    p("long_string", "too_long:prediction", prediction=long)
    p("long_string", "too_long:tags", tags={"region": long})
    p("long_string", "too_long:tags", tags={long: "eu"})
    p("long_string", "too_long:features", features={"country": long})
    p("long_string", "too_long:features", features={long: 1})
    lab("long_string", "too_long:label", label=long)
    p("too_many", "too_many:features", features={f"f{i}": i for i in range(2000)})
    p("too_many", "too_many:tags", tags={f"t{i}": "x" for i in range(100)})
    p("too_many", "too_many:probabilities", probabilities={str(i): 1 for i in range(2000)})
    surrogate = b'{"prediction_id": "h-s%d", "model": "fraud", "timestamp": 1, "prediction": 1, %s}'
    for i, part in enumerate(
        (b'"model_version": "\\ud800"', b'"features": {"c": "a\\udfffb"}', b'"x\\udc00": 1')
    ):
        raw("lone_surrogate", "predictions", surrogate % (i, part), "bad_unicode")
    raw("lone_surrogate", "labels", b'{"prediction_id": "\\ud800", "label": 1}', "bad_unicode")
    raw(
        "invalid_utf8",
        "predictions",
        b'{"prediction_id": "h-\xff\xfe", "model": "fraud"}',
        "not_json",
    )
    raw("invalid_utf8", "labels", b'{"prediction_id": "h-u", "label": "\xc3("}', "not_json")
    for value in (b"[]", b'"text"', b"42", b"null", b"[{}]"):
        raw("not_object", "predictions", value, "not_object")
        raw("not_object", "labels", value, "not_object")
    for value in (b"{broken", b'{"prediction_id": "h-t", "model": "fr', b"\x00\x01", b"{}}"):
        raw("not_json", "predictions", value, "not_json")
    raw("not_json", "labels", b"{'single': 'quotes'}", "not_json")
    duplicate = b'{"prediction_id": "h-d", "model": "fraud", "model": "nope", "timestamp": 1, '
    raw("duplicate_keys", "predictions", duplicate + b'"prediction": 1}', "unknown_model")
    raw(
        "duplicate_keys",
        "labels",
        b'{"prediction_id": "h-d", "label": 1, "label": null, "timestamp": 1}',
        "missing_field:label",
    )
    raw("empty", "predictions", b"", "not_json", "kafka")
    raw("empty", "labels", b"   ", "not_json", "kafka")
    p("future", "future_timestamp", "kafka", timestamp=now + 86_400)
    p("future", "future_timestamp", "kafka", timestamp=_iso(now + 7200).lower())
    lab("future", "future_timestamp", "kafka", timestamp=now + 4000)
    return out


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def build(seed: int, valid: int = 1000, now: float = 2e9, oversize: int = 1_100_000) -> Corpus:
    """Valid traffic of ``valid`` predictions with the hostile messages mixed in at seeded
    places, and a label ``maybe`` for some predictions that get no other label."""
    predictions, labels = generate(valid, seed=seed, jitter=2.0)
    at = 1_795_737_600.0 + 60.0  # 2026-11-27T00:01:00Z, within the valid traffic
    hostile = hostile_messages(at, now, oversize)
    labelled = {label["prediction_id"] for label in labels}
    unlabelled = [p for p in predictions if p["prediction_id"] not in labelled]
    corpus = Corpus([_encode(p) for p in predictions], [_encode(x) for x in labels], hostile)
    mixed_labels = list(labels)
    for target in unlabelled[:3]:
        # A binary model's label "maybe", placed with its neighbours in event time so that it
        # moves no watermark; its prediction is still pending when it arrives.
        maybe = {"prediction_id": target["prediction_id"], "timestamp": target["timestamp"]}
        maybe["label"] = "maybe"
        place = next(
            (i for i, x in enumerate(mixed_labels) if x["timestamp"] >= maybe["timestamp"]),
            len(mixed_labels),
        )
        mixed_labels.insert(place, maybe)
        hostile.append(
            Hostile("label_out_of_task", "labels", _encode(maybe), "bad_type:label", "join")
        )
    rng = random.Random(seed)
    corpus.predictions = list(corpus.valid_predictions)
    corpus.labels = [_encode(x) for x in mixed_labels]
    for h in hostile:
        if h.category != "label_out_of_task":
            target = corpus.predictions if h.topic == "predictions" else corpus.labels
            target.insert(rng.randrange(len(target) + 1), h.value)
    return corpus


class Brittle(Monitor):
    """A monitor with a defect that one prediction's content triggers."""

    def process_records(
        self,
        partition: int,
        decoded_predictions: list[Prediction],
        decoded_labels: list[Label],
        invalid: list[Invalid],
        now: float,
    ) -> Changes:
        if any(p.id == "poison" for p in decoded_predictions):
            raise ZeroDivisionError("a defect")
        return super().process_records(partition, decoded_predictions, decoded_labels, invalid, now)
