"""The contract of a store of pending predictions (``predwatch.windowing.pending``).

Every test takes the ``store`` fixture, a fresh store from each factory in
``FACTORIES``; a new store joins the list and passes the same tests. Expected
values come from a plain reference (a dict, and ``sorted`` by (deadline, id)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predwatch.records import Prediction
from predwatch.state.codec import from_data, to_data
from predwatch.windowing.pending import CompactStore, PendingStore

FACTORIES: dict[str, Callable[[], PendingStore]] = {
    "compact": CompactStore,
    "compact, all packed": partial(CompactStore, recent=0),
    "compact, 2 recent, 10 s buckets": partial(CompactStore, recent=2, width=10.0),
}


@pytest.fixture(scope="module", params=list(FACTORIES), ids=list(FACTORIES))
def new_store(request: pytest.FixtureRequest) -> Callable[[], PendingStore]:
    return FACTORIES[request.param]


@pytest.fixture
def store(new_store: Callable[[], PendingStore]) -> PendingStore:
    return new_store()


def prediction(key: str, timestamp: float = 0.0, **fields: Any) -> Prediction:
    base = Prediction(key, "fraud", "v1", timestamp, "1", 0.5, None, {}, {"region": "eu"})
    return base._replace(**fields)


@dataclass
class Case:
    name: str
    prediction: Prediction


SPACED = b'{"amount": 37.56, "age": 1838, "country": "IN", "ok": true, "none": null}'
ROUND_TRIPS = [
    Case("features as a dict", prediction("a", features={"x": 1.5, "n": [1, {"y": None}]})),
    Case("raw JSON, spaced", prediction("a", features=msgspec.Raw(SPACED))),
    Case("raw JSON, compact", prediction("a", features=msgspec.Raw(b'{"x":-1e-07,"c":"FR"}'))),
    Case("raw JSON as bytes", prediction("a", features=SPACED)),
    Case("raw JSON, nested", prediction("a", features=msgspec.Raw(b'{"x": {"y": [1, 2]}}'))),
    Case("raw JSON, escapes", prediction("a", features=msgspec.Raw(b'{"x": "a\\"b\\u00e9"}'))),
    Case("raw JSON, percent", prediction("a", features=msgspec.Raw(b'{"%s": "100%", "b": 1}'))),
    Case("raw JSON, unicode", prediction("a", features=msgspec.Raw('{"é": "ü"}'.encode()))),
    Case("raw JSON, empty", prediction("a", features=msgspec.Raw(b"{}"))),
    Case("raw JSON, spaces", prediction("a", features=msgspec.Raw(b' {\n "x" :1 } '))),
    Case("bytes, not JSON", prediction("a", features=b"\x00\xff{")),
    Case("an integer beyond 64 bits", prediction("a", features={"big": 2**80})),
    Case("regression", prediction("a", value=-2.5, score=None)),
    Case("probabilities", prediction("a", probabilities={"cat": 0.25, "dog": 0.75})),
    Case("no tags, long id", prediction("x" * 300, tags={})),
    Case("other model and tags", prediction("a", model="spam", version="9", tags={"t": "é"})),
]


@pytest.mark.parametrize("case", ROUND_TRIPS, ids=lambda c: c.name)
def test_what_comes_out_equals_what_went_in(store: PendingStore, case: Case) -> None:
    p = case.prediction
    for i in range(3):  # the first of a shape, and later ones of the same shape
        store.add(p._replace(id=f"{p.id}{i}"), 100.0 + i)
    for i in range(3):
        key = f"{p.id}{i}"
        for got in (store.get(key), store.pop(key)):
            assert got == p._replace(id=key)
            assert got is not None and type(got.features) is type(p.features)
    assert len(store) == 0 and store.get(p.id + "0") is None


def test_many_shapes_and_versions_come_back_whole(store: PendingStore) -> None:
    # More feature shapes and (model, version, tags) than a store numbers: kept inline.
    made = [
        prediction(
            f"p{i}",
            float(i),
            version=f"v{i}",
            tags={"n": str(i % 7)},
            features=msgspec.Raw(b'{"f%d": %d, "g": "x"}' % (i, i)),
        )
        for i in range(150)
    ]
    for i, p in enumerate(made):
        store.add(p, 1000.0 - i)
    assert store.pop_oldest(150) == made[::-1]


def test_infinite_deadlines_sort_last_and_nan_is_refused(store: PendingStore) -> None:
    store.add(prediction("far"), float("inf"))
    store.add(prediction("near"), 1.0)
    with pytest.raises(ValueError, match="'nan' is not a number"):
        store.add(prediction("nan"), float("nan"))
    assert [p.id for p in store.pop_due(float("inf"))] == ["near"]
    assert [p.id for p in store.pop_oldest(5)] == ["far"]


def test_len_contains_get_pop(store: PendingStore) -> None:
    store.add(prediction("a"), 10.0)
    store.add(prediction("b"), 5.0)
    assert (len(store), "a" in store, "c" in store) == (2, True, False)
    assert store.pop("c") is None and store.get("c") is None
    assert store.pop("a") == prediction("a")
    assert (len(store), "a" in store, store.pop("a")) == (1, False, None)


def test_due_is_strictly_before_the_mark_in_deadline_then_id_order(store: PendingStore) -> None:
    deadlines = {"d": 12.5, "a": 12.5, "c": 11.0, "b": 12.999, "e": 13.0, "f": 3.0, "g": 100.0}
    for key, deadline in deadlines.items():
        store.add(prediction(key), deadline)
    assert [p.id for p in store.pop_due(3.0)] == []  # exclusive
    assert [p.id for p in store.pop_due(12.5)] == ["f", "c"]
    assert [p.id for p in store.pop_due(13.0)] == ["a", "d", "b"]
    store.add(prediction("h"), 12.0)  # behind what was already due: due at once
    assert [p.id for p in store.pop_due(13.5)] == ["h", "e"]
    assert [p.id for p in store.pop_due(float("inf"))] == ["g"]
    assert len(store) == 0


def test_oldest_are_the_smallest_deadlines_then_ids(store: PendingStore) -> None:
    for key, deadline in {"c": 7.0, "a": 9.0, "b": 7.0, "d": 1e12, "e": 7.5}.items():
        store.add(prediction(key), deadline)
    assert store.pop_oldest(0) == []
    assert [p.id for p in store.pop_oldest(2)] == ["b", "c"]
    assert [p.id for p in store.pop_oldest(1)] == ["e"]
    assert [p.id for p in store.pop_oldest(10)] == ["a", "d"]
    assert len(store) == 0


def test_an_id_popped_and_added_again_counts_once_at_its_new_deadline(store: PendingStore) -> None:
    store.add(prediction("a", 1.0), 10.0)
    store.add(prediction("b"), 10.2)
    assert store.pop("a") is not None
    store.add(prediction("a", 2.0), 10.5)  # the same bucket
    store.add(prediction("c"), 10.1)
    assert [(p.id, p.timestamp) for p in store.pop_due(11.0)] == [
        ("c", 0.0),
        ("b", 0.0),
        ("a", 2.0),
    ]
    store.add(prediction("a", 3.0), 20.0)
    assert store.pop("a") is not None
    store.add(prediction("a", 4.0), 30.0)  # another bucket
    assert store.pop_due(25.0) == [] and len(store) == 1


# One step of a random session: (operation, id, deadline or mark or count).
steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "pop", "get", "due", "oldest"]),
        st.sampled_from("abcdefghij"),
        st.one_of(st.integers(0, 40).map(lambda n: n / 4), st.integers(0, 4)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_any_session_agrees_with_a_sorted_dict(
    new_store: Callable[[], PendingStore], steps: list[tuple[str, str, float]]
) -> None:
    store, reference = new_store(), {}
    for n, (operation, key, number) in enumerate(steps):
        p = prediction(key, float(n), features=msgspec.Raw(b'{"x": %d}' % n))
        order = sorted(reference.items(), key=lambda item: (item[1][0], item[0]))
        if operation == "add" and key not in reference:
            store.add(p, number)
            reference[key] = (number, p)
        elif operation == "pop":
            assert store.pop(key) == reference.pop(key, (0, None))[1]
        elif operation == "get":
            assert store.get(key) == reference.get(key, (0, None))[1]
        elif operation == "due":
            due = [p for k, (d, p) in order if d < number]
            assert store.pop_due(number) == due
            reference = {k: v for k, v in reference.items() if not v[0] < number}
        elif operation == "oldest":
            count = int(number)
            assert store.pop_oldest(count) == [p for _, (_, p) in order[:count]]
            reference = dict(order[count:])
        assert len(store) == len(reference)
        assert all(k in store for k in reference)


def test_the_compact_store_is_checkpoint_data() -> None:
    # Some packed, some recent, one left early: the copy read back goes on as the original.
    store = CompactStore(recent=3)
    for i in range(10):
        raw = msgspec.Raw(b'{"x": %d, "c": "FR"}' % i)
        store.add(prediction(f"p{i}", float(i), features=raw), 100.0 - i)
    assert store.pop("p4") is not None
    data = msgspec.msgpack.decode(msgspec.msgpack.encode(to_data(store)))
    copy = from_data(data)
    assert isinstance(copy, CompactStore) and len(copy) == len(store) == 9
    assert copy.get("p0") == store.get("p0") and copy.get("p9") == store.get("p9")
    assert copy.pop_oldest(2) == store.pop_oldest(2)
    assert copy.pop_due(97.0) == store.pop_due(97.0)
    for i in range(10, 20):  # enough to pack some again, with templates made anew
        later = prediction(f"p{i}", float(i), features=msgspec.Raw(b'{"x": %d, "c": "DE"}' % i))
        copy.add(later, 100.0 - i)
        store.add(later, 100.0 - i)
    assert copy.pop_due(1e9) == store.pop_due(1e9) and len(copy) == 0
