"""``join.max_pending``: beyond it a partition's oldest pending predictions end early, evicted.

The oldest is the smallest deadline (``timestamp + label_timeout``), then the
smallest id. An evicted prediction ends there: never unlabelled as well, and a
label read for it later is late, as after expiry. Expected outcomes are worked
out by hand from the rule (``T = 100``, ``G = 30``, cap 3 unless a case says).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from reports import samples_of

from predwatch.config import Settings
from predwatch.exporter.collector import ReportCollector
from predwatch.monitor import Monitor
from predwatch.records import Label, Prediction
from predwatch.windowing.join import JoinResult, PartitionJoin

T, G = 100.0, 30.0


def p(key: str, time: float) -> Prediction:
    return Prediction(key, "fraud", "v1", time, "1", 0.9, None, {}, {})


def lab(key: str, time: float) -> Label:
    return Label(key, time, "1", 1.0)


Step = tuple[list[Prediction], list[Label]]


@dataclass
class Case:
    name: str
    steps: list[Step]
    evicted: list[str]
    unlabelled: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    late_labels: list[str] = field(default_factory=list)
    duplicate_labels: list[str] = field(default_factory=list)
    pending: int = 3
    cap: int = 3


CASES = [
    # Deadlines b 110, a 110, c 105, d 120: d makes four, c (105) goes; then e makes four
    # again and of the two at 110 the smaller id goes.
    Case(
        "smallest deadline first, then id",
        [([p("b", 10), p("a", 10), p("c", 5), p("d", 20)], []), ([p("e", 25)], [])],
        evicted=["c", "a"],
    ),
    # d (45, not behind: the latest is 70, G is 30) has the smallest deadline: it goes itself.
    Case(
        "the one just added can be the oldest",
        [([p("a", 50), p("b", 60), p("c", 70), p("d", 45)], [])],
        evicted=["d"],
    ),
    # a is evicted when d comes; its label, read next, finds its prediction ended.
    Case(
        "a label after the eviction is late",
        [([p("a", 0), p("b", 1), p("c", 2), p("d", 3)], []), ([], [lab("a", 10)])],
        evicted=["a"],
        late_labels=["a"],
    ),
    # b matches, so d still fits; e is the fourth pending one and a goes.
    Case(
        "a match frees a place",
        [([p("a", 0), p("b", 1), p("c", 2)], [lab("b", 5)]), ([p("d", 3)], []), ([p("e", 4)], [])],
        evicted=["a"],
        matched=["b"],
    ),
    # a's label (150 - 0 > T) is late and a waits sealed; b, c, d evict it; a second label
    # of a is a duplicate (its first was read).
    Case(
        "a sealed prediction is evicted; its next label is a duplicate",
        [
            ([p("a", 0)], [lab("a", 150)]),
            ([p("b", 1), p("c", 2), p("d", 3)], []),
            ([], [lab("a", 151)]),
        ],
        evicted=["a"],
        late_labels=["a"],
        duplicate_labels=["a"],
    ),
    # a, b go when d and e come; y (200) makes four: c goes; the watermark (min of 200 - G on
    # both inputs) then passes d's and e's deadlines (103, 104), not y's (300).
    Case(
        "the evicted never end again as unlabelled",
        [
            ([p("a", 0), p("b", 1), p("c", 2), p("d", 3), p("e", 4)], []),
            ([p("y", 200)], [lab("x", 200)]),
        ],
        evicted=["a", "b", "c"],
        unlabelled=["d", "e"],
        pending=1,
    ),
    Case(
        "no cap",
        [([p("a", 0), p("b", 1), p("c", 2), p("d", 3), p("e", 4)], [])],
        evicted=[],
        pending=5,
        cap=0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_eviction(case: Case) -> None:
    join = PartitionJoin(T, G, idle_timeout=1e12, expired_id_memory=100, max_pending=case.cap)
    got: dict[str, list[str]] = {}
    for predictions, labels in case.steps:
        result = join.process(predictions, labels, now=0.0)
        got.setdefault("evicted", []).extend(x.id for x in result.evicted)
        got.setdefault("unlabelled", []).extend(x.id for x in result.unlabelled)
        got.setdefault("matched", []).extend(x.id for x, _ in result.matched)
        got.setdefault("late_labels", []).extend(x.id for x in result.late_labels)
        got.setdefault("duplicate_labels", []).extend(x.id for x in result.duplicate_labels)
    expected = {
        "evicted": case.evicted,
        "unlabelled": case.unlabelled,
        "matched": case.matched,
        "late_labels": case.late_labels,
        "duplicate_labels": case.duplicate_labels,
    }
    assert got == expected
    assert join.pending_predictions == case.pending


def test_evicted_predictions_are_returned_whole() -> None:
    join = PartitionJoin(T, G, idle_timeout=1e12, expired_id_memory=100, max_pending=1)
    first = Prediction("a", "fraud", "v2", 5.0, "0", 0.1, {"0": 0.9}, b'{"x": 1}', {"r": "eu"})
    result = join.process([first, p("b", 6)], [], now=0.0)
    assert result.evicted == [first]


# One partition's stream: ids from a small set (so duplicates and matches happen), times
# that go back a little (so some events are behind), cut into random batches.
events = st.lists(
    st.tuples(
        st.booleans(),  # a prediction (else a label)
        st.sampled_from("abcdefgh"),
        st.integers(0, 300),
        st.integers(0, 4),  # how many events this batch ends after
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(stream=events, cap=st.integers(1, 4))
def test_with_a_cap_every_prediction_ends_once(
    stream: list[tuple[bool, str, int, int]], cap: int
) -> None:
    join = PartitionJoin(T, G, idle_timeout=5.0, expired_id_memory=1000, max_pending=cap)
    outcomes: Counter[str] = Counter()
    ended: list[str] = []  # ids of predictions matched, unlabelled or evicted

    def count(result: JoinResult) -> None:
        outcomes["matched"] += len(result.matched)
        outcomes["unlabelled"] += len(result.unlabelled)
        outcomes["evicted"] += len(result.evicted)
        outcomes["duplicates"] += len(result.duplicate_predictions)
        outcomes["late"] += len(result.late_predictions)
        ended.extend([x.id for x, _ in result.matched] + [x.id for x in result.unlabelled])
        ended.extend(x.id for x in result.evicted)

    predictions: list[Prediction] = []
    labels: list[Label] = []
    read = 0
    for n, (is_prediction, key, time, gap) in enumerate(stream):
        if is_prediction:
            predictions.append(p(key, float(time)))
        else:
            labels.append(lab(key, float(time)))
        if gap == 0 or n == len(stream) - 1:
            read += len(predictions)
            count(join.process(predictions, labels, now=0.0))
            predictions, labels = [], []
            assert join.pending_predictions <= cap
    # Processing time runs on: both inputs go idle and every deadline passes.
    result = JoinResult()
    join.expire(now=1e9, result=result)
    count(result)
    assert join.pending_predictions == 0
    assert sum(outcomes.values()) == read
    # The first prediction of an id ends once; an id ends again only as a new prediction
    # after it was forgotten, which a memory of 1000 ids never does here.
    assert len(ended) == len(set(ended))


def test_the_monitor_counts_and_exports_evicted() -> None:
    config = {
        "models": {"fraud": {"task": "binary"}},
        "join": {"label_timeout": 100, "grace": 30, "idle_timeout": "1d", "max_pending": 2},
    }
    monitor = Monitor(Settings.model_validate(config))
    predictions = [p(key, float(i)) for i, key in enumerate("abcde")]
    monitor.process_records(0, predictions, [lab("e", 10.0)], [], now=0.0)
    # a, b, c go as d and e come; e matches, d waits.
    join = monitor.summary(now=0.0)["join"]
    assert (join["evicted"], join["matched"], join["pending_predictions"]) == (3, 1, 1)
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    samples = samples_of(generate_latest(registry).decode())
    version = frozenset({("model", "fraud"), ("version", "v1")})
    assert samples["predwatch_evicted_total", version] == 3
    # Coverage: one matched of four settled (none unlabelled, three evicted).
    assert samples["predwatch_label_coverage_ratio", frozenset()] == 0.25
