"""The long-running service: Kafka source, monitor and exporter, wired together.

One lock guards the monitor: the source holds it while it processes a batch,
the collector while a scrape reads, so a scrape always sees a state between
two batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from predwatch.config import Settings
from predwatch.consumer.kafka import KafkaSource
from predwatch.exporter import Health, MetricsServer, MonitorCollector, start_http_server
from predwatch.monitor import Monitor

log = logging.getLogger(__name__)


class Service:
    """A monitor fed from Kafka and served over HTTP; ``run`` blocks until ``stop`` is set.

    The HTTP endpoint is bound in the constructor, so a port in use fails at
    once (``ExporterError``) and ``url`` is known before consumption starts.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.monitor = Monitor(settings)
        self.lock = threading.Lock()
        self.health = Health(clock=clock)
        self.registry = CollectorRegistry()
        self.registry.register(MonitorCollector(self.monitor, self.lock, self.health, clock=clock))
        self.server: MetricsServer = start_http_server(settings.http, self.registry, self.health)
        self.source = KafkaSource(settings, self.monitor, self.lock, self.health, clock=clock)

    @property
    def url(self) -> str:
        """Base URL of /metrics, /healthz and /readyz."""
        return self.server.url

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then close the consumer and the endpoint."""
        try:
            self.source.run(stop)
        finally:
            self.server.shutdown()
