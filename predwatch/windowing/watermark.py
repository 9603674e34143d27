"""Event-time watermarks of one input, advanced by processing time when the input is idle.

>>> mark = Watermark(grace=60, idle_timeout=30)
>>> mark.observe(1000.0, now=5.0)
>>> mark.value(now=10.0)          # max event time seen - grace
940.0
>>> mark.value(now=55.0)          # idle for 50 s, 20 s past the idle timeout
960.0
"""

from __future__ import annotations

import math


class Watermark:
    """The event time up to which an input is taken to be complete.

    It is the largest event time seen minus ``grace``. Once no event has arrived
    for ``idle_timeout`` of processing time, it moves forward with the clock, so
    that waiting state still expires on a quiet input.
    """

    __slots__ = ("_grace", "_idle_timeout", "_last_seen", "_max_event_time")

    def __init__(self, grace: float, idle_timeout: float, created: float = -math.inf) -> None:
        self._grace = grace
        self._idle_timeout = idle_timeout
        self._max_event_time = -math.inf
        self._last_seen = created

    def observe(self, event_time: float, now: float) -> None:
        """Record that an event of ``event_time`` arrived at processing time ``now``."""
        if event_time > self._max_event_time:
            self._max_event_time = event_time
        if now > self._last_seen:
            self._last_seen = now

    @property
    def max_event_time(self) -> float | None:
        """The largest event time seen, or None before the first event."""
        return None if self._max_event_time == -math.inf else self._max_event_time

    def value(self, now: float) -> float | None:
        """The watermark at processing time ``now``.

        Before its first event an input holds everything back (``-inf``) until it
        has been idle for ``idle_timeout`` since ``created``; then it is None: it
        no longer takes part, as an input that may never see an event must not
        stop the other from expiring.
        """
        idle_for = now - self._last_seen - self._idle_timeout
        if self._max_event_time == -math.inf:
            return -math.inf if idle_for < 0 else None
        return self._max_event_time - self._grace + max(0.0, idle_for)


def combined(marks: list[Watermark], now: float) -> float | None:
    """The smallest watermark of the inputs that take part, as a two-input join needs.

    >>> a, b = Watermark(0, 60), Watermark(0, 60)
    >>> a.observe(100.0, now=0.0); b.observe(40.0, now=0.0)
    >>> combined([a, b], now=1.0)
    40.0
    """
    values = [v for v in (mark.value(now) for mark in marks) if v is not None]
    return min(values) if values else None
