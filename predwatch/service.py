"""The long-running service: Kafka source, monitor, alerts and exporter, wired together.

One lock guards the monitor: the source holds it while it processes a batch,
the collector while a scrape reads and the alert loop while it evaluates, so
each sees a state between two batches. Alert notifications are handed to the
sinks outside the lock; delivery never holds up consumption.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from prometheus_client import CollectorRegistry

from predwatch.alerts.sinks.build import build_notifier
from predwatch.alerts.sinks.notification import from_transition
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.config import Settings
from predwatch.consumer.kafka import KafkaSource
from predwatch.drift.profile import ReferenceProfile
from predwatch.exporter import Health, MetricsServer, MonitorCollector, start_http_server
from predwatch.monitor import Monitor

log = logging.getLogger(__name__)

ALERT_TICK = 1.0  # seconds between checks whether alert rules are due


class Service:
    """A monitor fed from Kafka, served over HTTP, alerting; ``run`` blocks until ``stop``.

    ``profiles`` are the reference profiles of data drift when ``drift.reference.path`` names
    a file (the caller reads it: the service does no file I/O of its own). The HTTP endpoint
    is bound in the constructor, so a port in use fails at
    once (``ExporterError``) and ``url`` is known before consumption starts.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        profiles: Sequence[ReferenceProfile] = (),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.monitor = Monitor(settings, profiles)
        self.lock = threading.Lock()
        self.health = Health(clock=clock)
        self.notifier: Notifier = build_notifier(settings.alerts.sinks, settings.kafka)
        self.registry = CollectorRegistry()
        self.registry.register(
            MonitorCollector(
                self.monitor,
                self.lock,
                self.health,
                clock=clock,
                notifications=self.notifier.counts,
            )
        )
        self.server: MetricsServer = start_http_server(
            settings.http, self.registry, self.health, alerts=self.alert_state
        )
        self.source = KafkaSource(settings, self.monitor, self.lock, self.health, clock=clock)

    @property
    def url(self) -> str:
        """Base URL of /metrics, /healthz, /readyz and /alerts."""
        return self.server.url

    def run(self, stop: threading.Event) -> None:
        """Consume and alert until ``stop`` is set, then close the consumer, sinks and endpoint."""
        alerting = threading.Thread(
            target=self._alert_loop, args=(stop,), name="predwatch-alerts", daemon=True
        )
        alerting.start()
        try:
            self.source.run(stop)
        finally:
            stop.set()
            alerting.join(5)
            self.notifier.close(timeout=5)
            self.server.shutdown()

    def _alert_loop(self, stop: threading.Event) -> None:
        while not stop.wait(ALERT_TICK):
            try:
                self.evaluate_alerts()
            except Exception:  # a failed evaluation must not end alerting for good
                log.exception("alert evaluation failed; trying again at the next tick")

    def evaluate_alerts(self) -> int:
        """Evaluate the rules if due and hand firing and resolved alerts to the sinks."""
        now = self._clock()
        with self.lock:
            transitions = self.monitor.evaluate_alerts(now, self._extra(now))
        notifications = [
            from_transition(t, self._generator_url(t.labels.get("model")))
            for t in transitions
            if t.to_state in ("firing", "resolved")
        ]
        if notifications:
            self.notifier.notify(notifications)
        return len(notifications)

    def _extra(self, now: float) -> dict[str, Any]:
        """Figures of the service, not the core, that rules can watch."""
        lag: dict[str, float] = {}
        for (_, partition), records in self.health.lags().items():
            lag[str(partition)] = lag.get(str(partition), 0) + records
        extra: dict[str, Any] = {"consumer_lag": lag}
        if math.isfinite(self.monitor.last_arrival):
            extra["seconds_since_last_event"] = max(0.0, now - self.monitor.last_arrival)
        return extra

    def _generator_url(self, model: str | None) -> str:
        base = self.settings.alerts.sinks.external_url.rstrip("/") or self.url
        return f"{base}/alerts" + (f"?model={quote(model)}" if model else "")

    def alert_state(self) -> dict[str, Any]:
        """Every alert's state, for ``/alerts``."""
        with self.lock:
            return self.monitor.alerts.state()
