"""What the demo injects, and what predwatch found, side by side.

The demo's traffic (``demo_traffic``) changes at a known moment inside a known segment
(``SEGMENT``: applicants tagged ``apac`` with loans above 400,000, a population that also
grows at the change). ``Timeline`` follows the published reports during a run and keeps
when each finding first appeared; ``findings`` reads the final report and the alert log;
``story_lines`` sets the findings against what was injected.

Everything is read from ``Monitor.report`` (figures, segments) and ``Monitor.alert_log``
(transitions), as any reader of predwatch would.

>>> injected = Injected(start=1000.0, change_at=20.0)
>>> timeline = Timeline(injected)
>>> from predwatch.report import Report, Value
>>> detection = Value("predwatch_concept_drift_last_timestamp_seconds", ("credit", "v1"), 1023.5)
>>> timeline.see(Report(at=1025.0, values={detection.metric: (detection,)}))
>>> timeline.concept_drift
[1023.5]
>>> story_lines(injected, findings(Report(), [], timeline))[1]
'  concept drift (ADWIN on the errors): first detected at 23.5 s, 3.5 s after the change'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from predwatch.alerts.engine import Transition
from predwatch.demo.simulator import MODEL, Segment, Traffic
from predwatch.report import Report, iso
from predwatch.report import Segment as Found

__all__ = [
    "SEGMENT",
    "Findings",
    "Injected",
    "Timeline",
    "demo_traffic",
    "findings",
    "names_segment",
    "story_lines",
]

SEGMENT = Segment(region="apac", min_loan=400_000.0, share=0.3)
SEGMENT_FEATURES = ("tags.region", "loan")


def demo_traffic(rate: float, change_at: float, label_delay: float = 2.0, seed: int = 7) -> Traffic:
    """The demo's traffic: model ``credit``, its concept changing at ``change_at`` in
    ``SEGMENT``."""
    return Traffic(
        seed=seed, rate=rate, change_at=change_at, label_delay=label_delay, segment=SEGMENT
    )


@dataclass(frozen=True)
class Injected:
    """What the traffic holds: it starts at epoch ``start``, changes ``change_at`` s later."""

    start: float
    change_at: float
    segment: Segment = SEGMENT
    lead: float = 6.0  # seconds before the change whose pairs may be labelled after it

    def early(self) -> float:
        """Event time from which a detection may be due to the change: ``lead`` before it
        (labels follow their prediction after 2 s on average, 95% within 6 s)."""
        return self.start + self.change_at - self.lead

    def offset(self, at: float) -> float:
        """Seconds after the start of the traffic of event time ``at``."""
        return at - self.start


@dataclass
class Timeline:
    """When findings first showed in the reports of a run (event times)."""

    injected: Injected
    concept_drift: list[float] = field(default_factory=list)
    drifting: dict[str, float] = field(default_factory=dict)  # feature: first seen drifting

    def see(self, report: Report) -> None:
        """Note what ``report`` shows that no earlier report showed."""
        for row in report.select("predwatch_concept_drift_last_timestamp_seconds", model=MODEL):
            if row.value not in self.concept_drift:
                self.concept_drift.append(row.value)
        for feature in drifting_features(report):
            self.drifting.setdefault(feature, report.at)


def drifting_features(report: Report) -> list[str]:
    """The columns of the demo model drifting in any window of ``report``."""
    rows = report.select("feature_drift_detected", model=MODEL)
    return sorted({row.label("feature") for row in rows if row.value >= 1})


@dataclass(frozen=True)
class Findings:
    """What predwatch reported by the end of a run."""

    concept_drift: tuple[float, ...]
    detections: int
    drifting: tuple[tuple[str, float], ...]
    segment: Found | None
    transitions: tuple[Transition, ...]


def findings(report: Report, alert_log: Iterable[Transition], timeline: Timeline) -> Findings:
    """The findings of the final ``report`` and the ``alert_log``, with ``timeline``'s times."""
    timeline.see(report)
    detections = sum(int(r.value) for r in report.select("predwatch_concept_drift", model=MODEL))
    segments = sorted((s for s in report.segments if s.model == MODEL), key=lambda s: s.rank)
    shown = [t for t in alert_log if t.to_state in ("firing", "resolved")]
    return Findings(
        concept_drift=tuple(sorted(timeline.concept_drift)),
        detections=detections,
        drifting=tuple(sorted(timeline.drifting.items(), key=lambda item: item[1])),
        segment=segments[0] if segments else None,
        transitions=tuple(shown),
    )


def names_segment(found: Found | None, segment: Segment = SEGMENT) -> bool:
    """Whether a found segment's rule names a feature of the injected ``segment``."""
    return found is not None and any(name in found.rule for name in SEGMENT_FEATURES)


def story_lines(injected: Injected, found: Findings) -> list[str]:
    """What was injected and what predwatch found, one line each, times in seconds of the
    traffic (the change at ``injected.change_at``)."""
    change = injected.start + injected.change_at
    lines = [
        f"injected: at {injected.change_at:g} s, the concept changes in segment "
        f"'{injected.segment.rule}', which grows to about {injected.segment.share:.0%} "
        "of the traffic",
    ]
    # A detection carries the prediction time of the pair that tipped the detector; a pair
    # predicted shortly before the change may be labelled, and so joined, after it.
    early = injected.early()
    after = [at for at in found.concept_drift if at >= early]
    before = len(found.concept_drift) - len(after)
    if after:
        delay = after[0] - change
        when = (
            f"{delay:.1f} s after the change"
            if delay >= 0
            else f"on a pair predicted {-delay:.1f} s before the change and labelled after it"
        )
        lines.append(
            f"  concept drift (ADWIN on the errors): first detected at "
            f"{injected.offset(after[0]):.1f} s, {when}"
            + (f"; {before} false alarm(s) before it" if before else "")
        )
    else:
        lines.append("  concept drift (ADWIN on the errors): not detected after the change")
    if found.drifting:
        shown = ", ".join(f"{name} at {injected.offset(at):.0f} s" for name, at in found.drifting)
        lines.append(f"  feature drift: {shown}")
    else:
        lines.append("  feature drift: none detected")
    segment = found.segment
    if segment is None:
        lines.append("  top failing segment: none found yet (too few pairs)")
    else:
        verdict = (
            "names the injected segment's features"
            if names_segment(segment)
            else ("does not name the injected segment's features")
        )
        lines.append(
            f"  top failing segment: '{segment.rule}', error {segment.value:.0%} vs "
            f"{segment.rest:.0%} elsewhere, on {segment.support} held-out pairs ({verdict})"
        )
    if not found.transitions:
        lines.append("  alerts: none fired")
    for transition in found.transitions:
        value = "" if transition.value is None else f" (value {transition.value:.3g})"
        lines.append(
            f"  alert {transition.rule} {transition.to_state} at "
            f"{injected.offset(transition.at):.0f} s ({iso(transition.at)}){value}"
        )
    return lines
