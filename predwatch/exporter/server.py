"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for orchestrators.

``start_http_server`` binds before it returns (so a port in use fails at once,
with one sentence that says what to do) and serves on a daemon thread until
``shutdown()``. Port 0 binds a free port; ``server.port`` tells which.

- ``/metrics``: the registry's exposition (OpenMetrics when the scraper asks for it).
- ``/healthz``: 200 while the process serves.
- ``/readyz``: 200 when ``health`` is ready, else 503; the body is the one-line reason.
- ``/alerts``: the state of every alert, as JSON, when an ``alerts`` callable is given;
  ``/alerts?model=NAME`` those of one model.
- ``pages``: further routes (``/status``, ``/``), each a callable of the query giving the
  content type and body; with a ``token`` they answer only requests that carry
  ``Authorization: Bearer <token>`` (the other routes stay open for scrapers and probes).
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from predwatch.config import HttpSettings
from predwatch.exporter.health import Health

log = logging.getLogger(__name__)

UNAUTHORIZED = b"unauthorized: send the token of http.token as 'Authorization: Bearer TOKEN'\n"
Page = Callable[[Mapping[str, str]], tuple[str, bytes]]  # query -> content type, body


class ExporterError(OSError):
    """The endpoint could not be served; the message is one sentence saying what to do."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper never holds up shutdown

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        registry: CollectorRegistry,
        health: Health,
        alerts: Callable[..., dict[str, Any]] | None,
        pages: Mapping[str, Page],
        token: str | None,
    ) -> None:
        self.address_family = family
        self.registry = registry
        self.health = health
        self.alerts = alerts
        self.pages = pages
        self.token = token
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        content_type = "text/plain; charset=utf-8"
        challenge = False
        if path in self.server.pages:
            if self._authorized():
                content_type, body = self.server.pages[path](query)
                status = 200
            else:
                status, body, challenge = 401, UNAUTHORIZED, True
        elif path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            status, body = 200, encoder(self.server.registry)
        elif path == "/healthz":
            status, body = 200, b"ok\n"
        elif path == "/readyz":
            ready, reason = self.server.health.readiness()
            status, body = (200 if ready else 503), (reason + "\n").encode()
        elif path == "/alerts" and self.server.alerts is not None:
            content_type = "application/json"
            state = self.server.alerts(query.get("model"))
            status, body = 200, json.dumps(state).encode()
        else:
            status, body = 404, b"not found: try /metrics, /healthz, /readyz or /alerts\n"
        self.send_response(status)
        if challenge:
            self.send_header("WWW-Authenticate", 'Bearer realm="predwatch"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        # Compared in constant time, so the answer's timing tells nothing about the token.
        # http.server decodes headers as Latin-1: encoding back gives the bytes that were sent.
        sent = given.strip().encode("latin-1", errors="replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(sent, token.encode())

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _family(host: str, port: int) -> socket.AddressFamily:
    """IPv6 for an IPv6 host (e.g. ``::``), IPv4 otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return socket.AF_INET  # bind will fail with a clear message below
    return infos[0][0]


class MetricsServer:
    """A running endpoint. ``host`` and ``port`` are where it is bound (the real port for 0)."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        address = server.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and wait for the serving thread. Safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.shutdown()


def start_http_server(
    settings: HttpSettings,
    registry: CollectorRegistry,
    health: Health,
    alerts: Callable[..., dict[str, Any]] | None = None,
    pages: Mapping[str, Page] | None = None,
    token: str | None = None,
) -> MetricsServer:
    """Bind ``settings.host:settings.port`` and serve on a daemon thread.

    ``alerts`` is called with the model of ``/alerts?model=`` (None without one); ``pages``
    are further routes, behind ``token`` when one is given.

    Raises ``ExporterError`` (an OSError) with one sentence naming the address
    when it cannot be bound.
    """
    host, port = settings.host, settings.port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server = _Server(
            (host, port), _family(host, port), registry, health, alerts, pages or {}, token
        )
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            message = (
                f"cannot serve metrics on {where}: the address is already in use; stop the "
                "other process or set http.port (PREDWATCH_HTTP__PORT) to a free port"
            )
        else:
            message = (
                f"cannot serve metrics on {where}: {error.strerror or error}; set http.host "
                "(PREDWATCH_HTTP__HOST) to an address of this machine, e.g. 127.0.0.1"
            )
        raise ExporterError(message) from error
    thread = threading.Thread(
        target=server.serve_forever, name=f"predwatch-http-{port}", daemon=True
    )
    thread.start()
    running = MetricsServer(server, thread)
    log.info("serving /metrics, /healthz and /readyz on %s", running.url)
    return running
