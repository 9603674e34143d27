"""Bounded serving of TCP connections: idle sockets cost no thread, busy ones a bounded pool.

One thread (the *lobby*) accepts connections and watches every idle one with
a selector; a connection goes to a worker only once its request's first bytes
have arrived, and back to the lobby between keep-alive requests. So:

- threads are ``workers`` plus the lobby, however many sockets are open;
- a connection that sends nothing is closed after ``idle_timeout`` seconds;
- at most ``max_idle`` connections wait; a new one beyond that closes the one
  idle longest (a flood of idle sockets cannot lock a health check out);
- requests wait for a worker in a ``pacing.RequestQueue``: ``urgent`` ones
  (health checks, told apart by their first bytes) go first; the others are
  taken at most ``rate`` per second, so scrapers hammering the endpoint cost a
  bounded share of the CPU; at most ``queue_size`` of each kind wait, and
  beyond that a request is answered ``503`` at once and its connection closed.

The worker's ``serve(sock, address)`` reads and answers requests with its own
timeouts and returns True to keep the connection (it goes back to the lobby)
or False to close it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable

from predwatch.exporter.pacing import RequestQueue

log = logging.getLogger(__name__)

Address = tuple[str, int] | tuple[str, int, int, int]
Serve = Callable[[socket.socket, Address], bool]
Urgent = Callable[[bytes], bool]  # from a request's first bytes: answer before the others?

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 44\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    b"busy: too many requests at once; retry soon\n"
)
_TICK = 0.25  # seconds between checks for idle connections and for a stop
_HEAD = 16  # bytes of a request's start that tell an urgent one


def close(sock: socket.socket) -> None:
    """Close ``sock``, whatever state the peer left it in."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _peek(sock: socket.socket) -> bytes:
    """The first bytes waiting on ``sock``, left there; b"" when the peer hung up. Never blocks."""
    sock.setblocking(False)
    try:
        return sock.recv(_HEAD, socket.MSG_PEEK)
    except OSError:  # reset, or nothing after all
        return b""


class ConnectionPool:
    """Serves connections accepted on ``listener`` with ``workers`` threads; see the module."""

    def __init__(
        self,
        listener: socket.socket,
        serve: Serve,
        *,
        urgent: Urgent = lambda head: False,
        workers: int = 4,
        max_idle: int = 256,
        queue_size: int = 256,
        rate: float = 50.0,
        idle_timeout: float = 5.0,
        name: str = "predwatch-http",
    ) -> None:
        if workers < 1 or max_idle < 1 or idle_timeout <= 0:
            raise ValueError("workers, max_idle and idle_timeout must be positive")
        self._listener = listener
        self._serve = serve
        self._urgent = urgent
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._ready: RequestQueue[tuple[socket.socket, Address]] = RequestQueue(queue_size, rate)
        self._returned: queue.SimpleQueue[tuple[socket.socket, Address]] = queue.SimpleQueue()
        self._idle: dict[socket.socket, tuple[Address, float]] = {}  # oldest first
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)  # a full pipe already means "wake up"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._counts = {"accepted": 0, "idle_closed": 0, "evicted": 0, "busy": 0}
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._threads = [threading.Thread(target=self._lobby, name=f"{name}-lobby", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        """Start the lobby and the workers."""
        for thread in self._threads:
            thread.start()

    def counts(self) -> dict[str, int]:
        """Connections accepted, closed idle, evicted for room, and requests refused busy."""
        with self._lock:
            return dict(self._counts)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    # --- the lobby: accept, wait for bytes, hand over ------------------------------------------

    def _lobby(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._lobby_round()
                except Exception:  # the lobby must outlive any one connection: say it, go on
                    log.exception("the HTTP lobby failed on a connection; serving on")
        finally:
            for sock in list(self._idle):
                self._selector.unregister(sock)
                close(sock)
            self._idle.clear()

    def _lobby_round(self) -> None:
        for key, _ in self._selector.select(self._next_timeout()):
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj is self._wake_read:
                self._take_returned()
            else:
                self._dispatch(key.fileobj)  # type: ignore[arg-type]
        self._close_idle(time.monotonic())

    def _next_timeout(self) -> float:
        if not self._idle:
            return _TICK
        oldest_deadline = next(iter(self._idle.values()))[1]
        return max(0.0, min(_TICK, oldest_deadline - time.monotonic()))

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. out of file descriptors: say it, keep serving
                log.warning("cannot accept an HTTP connection: %s", error)
                return
            self._count("accepted")
            self._wait(sock, address)

    def _wait(self, sock: socket.socket, address: Address) -> None:
        """Let ``sock`` wait for its next request, making room if the lobby is full."""
        while len(self._idle) >= self._max_idle:
            oldest = next(iter(self._idle))
            self._count("evicted")  # before the close a client could see
            self._drop(oldest)
        try:
            self._selector.register(sock, selectors.EVENT_READ)
        except (OSError, ValueError):  # closed meanwhile: nothing to wait for
            close(sock)
            return
        self._idle[sock] = (address, time.monotonic() + self._idle_timeout)

    def _drop(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._idle[sock]
        close(sock)

    def _take_returned(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_read.recv(4096)
        while True:
            try:
                sock, address = self._returned.get_nowait()
            except queue.Empty:
                return
            self._wait(sock, address)

    def _dispatch(self, sock: socket.socket) -> None:
        entry = self._idle.pop(sock, None)
        if entry is None:  # evicted earlier in this same round
            return
        address, _ = entry
        self._selector.unregister(sock)
        head = _peek(sock)
        if not head:  # the client hung up: nothing to answer
            close(sock)
            return
        if not self._ready.put((sock, address), urgent=self._urgent(head)):
            self._count("busy")  # before the answer a client could see
            with contextlib.suppress(OSError):
                sock.send(BUSY)  # short enough for any socket buffer; never waits
            close(sock)

    def _close_idle(self, now: float) -> None:
        while self._idle:
            sock, (_, deadline) = next(iter(self._idle.items()))
            if deadline > now:
                return
            self._count("idle_closed")
            self._drop(sock)

    # --- the workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._ready.get()
            if item is None:
                return
            sock, address = item
            try:
                keep = self._serve(sock, address)
            except OSError as error:  # the peer reset or timed out: nothing left to answer
                log.debug("HTTP connection from %s ended: %s", address[0], error)
                keep = False
            except Exception:  # a bug in one answer must not cost a worker: say it, go on
                log.exception("answering an HTTP request failed")
                keep = False
            if keep and not self._stopping.is_set():
                self._returned.put((sock, address))
                with contextlib.suppress(OSError):
                    self._wake_write.send(b"\0")
            else:
                close(sock)

    # --- stopping --------------------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close idle connections, let workers finish, close the listener."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")
        self._threads[0].join(max(0.0, deadline - time.monotonic()))
        self._ready.close()  # each worker ends after the request in hand
        for thread in self._threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sock, _ in self._ready.drain():  # still queued: closed unanswered
            close(sock)
        while True:
            try:
                close(self._returned.get_nowait()[0])
            except queue.Empty:
                break
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()
