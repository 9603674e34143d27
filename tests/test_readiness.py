"""/readyz during a broker outage: 503 with the reason, said once, 200 again when it returns.

The broker here is a separate embedded broker (not the session's), stopped and
started again on the same port.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from alertmanager_fixture import free_port

from predwatch.config import Settings
from predwatch.consumer.reachability import Reachability
from predwatch.demo.broker import EmbeddedBroker
from predwatch.service import Service

TOPICS = ["outage-predictions", "outage-labels"]


@dataclass
class Case:
    readings: list[tuple[int | None, float]]
    changes: list[bool | None]
    why: str


CASES = [
    Case([(2, 0.0), (2, 10.0)], [None, None], "connections open: nothing to say"),
    Case([(0, 0.0), (0, 2.9), (1, 3.0)], [None, None, None], "a reconnect within the grace"),
    Case([(0, 0.0), (0, 3.0), (0, 60.0)], [None, False, None], "an outage, said once"),
    Case([(0, 0.0), (0, 3.0), (2, 4.0), (2, 5.0)], [None, False, True, None], "and its end"),
    Case([(None, 0.0), (None, 30.0)], [None, None], "metrics off: no judgement"),
    Case([(0, 0.0), (None, 2.0), (0, 3.0)], [None, None, False], "unknown readings skip"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_reachability_changes(case: Case) -> None:
    reachability = Reachability(after=3.0)
    assert [reachability.observe(n, t) for n, t in case.readings] == case.changes


def readyz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.2)


def said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "predwatch.consumer.kafka" and text in r.getMessage()
    ]


def test_readyz_turns_503_while_the_broker_is_gone_and_200_when_it_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="predwatch.consumer.kafka")
    port = free_port()
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "first.log").start()
    stop = threading.Event()
    runner: threading.Thread | None = None
    try:
        broker.create_topics(TOPICS, partitions=1)
        settings = Settings.model_validate(
            {
                "models": {"fraud": {"task": "binary"}},
                "kafka": {
                    "bootstrap_servers": broker.bootstrap_servers,
                    "group_id": "outage",
                    "predictions_topic": TOPICS[0],
                    "labels_topic": TOPICS[1],
                    "session_timeout": "3s",
                },
                "http": {"port": 0},
            }
        )
        service = Service(settings)
        runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
        runner.start()
        wait_for(lambda: readyz(service.url)[0] == 200, 30, "the service to be ready")

        broker.stop()
        wait_for(lambda: readyz(service.url)[0] == 503, 20, "/readyz to say 503")
        status, reason = readyz(service.url)
        assert status == 503
        assert f"cannot reach Kafka at 127.0.0.1:{port}" in reason
        time.sleep(3)  # more checks while it is down: nothing more is said
        assert len(said(caplog, "cannot reach Kafka")) == 1

        broker = EmbeddedBroker(port=port, log_path=tmp_path / "second.log").start()
        broker.create_topics(TOPICS, partitions=1)  # the broker keeps nothing in memory
        wait_for(lambda: readyz(service.url)[0] == 200, 60, "/readyz to say 200 again")
        assert readyz(service.url)[1].startswith("consuming outage-predictions")
        assert len(said(caplog, "cannot reach Kafka")) == 1
        # Said once at the start and once on the way back.
        assert len(said(caplog, "consuming outage-predictions")) == 2
    finally:
        stop.set()
        if runner is not None:
            runner.join(20)
        broker.stop()
