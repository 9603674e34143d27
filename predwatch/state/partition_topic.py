"""Partition checkpoints in a Kafka topic, so a partition's state moves with it between instances.

With ``state.topic`` set, each input partition's state (its join and outcome
counts, ``Monitor.partition_state``) is checkpointed to that topic, in the
partition of the same number, sealed (``predwatch.state.envelope``) with the
input offsets it reflects and cut into chunks a broker accepts. A checkpoint
is whole once every chunk is there; each is self-consistent, state and offsets.

Which checkpoint counts is decided by the consumer group's committed offsets,
written in one commit: the input partitions' offsets (those the newest
checkpoint reflects) and, for the state topic's partition, the offset of the
checkpoint before it, where a reader starts (``predwatch.consumer.handoff``).
A commit is fenced by the group's generation, so a member that lost its
partitions cannot make its later checkpoints count. Older checkpoints are
deleted with tombstones; the topic is created compacted, so the broker
reclaims them.

>>> Pointer("3fa2", 120, 123, 4).key(partition=5, chunk=0)
b'5/3fa2/0/4'
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from predwatch.config import Settings
from predwatch.consumer.client import client_settings
from predwatch.state.codec import StateError
from predwatch.state.envelope import fingerprint, seal, unseal

__all__ = ["CHUNK", "Checkpoint", "PartitionCheckpoints", "Pointer"]

log = logging.getLogger(__name__)

CHUNK = 512 * 1024  # bytes per record: under a broker's default 1 MB message limit
READ_TIMEOUT = 30.0  # seconds to read checkpoints back


@dataclass(frozen=True)
class Pointer:
    """Where one checkpoint of a partition is: its id and the offsets of its first and last
    chunk in the state topic's partition of the same number."""

    id: str
    first: int
    last: int
    chunks: int

    def key(self, partition: int, chunk: int) -> bytes:
        return f"{partition}/{self.id}/{chunk}/{self.chunks}".encode()


@dataclass(frozen=True)
class Checkpoint:
    """A whole checkpoint read back: where it is, and its sealed bytes."""

    pointer: Pointer
    blob: bytes


class PartitionCheckpoints:
    """Writes and reads partition checkpoints in ``state.topic``."""

    def __init__(
        self,
        settings: Settings,
        producer_factory: Callable[..., KafkaProducer] = KafkaProducer,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
    ) -> None:
        assert settings.state.topic is not None
        self.topic = settings.state.topic
        self._kafka = settings.kafka
        self._fingerprint = fingerprint(settings)
        self._producer_factory = producer_factory
        self._consumer_factory = consumer_factory
        self._producer: KafkaProducer | None = None
        self._reader: KafkaConsumer | None = None

    def ensure_topic(self, partitions: int) -> None:
        """Create the topic (compacted, one partition per input partition) if it is missing;
        ``StateError`` if it has fewer partitions than the inputs."""
        admin = KafkaAdminClient(**client_settings(self._kafka))
        try:
            spec = {
                "num_partitions": partitions,
                "replication_factor": -1,  # the broker's default
                "configs": {"cleanup.policy": "compact"},
            }
            try:
                admin.create_topics({self.topic: spec}, timeout_ms=10_000)
                log.info("created the state topic '%s' (%d partitions)", self.topic, partitions)
            except TopicAlreadyExistsError:
                pass
            shown = {
                t["name"]: len(t["partitions"])
                for t in admin.describe_topics([self.topic])
                if t["error_code"] == 0
            }
        finally:
            admin.close()
        if shown.get(self.topic, partitions) < partitions:
            raise StateError(
                f"the state topic '{self.topic}' has {shown[self.topic]} partitions but the "
                f"inputs have {partitions}: give it at least as many, or name a new topic in "
                "state.topic"
            )

    def write(
        self, partition: int, state: Mapping[str, Any], offsets: Mapping[str, int]
    ) -> Pointer:
        """Produce a partition's checkpoint (``state`` and the next ``offsets`` of its input
        topics) and wait until the broker has it; where it is. ``KafkaError`` on failure."""
        blob = seal({"offsets": dict(offsets), "partition": state}, self._fingerprint)
        pieces = [blob[i : i + CHUNK] for i in range(0, len(blob), CHUNK)] or [b""]
        ident = uuid.uuid4().hex[:16]
        producer = self._producer_or_new()
        futures = [
            producer.send(
                self.topic,
                key=f"{partition}/{ident}/{i}/{len(pieces)}".encode(),
                value=piece,
                partition=partition,
            )
            for i, piece in enumerate(pieces)
        ]
        producer.flush()
        sent = [future.get(timeout=READ_TIMEOUT) for future in futures]
        return Pointer(ident, sent[0].offset, sent[-1].offset, len(pieces))

    def read(self, partition: int, start: int) -> list[Checkpoint]:
        """The whole checkpoints of a partition from offset ``start`` to the end of the state
        topic's partition, in the order they were written."""
        tp = TopicPartition(self.topic, partition)
        reader = self._reader_or_new()
        reader.assign([tp])
        end = reader.end_offsets([tp])[tp]
        reader.seek(tp, start)
        pieces: dict[str, dict[int, tuple[int, bytes]]] = {}
        order: list[Pointer] = []
        position, rounds = start, int(READ_TIMEOUT / 0.5)
        while position < end and rounds > 0:
            rounds -= 1
            for record in reader.poll(timeout_ms=500).get(tp, []):
                position = record.offset + 1
                parts = (record.key or b"").decode(errors="replace").split("/")
                if len(parts) != 4 or parts[0] != str(partition) or record.value is None:
                    continue
                ident, chunk, chunks = parts[1], int(parts[2]), int(parts[3])
                found = pieces.setdefault(ident, {})
                found[chunk] = (record.offset, record.value)
                if len(found) == chunks:
                    at = sorted(offset for offset, _ in found.values())
                    order.append(Pointer(ident, at[0], at[-1], chunks))
        return [Checkpoint(p, b"".join(pieces[p.id][i][1] for i in range(p.chunks))) for p in order]

    def open(self, checkpoint: Checkpoint) -> tuple[dict[str, Any], dict[str, int]]:
        """A checkpoint's partition state and the offsets it reflects; ``StateError`` (one
        sentence) if it is corrupt or of other settings."""
        data = unseal(checkpoint.blob, self._fingerprint)
        try:
            offsets = {str(t): int(o) for t, o in data["offsets"].items()}
            return data["partition"], offsets
        except (LookupError, TypeError, ValueError, AttributeError) as error:
            raise StateError(f"its offsets are malformed ({error!r})") from error

    def forget(self, partition: int, pointer: Pointer) -> None:
        """Delete a checkpoint no pointer names any more (tombstones; best effort)."""
        producer = self._producer_or_new()
        try:
            for chunk in range(pointer.chunks):
                producer.send(
                    self.topic, key=pointer.key(partition, chunk), value=None, partition=partition
                )
        except KafkaError as error:
            log.debug("could not delete an old checkpoint from '%s': %s", self.topic, error)

    def close(self) -> None:
        for client in (self._producer, self._reader):
            if client is not None:
                try:
                    client.close()
                except KafkaError as error:
                    log.warning("closing a state topic client failed: %s", error)

    def _producer_or_new(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._producer_factory(
                **client_settings(self._kafka),
                acks="all",
                linger_ms=5,
                max_request_size=CHUNK + 64 * 1024,
            )
        return self._producer

    def _reader_or_new(self) -> KafkaConsumer:
        if self._reader is None:
            self._reader = self._consumer_factory(
                **client_settings(self._kafka),
                group_id=None,
                enable_auto_commit=False,
                fetch_max_bytes=4 * CHUNK,
                max_partition_fetch_bytes=2 * CHUNK,
            )
        return self._reader
