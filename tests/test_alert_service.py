"""End to end: a stream whose accuracy drops makes the service fire into a real Alertmanager,
and its recovery resolves the alert there; Alertmanager's webhook receiver is told both."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from alertmanager_fixture import Alertmanager, WebhookReceiver, wait_for

# The fixture, by name (the explicit re-export keeps linters from calling it unused).
from alertmanager_fixture import alertmanager as alertmanager
from kafka import KafkaProducer

from predwatch.alerts.engine import fingerprint
from predwatch.config import settings_from_mapping
from predwatch.demo.broker import EmbeddedBroker
from predwatch.service import Service

RULE = {
    "name": "FraudAccuracyLow",
    "model": "fraud",
    "metric": "accuracy",
    "window": "last_100",
    "below": 0.7,
    "clear": 0.8,
    "min_samples": 50,
    "severity": "page",
    "labels": {"team": "risk"},
    "annotations": {"summary": "Accuracy of {{model}} {{version}} is {{value}} (< {{threshold}})"},
}


class Stream:
    """Predictions and their labels, right or wrong as asked, produced to Kafka."""

    def __init__(self, broker: EmbeddedBroker, predictions: str, labels: str) -> None:
        self._producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        self._topics = predictions, labels
        self.sent = 0

    def send(self, count: int, correct: bool) -> None:
        start = time.time()
        for i in range(self.sent, self.sent + count):
            key = f"p{i}".encode()
            prediction = {
                "prediction_id": f"p{i}",
                "model": "fraud",
                "model_version": "v1",
                "timestamp": start + i * 0.001,
                "prediction": i % 2,
            }
            label = {
                "prediction_id": f"p{i}",
                "timestamp": start + i * 0.001 + 1,
                "label": i % 2 if correct else 1 - i % 2,
            }
            self._producer.send(self._topics[0], key=key, value=json.dumps(prediction).encode())
            self._producer.send(self._topics[1], key=key, value=json.dumps(label).encode())
        self._producer.flush(30)
        self.sent += count

    def close(self) -> None:
        self._producer.close(5)


@pytest.fixture
def stream(kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]) -> Iterator[Stream]:
    produced = Stream(kafka_broker, make_topic("p", partitions=2), make_topic("l", partitions=2))
    yield produced
    produced.close()


def joined(service: Service) -> int:
    with service.lock:
        return service.monitor.counts.matched


def test_accuracy_drop_fires_and_recovery_resolves(
    kafka_broker: EmbeddedBroker,
    stream: Stream,
    unique_group: Callable[[], str],
    alertmanager: Callable[[str], Alertmanager],
) -> None:
    with WebhookReceiver() as hook:
        am = alertmanager(hook.url)
        predictions_topic, labels_topic = stream._topics
        settings = settings_from_mapping(
            {
                "models": {"fraud": {"task": "binary"}},
                "metrics": {"windows": [{"name": "last_100", "events": 100}]},
                # Rules are evaluated as event time passes; between the test's bursts of
                # traffic the watermark follows the clock after a short idle time.
                "join": {"grace": "1s", "idle_timeout": "2s"},
                "kafka": {
                    "bootstrap_servers": kafka_broker.bootstrap_servers,
                    "group_id": unique_group(),
                    "predictions_topic": predictions_topic,
                    "labels_topic": labels_topic,
                    "session_timeout": "3s",
                },
                "http": {"port": 0},
                "alerts": {
                    "evaluate_every": "1s",
                    "rules": [RULE],
                    "sinks": {"alertmanager": [{"url": am.url, "resend_every": "2s"}]},
                },
            }
        )
        service = Service(settings)
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
        runner.start()
        try:
            stream.send(200, correct=True)
            wait_for(lambda: joined(service) == 200, 60, "the healthy pairs joined")
            time.sleep(2.5)  # two evaluations on a healthy window
            assert am.alerts(alertname="FraudAccuracyLow") == []

            stream.send(150, correct=False)
            [alert] = wait_for(
                lambda: am.alerts(alertname="FraudAccuracyLow"), 30, "the alert in Alertmanager"
            )
            assert alert["labels"] == {
                "alertname": "FraudAccuracyLow",
                "model": "fraud",
                "version": "v1",
                "window": "last_100",
                "severity": "page",
                "team": "risk",
            }
            summary = alert["annotations"]["summary"]
            assert summary.startswith("Accuracy of fraud v1 is ") and summary.endswith("(< 0.7)")
            assert alert["generatorURL"] == f"{service.url}/alerts?model=fraud"
            # Alertmanager computes its own fingerprint of the labels: the same as ours.
            [ours] = service.monitor.report.alerts or service.monitor.alerts.alerts()
            assert alert["fingerprint"] == ours.fingerprint == fingerprint(alert["labels"])
            firing = wait_for(
                lambda: next((b for b in hook.bodies() if b["status"] == "firing"), None),
                15,
                "the firing notification",
            )
            assert firing["version"] == "4" and firing["groupLabels"] == {
                "alertname": "FraudAccuracyLow"
            }
            with urllib.request.urlopen(f"{service.url}/alerts", timeout=5) as response:
                state = json.load(response)
            assert [a["state"] for a in state["alerts"]] == ["firing"]

            stream.send(150, correct=True)
            wait_for(
                lambda: am.alerts(alertname="FraudAccuracyLow") == [],
                30,
                "the alert resolved in Alertmanager",
            )
            resolved = wait_for(
                lambda: next((b for b in hook.bodies() if b["status"] == "resolved"), None),
                15,
                "the resolved notification",
            )
            assert [a["labels"]["alertname"] for a in resolved["alerts"]] == ["FraudAccuracyLow"]
            counts = service.notifier.counts()
            assert counts["alertmanager-1", "delivered"] == 2  # one firing, one resolve
            assert counts["alertmanager-1", "dropped"] == 0
        finally:
            stop.set()
            runner.join(15)
        assert not runner.is_alive()
