"""Pending predictions on disk: a ``PendingStore`` per partition in one embedded RocksDB.

A partition's join keeps the predictions still waiting for their label in a
``PendingStore`` (``predwatch.windowing.pending``; by id, each with its deadline):

.. code-block:: python

    class PendingStore(Protocol):
        def __len__(self) -> int: ...
        def __contains__(self, key: str) -> bool: ...
        def get(self, key: str) -> Prediction | None: ...
        def add(self, prediction: Prediction, deadline: float) -> None: ...  # key not present
        def pop(self, key: str) -> Prediction | None: ...
        def pop_due(self, mark: float) -> list[Prediction]: ...  # deadline < mark
        def pop_oldest(self, count: int) -> list[Prediction]: ...  # the `count` smallest

``pop_due`` and ``pop_oldest`` remove and return predictions ordered by
(deadline, id); ``get`` and ``pop`` return a prediction equal to the one added,
its features of the same type (raw JSON stays raw).

``DiskDatabase`` holds those of several partitions, one ``DiskPendingStore``
each (``database.store(name)``), in one database on disk, so that memory is
bounded by the database's caches, not by the number of pending predictions.

Crash safety: the database on disk only ever changes in ``commit(extra)``. What
the stores did since the last commit is kept in memory (an overlay of added and
removed predictions, read through by every method); ``commit`` writes it for all
partitions together with the ``extra`` records (the monitor's checkpoint, the
offsets) in one atomic, synced write. After a crash, even ``kill -9``, the
database reopens exactly as of the last commit, so pending predictions and the
checkpoint that refers to them never disagree. The overlay grows with what
happens between two commits (about a kilobyte per prediction added, less per
one removed): whoever commits should also do so early when ``uncommitted``
passes a few hundred thousand changes.

In checkpoint data a store is only its partition's name: ``DiskDatabase.bind``
gives the live store back after a restore. ``clear`` empties a partition that
moved to another instance (a range deletion at the next commit).

Key layout, per partition ``name`` (``ns = b"P" + name + b"\\0"``):
``ns + b"p" + id`` holds the packed prediction with its deadline,
``ns + b"d" + deadline(8 sortable bytes) + id`` is the deadline index (empty
value), ``ns + b"n"`` the count; extra records live under ``b"X" + key``.

>>> import tempfile
>>> from predwatch.records import Prediction
>>> path = tempfile.mkdtemp()
>>> database = DiskDatabase.open(path)
>>> store = database.store("predictions-0")
>>> store.add(Prediction("a", "fraud", "v1", 10.0, "1", 0.9, None, b'{"x": 1}', {}), 70.0)
>>> store.add(Prediction("b", "fraud", "v1", 5.0, "0", 0.1, None, {"x": 2}, {}), 65.0)
>>> database.commit({b"checkpoint": b"state as of b"})
>>> store.add(Prediction("c", "fraud", "v1", 1.0, "0", 0.2, None, {}, {}), 61.0)
>>> [p.id for p in store.pop_due(66.0)], len(store)
(['c', 'b'], 1)
>>> database.close()  # without a commit: "c" and the pops are forgotten
>>> database = DiskDatabase.open(path)
>>> store = database.store("predictions-0")
>>> sorted(p.id for p in store.pop_oldest(10)), database.extra(b"checkpoint")
(['a', 'b'], b'state as of b')
>>> database.close()
>>> import shutil; shutil.rmtree(path)
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import msgspec

from predwatch.records import Prediction

__all__ = ["Backend", "DiskDatabase", "DiskPendingStore", "RocksBackend", "StoreError"]

CACHE_BYTES = 64 << 20  # the block cache: what reads keep of the database in memory
WRITE_BUFFER_BYTES = 32 << 20  # one memtable; RocksDB keeps up to two before flushing

_EXTRA = b"X"
_PREDICTION, _DEADLINE, _COUNT = b"p", b"d", b"n"
_DOUBLE = struct.Struct(">d")
_QUAD = struct.Struct(">Q")
_SIGN = 1 << 63
# How features were handed in, so that they come back as the same type (raw JSON stays raw).
_DICT, _BYTES, _RAW = 0, 1, 2


class StoreError(Exception):
    """The store on disk cannot be used; the message names its directory and what to do."""


class Backend(Protocol):
    """An ordered key-value store on disk that changes only by atomic, durable writes."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The entries with ``start <= key < stop``, in key order."""
        ...

    def write(
        self,
        ranges: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        puts: list[tuple[bytes, bytes]],
    ) -> None:
        """Delete the ranges ``[start, stop)``, then the keys, then put; all or nothing, durably
        (synced) before returning."""
        ...

    def close(self) -> None: ...


class RocksBackend:
    """RocksDB through ``rocksdict``, its memory bounded by a block cache and the memtables.

    Index and filter blocks are charged to the block cache, so ``cache_bytes``
    bounds what reads hold however many keys there are; a Bloom filter answers
    most lookups of absent ids (every new prediction's) without reading a block.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        cache_bytes: int = CACHE_BYTES,
        write_buffer_bytes: int = WRITE_BUFFER_BYTES,
    ) -> None:
        from rocksdict import (
            BlockBasedIndexType,
            BlockBasedOptions,
            Cache,
            DBCompressionType,
            Options,
            Rdict,
            WriteOptions,
        )

        table = BlockBasedOptions()
        table.set_block_cache(Cache(cache_bytes))
        # Index and filter blocks are charged to the cache, in partitions of a few KB: one
        # whole filter of a large file would not fit a shard of the cache and be read again
        # at every lookup.
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_metadata_block_size(4096)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_bloom_filter(10, False)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_size(write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        options.set_compression_type(DBCompressionType.lz4())
        options.set_max_open_files(512)
        try:
            self._db = Rdict(os.fspath(path), options)
        except Exception as error:  # rocksdict raises plain Exception, whatever the cause
            raise StoreError(
                f"pending-prediction store {os.fspath(path)}: cannot open it ({error}); "
                "check that the directory is writable and that no other predwatch uses it"
            ) from error
        self._sync = WriteOptions()
        self._sync.sync = True

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        from rocksdict import ReadOptions

        bounds = ReadOptions()
        bounds.set_iterate_upper_bound(stop)  # never step into the next partition's deletions
        cursor = self._db.iter(bounds)
        cursor.seek(start)
        while cursor.valid():
            key = cursor.key()
            if key >= stop:
                return
            yield key, cursor.value()
            cursor.next()

    def write(
        self,
        ranges: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        puts: list[tuple[bytes, bytes]],
    ) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for start, stop in ranges:
            batch.delete_range(start, stop)
        for key in deletes:
            batch.delete(key)
        for key, value in puts:
            batch.put(key, value)
        self._db.write(batch, self._sync)

    def close(self) -> None:
        self._db.close()


class DiskDatabase:
    """The pending predictions of several partitions and extra records, committed together."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._stores: dict[str, DiskPendingStore] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        cache_bytes: int = CACHE_BYTES,
        write_buffer_bytes: int = WRITE_BUFFER_BYTES,
    ) -> DiskDatabase:
        """The database in directory ``path`` (created if missing), as of its last commit."""
        return cls(RocksBackend(path, cache_bytes, write_buffer_bytes))

    def store(self, name: str) -> DiskPendingStore:
        """Partition ``name``'s pending predictions (one object per name, made on first use)."""
        if "\0" in name:
            raise ValueError(f"partition name {name!r} must not contain a NUL character")
        if name not in self._stores:
            self._stores[name] = DiskPendingStore(self._backend, name)
        return self._stores[name]

    def bind(self, restored: object) -> DiskPendingStore:
        """The live store that ``restored`` names: a ``DiskPendingStore`` read back from
        checkpoint data holds only its partition's name (its predictions are here)."""
        if not isinstance(restored, DiskPendingStore) or not isinstance(
            getattr(restored, "_name", None), str
        ):
            raise ValueError(f"{restored!r} is not a disk store read back from a checkpoint")
        return self.store(restored._name)

    def factory(self, partition: int) -> Callable[[], DiskPendingStore]:
        """The store factory of a partition's join (``PendingStores``)."""
        return lambda: self.store(str(partition))

    def clear_all(self) -> None:
        """Empty every partition's pending predictions, on disk too (a durable write)."""
        for store in self._stores.values():
            store.clear()
        self._backend.write([(b"P", b"Q")], [], [])
        for store in self._stores.values():
            store._committed()

    def extra(self, key: bytes) -> bytes | None:
        """An extra record as of the last commit."""
        return self._backend.get(_EXTRA + key)

    @property
    def uncommitted(self) -> int:
        """Changes held in memory until the next commit, over all partitions."""
        return sum(store.uncommitted for store in self._stores.values())

    def commit(self, extra: Mapping[bytes, bytes] | None = None) -> None:
        """Write every partition's changes and ``extra`` in one atomic, synced write."""
        ranges: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        puts: list[tuple[bytes, bytes]] = []
        for store in self._stores.values():
            store._changes(ranges, deletes, puts)
        puts.extend((_EXTRA + key, value) for key, value in (extra or {}).items())
        self._backend.write(ranges, deletes, puts)
        for store in self._stores.values():
            store._committed()

    def close(self) -> None:
        """Close the database; changes since the last commit are dropped."""
        self._backend.close()


class DiskPendingStore:
    """One partition's pending predictions: on disk as of the last commit, plus an overlay.

    The overlay holds the predictions added since the commit (with a heap of
    their deadlines) and the deadlines of those on disk removed since. Reads go
    through it: a removed id is absent whatever the disk says.
    """

    def __init__(self, backend: Backend, name: str) -> None:
        self._backend = backend
        self._name = name
        self._ns = b"P" + name.encode() + b"\0"
        self._added: dict[str, tuple[float, Prediction]] = {}
        self._heap: list[tuple[float, str]] = []  # deadlines of _added; stale entries skipped
        self._removed: dict[str, float] = {}  # id on disk -> its deadline
        # No committed prediction not yet removed has a deadline below the floor: scans of the
        # deadline index start there, instead of stepping over the deletions of all that ended.
        self._floor = -math.inf
        self._cleared = False  # all on disk is gone since the last commit
        count = backend.get(self._ns + _COUNT)
        self._on_disk = 0 if count is None else _QUAD.unpack(count)[0]

    def __len__(self) -> int:
        return self._on_disk - len(self._removed) + len(self._added)

    def __contains__(self, key: str) -> bool:
        if key in self._added:
            return True
        return key not in self._removed and self._read(key) is not None

    @property
    def uncommitted(self) -> int:
        return len(self._added) + len(self._removed)

    def __getstate__(self) -> dict[str, Any]:
        """As checkpoint data (``predwatch.state.codec``): only the partition's name. The
        predictions are in the database, committed with that checkpoint; ``DiskDatabase.bind``
        gives the live store back."""
        return {"_name": self._name}

    def clear(self) -> None:
        """Remove every pending prediction of this partition (on disk at the next commit): for a
        partition that moved to another instance, or before restoring a newer copy of it."""
        self._added.clear()
        self._heap.clear()
        self._removed.clear()
        self._on_disk = 0
        self._floor = -math.inf
        self._cleared = True

    def get(self, key: str) -> Prediction | None:
        entry = self._added.get(key)
        if entry is not None:
            return entry[1]
        if key in self._removed:
            return None
        found = self._read(key)
        return None if found is None else found[1]

    def add(self, prediction: Prediction, deadline: float) -> None:
        deadline = float(deadline) + 0.0  # -0.0 == 0.0, but their bytes would sort apart
        if deadline != deadline:  # NaN: it would sort nowhere and hold back all that follow
            raise ValueError(f"the deadline of prediction {prediction.id!r} is not a number")
        self._added[prediction.id] = (deadline, prediction)
        heapq.heappush(self._heap, (deadline, prediction.id))

    def pop(self, key: str) -> Prediction | None:
        entry = self._added.pop(key, None)
        if entry is not None:
            return entry[1]  # its heap entry is now stale
        if key in self._removed:
            return None
        found = self._read(key)
        if found is None:
            return None
        self._removed[key] = found[0]
        return found[1]

    def pop_due(self, mark: float) -> list[Prediction]:
        due = list(itertools.takewhile(lambda entry: entry[0] < mark, self._disk_deadlines()))
        self._floor = max(self._floor, mark)
        return self._take(due, self._pop_heap(lambda deadline, _: deadline < mark))

    def pop_oldest(self, count: int) -> list[Prediction]:
        if count <= 0:
            return []
        oldest = list(itertools.islice(self._disk_deadlines(), count))
        taken = self._pop_heap(lambda _, n: n < count)
        chosen = heapq.nsmallest(count, oldest + taken)
        for entry in set(taken) - set(chosen):  # back to the overlay
            heapq.heappush(self._heap, entry)
        chosen_set = set(chosen)
        oldest = [e for e in oldest if e in chosen_set]  # a prefix of the disk's order
        if oldest:
            self._floor = max(self._floor, oldest[-1][0])
        return self._take(oldest, [e for e in taken if e in chosen_set])

    def _pop_heap(self, more: Any) -> list[tuple[float, str]]:
        """Pop the overlay's valid deadline entries, smallest first, while ``more(deadline, n)``."""
        heap, added = self._heap, self._added
        taken: list[tuple[float, str]] = []
        while heap and more(heap[0][0], len(taken)):
            deadline, key = heapq.heappop(heap)
            entry = added.get(key)
            # An id added, popped and added again with the same deadline is in the heap twice.
            if entry is not None and entry[0] == deadline and taken[-1:] != [(deadline, key)]:
                taken.append((deadline, key))
        return taken

    def _take(
        self, on_disk: list[tuple[float, str]], in_memory: list[tuple[float, str]]
    ) -> list[Prediction]:
        """Remove the given entries (each list sorted) and return their predictions in order."""
        result = []
        disk = ((deadline, key, True) for deadline, key in on_disk)
        memory = ((deadline, key, False) for deadline, key in in_memory)
        for deadline, key, committed in heapq.merge(disk, memory):
            if not committed:
                result.append(self._added.pop(key)[1])
                continue
            found = self._read(key)
            assert found is not None, "the deadline index names a prediction not on disk"
            self._removed[key] = deadline
            result.append(found[1])
        return result

    def _disk_deadlines(self) -> Iterator[tuple[float, str]]:
        """The committed (deadline, id) in order, without those removed since."""
        if self._cleared:
            return
        start = self._ns + _DEADLINE
        removed = self._removed
        for key, _ in self._backend.scan(start + _sortable(self._floor), self._ns + b"e"):
            ident = key[len(start) + 8 :].decode("utf-8", "surrogatepass")
            if ident not in removed:
                yield _from_sortable(key[len(start) : len(start) + 8]), ident

    def _read(self, key: str) -> tuple[float, Prediction] | None:
        if self._cleared:
            return None
        value = self._backend.get(self._ns + _PREDICTION + _encode_id(key))
        return None if value is None else _unpack(key, value)

    def _changes(
        self,
        ranges: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        puts: list[tuple[bytes, bytes]],
    ) -> None:
        """Append the writes that make the disk what this store holds now."""
        ns, count = self._ns, len(self)
        if self._cleared:
            ranges.append((ns, ns[:-1] + b"\1"))  # every key of this partition: ns ends in NUL
        for key, deadline in self._removed.items():
            ident = _encode_id(key)
            deletes.append(ns + _PREDICTION + ident)
            deletes.append(ns + _DEADLINE + _sortable(deadline) + ident)
        for key, (deadline, prediction) in self._added.items():
            ident = _encode_id(key)
            puts.append((ns + _PREDICTION + ident, _pack(prediction, deadline)))
            puts.append((ns + _DEADLINE + _sortable(deadline) + ident, b""))
        puts.append((ns + _COUNT, _QUAD.pack(count)))

    def _committed(self) -> None:
        self._on_disk = len(self)
        self._cleared = False
        if self._added:
            self._floor = min(self._floor, min(deadline for deadline, _ in self._added.values()))
        self._added.clear()
        self._heap.clear()
        self._removed.clear()


def _encode_id(key: str) -> bytes:
    """UTF-8, whose byte order is str order; a lone surrogate (JSON allows one) passes."""
    return key.encode("utf-8", "surrogatepass")


def _sortable(deadline: float) -> bytes:
    """8 bytes whose order is the order of the deadlines (IEEE 754, sign flipped)."""
    bits = _QUAD.unpack(_DOUBLE.pack(deadline))[0]
    return _QUAD.pack(bits ^ 0xFFFFFFFFFFFFFFFF if bits & _SIGN else bits | _SIGN)


def _from_sortable(data: bytes) -> float:
    bits = _QUAD.unpack(data)[0]
    return _DOUBLE.unpack(_QUAD.pack(bits ^ _SIGN if bits & _SIGN else bits ^ 0xFFFFFFFFFFFFFFFF))[
        0
    ]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def _pack(prediction: Prediction, deadline: float) -> bytes:
    """The prediction without its id (the key holds it), its deadline first; msgpack."""
    _, model, version, timestamp, value, score, probabilities, features, tags = prediction
    data: dict[str, Any] | bytes
    if isinstance(features, dict):
        kind, data = _DICT, features
    else:
        kind, data = (_RAW if isinstance(features, msgspec.Raw) else _BYTES), bytes(features)
    fields = (deadline, model, version, timestamp, value, score, probabilities, kind, data, tags)
    return _encode(fields)


def _unpack(key: str, packed: bytes) -> tuple[float, Prediction]:
    deadline, model, version, timestamp, value, score, probabilities, kind, data, tags = _decode(
        packed
    )
    features = data if kind == _DICT else msgspec.Raw(data) if kind == _RAW else bytes(data)
    prediction = Prediction(
        key, model, version, timestamp, value, score, probabilities, features, tags
    )
    return deadline, prediction
