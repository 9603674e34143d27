"""The deploy stack's moving parts, run for real: the traffic producer against the embedded
broker, and every dashboard query against a real Prometheus scraping a live predwatch."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_binary
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from test_deploy import DASHBOARD, PREDWATCH_CONFIG, RULE_FILES, Query, queries

from predwatch.config import settings_from_mapping
from predwatch.demo import produce
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.simulator import Simulator, Traffic
from predwatch.service import Service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ the traffic producer


def _read_all(broker: EmbeddedBroker, topic: str, partitions: int, count: int) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    records: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=500).values():  # nothing more may come
            records.extend(batch)
    finally:
        consumer.close()
    return records


def test_producer_makes_co_partitioned_topics_and_sends_the_traffic(
    kafka_broker: EmbeddedBroker,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    args = produce.build_parser().parse_args(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--rate",
            "100",
            "--duration",
            "2",
            "--partitions",
            "2",
            "--predictions-topic",
            f"p-{suffix}",
            "--labels-topic",
            f"l-{suffix}",
        ]
    )
    simulator = produce.run(args, threading.Event())
    assert simulator.error is None and simulator.stats.send_errors == 0
    sent = simulator.stats
    assert 120 < sent.predictions < 300  # Poisson arrivals at 100/s for 2 s
    predictions = _read_all(kafka_broker, f"p-{suffix}", 2, sent.predictions)
    labels = _read_all(kafka_broker, f"l-{suffix}", 2, sent.labels)
    assert (len(predictions), len(labels)) == (sent.predictions, sent.labels)
    assert {r.partition for r in predictions} == {0, 1}  # both partitions exist and are used
    ids = {}
    for record in predictions:
        message = json.loads(record.value)
        assert record.key.decode() == message["prediction_id"] and message["model"] == "credit"
        ids[message["prediction_id"]] = record.partition
    for record in labels:
        message = json.loads(record.value)
        # Keyed by prediction id, a label lands in its prediction's partition number.
        assert ids[message["prediction_id"]] == record.partition


def test_producer_refuses_topics_with_different_partition_counts(
    kafka_broker: EmbeddedBroker,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    kafka_broker.create_topics([f"p-{suffix}"], partitions=3)
    kafka_broker.create_topics([f"l-{suffix}"], partitions=1)
    with pytest.raises(produce.ProduceError) as error:
        produce.create_topics(kafka_broker.bootstrap_servers, [f"p-{suffix}", f"l-{suffix}"], 3)
    assert f"p-{suffix}" in str(error.value) and "same count" in str(error.value)


def test_producer_says_in_one_line_when_kafka_is_unreachable() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    command = ["-m", "predwatch.demo.produce", "--bootstrap-servers", address, "--wait", "1"]
    result = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert address in message and "--bootstrap-servers" in message


# ------------------------------------------------------------------ the dashboard, live

# Grafana's macros and the dashboard's variables as Grafana fills them in ("All" is ".*").
GRAFANA = {"$__rate_interval": "15s", "$model": ".*", "$version": ".*", "$window": ".*"}

# Panels that may stay empty after half a minute of the demo's traffic, and why; every other
# panel must show data.
MAY_STAY_EMPTY = {
    "Regression error": "the demo's model is a classifier",
    "Version comparisons": "the demo serves one version",
    "Top failing segments": "the error tree needs thousands of pairs",
}


def _live_settings(broker: EmbeddedBroker, predictions: str, labels: str) -> Any:
    """The compose stack's predwatch config, pointed at the test broker and made quick:
    predictions expire after 3 s without a label, a 6 s window closes often (so estimates
    meet realised figures), drift takes its reference from the first 500 predictions, and
    the accuracy rule fires at once."""
    data = yaml.safe_load(PREDWATCH_CONFIG.read_text())
    data["kafka"] |= {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": f"g-{uuid.uuid4().hex}",
        "predictions_topic": predictions,
        "labels_topic": labels,
        "session_timeout": "3s",  # a group join on the embedded broker takes half of it
    }
    data["http"] = {"host": "127.0.0.1", "port": 0}
    data["join"] = {"label_timeout": "3s", "grace": "1s", "idle_timeout": "5s"}
    data["metrics"]["windows"].append({"name": "6s", "duration": "6s"})
    data["drift"] |= {"reference": {"first": 500}, "min_samples": 200}
    data["alerts"]["evaluate_every"] = "1s"
    data["alerts"]["rules"][0]["for"] = 0
    data["alerts"]["sinks"] = {"log": True}  # no Alertmanager here
    return settings_from_mapping(data, str(PREDWATCH_CONFIG))


class Prometheus:
    """A real Prometheus on a loopback port, scraping ``target`` every second."""

    def __init__(self, directory: Path, target: str) -> None:
        self.port = _free_port()
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {"job_name": "predwatch", "static_configs": [{"targets": [target]}]}
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self._log = (directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self._url("/-/ready"), timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError):
                assert self._process.poll() is None, "prometheus exited; see prometheus.log"
                time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def query(self, expr: str) -> list[Any]:
        """The result of an instant query; an error of Prometheus fails the test."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(self._url("/api/v1/query"), data, timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{expr}: {error.read().decode()}") from None
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def _filled(query: Query) -> str:
    expr = query.expr
    for name, value in GRAFANA.items():
        expr = expr.replace(name, value)
    return expr


@pytest.fixture
def live_predwatch(kafka_broker: EmbeddedBroker) -> Iterator[Service]:
    """predwatch with the stack's config, fed the demo's traffic (concept change after 10 s)."""
    suffix = uuid.uuid4().hex[:8]
    predictions, labels = f"p-{suffix}", f"l-{suffix}"
    produce.create_topics(kafka_broker.bootstrap_servers, [predictions, labels], 2)
    service = Service(_live_settings(kafka_broker, predictions, labels))
    traffic = Traffic(seed=5, rate=100.0, change_at=10.0, label_delay=1.0, train_size=1000)
    simulator = Simulator(traffic, kafka_broker.bootstrap_servers, predictions, labels)
    stop = threading.Event()
    consumer = threading.Thread(target=service.run, args=(stop,), daemon=True)
    consumer.start()
    producer = simulator.start(stop)
    garbage = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    garbage.send(predictions, key=b"x", value=b"not json")  # for the invalid-messages panel
    garbage.close()
    try:
        yield service
    finally:
        stop.set()
        producer.join(15)
        consumer.join(15)


@pytest.fixture
def prometheus_binary() -> None:
    """Skip (or in CI fail) before anything starts when Prometheus is not installed."""
    if shutil.which("prometheus") is None:
        require_binary("prometheus", "Debian's 'prometheus' package")


def test_every_dashboard_query_runs_on_a_real_prometheus_and_shows_data(
    prometheus_binary: None, live_predwatch: Service, tmp_path: Path
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    found = queries(dashboard)
    panels = {p["title"] for p in dashboard["panels"] if p["type"] != "row"}
    assert MAY_STAY_EMPTY.keys() <= panels
    target = live_predwatch.url.removeprefix("http://")
    prometheus = Prometheus(tmp_path, target)
    try:
        prometheus.wait_ready()
        empty = panels - MAY_STAY_EMPTY.keys()
        deadline = time.monotonic() + 90
        while empty and time.monotonic() < deadline:
            time.sleep(2)
            shown = {q.panel for q in found if q.panel and prometheus.query(_filled(q))}
            empty -= shown
        # Every query, those of panels that may stay empty here too, runs without an error.
        for query in found:
            prometheus.query(_filled(query))
    finally:
        prometheus.stop()
    assert empty == set(), "panels without data"
