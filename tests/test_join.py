"""The event-time join, case by case: a sequence of batches and the outcomes it must give."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from predwatch.events import Label, Prediction
from predwatch.windowing.join import JoinResult, PartitionJoin

TIMEOUT, GRACE, IDLE = 100.0, 10.0, 30.0


def p(key: str, ts: float, value: str | float = "1") -> Prediction:
    return Prediction(key, "m", "v1", ts, value, None, None, {}, {})


def lab(key: str, ts: float, value: str = "1", number: float | None = 1.0) -> Label:
    return Label(key, ts, value, number)


@dataclass
class Step:
    predictions: list[Prediction] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    now: float = 0.0


@dataclass
class Case:
    name: str
    steps: list[Step]
    matched: set[str] = field(default_factory=set)
    unlabelled: set[str] = field(default_factory=set)
    orphan: set[str] = field(default_factory=set)
    late: set[str] = field(default_factory=set)
    late_predictions: set[str] = field(default_factory=set)
    duplicate_predictions: int = 0
    duplicate_labels: int = 0
    invalid_labels: int = 0
    pending_predictions: int = 0
    pending_labels: int = 0
    memory: int = 100


# Events far ahead on both inputs, to push the watermark past everything before t.
def advance_to(t: float, now: float = 0.0) -> Step:
    return Step([p(f"tick-p{t}", t)], [lab(f"tick-l{t}", t)], now)


CASES = [
    # A label in the same batch as its prediction matches.
    Case("same batch", [Step([p("a", 0)], [lab("a", 5)])], matched={"a"}),
    # A label may come first: it waits, and the prediction arriving later matches it.
    Case("label before prediction", [Step([], [lab("a", 5)]), Step([p("a", 0)])], matched={"a"}),
    # Out of order across topics: the labels topic read far ahead does not expire predictions,
    # because the join's watermark is the smaller of the two inputs'.
    Case(
        "labels topic far ahead",
        [Step([p("a", 0)], [lab("x", 1000)]), Step([p("b", 40)], [lab("a", 995)])],
        late={"a"},  # stamped 995 s after its prediction: late, though the prediction waits
        pending_predictions=2,  # a (sealed) and b wait: the predictions input is still at 40
        pending_labels=1,  # x waits for its prediction
    ),
    # The interval is [-grace, label_timeout] of label time minus prediction time, both ends in.
    Case(
        "interval ends",
        [Step([p("a", 0), p("b", 0)], [lab("a", -GRACE), lab("b", TIMEOUT)])],
        matched={"a", "b"},
    ),
    # Stamped too long after its prediction: late, whether the prediction came first or not.
    Case(
        "late label before its prediction",
        [Step([], [lab("a", TIMEOUT + 1)]), Step([p("a", 0)])],
        late={"a"},
        pending_predictions=1,  # a ends unlabelled at its own deadline, as if it came first
    ),
    # Stamped more than grace before its prediction: an orphan, in either order.
    Case(
        "label too early",
        [
            Step([p("a", 50)], [lab("a", 50 - GRACE - 1)]),
            Step([], [lab("b", 60)]),
            Step([p("b", 60 + GRACE + 1)]),
        ],
        orphan={"a", "b"},
        pending_predictions=2,
    ),
    # An event stamped more than grace before the latest of its own input is behind: set aside.
    Case(
        "behind its own input",
        [Step([p("z", 100), p("a", 80), p("b", 90)], [lab("y", 100), lab("b", 90), lab("c", 85)])],
        matched={"b"},
        late={"c"},
        late_predictions={"a"},
        pending_predictions=1,
        pending_labels=1,
    ),
    # A repeat is a duplicate, even when it is behind its input (its id was read before).
    Case(
        "duplicate behind its input",
        [Step([p("a", 0), p("z", 100), p("a", 1)], [lab("a", 5), lab("y", 100), lab("a", 6)])],
        matched={"a"},
        duplicate_predictions=1,
        duplicate_labels=1,
        pending_predictions=1,
        pending_labels=1,
    ),
    # A later label of the same id is a duplicate, whatever the first one's outcome was.
    Case(
        "first label decides",
        [Step([p("a", 0)], [lab("a", 500), lab("a", 495)])],
        late={"a"},
        duplicate_labels=1,
        pending_predictions=1,
    ),
    # A label whose prediction never comes is an orphan once the watermark passes ts + grace.
    Case(
        "orphan",
        [Step([], [lab("a", 0)]), advance_to(200)],
        orphan={"a"},
        pending_predictions=1,
        pending_labels=1,
    ),
    # The orphan deadline is exclusive: a watermark equal to ts + grace keeps the label.
    Case(
        "orphan not before its deadline",
        [Step([], [lab("a", 0)]), advance_to(GRACE + GRACE)],
        pending_predictions=1,
        pending_labels=2,
    ),
    # A prediction without a label expires as unlabelled once the watermark passes ts + timeout.
    Case(
        "unlabelled",
        [Step([p("a", 0)]), advance_to(TIMEOUT + GRACE + 1)],
        unlabelled={"a"},
        pending_predictions=1,
        pending_labels=1,
    ),
    # A label for an expired prediction is late, not orphan.
    Case(
        "late",
        [Step([p("a", 0)]), advance_to(500), Step([], [lab("a", 501)])],
        unlabelled={"a"},
        late={"a"},
        pending_predictions=1,
        pending_labels=1,
    ),
    # With a memory of one expired id, an older expired id is forgotten: its label waits as orphan.
    Case(
        "bounded memory of expired ids",
        [Step([p("a", 0), p("b", 1)]), advance_to(500), Step([], [lab("a", 501)])],
        unlabelled={"a", "b"},
        pending_predictions=1,
        pending_labels=2,
        memory=1,
    ),
    # First prediction wins; a repeat while pending is a duplicate.
    Case(
        "duplicate prediction pending",
        [Step([p("a", 0), p("a", 1)])],
        duplicate_predictions=1,
        pending_predictions=1,
    ),
    # A repeat after the match is a duplicate too (the id is remembered until its deadline).
    Case(
        "duplicate prediction after match",
        [Step([p("a", 0)], [lab("a", 5)]), Step([p("a", 6)])],
        matched={"a"},
        duplicate_predictions=1,
    ),
    # ... and after the match's deadline passed (the expired-id memory).
    Case(
        "duplicate prediction after expiry",
        [Step([p("a", 0)], [lab("a", 5)]), advance_to(500), Step([p("a", 501)])],
        matched={"a"},
        duplicate_predictions=1,
        pending_predictions=1,
        pending_labels=1,
    ),
    # Repeated labels: while the first waits, after the match, and after expiry of a match.
    Case(
        "duplicate label pending",
        [Step([], [lab("a", 0), lab("a", 1)])],
        duplicate_labels=1,
        pending_labels=1,
    ),
    Case(
        "duplicate label after match",
        [Step([p("a", 0)], [lab("a", 5)]), Step([], [lab("a", 6)])],
        matched={"a"},
        duplicate_labels=1,
    ),
    Case(
        "duplicate label after matched expiry",
        [Step([p("a", 0)], [lab("a", 5)]), advance_to(500), Step([], [lab("a", 501)])],
        matched={"a"},
        duplicate_labels=1,
        pending_predictions=1,
        pending_labels=1,
    ),
    # On a quiet stream the watermark advances with the clock after the idle timeout.
    Case(
        "idle expiry",
        # watermark = 0 - grace + (now - 0 - idle) > timeout  <=>  now > 140
        [Step([p("a", 0)], [], now=0.0), Step([], [], now=139.0), Step([], [], now=141.0)],
        unlabelled={"a"},
    ),
    # An input that never saw an event holds expiry back until it has been idle.
    Case(
        "empty input holds back until idle",
        [Step([p("a", 0), p("b", 500)], [], now=0.0), Step([], [], now=IDLE - 1)],
        pending_predictions=2,
    ),
    # A regression prediction with a non-numeric label: the label is invalid; the prediction waits.
    Case(
        "regression label not numeric",
        [Step([p("a", 0, 1.5)], [lab("a", 5, "high", None)])],
        invalid_labels=1,
        pending_predictions=1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_join_case(case: Case) -> None:
    join = PartitionJoin(TIMEOUT, GRACE, IDLE, case.memory, created=0.0)
    total = JoinResult()
    for step in case.steps:
        result = join.process(step.predictions, step.labels, step.now)
        for name in total.__slots__:  # type: ignore[attr-defined]
            getattr(total, name).extend(getattr(result, name))
    ticks = {k for k in (x.id for x in total.unlabelled + total.orphan_labels) if "tick" in k}
    assert {pr.id for pr, _ in total.matched} == case.matched
    assert {x.id for x in total.unlabelled} - ticks == case.unlabelled
    assert {x.id for x in total.orphan_labels} - ticks == case.orphan
    assert {x.id for x in total.late_labels} == case.late
    assert {x.id for x in total.late_predictions} == case.late_predictions
    assert len(total.duplicate_predictions) == case.duplicate_predictions
    assert len(total.duplicate_labels) == case.duplicate_labels
    assert len(total.invalid_labels) == case.invalid_labels
    assert join.pending_predictions == case.pending_predictions
    assert join.pending_labels == case.pending_labels


def test_matched_pair_carries_both_events() -> None:
    join = PartitionJoin(TIMEOUT, GRACE, IDLE, 10, created=0.0)
    prediction, label = p("a", 3.0, "0"), lab("a", 9.0, "1")
    result = join.process([prediction], [label], 0.0)
    assert result.matched == [(prediction, label)]
