"""Kafka sink: one JSON event per notification on a topic, keyed by the alert's fingerprint.

Keying by fingerprint keeps every transition of one alert in one partition, in order;
a compacted topic then holds the latest state of every alert.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from predwatch.alerts.sinks.delivery import DeliveryError, Sink
from predwatch.alerts.sinks.notification import Notification, as_event
from predwatch.alerts.sinks.settings import KafkaSinkSettings
from predwatch.alerts.sinks.transport import encode
from predwatch.config import KafkaSettings
from predwatch.consumer.client import client_settings


class KafkaSink(Sink):
    """Produces to ``settings.topic`` on the cluster of ``kafka``; the producer is made lazily,
    in the worker, so that an unreachable cluster is a retried delivery, not a startup failure.
    """

    def __init__(
        self, settings: KafkaSinkSettings, kafka: KafkaSettings, name: str = "kafka"
    ) -> None:
        super().__init__(name)
        self.topic = settings.topic
        self.timeout = settings.timeout
        self._config: dict[str, Any] = client_settings(kafka) | {
            "acks": "all",
            "retries": 0,
            "max_block_ms": int(settings.timeout * 1000),
        }
        self._producer: KafkaProducer | None = None

    def send(self, batch: Sequence[Notification]) -> None:
        """Produce every notification and wait until the broker acknowledged all of them."""
        try:
            if self._producer is None:
                self._producer = KafkaProducer(**self._config)
            futures = [
                self._producer.send(
                    self.topic, key=n.fingerprint.encode(), value=encode(as_event(n))
                )
                for n in batch
            ]
            for future in futures:
                future.get(timeout=self.timeout)
        except KafkaError as error:
            raise DeliveryError(f"cannot write to Kafka topic '{self.topic}': {error!r}") from error

    def close(self) -> None:
        """Flush and close the producer, if one was made."""
        if self._producer is not None:
            # Closing after failures: nothing is left to deliver or worth reporting.
            with contextlib.suppress(KafkaError):
                self._producer.close(timeout=5)
            self._producer = None
