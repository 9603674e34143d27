"""The protocol every stage of the pipeline follows.

A stage takes the batch view the monitor builds once per batch (``observe``,
on the hot path), adds its figures to a report at a tick (``report``, on a
cadence of event time), and hands its state over for checkpoints
(``state``/``load_state``). Stages never call each other: what one stage tells
the next travels in the batch (``Batch.concept_changes``).
"""

from __future__ import annotations

from typing import Any, Protocol

from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder


class Stage(Protocol):
    """One part of the monitor's work over each batch."""

    name: str

    def observe(self, batch: Batch) -> None:
        """Take one batch: what the join decided, with its columns built."""

    def report(self, builder: ReportBuilder) -> None:
        """Add this stage's figures as of ``builder.clock`` (``builder.wants`` says which are
        needed: between the ticks of its summary, a replay needs only what rules watch)."""

    def state(self) -> dict[str, Any]:
        """Everything this stage holds, for a checkpoint: data only (lists, dicts, scalars;
        objects through ``predwatch.state.codec.to_data``), never pickle."""

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state()`` of a stage with the same settings."""
