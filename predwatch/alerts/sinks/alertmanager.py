"""Alertmanager sink: alerts POSTed to Alertmanager's v2 API, ``<url>/api/v2/alerts``.

A firing alert is sent without ``endsAt`` and re-sent every ``resend_every`` seconds
(the worker does this) so that Alertmanager, which resolves an alert it has not heard of
for ``resolve_timeout``, keeps it firing; a resolved alert is sent with its ``endsAt``.

>>> alert = postable_alert(Notification("f", "resolved", {"alertname": "A"}, {"summary": "s"},
...                                     0.0, 60.0, "http://pw/status?model=m", 0.81))
>>> alert["endsAt"], alert["annotations"]["value"], alert["generatorURL"]
('1970-01-01T00:01:00.000Z', '0.81', 'http://pw/status?model=m')
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from predwatch.alerts.sinks.delivery import Sink
from predwatch.alerts.sinks.notification import (
    Notification,
    annotations_with_value,
    rfc3339,
    safe_labels,
)
from predwatch.alerts.sinks.settings import AlertmanagerSinkSettings
from predwatch.alerts.sinks.transport import encode, post_json


def postable_alert(notification: Notification) -> dict[str, object]:
    """``notification`` as one of Alertmanager's ``postableAlert`` objects.

    The current value is added as the ``value`` annotation unless one is given.
    """
    alert: dict[str, object] = {
        "labels": safe_labels(notification.labels),
        "annotations": annotations_with_value(notification),
        "startsAt": rfc3339(notification.starts_at),
    }
    if not notification.firing:
        ends_at = notification.ends_at
        alert["endsAt"] = rfc3339(ends_at if ends_at is not None else time.time())
    if notification.generator_url:
        alert["generatorURL"] = notification.generator_url
    return alert


class AlertmanagerSink(Sink):
    """Posts every batch as one JSON list to one Alertmanager."""

    def __init__(self, settings: AlertmanagerSinkSettings, name: str = "alertmanager") -> None:
        super().__init__(settings.name or name)
        self.url = settings.url.rstrip("/") + "/api/v2/alerts"
        self.resend_every = settings.resend_every
        self.timeout = settings.timeout

    def send(self, batch: Sequence[Notification]) -> None:
        """POST ``batch``; raises ``DeliveryError`` (see ``transport.post_json``)."""
        post_json(self.url, encode([postable_alert(n) for n in batch]), {}, self.timeout)
