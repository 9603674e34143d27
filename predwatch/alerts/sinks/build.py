"""Building the configured sinks, and the ``Notifier`` that runs them.

>>> from predwatch.alerts.sinks.settings import SinkSettings
>>> [sink.name for sink in build_sinks(SinkSettings.model_validate(
...     {"webhooks": [{"url": "http://127.0.0.1:9/hook"}]}))]
['webhook-1', 'log']
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from predwatch.alerts.sinks.alertmanager import AlertmanagerSink
from predwatch.alerts.sinks.delivery import Backoff, Clock, Sink
from predwatch.alerts.sinks.log import LogSink
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.alerts.sinks.settings import SinkSettings
from predwatch.alerts.sinks.webhook import WebhookSink

if TYPE_CHECKING:  # the config imports the sinks' settings: no import back at run time
    from predwatch.config import KafkaSettings


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
