"""The Kafka source: one consumer group over the predictions and labels topics.

Both topics must have the same partition count and be keyed by prediction id
(co-partitioned); the range assignor then gives partition N of both topics to
the same member, so each partition's join is local. Each poll is split by
partition number, decoded with the wall clock as the processing clock (the
``limits`` window of event times) and handed to the monitor; a message the
monitor fails on is isolated (``predwatch.consumer.isolation``), counted and
dead-lettered. A partition's offsets are committed only after its messages
have been processed (at least once).

A broker that cannot be reached is retried with backoff, said once per change
of state, and shown on ``/readyz``; the loop never spins and never crashes on
it. Only a configuration that cannot work (unequal partition counts) stops
the service, with a ``SourceError`` of one sentence.

Checkpoints (``state.topic``, ``state.dir``) are written from the poll loop
every ``state.checkpoint_every`` and on shutdown, and offsets are committed only
once the state reflecting them is durable. While a checkpoint cannot be
written, the assigned partitions are paused (polling goes on, so the member
stays in its group) and resumed once one is.

- With ``state.topic``, each partition's state is checkpointed to Kafka and
  moves with the partition (``predwatch.consumer.handoff``): assigned
  partitions are paused until the loop has restored them and sought them to
  the offsets their state reflects.
- With ``state.dir`` alone, this instance's whole state is checkpointed there
  (``predwatch.state.checkpoints``) and restored at the first assignment; at
  every assignment each partition is sought to the offset the state reflects.
- With neither, offsets are committed after each batch; a partition that moves
  starts empty at its new owner.

The rebalance callbacks run on the client's network thread, so they never
block on the group coordinator.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from predwatch.config import Settings
from predwatch.consumer.client import consumer_settings
from predwatch.consumer.dead_letters import DeadLetters
from predwatch.consumer.handoff import Handoff
from predwatch.consumer.isolation import process_raw
from predwatch.consumer.reachability import Reachability, open_connections
from predwatch.exporter.health import Health
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.redact import redact
from predwatch.state.checkpoints import CheckpointStore
from predwatch.state.codec import StateError

if TYPE_CHECKING:
    from predwatch.state.disk_checkpoints import DiskCheckpointStore
from predwatch.state.partition_topic import PartitionCheckpoints

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
ADVANCE_EVERY = 1.0  # seconds between expiry checks when no batch arrives
LAG_EVERY = 5.0
REACH_EVERY = 1.0  # seconds between checks that a broker connection is open
MAX_BACKOFF = 30.0


class SourceError(RuntimeError):
    """The source cannot work with this configuration; the message says what to change."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands partitions over when the group rebalances. It runs on the client's network
    thread, so nothing here may block on the group coordinator (commit, committed)."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        self._source.revoked(revoked)
        self._source.health.forget((tp.topic, tp.partition) for tp in revoked)
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        if assigned:
            log.info("partitions assigned: %s", _names(assigned))
        self._source.assigned(assigned)


def _store(settings: Settings) -> CheckpointStore | DiskCheckpointStore | None:
    """The checkpoint store of ``state.dir`` (with the pending predictions on disk for
    ``state.store: disk``), None without it; ``SourceError`` if unusable."""
    if not settings.state.dir:
        return None
    try:
        if settings.state.store == "disk":
            from predwatch.state.disk_checkpoints import DiskCheckpointStore

            return DiskCheckpointStore(settings.state.dir, settings)
        return CheckpointStore(settings.state.dir, settings)
    except OSError as error:
        raise SourceError(
            f"cannot use state.dir '{settings.state.dir}' ({error.strerror or error}): give a "
            "directory this user can create and write, or leave state.dir unset to run without "
            "checkpoints"
        ) from None


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions))


class KafkaSource:
    """Feeds a monitor from Kafka until ``stop`` is set.

    ``lock`` is held while the monitor changes, so a scrape reads it between
    batches; ``clock`` gives processing time (epoch seconds).
    """

    def __init__(
        self,
        settings: Settings,
        monitor: Monitor,
        lock: threading.Lock,
        health: Health,
        clock: Callable[[], float] = time.time,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
        after_batch: Callable[[float], object] | None = None,
    ) -> None:
        self._kafka = settings.kafka
        self._monitor = monitor
        self._lock = lock
        self.health = health
        self._clock = clock
        self._consumer_factory = consumer_factory
        self._after_batch = after_batch  # called (outside the lock) after each batch
        self._consumer: KafkaConsumer | None = None
        self._processed: dict[TopicPartition, OffsetAndMetadata] = {}
        self._dead_letters = (
            DeadLetters(settings.kafka) if settings.kafka.dead_letter_topic else None
        )
        self._state = ""
        self._store = _store(settings)
        disk = getattr(self._store, "stores", None)  # state.store: disk
        if disk is not None:
            monitor.keep_pending_in(disk)
        self._partition_checkpoints = (
            PartitionCheckpoints(settings) if settings.state.topic else None
        )
        self._handoff = (
            Handoff(self._partition_checkpoints, monitor, lock, self._topics())
            if self._partition_checkpoints is not None
            else None
        )
        self._checkpointing = self._store is not None or self._handoff is not None
        self._paused = False  # consumption paused while checkpoints cannot be written
        self._defect_said = False  # a state that cannot be checkpointed was logged
        self._waiting: set[TopicPartition] = set()  # assigned, paused until restored
        self._checkpoint_every = settings.state.checkpoint_every
        self._positions: dict[TopicPartition, int] = {}  # next offsets the monitor reflects
        self._restored = False  # the monitor was restored (or found no checkpoint) once
        self._dirty = False  # processed since the latest checkpoint

    def _say(self, state: str, ready: bool, level: int = logging.WARNING) -> None:
        """Log a state once when it changes, and show it on /readyz."""
        self.health.set_ready(ready, state)
        if state != self._state:
            log.log(level, "%s", state)
            self._state = state

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; then finish the batch in hand, commit and close."""
        consumer = self._connect(stop)
        if consumer is None:
            return
        self._consumer = consumer
        try:
            self._consume(consumer, stop)
        finally:
            self.save()
            consumer.close(autocommit=False)
            if self._partition_checkpoints is not None:
                self._partition_checkpoints.close()
            if self._store is not None:
                self._store.close()
            if self._dead_letters is not None:
                self._dead_letters.close()
            self.health.set_ready(False, "stopped")
            log.info("consumer closed")

    def _connect(self, stop: threading.Event) -> KafkaConsumer | None:
        """A consumer subscribed to both topics, retrying with backoff until it is reachable."""
        kafka = self._kafka
        delay = 1.0
        while not stop.is_set():
            try:
                consumer = self._consumer_factory(**consumer_settings(kafka))
            except KafkaError as error:
                self._say(
                    f"cannot reach Kafka at {redact(kafka.bootstrap_servers)} "
                    f"({type(error).__name__}); retrying with backoff; check "
                    "kafka.bootstrap_servers and the network",
                    ready=False,
                )
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            counts = {t: consumer.partitions_for_topic(t) for t in self._topics()}
            missing = [t for t, partitions in counts.items() if not partitions]
            if missing:
                consumer.close(autocommit=False)
                self._say(f"waiting for topic(s) {', '.join(missing)} to exist", ready=False)
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self._check_partitions({t: len(p) for t, p in counts.items() if p})
            if self._partition_checkpoints is not None:
                try:
                    self._partition_checkpoints.ensure_topic(len(counts[self._topics()[0]]))
                except StateError as error:
                    raise SourceError(str(error)) from None
                except KafkaError as error:
                    consumer.close(autocommit=False)
                    topic = self._partition_checkpoints.topic
                    self._say(
                        f"cannot create or describe state.topic '{topic}' "
                        f"({type(error).__name__}); retrying; check that this user may create it",
                        ready=False,
                    )
                    stop.wait(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
            consumer.subscribe(list(self._topics()), listener=_Rebalance(self))
            if self._checkpointing and not self._restored:
                self._say("waiting for partitions to restore their state", False, logging.INFO)
            else:
                self._say(self._consuming(), ready=True, level=logging.INFO)
            return consumer
        return None

    def _consuming(self) -> str:
        servers = redact(self._kafka.bootstrap_servers)
        return f"consuming {' and '.join(self._topics())} from {servers}"

    def _topics(self) -> tuple[str, str]:
        return self._kafka.predictions_topic, self._kafka.labels_topic

    def _check_partitions(self, counts: dict[str, int]) -> None:
        predictions, labels = self._topics()
        if counts[predictions] != counts[labels]:
            raise SourceError(
                f"topic '{predictions}' has {counts[predictions]} partitions but '{labels}' has "
                f"{counts[labels]}: give both the same count (and key both by prediction id) so "
                "that each partition's join is local"
            )

    def _consume(self, consumer: KafkaConsumer, stop: threading.Event) -> None:
        last_advance = last_lag = last_reach = 0.0
        last_checkpoint = time.monotonic()
        reachability = Reachability()
        while not stop.is_set():
            try:
                records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
            except KafkaError as error:
                self._say(f"polling Kafka failed ({error}); retrying", ready=False)
                stop.wait(1.0)
                continue
            now = self._clock()
            self.health.polled(now)
            if self._waiting:
                self._restore_waiting(consumer)
            if records:
                self._process(records, now)
                if not self._checkpointing:
                    self.commit()
                if self._after_batch is not None:
                    self._after_batch(now)
            if now - last_advance >= ADVANCE_EVERY:
                # Partitions without traffic in this poll expire what is due too.
                with self._lock:
                    self._monitor.advance(now)
                last_advance = now
            if self._checkpointing and (
                time.monotonic() - last_checkpoint >= self._checkpoint_every
                or (self._store is not None and self._store.due())
            ):
                self._hold_back(consumer, durable=self.save())
                last_checkpoint = time.monotonic()
            if now - last_lag >= LAG_EVERY:
                self._update_lag(consumer)
                last_lag = now
            if time.monotonic() - last_reach >= REACH_EVERY:  # real time, whatever the clock
                self._check_reachable(consumer, reachability)
                last_reach = time.monotonic()
            if self._state.startswith("polling") and reachability.reachable:
                self._say(self._consuming(), True, logging.INFO)

    def _check_reachable(self, consumer: KafkaConsumer, reachability: Reachability) -> None:
        """Not ready while no broker connection is open (poll says nothing of it); said once."""
        change = reachability.observe(open_connections(consumer), time.monotonic())
        if change is False:
            self._say(
                f"cannot reach Kafka at {redact(self._kafka.bootstrap_servers)}: no broker "
                f"connection for {reachability.after:g}s; the client keeps reconnecting; check "
                "the brokers and the network",
                ready=False,
            )
        elif change is True:
            self._say(self._consuming(), True, logging.INFO)

    def _process(self, records: dict[TopicPartition, list[Any]], now: float) -> None:
        """Process a poll partition by partition, isolating any message that fails; a
        partition's offsets count as processed only once its messages are."""
        predictions_topic = self._kafka.predictions_topic
        batches: dict[int, tuple[list[Raw], list[Raw], list[TopicPartition]]] = {}
        for tp, messages in records.items():
            batch = batches.setdefault(tp.partition, ([], [], []))
            target = batch[0] if tp.topic == predictions_topic else batch[1]
            target.extend(
                Raw(
                    m.value if m.value is not None else b"",
                    m.timestamp / 1000.0 if m.timestamp is not None and m.timestamp >= 0 else None,
                    m.offset,
                )
                for m in messages
            )
            batch[2].append(tp)
        with self._lock:
            for partition in sorted(batches):
                predictions, labels, partitions = batches[partition]
                changes = process_raw(self._monitor, partition, predictions, labels, now)
                if changes.invalid and self._dead_letters is not None:
                    self._dead_letters.send(changes.invalid)
                for tp in partitions:
                    self._positions[tp] = records[tp][-1].offset + 1
                    self._processed[tp] = OffsetAndMetadata(self._positions[tp], "", -1)
            self._dirty = True

    def _hold_back(self, consumer: KafkaConsumer, durable: bool) -> None:
        """Pause consumption while checkpoints fail, resume once one is written.

        Reading on would only grow what is not durable and what a crash re-reads; polling
        goes on (with nothing returned) so this member stays in its group.
        """
        if not durable and not self._paused:
            consumer.pause(*consumer.assignment())
            self._paused = True
            log.warning("consumption paused until a checkpoint can be written")
        elif durable and self._paused:
            consumer.resume(*(consumer.paused() - self._waiting))
            self._paused = False
            log.info("a checkpoint was written: consumption resumed")

    def _level(self) -> int:
        """A failing checkpoint is an error once; while paused on it, retries are debug."""
        return logging.DEBUG if self._paused else logging.ERROR

    def save(self) -> bool:
        """Checkpoint (with ``state.topic`` or ``state.dir``) and then commit what was processed;
        without either, commit only. Whether consumption may go on: the state is durable, or
        it cannot be made into a checkpoint at all (a defect, said once: pausing would not
        mend it, so consumption goes on and offsets stay uncommitted)."""
        if not self._checkpointing:
            self.commit()
            return True
        if not self._dirty:
            return True
        try:
            return self._save()
        except StateError as error:
            if not self._defect_said:
                log.error(
                    "cannot make a checkpoint of the state (%s); consuming on without one, and "
                    "offsets are not committed: please report this as a defect",
                    error,
                )
                self._defect_said = True
            return True

    def _save(self) -> bool:
        if self._handoff is not None and self._consumer is not None:
            partitions = self._handoff.owned
            if not self._handoff.save(self._consumer, self._positions, partitions, self._level()):
                return False
            if self._store is None:
                self._dirty = False
                return True
        return self._save_local()

    def _save_local(self, blocking: bool = True) -> bool:
        """Write this instance's whole state to ``state.dir``; with ``state.topic`` the offsets
        were committed with the partitions' checkpoints already."""
        assert self._store is not None
        with self._lock:
            state = self._monitor.state()  # StateError: a defect (see ``save``)
            positions = dict(self._positions)
        offsets = {(tp.topic, tp.partition): offset for tp, offset in positions.items()}
        try:
            path = self._store.save(state, offsets)
        except OSError as error:
            log.log(
                self._level(),
                "cannot write a checkpoint to state.dir %s (%s); offsets are not committed "
                "until one is written",
                self._store.directory,
                error,
            )
            return False
        log.debug("checkpoint %s written", path)
        self._dirty = False
        if self._handoff is None:
            # Offsets are committed only now that the state reflecting them is durable.
            self._processed = {tp: OffsetAndMetadata(o, "", -1) for tp, o in positions.items()}
            self.commit(blocking)
        return True

    def revoked(self, revoked: list[TopicPartition]) -> None:
        """Partitions go to the group's next assignment. With ``state.topic`` they are taken
        out of the monitor (their newest checkpoint is in the topic); with ``state.dir`` a
        checkpoint is written; without either, what was processed is committed."""
        if self._handoff is not None:
            self._handoff.revoked(sorted({tp.partition for tp in revoked}), self._positions)
            for tp in revoked:
                self._positions.pop(tp, None)
                self._processed.pop(tp, None)
            self._waiting -= set(revoked)
        elif self._store is not None:
            if self._dirty:
                with contextlib.suppress(StateError):  # a defect: said by the next checkpoint
                    self._save_local(blocking=False)
        else:
            self.commit(blocking=False)

    def assigned(self, assigned: list[TopicPartition]) -> None:
        """With ``state.topic``, pause the assigned partitions until the poll loop has restored
        their state (it may block there); with ``state.dir``, restore and seek now."""
        if self._handoff is not None and self._consumer is not None:
            self._consumer.pause(*assigned)
            self._waiting |= set(assigned)
            if not assigned and not self._restored:
                self._restore_waiting(self._consumer)  # nothing to restore: ready at once
            elif assigned:
                self._say(
                    "restoring the assigned partitions' state from state.topic", False, logging.INFO
                )
            return
        self.resume(assigned)

    def _restore_waiting(self, consumer: KafkaConsumer) -> None:
        """Restore the partitions assigned last, then let them be read."""
        assert self._handoff is not None
        if not self._restored:
            self._restored = True
            if self._store is not None:  # this instance's own view; partitions come from the topic
                with self._lock:
                    self._store.load(self._monitor)
                    for partition in self._monitor.partitions:
                        self._monitor.drop_partition(partition)
        waiting, self._waiting = self._waiting, set()
        how = self._handoff.restore(consumer, sorted({tp.partition for tp in waiting}))
        if how:
            log.info(
                "partition state from state.topic: %s",
                ", ".join(f"{p} {way}" for p, way in sorted(how.items())),
            )
        if not self._paused:
            consumer.resume(*(waiting & consumer.assignment()))
        self._say(self._consuming(), True, logging.INFO)

    def resume(self, assigned: list[TopicPartition]) -> None:
        """At the first assignment, restore the monitor from the newest good checkpoint; at
        every assignment, seek each assigned partition to the offset the state reflects.

        Every assignment, not only the first: a partition that comes later (a member that
        died had it) would otherwise start at the committed offset, which lags the
        checkpoint when a crash came between writing it and committing.
        """
        if self._store is None or self._consumer is None:
            return
        if not self._restored:
            self._restored = True
            with self._lock:
                offsets = self._store.load(self._monitor)
            if offsets is None:
                log.info("no checkpoint in state.dir %s: starting empty", self._store.directory)
            else:
                self._positions = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        sought = [tp for tp in assigned if tp in self._positions]
        for tp in sought:
            self._consumer.seek(tp, self._positions[tp])
        if sought:
            log.info("resuming from the offsets the state reflects: %s", _names(sought))
        self._say(self._consuming(), True, logging.INFO)

    def commit(self, blocking: bool = True) -> None:
        """Commit the offsets of everything the monitor has processed; ``blocking=False`` in a
        rebalance callback, where the client cannot wait for the coordinator."""
        if self._consumer is None or not self._processed:
            return
        offsets, self._processed = self._processed, {}
        if not blocking:
            self._consumer.commit_async(offsets)
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced first: these events will be read again (at least once).
            log.warning("offset commit failed after a rebalance; some events will be re-read")
        except KafkaError as error:
            log.warning("offset commit failed (%s); will retry with the next batch", error)
            self._processed = offsets | self._processed

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        """Records behind the partition's end, from the high watermark the last fetch returned."""
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            if position is not None:
                self.health.set_lag(tp.topic, tp.partition, highwater - position)
