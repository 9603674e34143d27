"""The notifier: one ``SinkWorker`` per sink, fed by a ``notify`` that never waits."""

from __future__ import annotations

import time
from collections.abc import Iterable

from predwatch.alerts.sinks.delivery import Backoff, Clock, Sink, SinkWorker
from predwatch.alerts.sinks.notification import Notification


class Notifier:
    """Fans notifications out to independent sinks; ``notify`` never waits on a sink.

    >>> from predwatch.alerts.sinks.log import LogSink
    >>> notifier = Notifier([LogSink()])
    >>> notifier.notify([Notification("f1", "firing", {"alertname": "A"})])
    >>> notifier.close(5.0)
    >>> notifier.counts()[("log", "delivered")]
    1
    """

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        queue_size: int = 1000,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._workers = [
            SinkWorker(sink, queue_size=queue_size, backoff=backoff, clock=clock) for sink in sinks
        ]

    @property
    def sink_names(self) -> list[str]:
        """The sinks' names, in configuration order."""
        return [worker.sink.name for worker in self._workers]

    def notify(self, notifications: Iterable[Notification]) -> None:
        """Queue every notification on every sink and return at once."""
        batch = list(notifications)
        for worker in self._workers:
            for notification in batch:
                worker.put(notification)

    def counts(self) -> dict[tuple[str, str], int]:
        """Notifications by ``(sink, result)``, every result present (0 included)."""
        return {
            (worker.sink.name, result): n
            for worker in self._workers
            for result, n in worker.counts().items()
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker, giving all of them together about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.close(max(0.0, deadline - time.monotonic()))
