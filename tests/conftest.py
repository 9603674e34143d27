"""Shared fixtures: one embedded Kafka-compatible broker per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from predwatch.demo.broker import EmbeddedBroker


def require_binary(name: str, package: str) -> None:
    """Skip a test whose binary is missing; in CI (PREDWATCH_REQUIRE_BINARIES=1) fail instead."""
    message = f"{name} is not on PATH; install {package}"
    if os.environ.get("PREDWATCH_REQUIRE_BINARIES") == "1":
        pytest.fail(message + " (CI must run this test, not skip it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A running broker on a free 127.0.0.1 port; its log is in the session's temp dir."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


@pytest.fixture
def make_topic(kafka_broker: EmbeddedBroker, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic whose name is unique to this test: ``make_topic("preds", partitions=3)``.

    Topics are never deleted; the broker is in-memory and lives only for the session.
    """

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        kafka_broker.create_topics([name], partitions=partitions)
        return name

    return make


@pytest.fixture
def unique_group() -> Callable[[], str]:
    """Return a function giving a fresh consumer-group id on every call."""
    return lambda: f"g-{uuid.uuid4().hex}"
