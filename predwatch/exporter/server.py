"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for orchestrators.

``start_http_server`` binds before it returns (so a port in use fails at once,
with one sentence that says what to do) and serves until ``shutdown()``. Port 0
binds a free port; ``server.port`` tells which.

- ``/metrics``: the registry's exposition (OpenMetrics when the scraper asks for it).
- ``/healthz``: 200 while the process serves.
- ``/readyz``: 200 when ``health`` is ready, else 503; the body is the one-line reason.
- ``/alerts``: the state of every alert, as JSON, when an ``alerts`` callable is given;
  ``/alerts?model=NAME`` those of one model.
- ``pages``: further routes (``/status``, ``/``), each a callable of the query giving the
  content type and body; with a ``token`` they answer only requests that carry
  ``Authorization: Bearer <token>`` (the other routes stay open for scrapers and probes).

Serving is bounded whatever clients do (see ``connections.ConnectionPool``): a
fixed number of worker threads, idle and keep-alive connections waiting without
a thread and closed after ``timeout`` seconds, a whole request to arrive within
``timeout``, health checks answered before anything else, other requests taken
at most ``rate`` per second, and a quick 503 when more wait than the queue holds.
The exposition is rendered at most once per ``metrics_max_age`` seconds and
shared by the scrapes in between (one render at a time), so many scrapers cost
about what one does; Prometheus sees values at most that old.
"""

from __future__ import annotations

import errno
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from predwatch.config import HttpSettings
from predwatch.exporter.connections import Address, ConnectionPool
from predwatch.exporter.health import Health

log = logging.getLogger(__name__)

WORKERS = 4  # threads answering requests; requests beyond them wait in the queue
QUEUE_SIZE = 256  # requests of each kind waiting for a worker before new ones get a quick 503
MAX_IDLE = 512  # connections waiting for a request; more evict the one idle longest
TIMEOUT = 5.0  # seconds for a whole request to arrive, a response to be taken, idle to last
RATE = 50.0  # requests other than health checks answered per second, on average, at most
METRICS_MAX_AGE = 1.0  # seconds one rendering of /metrics is served for
LISTEN_BACKLOG = 128  # connections the kernel holds before the lobby accepts them
MAX_PIPELINED = 8  # requests answered in one turn of a worker when a client pipelines
UNAUTHORIZED = b"unauthorized: send the token of http.token as 'Authorization: Bearer TOKEN'\n"
Page = Callable[[Mapping[str, str]], tuple[str, bytes]]  # query -> content type, body
_HEALTH_CHECKS = (b"GET /healthz", b"GET /readyz", b"HEAD /healthz", b"HEAD /readyz")


def _is_health_check(head: bytes) -> bool:
    """Whether a request's first bytes ask for /healthz or /readyz (answered first).

    >>> _is_health_check(b"GET /readyz HTTP"), _is_health_check(b"GET /metrics HT")
    (True, False)
    """
    return head.startswith(_HEALTH_CHECKS)


class _Exposition:
    """The registry's exposition per format, rendered at most once per ``max_age`` seconds.

    One rendering at a time: a scrape that finds another rendering under way
    serves the last one it has, or waits for the first.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._max_age = max_age
        self._clock = clock
        self._rendering = threading.Lock()
        self._last: dict[str, tuple[float, bytes]] = {}  # content type -> (rendered at, body)

    def render(self, accept: str) -> tuple[str, bytes]:
        """The content type and body for a scraper that sent ``accept``."""
        encoder, content_type = choose_encoder(accept)
        last = self._last.get(content_type)
        if last is not None and self._clock() - last[0] < self._max_age:
            return content_type, last[1]
        if last is not None and not self._rendering.acquire(blocking=False):
            return content_type, last[1]  # someone renders now: the last one will do
        if last is None:
            self._rendering.acquire()
        try:
            last = self._last.get(content_type)
            if last is not None and self._clock() - last[0] < self._max_age:
                return content_type, last[1]  # rendered while this scrape waited
            at = self._clock()
            body = encoder(self._registry)
            self._last[content_type] = (at, body)
            return content_type, body
        finally:
            self._rendering.release()


class ExporterError(OSError):
    """The endpoint could not be served; the message is one sentence saying what to do."""


class _Endpoints:
    """What the handler serves, and the per-request bounds; one per server."""

    def __init__(
        self,
        exposition: _Exposition,
        health: Health,
        alerts: Callable[..., dict[str, Any]] | None,
        timeout: float,
        pages: Mapping[str, Page],
        token: str | None,
    ) -> None:
        self.exposition = exposition
        self.health = health
        self.alerts = alerts
        self.timeout = timeout
        self.pages = pages
        self.token = token

    def serve(self, sock: socket.socket, address: Address) -> bool:
        """Answer the requests that have arrived on ``sock``; True to keep it for more."""
        handler = _Handler(sock, address, self)  # type: ignore[arg-type]
        return handler.keep


class _DeadlineReader(socket.SocketIO):
    """Socket reads that fail with ``TimeoutError`` once ``deadline`` (monotonic) has passed,
    so a client sending a byte now and then cannot hold a worker: the whole request must
    arrive within the timeout, not each byte. With ``deadline`` None, reads are as set."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__(sock, "rb")
        self._socket = sock
        self.timeout = timeout
        self.deadline: float | None = None

    def readinto(self, buffer: Any) -> int | None:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the request did not arrive in time")
            self._socket.settimeout(min(remaining, self.timeout))
        return super().readinto(buffer)


class _SendAll(io.BufferedIOBase):
    """Writes with one ``sendall`` each, so the socket's timeout bounds a whole write
    (a client that reads slowly cannot hold a worker for long)."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._socket.sendall(data)
        return len(memoryview(data))


class _Handler(BaseHTTPRequestHandler):
    server: _Endpoints  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    keep = False  # after handle(): True when the connection waits for another request

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(self.server.timeout)  # bounds every write too
        self._reader = _DeadlineReader(self.connection, self.server.timeout)
        self._buffer = io.BufferedReader(self._reader)
        self.rfile = self._buffer
        self.wfile = _SendAll(self.connection)

    def handle(self) -> None:
        """Answer requests while they are already here, then hand the connection back.

        Waiting for the next keep-alive request is the pool's job (no thread);
        a pipelined request already read into the buffer is answered here.
        """
        self.close_connection = True
        for _ in range(MAX_PIPELINED):
            self._reader.deadline = time.monotonic() + self.server.timeout
            self.handle_one_request()
            if self.close_connection:
                return
            if not self._request_waiting():
                self.keep = True
                return
        # More pipelined requests than a turn allows (they would skip the pacing): the
        # client sends the rest again on a new connection, as HTTP/1.1 clients must.

    def _request_waiting(self) -> bool:
        """Whether bytes of another request are buffered or on the socket, without waiting."""
        self._reader.deadline = None
        self.connection.setblocking(False)
        try:
            return bool(self._buffer.peek(1))
        except OSError:
            return False
        finally:
            self.connection.settimeout(self.server.timeout)

    def finish(self) -> None:
        self._buffer.detach()  # closing the buffer would close the reader, never the socket
        self._reader.close()

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        status, content_type, body = self._answer()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="predwatch"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _answer(self) -> tuple[int, str, bytes]:
        """Status, content type and body of the request's path."""
        url = urlsplit(self.path)
        path = url.path
        text = "text/plain; charset=utf-8"
        endpoints = self.server
        if path in endpoints.pages:
            if not self._authorized():
                return 401, text, UNAUTHORIZED
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            try:
                content_type, body = endpoints.pages[path](query)
                return 200, content_type, body
            except Exception:  # a page that fails must not end this worker: say it, answer 500
                log.exception("rendering %s failed", path)
                return 500, text, b"rendering the page failed; see the service's log\n"
        if path == "/healthz":
            return 200, text, b"ok\n"
        if path == "/readyz":
            ready, reason = endpoints.health.readiness()
            body = (reason + "\n").encode(errors="replace")  # a reason can quote a topic
            return (200 if ready else 503), text, body
        if path == "/metrics":
            try:
                content_type, body = endpoints.exposition.render(self.headers.get("Accept", ""))
                return 200, content_type, body
            except Exception:  # one broken figure must not end this worker: say it, answer 500
                log.exception("rendering /metrics failed")
                return 500, text, b"rendering the metrics failed; see the service's log\n"
        if path == "/alerts" and endpoints.alerts is not None:
            model = parse_qs(url.query).get("model", [None])[-1]
            return 200, "application/json", json.dumps(endpoints.alerts(model)).encode()
        return 404, text, b"not found: try /metrics, /healthz, /readyz or /alerts\n"

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        # http.server decodes headers as Latin-1: encoding back gives the bytes that were sent.
        sent = given.strip().encode("latin-1", errors="replace")
        # Compared in constant time, so the answer's timing tells nothing about the token.
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

    def __init__(self, listener: socket.socket, pool: ConnectionPool) -> None:
        self._listener = listener
        self._pool = pool
        address = listener.getsockname()
        self.host: str = str(address[0])
        self.port: int = int(address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def counts(self) -> dict[str, int]:
        """Connections accepted, closed idle, evicted for room, and requests refused busy."""
        return self._pool.counts()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and wait for the serving threads. Safe to call twice."""
        self._pool.stop(timeout)
        self._listener.close()

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
    *,
    pages: Mapping[str, Page] | None = None,
    token: str | None = None,
    workers: int = WORKERS,
    queue_size: int = QUEUE_SIZE,
    max_idle: int = MAX_IDLE,
    timeout: float = TIMEOUT,
    rate: float = RATE,
    metrics_max_age: float = METRICS_MAX_AGE,
) -> MetricsServer:
    """Bind ``settings.host:settings.port`` and serve with ``workers`` threads.

    ``timeout`` bounds, in seconds, how long a connection may stay idle, how long
    a request may take to arrive and a response to be taken; ``queue_size`` and
    ``max_idle`` bound the requests and the idle connections that wait; ``rate``
    paces requests other than health checks; ``metrics_max_age`` is how long one
    rendering of /metrics is served (0: render every scrape). ``alerts`` is called with the
    model of ``/alerts?model=`` (None without one); ``pages`` are further routes, behind
    ``token`` when one is given. See the module.
    Raises ``ExporterError`` (an OSError) with one sentence naming the address
    when it cannot be bound.
    """
    host, port = settings.host, settings.port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        listener = socket.create_server(
            (host, port), family=_family(host, port), backlog=LISTEN_BACKLOG
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
    endpoints = _Endpoints(
        _Exposition(registry, metrics_max_age), health, alerts, timeout, pages or {}, token
    )
    pool = ConnectionPool(
        listener,
        endpoints.serve,
        urgent=_is_health_check,
        workers=workers,
        max_idle=max_idle,
        queue_size=queue_size,
        rate=rate,
        idle_timeout=timeout,
        name=f"predwatch-http-{listener.getsockname()[1]}",
    )
    pool.start()
    running = MetricsServer(listener, pool)
    log.info("serving /metrics, /healthz and /readyz on %s", running.url)
    return running
