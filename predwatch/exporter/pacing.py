"""The queue between the HTTP lobby and its workers: health checks first, the rest paced.

Two kinds of request wait here. *Urgent* ones (``/healthz``, ``/readyz``) are
taken first, at once. The others (``/metrics`` and the rest) are taken at most
``rate`` per second on average (a token bucket holding ``burst`` tokens), so that
however many clients scrape as fast as they can, answering them takes a bounded
share of the one interpreter the consumer runs in; a worker waiting for a token
still takes an urgent request the moment one arrives. Each kind holds at most
``size`` requests; ``put`` says False when full.

>>> now = [0.0]
>>> q = RequestQueue(size=4, rate=2.0, burst=1, clock=lambda: now[0])
>>> q.put("scrape-1", urgent=False), q.put("scrape-2", urgent=False), q.put("health", urgent=True)
(True, True, True)
>>> q.get(), q.get()
('health', 'scrape-1')
>>> q.delay()  # the next scrape waits for a token: half a second at 2 per second
0.5
>>> now[0] = 0.5
>>> q.get()
'scrape-2'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class RequestQueue(Generic[T]):
    """A bounded two-class queue with paced non-urgent takes; thread-safe. See the module."""

    def __init__(
        self,
        size: int,
        rate: float,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1 or rate <= 0 or burst < 1:
            raise ValueError("size, rate and burst must be positive")
        self._size = size
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._urgent: deque[T] = deque()
        self._paced: deque[T] = deque()
        self._tokens = float(burst)
        self._filled_at = clock()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, item: T, urgent: bool) -> bool:
        """Queue ``item``; False (not queued) when its kind already holds ``size`` items."""
        with self._changed:
            waiting = self._urgent if urgent else self._paced
            if len(waiting) >= self._size:
                return False
            waiting.append(item)
            self._changed.notify()
            return True

    def get(self) -> T | None:
        """The next item, waiting as long as it takes; None once ``close`` was called."""
        with self._changed:
            while not self._closed:
                if self._urgent:
                    return self._urgent.popleft()
                if self._paced:
                    wait = self._delay_locked()
                    if wait <= 0:
                        self._tokens -= 1
                        return self._paced.popleft()
                    self._changed.wait(wait)
                else:
                    self._changed.wait()
            return None

    def delay(self) -> float:
        """Seconds until the next non-urgent item may be taken (0 when it may be now)."""
        with self._changed:
            return self._delay_locked()

    def _delay_locked(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    def drain(self) -> list[T]:
        """Take every waiting item at once (both kinds, urgent first), e.g. to close them."""
        with self._changed:
            items = [*self._urgent, *self._paced]
            self._urgent.clear()
            self._paced.clear()
            return items

    def close(self) -> None:
        """Wake every ``get``; from now on they return None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
