"""Prometheus exposition of the monitor, and the /metrics, /healthz and /readyz endpoint.

Wiring, in the service: one lock shared by the consumer (held while it
processes a batch) and the collector (held while it reads)::

    lock = threading.Lock()
    health = Health()
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitor, lock, health))
    server = start_http_server(settings.http, registry, health)
    ...
    server.shutdown()
"""

from predwatch.exporter.collector import MonitorCollector
from predwatch.exporter.health import Health
from predwatch.exporter.server import ExporterError, MetricsServer, start_http_server

__all__ = ["ExporterError", "Health", "MetricsServer", "MonitorCollector", "start_http_server"]
