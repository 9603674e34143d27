"""Delivery that never blocks the caller: a bounded queue and a worker thread per sink.

Each worker keeps the latest undelivered state of every alert (by fingerprint) and
delivers it, retrying failures with exponential backoff and jitter for as long as the
sink fails with a retryable error. When a sink comes back after an outage it therefore
receives the current state of every alert that changed meanwhile: nothing still firing
is lost, and a resolve still pending is delivered too. An older state replaced before it
could be delivered (a firing whose resolve came during the outage) counts as
``superseded``.

Results counted per sink: ``delivered``, ``retried`` (a notification whose attempt
failed and will be tried again), ``dropped`` (queue full, refused by the sink, or still
pending at close) and ``superseded``. Every notification handed to a sink ends in
exactly one of delivered, dropped or superseded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from predwatch.alerts.sinks.notification import Notification

log = logging.getLogger(__name__)

RESULTS = ("delivered", "retried", "dropped", "superseded")
Clock = Callable[[], float]


class DeliveryError(Exception):
    """A sink could not deliver; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink:
    """Where notifications go. Subclasses implement ``send``; the worker calls it only.

    ``resend_every`` (seconds) asks the worker to deliver every firing alert again at
    that period until it resolves (Alertmanager needs this); ``None`` sends each state once.
    """

    resend_every: float | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def groups(self, batch: Sequence[Notification]) -> list[list[Notification]]:
        """How ``batch`` splits into separate deliveries (one by default)."""
        return [list(batch)]

    def send(self, batch: Sequence[Notification]) -> None:
        """Deliver ``batch`` or raise ``DeliveryError``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called once by the worker as it stops."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits ``initial * 2**(n-1)``, capped at
    ``maximum``, times a random factor in [0.5, 1] so that sinks do not retry in step.

    >>> b = Backoff(1.0, 8.0, random.Random(0))
    >>> all(0.5 * min(8, 2 ** (n - 1)) <= b.delay(n) <= min(8, 2 ** (n - 1)) for n in range(1, 9))
    True
    """

    initial: float = 1.0
    maximum: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th consecutive failure (1-based)."""
        base = min(self.maximum, self.initial * 2.0 ** min(attempt - 1, 62))
        return base * self.rng.uniform(0.5, 1.0)


_WAKE = object()  # put on a queue to wake its worker (close)


class SinkWorker:
    """One sink's queue and delivery thread; see the module docstring for the contract."""

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = 1000,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.sink = sink
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._max_pending = queue_size
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._pending: dict[str, Notification] = {}  # latest undelivered state per alert
        self._resends: set[str] = set()  # pending entries that are periodic re-sends
        self._firing: dict[str, Notification] = {}  # delivered and still firing (to re-send)
        self._failures = 0
        self._retry_at = 0.0
        self._next_resend = clock() + (sink.resend_every or 0.0)
        self._counts: Counter[str] = Counter({result: 0 for result in RESULTS})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"alert-sink-{sink.name}", daemon=True
        )
        self._thread.start()

    def put(self, notification: Notification) -> None:
        """Queue ``notification`` without waiting; a full queue (or a closed worker) drops it."""
        if self._stop.is_set():
            self._count("dropped")
            return
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            self._count("dropped")
            log.warning(
                "alert sink %s: queue full, dropped %s (%s)",
                self.sink.name,
                notification.alertname,
                notification.status,
            )

    def counts(self) -> dict[str, int]:
        """Notifications by result so far."""
        with self._lock:
            return dict(self._counts)

    def stop(self) -> None:
        """Ask the worker to stop (without waiting): one last attempt, then what is left drops."""
        self._stop.set()
        # A full queue needs no wake-up: the worker is busy with it and sees the flag next.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    def close(self, timeout: float) -> None:
        """``stop``, then wait up to ``timeout`` seconds for the worker to finish."""
        self.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("alert sink %s did not stop within %.1fs", self.sink.name, timeout)

    # -- the worker thread ------------------------------------------------------------

    def _count(self, result: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[result] += n

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._take(self._wait_time())
                self._schedule_resends()
                if self._pending and self._clock() >= self._retry_at:
                    self._attempt()
            self._take(None, block=False)
            if self._pending:
                self._attempt()
            self._drop_pending("still pending at close")
        finally:
            self.sink.close()

    def _wait_time(self) -> float | None:
        now = self._clock()
        deadlines = []
        if self._pending:
            deadlines.append(self._retry_at)
        if self.sink.resend_every and self._firing:
            deadlines.append(self._next_resend)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _take(self, timeout: float | None, block: bool = True) -> None:
        """Merge what is queued into the pending states, waiting up to ``timeout`` for one."""
        try:
            item = self._queue.get(block=block, timeout=timeout)
            while True:
                if isinstance(item, Notification):
                    self._merge(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return

    def _merge(self, notification: Notification) -> None:
        fingerprint = notification.fingerprint
        if fingerprint in self._pending and fingerprint not in self._resends:
            self._count("superseded")
        self._resends.discard(fingerprint)
        self._pending.pop(fingerprint, None)  # re-insert: the dict's order is arrival order
        self._pending[fingerprint] = notification
        if len(self._pending) > self._max_pending:
            oldest = next(iter(self._pending))
            if oldest not in self._resends:
                self._count("dropped")
            self._resends.discard(oldest)
            del self._pending[oldest]

    def _schedule_resends(self) -> None:
        every = self.sink.resend_every
        if not every or self._clock() < self._next_resend:
            return
        self._next_resend = self._clock() + every
        for fingerprint, notification in self._firing.items():
            if fingerprint not in self._pending:
                self._pending[fingerprint] = notification
                self._resends.add(fingerprint)

    def _attempt(self) -> None:
        batch = list(self._pending.values())
        for group in self.sink.groups(batch):
            try:
                self.sink.send(group)
            except DeliveryError as error:
                self._failed(group, error)
                return
            except Exception as error:  # a sink's bug must not kill its worker: retry, say it
                log.exception("alert sink %s failed unexpectedly", self.sink.name)
                self._failed(group, DeliveryError(f"unexpected {error!r}"))
                return
            self._settle(group, "delivered")
        self._failures = 0
        self._retry_at = 0.0

    def _settle(self, group: Sequence[Notification], result: str) -> None:
        counted = 0
        for notification in group:
            fingerprint = notification.fingerprint
            if fingerprint in self._resends:
                self._resends.discard(fingerprint)
            else:
                counted += 1
            del self._pending[fingerprint]
            if result == "delivered" and notification.firing:
                if not self._firing and self.sink.resend_every:
                    self._next_resend = self._clock() + self.sink.resend_every
                self._firing[fingerprint] = notification
            else:
                self._firing.pop(fingerprint, None)
        self._count(result, counted)

    def _failed(self, group: Sequence[Notification], error: DeliveryError) -> None:
        if not error.retryable:
            log.error(
                "alert sink %s refused %d notification(s), dropped: %s",
                self.sink.name,
                len(group),
                error,
            )
            self._settle(group, "dropped")
            return
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._retry_at = self._clock() + delay
        self._count("retried", sum(1 for n in self._pending if n not in self._resends))
        log.warning(
            "alert sink %s failed (attempt %d), retrying %d notification(s) in %.1fs: %s",
            self.sink.name,
            self._failures,
            len(self._pending),
            delay,
            error,
        )

    def _drop_pending(self, why: str) -> None:
        dropped = [fp for fp in self._pending if fp not in self._resends]
        if dropped:
            log.warning(
                "alert sink %s: %d notification(s) %s, dropped", self.sink.name, len(dropped), why
            )
        self._count("dropped", len(dropped))
        self._pending.clear()
        self._resends.clear()
