"""The record every sink delivers: one alert's state at one transition.

>>> n = Notification("f1", "firing", {"alertname": "AccuracyLow"}, {}, 0.0)
>>> n.firing, rfc3339(n.starts_at)
(True, '1970-01-01T00:00:00.000Z')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from predwatch.safe_text import alert_text, label_value

if TYPE_CHECKING:
    from predwatch.alerts.engine import Transition

Status = Literal["firing", "resolved"]

# Alertmanager's spelling of "no end time" in webhook payloads (Go's zero time.Time).
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Notification:
    """One alert at one transition, as every sink receives it.

    ``fingerprint`` identifies the alert (the same for its firing and its resolve);
    ``labels`` hold at least ``alertname``, ``severity``, ``model``, ``version`` and
    ``window``; times are epoch seconds; ``ends_at`` is set once the alert resolved.
    """

    fingerprint: str
    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None
    generator_url: str | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.status not in ("firing", "resolved"):
            raise ValueError(
                f"notification {self.fingerprint}: status must be 'firing' or 'resolved', "
                f"not {self.status!r}"
            )

    @property
    def firing(self) -> bool:
        """True while the alert fires."""
        return self.status == "firing"

    @property
    def alertname(self) -> str:
        """The ``alertname`` label, or ``""``."""
        return self.labels.get("alertname", "")


def rfc3339(epoch: float) -> str:
    """``epoch`` seconds as an RFC 3339 UTC timestamp (milliseconds), as Alertmanager reads it."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def safe_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` with every value made a safe label value (events can fill them).

    >>> safe_labels({"model": "fraud", "version": "two\\nlines"})["version"][:10]
    'two�lines~'
    """
    return {name: label_value(value) for name, value in labels.items()}


def safe_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """``annotations`` with every value made safe alert text (templates can quote events)."""
    return {name: alert_text(value) for name, value in annotations.items()}


def annotations_with_value(notification: Notification) -> dict[str, str]:
    """The annotations made safe, plus the current value as ``value`` unless one is given.

    >>> annotations_with_value(Notification("f", "firing", {}, {"summary": "s"}, value=0.8123456))
    {'summary': 's', 'value': '0.812346'}
    """
    annotations = safe_annotations(notification.annotations)
    if notification.value is not None:
        annotations.setdefault("value", f"{notification.value:.6g}")
    return annotations


def as_event(notification: Notification) -> dict[str, object]:
    """A JSON-ready dict of ``notification`` (times both as RFC 3339 and epoch seconds).

    >>> as_event(Notification("f1", "resolved", {}, {}, 0.0, 60.0))["endsAt"]
    '1970-01-01T00:01:00.000Z'
    """
    return {
        "fingerprint": notification.fingerprint,
        "status": notification.status,
        "labels": safe_labels(notification.labels),
        "annotations": safe_annotations(notification.annotations),
        "startsAt": rfc3339(notification.starts_at),
        "endsAt": rfc3339(notification.ends_at) if notification.ends_at is not None else None,
        "startsAtSeconds": notification.starts_at,
        "endsAtSeconds": notification.ends_at,
        "generatorURL": notification.generator_url,
        "value": notification.value,
    }


def from_transition(transition: Transition, generator_url: str | None = None) -> Notification:
    """The notification of an engine transition to ``firing`` or ``resolved``."""
    status: Status = "resolved" if transition.to_state == "resolved" else "firing"
    return Notification(
        transition.fingerprint,
        status,
        dict(transition.labels),
        dict(transition.annotations),
        starts_at=transition.starts_at if transition.starts_at is not None else transition.at,
        ends_at=transition.ends_at,
        generator_url=generator_url,
        value=transition.value,
    )
