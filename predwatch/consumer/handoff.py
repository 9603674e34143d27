"""Handing partitions over between the instances of a group, their state with them.

A partition's state (``Monitor.partition_state``: pending predictions and
labels, the ended ids, watermarks, outcome counts) is checkpointed to
``state.topic`` (``predwatch.state.partition_topic``); then, in one commit,
the input offsets it reflects and, on the state topic's partition, where the
checkpoint before it starts. So whichever member is assigned a
partition next, after a rebalance, a clean stop or a ``kill -9``, restores the
state that matches the offsets it starts from: no pending prediction is lost
and no event is counted twice.

Checkpoints are written and committed from the poll loop, every
``state.checkpoint_every`` and on shutdown; never in a rebalance callback,
where the client cannot block on the group coordinator. So a rebalance works
as a crash does, and costs the same: the events read since the newest
checkpoint are read again by the partition's next owner, and counted once.

- **Revoked**: the partitions are taken out of the monitor (no longer expired
  or exported here) and parked.
- **Assigned**: the source pauses them; then, from the poll loop, ``restore``
  reads each one's committed offsets. If they are still those this member
  committed last, the parked state continues where it was read to; else the
  checkpoints from the committed state offset on are read, the one whose
  offsets are the committed input offsets is loaded, and the input partitions
  are sought to them. One that is refused (gone, corrupt, other settings) is
  said in one sentence and the previous checkpoint is read; with neither, the
  partition starts empty from the committed offsets: never a crash loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from predwatch.monitor import Held, Monitor
from predwatch.state.codec import StateError
from predwatch.state.partition_topic import Checkpoint, PartitionCheckpoints, Pointer

log = logging.getLogger(__name__)

Committed = tuple[int | None, dict[str, int]]
"""A partition's committed offsets: on the state topic (where to read from) and per input."""


class Handoff:
    """The partitions one member owns, their newest checkpoints and those it parked."""

    def __init__(
        self,
        checkpoints: PartitionCheckpoints,
        monitor: Monitor,
        lock: threading.Lock,
        topics: tuple[str, str],
    ) -> None:
        self._checkpoints = checkpoints
        self._monitor = monitor
        self._lock = lock
        self._topics = topics
        self._written: dict[int, tuple[Pointer, Pointer | None]] = {}  # owned: newest, previous
        self._committed: dict[int, Committed] = {}  # owned: what this member committed last
        # Revoked: what this member committed last, its state, the offsets it was read to.
        self._parked: dict[int, tuple[Committed | None, Held, dict[str, int]]] = {}

    @property
    def owned(self) -> list[int]:
        return sorted(self._written.keys() | set(self._monitor.partitions))

    def save(
        self,
        consumer: KafkaConsumer,
        positions: dict[TopicPartition, int],
        partitions: list[int],
        level: int = logging.ERROR,
    ) -> bool:
        """Checkpoint ``partitions`` to the topic, then commit the offsets they reflect; whether
        both succeeded (on failure, said at ``level``, nothing is committed and the state stays
        here)."""
        states: dict[int, tuple[dict[str, Any], dict[str, int]]] = {}
        with self._lock:
            for partition in partitions:
                offsets = self._offsets(consumer, positions, partition)
                states[partition] = (self._monitor.partition_state(partition), offsets)
        try:
            written = {
                p: self._checkpoints.write(p, state, offsets)
                for p, (state, offsets) in states.items()
            }
        except KafkaError as error:
            log.log(
                level,
                "cannot write partition checkpoints to state.topic '%s' (%s); offsets are not "
                "committed until one is written",
                self._checkpoints.topic,
                error,
            )
            return False
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        committed: dict[int, Committed] = {}
        for partition, pointer in written.items():
            newest = self._written.get(partition, (None, None))[0]
            start = (newest or pointer).first  # a reader may fall back to the one before
            offsets = states[partition][1]
            committed[partition] = (start, offsets)
            commit[TopicPartition(self._checkpoints.topic, partition)] = _at(start)
            for topic, offset in offsets.items():
                commit[TopicPartition(topic, partition)] = _at(offset)
        try:
            consumer.commit(commit)
        except KafkaError as error:
            log.log(level, "committing offsets with their checkpoints failed (%s); retrying", error)
            return False
        for partition, pointer in written.items():
            newest, previous = self._written.get(partition, (None, None))
            if previous is not None:
                self._checkpoints.forget(partition, previous)
            self._written[partition] = (pointer, newest)
            self._committed[partition] = committed[partition]
        return True

    def _offsets(
        self, consumer: KafkaConsumer, positions: dict[TopicPartition, int], partition: int
    ) -> dict[str, int]:
        """The next offset of each input topic's partition that the state reflects."""
        offsets: dict[str, int] = {}
        for topic in self._topics:
            tp = TopicPartition(topic, partition)
            offset = positions.get(tp)
            if offset is None:
                try:
                    offset = consumer.position(tp, timeout_ms=5000)
                except (KafkaError, AssertionError, ValueError):  # no longer assigned
                    offset = None
            if offset is not None:
                offsets[topic] = offset
        return offsets

    def revoked(self, partitions: Iterable[int], positions: dict[TopicPartition, int]) -> None:
        """Take revoked partitions out of the monitor, parked with where they were read to and
        what this member committed of them. Nothing blocks: this runs in the rebalance."""
        with self._lock:
            for partition in partitions:
                self._written.pop(partition, None)
                read_to = {tp.topic: o for tp, o in positions.items() if tp.partition == partition}
                held = self._monitor.detach_partition(partition)
                committed = self._committed.pop(partition, None)
                self._parked[partition] = (committed, held, read_to)

    def restore(self, consumer: KafkaConsumer, partitions: Iterable[int]) -> dict[int, str]:
        """Restore each newly assigned partition from its committed offsets and seek its input
        partitions to the offsets its state reflects; how each was restored.

        A parked partition whose committed offsets are still those this member committed
        continues from its parked state where it was read to: no other member has
        checkpointed it since, and what another read after that checkpoint it dropped.
        """
        how: dict[int, str] = {}
        for partition in partitions:
            parked = self._parked.pop(partition, None)
            committed = self._read_committed(consumer, partition)
            if parked is not None and parked[0] == committed:
                with self._lock:
                    self._monitor.attach_partition(partition, parked[1])
                self._seek(consumer, partition, parked[2])
                if committed[0] is not None:
                    self._committed[partition] = committed
                how[partition] = "kept"
            elif committed[0] is None:
                with self._lock:
                    self._monitor.drop_partition(partition)
                how[partition] = "new"
            else:
                how[partition] = self._restore(consumer, partition, committed)
        return how

    def _read_committed(self, consumer: KafkaConsumer, partition: int) -> Committed:
        found: list[int | None] = []
        for topic in (self._checkpoints.topic, *self._topics):
            try:
                offset = consumer.committed(TopicPartition(topic, partition))
            except KafkaError as error:
                log.warning("cannot read committed offsets of %s[%d]: %s", topic, partition, error)
                offset = None
            found.append(offset)
        inputs = {t: o for t, o in zip(self._topics, found[1:], strict=True) if o is not None}
        return found[0], inputs

    def _restore(self, consumer: KafkaConsumer, partition: int, committed: Committed) -> str:
        start, inputs = committed
        assert start is not None
        try:
            found = self._checkpoints.read(partition, start)
        except KafkaError as error:
            log.error("cannot read state.topic '%s': %s", self._checkpoints.topic, error)
            found = []
        # Each opened once: the committed one (its offsets are the committed offsets) is tried
        # first, then those before it.
        opened = [(c, _opened(self._checkpoints, c)) for c in found]
        at = [i for i, (_, got) in enumerate(opened) if isinstance(got, tuple) and got[1] == inputs]
        for i in range(at[-1] if at else len(found) - 1, -1, -1):
            checkpoint, got = opened[i]
            try:
                if isinstance(got, StateError):
                    raise got
                state, offsets = got
                with self._lock:
                    self._monitor.load_partition(partition, state)
            except StateError as error:
                log.error(
                    "checkpoint %s of partition %d in state.topic '%s' refused: %s; trying the "
                    "one before it",
                    checkpoint.pointer.id,
                    partition,
                    self._checkpoints.topic,
                    error,
                )
                continue
            self._seek(consumer, partition, offsets)
            self._committed[partition] = committed
            # The one before it is deleted once this member's next checkpoint is committed.
            self._written[partition] = (checkpoint.pointer, found[i - 1].pointer if i else None)
            return "restored" if offsets == inputs else "restored an earlier checkpoint"
        log.error(
            "no usable checkpoint of partition %d in state.topic '%s': it starts empty from "
            "the committed offsets",
            partition,
            self._checkpoints.topic,
        )
        with self._lock:
            self._monitor.drop_partition(partition)
        return "empty"

    def _seek(self, consumer: KafkaConsumer, partition: int, offsets: dict[str, int]) -> None:
        for topic, offset in offsets.items():
            consumer.seek(TopicPartition(topic, partition), offset)


def _at(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


def _opened(
    checkpoints: PartitionCheckpoints, checkpoint: Checkpoint
) -> tuple[dict[str, Any], dict[str, int]] | StateError:
    """A checkpoint's state and offsets, or why it is refused."""
    try:
        return checkpoints.open(checkpoint)
    except StateError as error:
        return error
