"""How long labels take to arrive: a histogram of label time minus prediction time.

>>> delays = DelayHistogram()
>>> delays.observe(np.array([30.0, 4000.0, -5.0]))
>>> delays.count, delays.sum, delays.counts.tolist()[:4]
(3, 4030.0, [1, 0, 1, 0])
"""

from __future__ import annotations

import numpy as np

# Upper bounds in seconds, from a second to a week: labels come from minutes to days late.
DELAY_BOUNDS = (
    1.0,
    10.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    43200.0,
    86400.0,
    172800.0,
    604800.0,
)


class DelayHistogram:
    """Counts per bucket (not cumulative; the last bucket is +Inf), with count and sum.

    A label stamped before its prediction (clock skew) counts as a delay of 0.
    """

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = np.zeros(len(DELAY_BOUNDS) + 1, dtype=np.int64)
        self.count = 0
        self.sum = 0.0

    def observe(self, delays: np.ndarray) -> None:
        delays = np.maximum(delays, 0.0)
        self.counts += np.bincount(
            np.searchsorted(DELAY_BOUNDS, delays, side="left"), minlength=self.counts.size
        )
        self.count += int(delays.size)
        self.sum += float(delays.sum())
