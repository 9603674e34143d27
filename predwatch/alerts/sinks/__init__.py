"""Alert sinks: Alertmanager, webhooks (Alertmanager or Slack format), a Kafka topic, the log.

``build_notifier(settings, kafka)`` makes a ``Notifier`` with one independent worker per
configured sink; ``notifier.notify(notifications)`` returns at once, and
``notifier.counts()`` says what was delivered, retried, dropped and superseded per sink.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from predwatch.alerts.sinks.alertmanager import AlertmanagerSink, postable_alert
from predwatch.alerts.sinks.delivery import (
    RESULTS,
    Backoff,
    Clock,
    DeliveryError,
    Sink,
)
from predwatch.alerts.sinks.log import LogSink
from predwatch.alerts.sinks.notification import Notification, Status, as_event
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.alerts.sinks.settings import (
    AlertmanagerSinkSettings,
    KafkaSinkSettings,
    SinkSettings,
    WebhookSinkSettings,
)
from predwatch.alerts.sinks.webhook import WebhookSink, signature, slack_payload, webhook_payload

if TYPE_CHECKING:  # the config imports this package's settings: no import back at run time
    from predwatch.config import KafkaSettings

__all__ = [
    "RESULTS",
    "AlertmanagerSink",
    "AlertmanagerSinkSettings",
    "Backoff",
    "DeliveryError",
    "KafkaSinkSettings",
    "LogSink",
    "Notification",
    "Notifier",
    "Sink",
    "SinkSettings",
    "Status",
    "WebhookSink",
    "WebhookSinkSettings",
    "as_event",
    "build_notifier",
    "build_sinks",
    "postable_alert",
    "signature",
    "slack_payload",
    "webhook_payload",
]


def build_sinks(settings: SinkSettings, kafka: KafkaSettings | None = None) -> list[Sink]:
    """One sink per configured entry, named as ``settings.sink_names()`` lists them.

    ``kafka`` (predwatch's cluster settings) is required when ``settings.kafka`` is set.
    """
    sinks: list[Sink] = [
        AlertmanagerSink(a, name=f"alertmanager-{i}")
        for i, a in enumerate(settings.alertmanager, 1)
    ]
    sinks += [
        WebhookSink(w, name=f"webhook-{i}", external_url=settings.external_url)
        for i, w in enumerate(settings.webhooks, 1)
    ]
    if settings.kafka is not None:
        if kafka is None:
            raise ValueError("alerts.sinks.kafka is set, so the kafka settings must be given")
        from predwatch.alerts.sinks.kafka import KafkaSink  # kafka-python only when used

        sinks.append(KafkaSink(settings.kafka, kafka))
    if settings.log:
        sinks.append(LogSink())
    return sinks


def build_notifier(
    settings: SinkSettings,
    kafka: KafkaSettings | None = None,
    *,
    clock: Clock = time.monotonic,
) -> Notifier:
    """A running ``Notifier`` for every sink in ``settings``; ``close()`` it when done."""
    return Notifier(
        build_sinks(settings, kafka),
        queue_size=settings.queue_size,
        backoff=Backoff(settings.retry_initial, settings.retry_max),
        clock=clock,
    )
