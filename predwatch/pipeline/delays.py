"""The delays stage: how long labels take to arrive, per model, as a histogram.

>>> import numpy as np
>>> from predwatch.pipeline.builder import ReportBuilder
>>> stage = DelayStage()
>>> batch = Batch(clock=0.0)
>>> part = batch.model("fraud")
>>> part.pairs, part.columns = [None, None], {"timestamp": np.array([0.0, 0.0]),
...                                        "label_time": np.array([30.0, 4000.0])}
>>> stage.observe(batch)
>>> builder = ReportBuilder(clock=0.0)
>>> stage.report(builder)
>>> builder.build().delays["fraud"].total
4030.0
"""

from __future__ import annotations

from typing import Any

from predwatch.metrics.delay import DELAY_BOUNDS, DelayHistogram
from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder
from predwatch.report import Delays
from predwatch.state.codec import from_data, to_data


class DelayStage:
    """Label time minus prediction time of every matched pair."""

    name = "delays"

    def __init__(self) -> None:
        self.delays: dict[str, DelayHistogram] = {}

    def observe(self, batch: Batch) -> None:
        for model, part in batch.models.items():
            if not part.pairs:
                continue
            histogram = self.delays.get(model)
            if histogram is None:
                histogram = self.delays[model] = DelayHistogram()
            histogram.observe(part.columns["label_time"] - part.columns["timestamp"])

    def report(self, builder: ReportBuilder) -> None:
        for model, histogram in sorted(self.delays.items()):
            counts = tuple(int(n) for n in histogram.counts.tolist())
            builder.delays[model] = Delays(DELAY_BOUNDS, counts, float(histogram.sum))

    def state(self) -> dict[str, Any]:
        return {"delays": to_data(self.delays)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.delays = from_data(state["delays"])
