"""The diagnostics stage: an error tree per model version, failing segments, comparisons.

Segments are a search over a version's tree and held-out pairs. The report
recomputes them when due (``diagnostics.refresh_pairs`` new held-out pairs or
``refresh_interval`` of event time since the last search), so a scrape never
pays for a search. Alert annotations ask for them afresh at the tick an alert
changes state: the same events give the same annotation, in a replay as in
the service.
"""

from __future__ import annotations

import math
from typing import Any

from predwatch.config import Settings
from predwatch.diagnostics.segments import Segment as FoundSegment
from predwatch.diagnostics.tree import ModelDiagnostics, segments_line
from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder
from predwatch.report import Segment
from predwatch.state.codec import from_data, to_data

SEGMENT_FAMILIES = (
    "predwatch_segment_error_ratio",
    "predwatch_segment_mean_absolute_error",
    "predwatch_segment_lift_ratio",
    "predwatch_segment_pairs",
    "predwatch_segment_info",
)
ANNOTATION_SEGMENTS = 3  # segments in an alert's {{top_segments}}


class DiagnosticsStage:
    """Feeds each model's ``ModelDiagnostics``; reports segments and version comparisons."""

    name = "diagnostics"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.diagnostics
        self.diagnostics = {
            name: ModelDiagnostics(model, settings.diagnostics, name)
            for name, model in settings.models.items()
        }
        # The report's segments per model version: (event time, held-out pairs, segments).
        self._searched: dict[tuple[str, str], tuple[float, int, list[FoundSegment]]] = {}

    def observe(self, batch: Batch) -> None:
        for model, version in sorted(batch.concept_changes):
            self.diagnostics[model].rotate(version)  # the error pattern has moved
        for model, part in batch.models.items():
            if part.pairs:
                self.diagnostics[model].update(part.pairs, batch.clock)

    def top_segments(self, model: str, version: str) -> str:
        """The top segments of a model version as one line, searched now."""
        found = self.diagnostics[model].segments(version)
        return segments_line(found[:ANNOTATION_SEGMENTS])

    def _segments(self, model: str, version: str, clock: float, fresh: bool) -> list[FoundSegment]:
        """The report's segments: searched again only when due (or ``fresh`` asks for it)."""
        diagnostics, s = self.diagnostics[model], self._settings
        held_out = diagnostics.held_out(version)
        at, seen, found = self._searched.get((model, version), (-math.inf, -1, []))
        new = held_out - seen
        if fresh or new >= s.refresh_pairs or (new > 0 and clock - at >= s.refresh_interval):
            found = diagnostics.segments(version)
            self._searched[model, version] = (clock, held_out, found)
        return found

    def report(self, builder: ReportBuilder) -> None:
        if not builder.wants(*SEGMENT_FAMILIES, "predwatch_version_comparison_p_value"):
            return
        alpha = self._settings.comparison_alpha
        for model, diagnostics in self.diagnostics.items():
            for version in diagnostics.versions:
                found = self._segments(model, version, builder.clock, builder.fresh)
                entry = builder.version(model, version, diagnostics.task)
                entry["segments"] = [seg.as_dict() for seg in found]
                for rank, seg in enumerate(found, 1):
                    _add_segment(builder, model, version, rank, seg)
            for comparison in diagnostics.comparisons():
                builder.comparisons.append(
                    {
                        "model": model,
                        **comparison.as_dict(),
                        "significant": comparison.significant(alpha),
                    }
                )
                groups = comparison.groups
                if len(groups) == 2 and comparison.p_value is not None:
                    labels = (model, comparison.metric, *groups)
                    builder.add("predwatch_version_comparison_p_value", labels, comparison.p_value)

    def state(self) -> dict[str, Any]:
        return {"diagnostics": to_data(self.diagnostics)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.diagnostics = from_data(state["diagnostics"])
        self._searched = {}


def _add_segment(
    builder: ReportBuilder, model: str, version: str, rank: int, seg: FoundSegment
) -> None:
    labels = (model, version, str(rank))
    if seg.metric == "error_rate":
        builder.add("predwatch_segment_error_ratio", labels, seg.value)
    else:
        builder.add("predwatch_segment_mean_absolute_error", labels, seg.value)
    builder.add("predwatch_segment_lift_ratio", labels, seg.lift)
    builder.add("predwatch_segment_pairs", labels, seg.support)
    builder.add("predwatch_segment_info", (*labels, seg.id, seg.rule), 1)
    builder.segments.append(
        Segment(
            model,
            version,
            rank,
            seg.id,
            seg.rule,
            seg.metric,
            seg.value,
            seg.rest,
            seg.lift,
            seg.support,
        )
    )
