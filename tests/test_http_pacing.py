"""The request queue: health checks first, the rest at most ``rate`` per second."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from predwatch.exporter.pacing import RequestQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Case:
    rate: float
    burst: int
    seconds: float
    why: str


CASES = [
    Case(50.0, 10, 1.0, "the default pace over one second"),
    Case(2.0, 1, 10.0, "a slow pace with no burst"),
    Case(1000.0, 5, 0.25, "a fast pace"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_paced_takes_never_exceed_burst_plus_rate_times_time(case: Case) -> None:
    clock = Clock()
    queue: RequestQueue[int] = RequestQueue(100_000, case.rate, case.burst, clock)
    for i in range(int(case.rate * case.seconds) + case.burst + 50):
        assert queue.put(i, urgent=False)
    taken = 0
    step = 1 / case.rate / 4
    while clock.now <= case.seconds:
        while queue.delay() == 0:
            assert queue.get() == taken  # first in, first out
            taken += 1
        clock.now += step
    # Exactly the burst plus what the rate refilled in the span (within one token).
    assert (
        case.burst + case.rate * case.seconds - 1
        <= taken
        <= case.burst + case.rate * (case.seconds + step)
    )


def test_urgent_items_need_no_token_and_go_first() -> None:
    clock = Clock()
    queue: RequestQueue[str] = RequestQueue(10, rate=1.0, burst=1, clock=clock)
    queue.put("scrape-1", urgent=False)
    queue.put("scrape-2", urgent=False)
    assert queue.get() == "scrape-1"  # the one token
    assert queue.delay() > 0
    for i in range(5):
        queue.put(f"health-{i}", urgent=True)
    assert [queue.get() for _ in range(5)] == [f"health-{i}" for i in range(5)]
    assert queue.delay() > 0  # urgent takes spent no token


def test_each_kind_is_bounded_and_close_wakes_everyone() -> None:
    queue: RequestQueue[int] = RequestQueue(2, rate=1.0)
    assert [queue.put(i, urgent=False) for i in range(3)] == [True, True, False]
    assert queue.put(9, urgent=True)  # the other kind has room of its own
    assert queue.drain() == [9, 0, 1]
    queue.close()
    assert queue.get() is None
