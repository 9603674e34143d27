"""The HTTP endpoint under hostile clients: idle floods, slow senders, bursts, broken figures.

Every test runs a real server on 127.0.0.1 and real client sockets.
"""

from __future__ import annotations

import contextlib
import http.client
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from predwatch.config import HttpSettings
from predwatch.exporter import Health, MetricsServer, start_http_server

TIMEOUT = 1.5  # the server's timeout in these tests, short to keep them quick


@contextmanager
def serving(registry: CollectorRegistry | None = None, **bounds: Any) -> Iterator[MetricsServer]:
    server = start_http_server(
        HttpSettings(port=0), registry or CollectorRegistry(), Health(), timeout=TIMEOUT, **bounds
    )
    try:
        yield server
    finally:
        server.shutdown()


def server_threads(server: MetricsServer) -> int:
    return sum(t.name.startswith(f"predwatch-http-{server.port}") for t in threading.enumerate())


def get(server: MetricsServer, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) before ``within`` seconds pass."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def flood_size(wanted: int = 1200) -> int:
    """``wanted`` idle sockets, or as many as the file descriptor limit allows (two per socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * wanted + 200
    if soft < need and (hard == resource.RLIM_INFINITY or hard >= need):
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        soft = need
    return min(wanted, (soft - 200) // 2)


def test_idle_sockets_hold_no_thread_and_health_checks_still_answer() -> None:
    flood = flood_size()
    with serving(workers=3, max_idle=100) as server:
        threads = server_threads(server)
        assert threads == 4  # three workers and the lobby
        idle = [socket.create_connection((server.host, server.port)) for _ in range(flood)]
        try:
            # The flood is accepted (oldest idle evicted for room), and no thread is added.
            for _ in range(5):
                assert get(server, "/healthz") == (200, b"ok\n")
            assert server_threads(server) == threads
            counts = server.counts()
            assert counts["accepted"] >= flood and counts["evicted"] >= flood - 100
            # The ones still open are closed after the timeout: none is kept for good.
            assert all(closed_by_server(s, TIMEOUT * 4) for s in idle)
        finally:
            for sock in idle:
                sock.close()


def test_a_client_that_sends_nothing_is_dropped() -> None:
    with serving() as server, socket.create_connection((server.host, server.port)) as sock:
        assert closed_by_server(sock, TIMEOUT * 4)
        assert server.counts()["idle_closed"] == 1


def test_a_slow_sender_is_cut_off_and_never_blocks_the_others() -> None:
    with serving(workers=2) as server:
        slow = socket.create_connection((server.host, server.port))
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        stop = threading.Event()
        sent: list[int] = []

        def trickle() -> None:
            # One header byte at a time, well within the timeout between bytes.
            try:
                while not stop.wait(0.1):
                    slow.sendall(b"X")
                    sent.append(1)
            except OSError:
                return  # the server closed the connection: the point of the test

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            answers = [get(server, "/healthz", timeout=TIMEOUT) for _ in range(20)]
            assert answers == [(200, b"ok\n")] * 20
            # The request never completes, so the server ends it after the timeout
            # even though a byte arrives every 0.1 s.
            assert closed_by_server(slow, TIMEOUT * 4)
            assert len(sent) > TIMEOUT / 0.1 / 2  # it really was still sending
        finally:
            stop.set()
            trickler.join(5)
            slow.close()


def test_keep_alive_reuses_one_connection_and_costs_no_thread_between_requests() -> None:
    with serving(workers=1) as server:
        keep = http.client.HTTPConnection(server.host, server.port, timeout=5)
        keep.request("GET", "/healthz")
        keep.getresponse().read()
        first = keep.sock
        # Between requests the connection waits in the lobby; the one worker is free.
        assert get(server, "/healthz") == (200, b"ok\n")
        for _ in range(3):
            keep.request("GET", "/readyz")
            response = keep.getresponse()
            assert (response.status, response.read()[:9]) == (503, b"starting:")  # fresh Health
        assert keep.sock is first  # never reconnected
        assert first is not None and closed_by_server(first, TIMEOUT * 4)
        keep.close()


def test_pipelined_requests_are_all_answered() -> None:
    with serving() as server, socket.create_connection((server.host, server.port)) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request * 3)
        received = b""
        sock.settimeout(5)
        while received.count(b"ok\n") < 3:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        assert received.count(b"HTTP/1.1 200 OK") == 3


class Gate(Collector):
    """A collector whose scrape waits until ``release`` is set (a slow exposition)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.release.wait(10)
        yield GaugeMetricFamily("predwatch_test_gate", "a slow figure", value=1.0)


def test_a_burst_beyond_the_queue_gets_a_quick_503_and_the_rest_are_answered() -> None:
    gate = Gate()
    registry = CollectorRegistry()
    registry.register(gate)
    with serving(registry, workers=1, queue_size=2) as server:
        results: list[tuple[int, bytes]] = []

        def scrape() -> None:
            results.append(get(server, "/metrics", timeout=10))

        first = threading.Thread(target=scrape)
        first.start()
        assert gate.entered.wait(5)  # the one worker is busy with the slow scrape
        burst = [threading.Thread(target=scrape) for _ in range(8)]
        for thread in burst:
            thread.start()
        # Two wait in the queue; the other six are refused without waiting for the worker.
        deadline = time.monotonic() + 5
        while sum(status == 503 for status, _ in results) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = [body for status, body in results if status == 503]
        assert len(refused) == 6 and not any(status == 200 for status, _ in results)
        assert refused[0].startswith(b"busy:")
        gate.release.set()
        for thread in [first, *burst]:
            thread.join(10)
        assert sorted(status for status, _ in results) == [200] * 3 + [503] * 6
        assert server.counts()["busy"] == 6


class Broken(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("a figure that cannot be computed")


def test_a_failing_exposition_answers_500_and_the_worker_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    registry.register(Broken())
    with serving(registry, workers=1) as server:
        for _ in range(3):
            status, body = get(server, "/metrics")
            assert status == 500 and b"see the service's log" in body
        assert get(server, "/healthz") == (200, b"ok\n")  # the one worker survived
    assert "rendering /metrics failed" in caplog.text


def test_many_concurrent_scrapers_use_only_the_workers() -> None:
    with serving(workers=2, queue_size=200, rate=10_000) as server:
        before = server_threads(server)
        statuses: list[int] = []
        barrier = threading.Barrier(50)

        def scrape() -> None:
            barrier.wait(5)
            for _ in range(5):
                statuses.append(get(server, "/metrics")[0])

        clients = [threading.Thread(target=scrape) for _ in range(50)]
        for thread in clients:
            thread.start()
        peak = before
        while any(t.is_alive() for t in clients):
            peak = max(peak, server_threads(server))
            time.sleep(0.005)
        assert peak == before == 3
        assert statuses == [200] * 250


class Counting(Collector):
    def __init__(self) -> None:
        self.renders = 0

    def collect(self):  # type: ignore[no-untyped-def]
        self.renders += 1
        yield GaugeMetricFamily("predwatch_test_renders", "renders so far", value=self.renders)


def test_scrapes_in_a_burst_share_one_rendering() -> None:
    counting = Counting()
    registry = CollectorRegistry()
    registry.register(counting)
    with serving(registry, rate=10_000, metrics_max_age=1.0) as server:
        bodies = {get(server, "/metrics")[1] for _ in range(30)}
        assert counting.renders == 1 and len(bodies) == 1
        time.sleep(1.1)  # older than metrics_max_age: the next scrape renders again
        assert b"predwatch_test_renders 2.0" in get(server, "/metrics")[1]
    with serving(registry, rate=10_000, metrics_max_age=0) as server:
        for _ in range(3):
            get(server, "/metrics")
        assert counting.renders == 5  # 0: every scrape renders


def test_health_checks_go_before_scrapes_waiting_for_their_turn() -> None:
    with serving(workers=2, rate=2.0) as server:
        answered: list[int] = []

        def scrape() -> None:
            answered.append(get(server, "/metrics", timeout=30)[0])

        scrapers = [threading.Thread(target=scrape) for _ in range(20)]
        for thread in scrapers:
            thread.start()
        # At 2 per second after a burst of 10, the last scrapes wait about 5 s; a health
        # check arriving now is answered before them.
        time.sleep(0.5)
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz")[0] == 503
        assert len(answered) < 20
        for thread in scrapers:
            thread.join(30)
        assert answered == [200] * 20


class Large(Collector):
    """An exposition of about 8 MB: more than the kernel buffers of both ends hold."""

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily("predwatch_test_large", "many series", labels=["i"])
        for i in range(60_000):
            family.add_metric([f"series-{i:06d}-" + "x" * 80], float(i))
        yield family


def test_a_client_that_never_reads_its_answer_frees_the_worker_in_time() -> None:
    registry = CollectorRegistry()
    registry.register(Large())
    with serving(registry, workers=1) as server:
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect((server.host, server.port))
        try:
            reader.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
            reader.settimeout(30)
            assert reader.recv(1, socket.MSG_PEEK)  # the answer is being written
            # The one worker is stuck writing until the timeout, then serves the next.
            assert get(server, "/healthz", timeout=TIMEOUT * 6) == (200, b"ok\n")
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := reader.recv(1 << 20):
                    received += chunk
            assert b"series-059999" not in received  # the write was cut off, not finished
        finally:
            reader.close()
