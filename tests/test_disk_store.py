"""The disk store of pending predictions: the protocol, a reference model, and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predwatch.records import Prediction
from predwatch.state.disk_store import DiskDatabase, StoreError

SMALL = {"cache_bytes": 1 << 20, "write_buffer_bytes": 1 << 20}


def prediction(key: str, features: Any = None, timestamp: float = 0.0) -> Prediction:
    return Prediction(
        key, "fraud", "v1", timestamp, "1", 0.75, {"0": 0.25, "1": 0.75}, features or {}, {}
    )


@pytest.fixture
def database(tmp_path: Path) -> Iterator[DiskDatabase]:
    opened = DiskDatabase.open(tmp_path / "pending", **SMALL)
    yield opened
    opened.close()


# --- the protocol, table-driven -----------------------------------------------------------


@dataclass
class Case:
    name: str
    adds: list[tuple[str, float]]  # (id, deadline), in this order
    commit_after: int  # how many of the adds are committed before the others are made
    call: str  # "pop_due" or "pop_oldest"
    argument: float
    expected: list[str]  # ids returned, in order
    left: set[str] = field(default_factory=set)


CASES = [
    # Strictly before the mark: a deadline equal to it is not due.
    Case("due excludes the mark", [("a", 10.0), ("b", 20.0)], 2, "pop_due", 20.0, ["a"], {"b"}),
    # Equal deadlines are ordered by id, wherever (disk or memory) each one is.
    Case(
        "ties by id across disk and memory",
        [("c", 5.0), ("a", 5.0), ("b", 5.0), ("d", 1.0)],
        2,
        "pop_due",
        6.0,
        ["d", "a", "b", "c"],
    ),
    # An id that is a prefix of another comes first, as str order says.
    Case("prefix ids", [("ab", 3.0), ("a", 3.0)], 1, "pop_due", 4.0, ["a", "ab"]),
    # Negative deadlines sort below positive ones (the byte encoding keeps float order).
    Case(
        "negative deadlines",
        [("p", 2.5), ("n", -2.5), ("z", 0.0), ("m", -1e9)],
        4,
        "pop_due",
        1.0,
        ["m", "n", "z"],
        {"p"},
    ),
    # The `count` smallest by (deadline, id), half of them committed, half not.
    Case(
        "oldest across disk and memory",
        [("x", 9.0), ("y", 1.0), ("w", 4.0), ("v", 3.0), ("u", 8.0)],
        3,
        "pop_oldest",
        3,
        ["y", "v", "w"],
        {"x", "u"},
    ),
    Case("oldest beyond the size", [("x", 9.0)], 0, "pop_oldest", 5, ["x"]),
    Case("oldest of nothing", [("x", 9.0)], 1, "pop_oldest", 0, [], {"x"}),
    # Non-ASCII ids, and a lone surrogate as a JSON escape can give.
    Case("unicode ids", [("é", 1.0), ("\ud800", 1.0), ("z", 1.0)], 1, "pop_due", 2.0,
         ["z", "é", "\ud800"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_due_and_the_oldest_come_out_by_deadline_then_id(
    case: Case, database: DiskDatabase
) -> None:
    store = database.store("predictions-0")
    for i, (key, deadline) in enumerate(case.adds):
        if i == case.commit_after:
            database.commit()
        store.add(prediction(key), deadline)
    popped = getattr(store, case.call)(case.argument)
    assert [p.id for p in popped] == case.expected
    assert all(p == prediction(p.id) for p in popped)
    assert len(store) == len(case.left)
    assert {key for key, _ in case.adds if key in store} == case.left


@pytest.mark.parametrize(
    "features",
    [
        {"amount": 12.5, "country": "FR", "nested": {"a": [1, None, True]}},
        b'{"amount": 12.5, "country": "FR"}',
        msgspec.Raw(b'{"amount":12.5,"country":"FR"}'),
    ],
    ids=["dict", "bytes", "raw"],
)
def test_a_prediction_comes_back_equal_and_raw_features_stay_raw(
    features: Any, tmp_path: Path
) -> None:
    added = Prediction("a1", "fraud", "v3", 1795737600.034, 0.25, None, None, features, {"r": "eu"})
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    database.store("p").add(added, 1795737600.034 + 3600)
    in_memory = database.store("p").get("a1")
    database.commit()
    database.close()
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    store = database.store("p")
    from_disk = store.get("a1")
    assert in_memory == added and from_disk == added
    assert from_disk is not None and type(from_disk.features) is type(features)
    assert store.pop("a1") == added and store.pop("a1") is None and "a1" not in store
    database.close()


def test_partitions_share_one_commit_and_keep_their_own_ids(database: DiskDatabase) -> None:
    left, right = database.store("predictions-0"), database.store("predictions-1")
    left.add(prediction("same", {"side": "left"}), 1.0)
    right.add(prediction("same", {"side": "right"}), 2.0)
    right.add(prediction("other"), 3.0)
    database.commit({b"offsets": b"42"})
    assert [p.features for p in left.pop_due(10.0)] == [{"side": "left"}]
    assert (len(left), len(right), database.extra(b"offsets")) == (0, 2, b"42")
    assert right.get("same") == prediction("same", {"side": "right"})


def test_clearing_a_partition_leaves_the_others(tmp_path: Path) -> None:
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    # "p1" is a prefix of "p10": the range cleared must stop at the end of p1's own keys.
    for name in ("p1", "p10", "p0"):
        database.store(name).add(prediction(f"{name}-a"), 1.0)
    database.commit()
    database.store("p1").clear()
    database.store("p1").add(prediction("p1-b"), 2.0)
    database.commit()
    database.close()
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    held = {
        name: [p.id for p in database.store(name).pop_oldest(5)] for name in ("p0", "p1", "p10")
    }
    assert held == {"p0": ["p0-a"], "p1": ["p1-b"], "p10": ["p10-a"]}
    database.close()


def test_a_directory_in_use_is_refused_in_one_sentence_naming_it(
    database: DiskDatabase, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"store .*pending: cannot open it .*no other predwatch"):
        DiskDatabase.open(tmp_path / "pending")


def test_a_name_with_a_nul_character_is_refused(database: DiskDatabase) -> None:
    with pytest.raises(ValueError, match="NUL"):
        database.store("bad\0name")


# --- against a reference model -------------------------------------------------------------

IDS = st.sampled_from(["a", "ab", "é", "a\0"])
DEADLINES = st.sampled_from([-5.0, 0.0, 1.5, 2.0, 2.0 + 1e-9, 7.0, 1e12])
FEATURES = st.sampled_from([None, {"k": 1}, b'{"k":1}', msgspec.Raw(b'{"k":2}')])
OPERATIONS = st.one_of(
    st.tuples(st.just("add"), IDS, DEADLINES, FEATURES),
    st.tuples(st.just("pop"), IDS),
    st.tuples(st.just("get"), IDS),
    st.tuples(st.just("pop_due"), DEADLINES),
    st.tuples(st.just("pop_oldest"), st.integers(0, 4)),
    st.tuples(st.just("commit")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("reopen")),  # closed without a commit, as by a crash
)


class Reference:
    """A dict by id and a sort: what the store must behave as, committed state included."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[float, Prediction]] = {}
        self.committed: dict[str, tuple[float, Prediction]] = {}

    def take(self, keys: list[str]) -> list[Prediction]:
        return [self.pending.pop(key)[1] for key in keys]

    def ordered(self) -> list[str]:
        return [key for _, key in sorted((d, key) for key, (d, _) in self.pending.items())]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, max_size=40))
def test_the_store_behaves_as_a_dict_with_a_sort(operations: list[tuple[Any, ...]]) -> None:
    model = Reference()
    with tempfile.TemporaryDirectory() as path:
        database = DiskDatabase.open(path, **SMALL)
        store = database.store("predictions-3")
        for operation in operations:
            name, *args = operation
            if name == "add":
                key, deadline, features = args
                if key in model.pending:
                    continue  # the protocol adds only ids not present
                added = prediction(key, features, timestamp=deadline)
                store.add(added, deadline)
                model.pending[key] = (deadline, added)
            elif name == "pop":
                expected = model.pending.pop(args[0], (0.0, None))[1]
                assert store.pop(args[0]) == expected
            elif name == "get":
                assert store.get(args[0]) == model.pending.get(args[0], (0.0, None))[1]
                assert (args[0] in store) == (args[0] in model.pending)
            elif name == "pop_due":
                keys = [k for k in model.ordered() if model.pending[k][0] < args[0]]
                assert store.pop_due(args[0]) == model.take(keys)
            elif name == "pop_oldest":
                assert store.pop_oldest(args[0]) == model.take(model.ordered()[: args[0]])
            elif name == "clear":
                store.clear()
                model.pending.clear()
            elif name == "commit":
                database.commit()
                model.committed = dict(model.pending)
            else:
                database.close()
                database = DiskDatabase.open(path, **SMALL)
                store = database.store("predictions-3")
                model.pending = dict(model.committed)
            assert len(store) == len(model.pending)
        assert store.pop_oldest(100) == model.take(model.ordered())
        database.close()


# --- kill -9 ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from predwatch.records import Prediction
    from predwatch.state.disk_store import DiskDatabase

    def prediction(i):
        return Prediction(f"id-{i}", "fraud", "v1", float(i), "1", 0.5, None, {"i": i}, {})

    database = DiskDatabase.open(sys.argv[1], cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
    store = database.store("predictions-0")
    if sys.argv[2] == "once":
        for i in range(50):
            store.add(prediction(i), 100.0 + i)
        database.commit({b"checkpoint": b"after 50"})
        for i in range(50, 80):  # never committed
            store.add(prediction(i), 100.0 + i)
        for i in range(10):  # popped, never committed
            store.pop(f"id-{i}")
        store.pop_due(200.0)
        print("ready", flush=True)
    else:  # commit in a loop until killed: each commit adds one, and says how many
        print("ready", flush=True)
        i = 0
        while True:
            store.add(prediction(i), 100.0 + i)
            if i % 7 == 3:
                store.pop_oldest(1)
                store.add(prediction(-i), 100.0 - i)
            i += 1
            database.commit({b"checkpoint": str(i).encode()})
    while True:
        pass
    """
)


def run_until_killed(path: Path, mode: str, after_ready: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    # In the loop, the kill lands at an arbitrary point of a commit or between two.
    time.sleep(after_ready)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_after_kill_9_the_store_holds_exactly_what_was_committed(tmp_path: Path) -> None:
    run_until_killed(tmp_path / "pending", "once", 0)
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    store = database.store("predictions-0")
    assert database.extra(b"checkpoint") == b"after 50"
    assert len(store) == 50
    expected = [
        Prediction(f"id-{i}", "fraud", "v1", float(i), "1", 0.5, None, {"i": i}, {})
        for i in range(50)
    ]
    assert store.pop_oldest(100) == expected
    database.close()


def test_a_kill_9_during_commits_leaves_the_checkpoint_and_the_store_in_step(
    tmp_path: Path,
) -> None:
    run_until_killed(tmp_path / "pending", "loop", 1.5)
    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    store = database.store("predictions-0")
    checkpoint = database.extra(b"checkpoint")
    assert checkpoint is not None
    commits = int(checkpoint)
    assert commits > 0
    # Replay the child's steps up to that commit with a plain dict.
    expected: dict[str, float] = {}
    for i in range(commits):
        expected[f"id-{i}"] = 100.0 + i
        if i % 7 == 3:
            del expected[min(expected, key=lambda k: (expected[k], k))]
            expected[f"id-{-i}"] = 100.0 - i
    assert len(store) == len(expected)
    assert [p.id for p in store.pop_oldest(len(expected) + 1)] == sorted(
        expected, key=lambda k: (expected[k], k)
    )
    database.close()


# --- inside the join ------------------------------------------------------------------------


@dataclass
class JoinCase:
    name: str
    max_pending: int  # 0: no cap; else the oldest are evicted (pop_oldest)
    reopen: bool  # close and reopen the database after each commit


JOIN_CASES = [
    # Matches, late labels and expiry (pop, get, pop_due) with a commit after every batch.
    JoinCase("commit after each batch", 0, False),
    # A cap well below what is pending: evictions go through pop_oldest, half from disk.
    JoinCase("evictions over a cap", 150, False),
    # What the join reads after a reopen is what it committed.
    JoinCase("reopened after each commit", 150, True),
]


@pytest.mark.parametrize("case", JOIN_CASES, ids=lambda c: c.name)
def test_a_join_decides_the_same_on_disk_as_in_memory(case: JoinCase, tmp_path: Path) -> None:
    import json

    from predwatch.config import Settings
    from predwatch.demo.synthetic import generate
    from predwatch.events import Decoder
    from predwatch.records import Raw
    from predwatch.windowing.join import PartitionJoin, label_fits
    from predwatch.windowing.pending import CompactStore, PendingStore

    sent, labels_sent = generate(3000, seed=4, unlabelled=0.3, label_delay=30.0, jitter=5.0)
    decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
    predictions, bad = decoder.predictions([Raw(json.dumps(m).encode()) for m in sent])
    labels, bad_labels = decoder.labels([Raw(json.dumps(m).encode()) for m in labels_sent])
    assert not bad and not bad_labels

    database = DiskDatabase.open(tmp_path / "pending", **SMALL)
    stores: list[PendingStore] = []

    def on_disk() -> PendingStore:
        stores.append(database.store("predictions-0"))
        return stores[-1]

    def join(store: Any) -> PartitionJoin:
        return PartitionJoin(40.0, 5.0, 1e9, 10_000, 0.0, label_fits, store, case.max_pending)

    in_memory, disk = join(CompactStore), join(on_disk)
    outcomes: dict[str, list[list[str]]] = {"memory": [], "disk": []}
    for start in range(0, 3000, 250):
        batch = (predictions[start : start + 250], labels[start : start + 250])
        for name, each in (("memory", in_memory), ("disk", disk)):
            result = each.process(*batch, now=0.0)
            outcomes[name].extend(
                [p.id for p in getattr(result, o)]
                for o in ("unlabelled", "evicted", "duplicate_predictions", "late_predictions")
            )
            outcomes[name].append([p.id for p, _ in result.matched])
            outcomes[name].append([label.id for label in result.late_labels])
        database.commit()
        if case.reopen:
            database.close()
            database = DiskDatabase.open(tmp_path / "pending", **SMALL)
            disk._predictions = database.store("predictions-0")  # what a restore would bind
    assert outcomes["disk"] == outcomes["memory"]
    # The stream did go through every path: matched, expired, late labels, evicted under a cap.
    totals = [sum(len(ids) for ids in outcomes["memory"][i::6]) for i in range(6)]
    unlabelled, evicted, _, _, matched, late = totals
    assert matched > 1000 and late > 0
    assert (evicted > 100, unlabelled > 100) == (case.max_pending > 0, case.max_pending == 0)
    assert disk.pending_predictions == in_memory.pending_predictions > 0
    database.close()


JOIN_CHILD = textwrap.dedent(
    """
    import dataclasses, json, sys
    import msgspec
    from predwatch.config import Settings
    from predwatch.demo.synthetic import generate
    from predwatch.events import Decoder
    from predwatch.records import Raw
    from predwatch.state.codec import from_data, to_data
    from predwatch.state.disk_store import DiskDatabase
    from predwatch.windowing.join import JoinResult, PartitionJoin, label_fits

    def stream():
        sent, labels_sent = generate(3000, seed=4, unlabelled=0.3, label_delay=30.0, jitter=5.0)
        decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
        predictions, _ = decoder.predictions([Raw(json.dumps(m).encode()) for m in sent])
        labels, _ = decoder.labels([Raw(json.dumps(m).encode()) for m in labels_sent])
        return [(predictions[i : i + 100], labels[i : i + 100]) for i in range(0, 3000, 100)]

    def run(join, batches, counts, start, commit):
        for i in range(start, len(batches)):
            result = join.process(*batches[i], now=0.0)
            for outcome in dataclasses.fields(JoinResult):
                counts[outcome.name] = counts.get(outcome.name, 0) + len(
                    getattr(result, outcome.name)
                )
            if (i + 1) % 3 == 0:
                commit(i + 1)
        return counts

    def new_join(store):
        return PartitionJoin(40.0, 5.0, 1e9, 10_000, 0.0, label_fits, store, 150)

    if __name__ == "__main__":
        path = sys.argv[1]
        database = DiskDatabase.open(path, cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
        blob = database.extra(b"checkpoint")
        if blob is None:
            join, counts, start = new_join(lambda: database.store("0")), {}, 0
        else:  # what a restart does: the checkpoint and the store are of the same commit
            state = from_data(msgspec.msgpack.decode(blob))
            join, counts, start = state["join"], state["counts"], state["next"]
            join.unpack()
            join.bind_store(database.bind)

        def commit(next_batch):
            state = {"join": join, "counts": counts, "next": next_batch}
            database.commit({b"checkpoint": msgspec.msgpack.encode(to_data(state))})
            print("committed", next_batch, flush=True)

        run(join, stream(), counts, start, commit)
        print("done", json.dumps(counts, sort_keys=True), flush=True)
    """
)


def test_a_join_killed_at_any_point_resumes_from_its_commit_without_counting_twice(
    tmp_path: Path,
) -> None:
    import json
    import runpy

    from predwatch.windowing.pending import CompactStore

    script = tmp_path / "join_child.py"
    script.write_text(JOIN_CHILD)
    child = runpy.run_path(str(script))  # the same stream and join, in memory, uninterrupted
    expected = child["run"](
        child["new_join"](CompactStore), child["stream"](), {}, 0, lambda _: None
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, str(script), str(tmp_path / "pending")]
    for kill_after in (3, 9, 15, 21, 27):  # killed right after that commit, mid-batch or so
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("committed") and int(line.split()[1]) >= kill_after:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finished = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    counts = json.loads(finished.stdout.splitlines()[-1].removeprefix("done "))
    assert counts == expected
    assert counts["matched"] > 1000 and counts["evicted"] > 100
