"""A real Alertmanager (Debian's ``prometheus-alertmanager``) for tests, and a webhook receiver.

``alertmanager(webhook_url)`` (a fixture returning a factory) starts one on a free
loopback port with clustering off, routing every alert to ``webhook_url`` with
``group_wait``/``group_interval`` of 1s, waits for ``/-/ready``, and stops it after the
test. ``WebhookReceiver`` is a local HTTP server that records what it is POSTed.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BINARY = "prometheus-alertmanager"
HOST = "127.0.0.1"

CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: test
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 50 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class BasicAuth:
    """A user Alertmanager's web server demands; ``bcrypt`` is the hash of ``password``."""

    user: str
    password: str
    bcrypt: str

    def header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


class Alertmanager:
    """One ``prometheus-alertmanager`` process (a context manager); ``url`` is its base URL.

    With ``basic_auth``, its API answers only requests that carry that user and password.
    """

    def __init__(
        self,
        webhook_url: str,
        workdir: Path,
        startup_timeout: float = 20.0,
        basic_auth: BasicAuth | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.basic_auth = basic_auth
        (workdir / "alertmanager.yml").write_text(CONFIG.format(webhook_url=webhook_url))
        self._args: list[str] = []
        if basic_auth is not None:
            web = workdir / "web.yml"
            web.write_text(f"basic_auth_users:\n  {basic_auth.user}: '{basic_auth.bcrypt}'\n")
            self._args.append(f"--web.config.file={web}")
        self._log_path = workdir / "alertmanager.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _get(self, path: str) -> Any:
        headers = self.basic_auth.header() if self.basic_auth is not None else {}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        return urllib.request.urlopen(request, timeout=5)

    def __enter__(self) -> Alertmanager:
        binary = shutil.which(BINARY)
        assert binary is not None
        log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
                *self._args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self._log_path.read_text(errors="replace")[-2000:]
                self.stop()
                pytest.fail(f"Alertmanager did not become ready on {self.url}:\n{output}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            with self._get("/-/ready") as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit within 5 s)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, unresolved alerts), filtered by label equality."""
        query = "&".join("filter=" + urllib.parse.quote(f'{k}="{v}"') for k, v in filters.items())
        with self._get(f"/api/v2/alerts?{query}") as response:
            result: list[dict[str, Any]] = json.load(response)
            return result


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """Start an Alertmanager whose every alert goes to ``webhook_url``: ``alertmanager(url)``
    (``alertmanager(url, basic_auth=BasicAuth(...))`` for one that demands a password).

    Skips (fails in CI) when ``prometheus-alertmanager`` is not installed.
    """
    if shutil.which(BINARY) is None:
        from conftest import require_binary

        require_binary(BINARY, "Debian's 'prometheus-alertmanager' package")
    started: list[Alertmanager] = []

    def start(webhook_url: str, basic_auth: BasicAuth | None = None) -> Alertmanager:
        workdir = Path(tempfile.mkdtemp(prefix="am-", dir=tmp_path))
        instance = Alertmanager(webhook_url, workdir, basic_auth=basic_auth).__enter__()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@dataclass
class Received:
    """One request a ``WebhookReceiver`` got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WebhookReceiver:
    """A local HTTP server recording every POST; answers ``statuses`` in turn, then 200,
    and 503 to everything while ``down`` is set.

    >>> with WebhookReceiver() as hook:
    ...     hook.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[Received] = []
        self.attempts: list[float] = []  # monotonic time of every request, answered or not
        self.statuses = list(statuses or [])
        self.down = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.attempts.append(time.monotonic())
                    if receiver.down:
                        status = 503
                    elif receiver.statuses:
                        status = receiver.statuses.pop(0)
                    else:
                        status = 200
                    if status == 200:
                        receiver.requests.append(
                            Received(self.path, dict(self.headers.items()), body)
                        )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self) -> list[Any]:
        """The JSON bodies received so far (successful requests only)."""
        with self.lock:
            return [r.json() for r in self.requests]
