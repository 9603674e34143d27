"""The long-running service: Kafka source, monitor, alerts and exporter, wired together.

One lock guards the monitor's state: the source holds it while it processes a
batch and, after each batch, while the rules are evaluated if the event clock
reached the next ``alerts.evaluate_every``; the tick loop while it refreshes
the full report (every few seconds) and evaluates the rules while no event
arrives. Readers (``/metrics``, ``/alerts``, ``/status`` and the page at ``/``) take
the latest report, which is immutable, without the lock: a scrape never holds up
consumption. Alert notifications are handed to the sinks outside the lock.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prometheus_client import CollectorRegistry

from predwatch.alerts.sinks.build import build_notifier
from predwatch.alerts.sinks.notification import from_transition
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.config import HttpSettings, Settings
from predwatch.consumer.kafka import KafkaSource
from predwatch.drift.profile import ReferenceProfile
from predwatch.exporter import (
    ExporterError,
    Health,
    MetricsServer,
    ReportCollector,
    start_http_server,
)
from predwatch.exporter.page import render_page
from predwatch.exporter.status import status_document
from predwatch.monitor import Monitor
from predwatch.report import Value, iso

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between checks whether a report is due
REFRESH = 5.0  # seconds between full reports for /metrics, /alerts and /status


class Service:
    """A monitor fed from Kafka, served over HTTP, alerting; ``run`` blocks until ``stop``.

    ``profiles`` are the reference profiles of data drift when ``drift.reference.path`` names
    a file (the caller reads it: the service reads no file but ``http.token_file``). The HTTP
    endpoint is bound in the constructor, so a port in use fails at
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
            ReportCollector(lambda: self.monitor.report, self.health, self.notifier.counts)
        )
        self.server: MetricsServer = start_http_server(
            settings.http,
            self.registry,
            self.health,
            alerts=self.alert_state,
            pages={"/status": self._status_json, "/": self._status_page},
            token=bearer_token(settings.http),
        )
        self.source = KafkaSource(
            settings, self.monitor, self.lock, self.health, clock=clock, after_batch=self._evaluate
        )
        self._refreshed = -math.inf  # processing time of the latest full report
        log.info("status page at %s/ (JSON at /status)", self.url)

    @property
    def url(self) -> str:
        """Base URL of /metrics, /healthz, /readyz, /alerts, /status and the page at /."""
        return self.server.url

    def run(self, stop: threading.Event) -> None:
        """Consume and alert until ``stop`` is set, then close the consumer, sinks and endpoint."""
        ticking = threading.Thread(
            target=self._tick_loop, args=(stop,), name="predwatch-ticks", daemon=True
        )
        ticking.start()
        try:
            self.source.run(stop)
        finally:
            stop.set()
            ticking.join(5)
            self.notifier.close(timeout=5)
            self.server.shutdown()

    def _tick_loop(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            try:
                self.tick()
            except Exception:  # a failed report must not end reporting and alerting for good
                log.exception("making the report failed; trying again at the next tick")

    def tick(self) -> int:
        """Evaluate the rules if due (while idle, the event clock runs on with processing time)
        and refresh the report readers see; the notifications handed to the sinks."""
        now = self._clock()
        sent = self._evaluate(now)
        if now - self._refreshed >= REFRESH:
            with self.lock:
                self.monitor.refresh(now, self._extra(now))
            self._refreshed = now
        return sent

    def _evaluate(self, now: float) -> int:
        """Evaluate the rules if the event clock reached the next step (after every batch, so a
        backlog is evaluated step by step as a replay is); notify the sinks."""
        with self.lock:
            transitions = self.monitor.tick(now, self._extra(now))
        notifications = [
            from_transition(t, self._generator_url(t.labels.get("model")))
            for t in transitions
            if t.to_state in ("firing", "resolved")
        ]
        if notifications:
            self.notifier.notify(notifications)
        return len(notifications)

    def _extra(self, now: float) -> list[Value]:
        """Figures of the service, not the core, that rules can watch."""
        extra = [
            Value("predwatch_consumer_lag", (topic, str(partition)), float(records))
            for (topic, partition), records in sorted(self.health.lags().items())
        ]
        if math.isfinite(self.monitor.last_arrival):
            idle = max(0.0, now - self.monitor.last_arrival)
            extra.append(Value("predwatch_seconds_since_last_event", (), idle))
        return extra

    def _generator_url(self, model: str | None) -> str:
        base = self.settings.alerts.sinks.external_url.rstrip("/") or self.url
        return f"{base}/alerts" + (f"?model={quote(model)}" if model else "")

    def alert_state(self, model: str | None = None) -> dict[str, Any]:
        """Every alert's state (of ``model`` only, when given), for ``/alerts``."""
        report = self.monitor.report
        evaluated = self.monitor.alerts.evaluated_at
        alerts = [alert.as_dict() for alert in report.alerts_of(model)]
        return {"evaluated_at": evaluated, "evaluated_at_iso": iso(evaluated), "alerts": alerts}

    def status(self) -> dict[str, Any]:
        """The ``/status`` document of the latest report, with the consumer lag."""
        evaluated = self.monitor.alerts.evaluated_at
        return status_document(self.monitor.report, self.health.lags(), evaluated)

    def _status_json(self, query: Mapping[str, str]) -> tuple[str, bytes]:
        return "application/json", json.dumps(self.status(), allow_nan=False).encode()

    def _status_page(self, query: Mapping[str, str]) -> tuple[str, bytes]:
        return "text/html; charset=utf-8", render_page(self.status(), live=True).encode()


def bearer_token(http: HttpSettings) -> str | None:
    """The token ``/status`` and ``/`` require: ``http.token``, or the first line of
    ``http.token_file``; None when neither is set.

    >>> bearer_token(HttpSettings()) is None
    True
    """
    if http.token is not None:
        return http.token.get_secret_value().strip()
    if http.token_file is None:
        return None
    try:
        lines = Path(http.token_file).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ExporterError(
            f"cannot read http.token_file {http.token_file!r}: {error.strerror or error}; "
            "point it at a readable file that holds the token"
        ) from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ExporterError(
            f"http.token_file {http.token_file!r} is empty: write the token on its first line"
        )
    return token
