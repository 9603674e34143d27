"""Dead letters: messages that could not be used, sent to a Kafka topic with their reason.

Each message keeps its original bytes; headers say why it was refused
(``predwatch.reason``) and where it came from (``predwatch.topic``). Sending is
asynchronous and best effort: a failure is counted and logged, never raised,
so a dead-letter topic that goes away cannot stop consumption.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from kafka import KafkaProducer
from kafka.errors import KafkaError

from predwatch.config import KafkaSettings
from predwatch.consumer.client import client_settings
from predwatch.records import Invalid

log = logging.getLogger(__name__)


class DeadLetters:
    """A producer to ``kafka.dead_letter_topic``; ``sent`` and ``failed`` count messages."""

    def __init__(self, kafka: KafkaSettings) -> None:
        assert kafka.dead_letter_topic is not None
        self._topic = kafka.dead_letter_topic
        self._producer = KafkaProducer(**client_settings(kafka), linger_ms=50)
        self.sent = 0
        self.failed = 0

    def send(self, invalid: Iterable[Invalid]) -> None:
        for item in invalid:
            value = item.raw.value
            if isinstance(value, dict):
                value = json.dumps(value)
            payload = value.encode() if isinstance(value, str) else value
            headers = [
                ("predwatch.reason", item.reason.encode()),
                ("predwatch.topic", item.topic.encode()),
            ]
            try:
                future = self._producer.send(self._topic, value=payload, headers=headers)
            except KafkaError as error:
                self._failed(error)
                continue
            future.add_callback(self._delivered).add_errback(self._failed)

    def _delivered(self, _metadata: object) -> None:
        self.sent += 1

    def _failed(self, error: BaseException) -> None:
        if self.failed == 0:
            log.warning("cannot write to dead-letter topic '%s': %s", self._topic, error)
        self.failed += 1

    def close(self) -> None:
        try:
            self._producer.close(timeout=5)
        except KafkaError as error:
            log.warning("closing the dead-letter producer failed: %s", error)
