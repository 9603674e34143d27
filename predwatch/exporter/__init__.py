"""Prometheus exposition of the monitor's report, and the HTTP endpoint.

Wiring, in the service: the collector reads the monitor's latest report (no lock)::

    health = Health()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report, health))
    server = start_http_server(settings.http, registry, health)
    ...
    server.shutdown()
"""

from predwatch.exporter.collector import ReportCollector
from predwatch.exporter.health import Health
from predwatch.exporter.server import ExporterError, MetricsServer, start_http_server

__all__ = ["ExporterError", "Health", "MetricsServer", "ReportCollector", "start_http_server"]
