"""What the source reports about itself: readiness, consumer lag, and when it last polled.

The Kafka source writes to a ``Health`` from its own thread; the HTTP server
(``/readyz``) and the collector (``predwatch_consumer_lag`` ...) read it from
theirs. Every method takes an internal lock, so each read is a consistent
copy and no caller needs a lock of its own.

>>> health = Health(clock=lambda: 50.0)
>>> health.ready, health.reason
(False, 'starting: the source has not connected yet')
>>> health.set_ready(True, "consuming predictions and labels")
>>> health.set_lag("predictions", 0, 12)
>>> health.polled()
>>> health.ready, health.lags(), health.last_poll
(True, {('predictions', 0): 12}, 50.0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

STARTING = "starting: the source has not connected yet"


class Health:
    """Thread-safe readiness, lag per (topic, partition) in records, and last poll time.

    A new ``Health`` is not ready (a service must not take traffic before its
    source has joined the group). ``clock`` gives epoch seconds for
    ``polled()`` without an explicit time.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = False
        self._reason = STARTING
        self._lags: dict[tuple[str, int], int] = {}
        self._last_poll: float | None = None

    def set_ready(self, ready: bool, reason: str) -> None:
        """Set readiness; ``reason`` is one line, shown by ``/readyz`` (e.g. why not ready)."""
        line = " ".join(reason.split())  # one line, whatever the caller passed
        with self._lock:
            self._ready = ready
            self._reason = line

    def set_lag(self, topic: str, partition: int, records: int) -> None:
        """Records between the committed (or current) position and the end of a partition."""
        if records < 0:
            records = 0  # a stale end offset can trail the position; lag is never negative
        with self._lock:
            self._lags[topic, partition] = records

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the lag of partitions no longer assigned (after a rebalance revokes them)."""
        with self._lock:
            for key in partitions:
                self._lags.pop(key, None)

    def polled(self, at: float | None = None) -> None:
        """Record that the source polled, at ``at`` epoch seconds or now by the clock."""
        when = self._clock() if at is None else at
        with self._lock:
            self._last_poll = when

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    @property
    def reason(self) -> str:
        """The one-line reason given with the last ``set_ready``."""
        with self._lock:
            return self._reason

    def readiness(self) -> tuple[bool, str]:
        """Readiness and its reason, read together."""
        with self._lock:
            return self._ready, self._reason

    def lags(self) -> dict[tuple[str, int], int]:
        """A copy of the lag per (topic, partition) of the partitions assigned now."""
        with self._lock:
            return dict(self._lags)

    @property
    def last_poll(self) -> float | None:
        """Epoch seconds of the last poll, or None before the first."""
        with self._lock:
            return self._last_poll
