"""Whether the Kafka cluster can be reached, judged from the consumer's open connections.

When every broker goes away, kafka-python's ``poll`` raises nothing: it
returns no records, exactly as on a quiet topic, and keeps reconnecting in the
background. What does change at once is the client's own count of open broker
connections (the ``connection-count`` metric of the public ``metrics()``, as in
the Java client): it drops to 0 and stays there until a broker answers again.
``Reachability`` turns those readings into changes of state, with a grace
period so that one reconnect in passing is no outage.

>>> r = Reachability(after=3.0)
>>> [r.observe(n, t) for n, t in [(2, 0.0), (0, 1.0), (0, 3.5), (0, 4.1), (0, 9.0), (1, 9.5)]]
[None, None, None, False, None, True]
"""

from __future__ import annotations

from typing import Any

UNREACHABLE_AFTER = 3.0  # seconds without any open broker connection before it is an outage


def open_connections(consumer: Any) -> int | None:
    """The consumer's open broker connections, or None when its metrics are turned off.

    Reads kafka-python's public ``metrics(raw=True)``: the ``connection-count``
    of the client's metric group (``consumer-metrics`` by default).
    """
    metrics = consumer.metrics(raw=True)
    if not metrics:
        return None
    for name, metric in metrics.items():
        if name.name == "connection-count" and name.group.endswith("-metrics"):
            return int(metric.value())
    return None


class Reachability:
    """Reachable until no connection was open for ``after`` seconds; reachable again at
    the first open connection. Times are any monotonic seconds; unknown readings (None)
    change nothing."""

    def __init__(self, after: float = UNREACHABLE_AFTER) -> None:
        self.after = after
        self._reachable = True
        self._none_since: float | None = None

    @property
    def reachable(self) -> bool:
        """The state as of the last reading."""
        return self._reachable

    def observe(self, connections: int | None, now: float) -> bool | None:
        """Take one reading; the new state when it changed (False: unreachable), else None."""
        if connections is None:
            return None
        if connections > 0:
            self._none_since = None
            if not self._reachable:
                self._reachable = True
                return True
            return None
        if self._none_since is None:
            self._none_since = now
        if self._reachable and now - self._none_since >= self.after:
            self._reachable = False
            return False
        return None
