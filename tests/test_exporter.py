"""The Prometheus exporter: /metrics says exactly what the monitor's report says."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_binary
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from predwatch.catalogue import CATALOGUE, figures_table
from predwatch.config import HttpSettings, Settings
from predwatch.consumer.files import replay
from predwatch.exporter import (
    ExporterError,
    Health,
    MetricsServer,
    ReportCollector,
    start_http_server,
)
from predwatch.monitor import Monitor
from predwatch.pipeline.builder import ReportBuilder
from predwatch.pipeline.quality import GAUGES, NOT_METRICS

ROOT = Path(__file__).resolve().parents[1]
NOW = 10_000.0  # the processing time at which the collector reads watermarks

SETTINGS = Settings.model_validate(
    {
        "models": {
            "fraud": {"task": "binary", "positive_label": "yes"},
            "species": {"task": "multiclass"},
            "price": {"task": "regression"},
        },
        "join": {"label_timeout": 600, "grace": 30, "idle_timeout": 60},
        "metrics": {
            "windows": [{"name": "last_50", "events": 50}, {"name": "10m", "duration": 600}],
            "tags": ["region"],
        },
    }
)


def _events(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions of three models, labels delayed at random, some never; a few bad events."""
    rng = random.Random(seed)
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(600):
        t = 1000.0 + i * 2
        model = ("fraud", "species", "price")[i % 3]
        event: dict[str, Any] = {
            "prediction_id": f"p{i}",
            "model": model,
            "timestamp": t,
            "model_version": rng.choice(["v1", "v2"]),
            "tags": {"region": rng.choice(["eu", "us", "apac"])},
        }
        if model == "fraud":
            score = rng.random()
            event |= {"prediction": "yes" if score > 0.5 else "no", "score": score}
            label: Any = "yes" if rng.random() < score * 0.8 + 0.1 else "no"
        elif model == "species":
            probabilities = {c: rng.random() + 0.01 for c in ("cat", "dog", "bird")}
            event |= {
                "prediction": max(probabilities, key=probabilities.__getitem__),
                "probabilities": probabilities,
            }
            label = rng.choice(["cat", "dog", "bird"])
        else:
            label = rng.choice([0.0, rng.uniform(-50, 150)])
            event["prediction"] = label + rng.gauss(0, 10)
        predictions.append(event)
        if rng.random() < 0.85:
            labels.append(
                {"prediction_id": f"p{i}", "timestamp": t + rng.uniform(1, 400), "label": label}
            )
    predictions.append(dict(predictions[10]))  # a duplicate prediction
    labels.append({"prediction_id": "nobody", "timestamp": 1500.0, "label": "yes"})  # orphan
    labels.sort(key=lambda e: e["timestamp"])
    labels.append(dict(labels[5]))  # a duplicate label
    predictions.append({"prediction_id": "x", "model": "spam", "timestamp": 1200, "prediction": 1})
    return predictions, labels


def _write(path: Path, events: list[dict[str, Any]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + extra)
    return path


MATCHED: list[Any] = []  # every pair the module's monitor matched, recorded by a tap


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Monitor:
    directory = tmp_path_factory.mktemp("events")
    predictions, labels = _events()
    monitor = Monitor(SETTINGS)
    monitor.taps.append(lambda batch: MATCHED.extend(batch.result.matched))
    replay(
        SETTINGS,
        _write(directory / "predictions.jsonl", predictions, "not json\n"),
        _write(directory / "labels.jsonl", labels),
        monitor,
    )
    monitor.summary(now=NOW)
    return monitor


@pytest.fixture(scope="module")
def health() -> Health:
    health = Health(clock=lambda: 1_700_000_000.0)
    health.set_lag("predictions", 0, 42)
    health.set_lag("labels", 0, 7)
    health.polled()
    return health


@pytest.fixture(scope="module")
def registry(monitor: Monitor, health: Health) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report, health))
    return registry


@pytest.fixture(scope="module")
def server(registry: CollectorRegistry, health: Health) -> Iterator[MetricsServer]:
    with start_http_server(HttpSettings(port=0), registry, health) as running:
        yield running


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _scopes(summary: dict[str, Any]) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """(labels, metrics) for every model, version, window and tag value of a summary."""
    for model, versions in summary["models"].items():
        for version, entry in versions.items():
            scopes = [("", "", entry)] + [
                (tag, value, scope)
                for tag, values in entry.get("tags", {}).items()
                for value, scope in values.items()
            ]
            for tag, value, scope in scopes:
                windows = {"cumulative": scope["cumulative"], **scope["windows"]}
                for window, metrics in windows.items():
                    labels = {
                        "model": model,
                        "version": version,
                        "window": window,
                        "tag": tag,
                        "tag_value": value,
                    }
                    yield labels, metrics


def test_counts_equal_the_summary(monitor: Monitor, registry: CollectorRegistry) -> None:
    join = monitor.summary()["join"]
    value = registry.get_sample_value
    for name, key in [
        ("predwatch_labels_total", "labels"),
        ("predwatch_orphan_labels_total", "orphan_labels"),
        ("predwatch_late_labels_total", "late_labels"),
        ("predwatch_pending_predictions", "pending_predictions"),
        ("predwatch_pending_labels", "pending_labels"),
    ]:
        assert value(name) == join[key], name
    for name, key in [
        ("predwatch_predictions_total", "predictions"),
        ("predwatch_joined_total", "matched"),
        ("predwatch_unlabelled_total", "unlabelled"),
    ]:
        total = sum(
            value(name, {"model": m, "version": v}) or 0
            for m in SETTINGS.models
            for v in ("v1", "v2")
        )
        assert total == join[key], name
    assert value("predwatch_duplicates_total", {"kind": "prediction"}) == 1
    assert value("predwatch_duplicates_total", {"kind": "label"}) == 1
    assert (
        value("predwatch_invalid_events_total", {"topic": "predictions", "reason": "unknown_model"})
        == 1
    )
    assert (
        value("predwatch_invalid_events_total", {"topic": "predictions", "reason": "not_json"}) == 1
    )
    assert join["matched"] > 300 and join["unlabelled"] > 30 and join["orphan_labels"] == 1


def test_quality_gauges_are_the_summary_floats(
    monitor: Monitor, registry: CollectorRegistry
) -> None:
    checked = 0
    for labels, metrics in _scopes(monitor.summary()):
        for key, expected in metrics.items():
            if key in NOT_METRICS:
                continue
            name = GAUGES[key]
            assert registry.get_sample_value(name, labels) == expected, (name, labels)
            checked += expected is not None
    assert checked > 400


def test_every_summary_metric_has_a_gauge(monitor: Monitor) -> None:
    keys = {key for _, metrics in _scopes(monitor.summary()) for key in metrics}
    assert keys - NOT_METRICS == set(GAUGES)


def test_sufficient_statistics_give_the_cumulative_metrics(
    monitor: Monitor, registry: CollectorRegistry
) -> None:
    def value(name: str, labels: dict[str, str]) -> float:
        result = registry.get_sample_value(name, labels)
        assert result is not None, (name, labels)
        return result

    for labels, metrics in _scopes(monitor.summary()):
        if labels.pop("window") != "cumulative":
            continue
        n = value("predwatch_scored_pairs_total", labels)
        assert n == metrics["count"]
        if "accuracy" in metrics:
            assert value("predwatch_correct_total", labels) / n == pytest.approx(
                metrics["accuracy"], abs=1e-9
            )
            cells = [
                s
                for s in _samples(registry, "predwatch_confusion_total")
                if all(s.labels[k] == v for k, v in labels.items())
            ]
            assert sum(s.value for s in cells) == n
        if "precision" in metrics:
            tp = value("predwatch_true_positives_total", labels)
            predicted = value("predwatch_predicted_positives_total", labels)
            actual = value("predwatch_actual_positives_total", labels)
            assert tp / predicted == pytest.approx(metrics["precision"], abs=1e-9)
            assert tp / actual == pytest.approx(metrics["recall"], abs=1e-9)
            assert 2 * tp / (predicted + actual) == pytest.approx(metrics["f1"], abs=1e-9)
            assert value("predwatch_brier_score_total", labels) / value(
                "predwatch_brier_pairs_total", labels
            ) == pytest.approx(metrics["brier"], abs=1e-9)
        if metrics.get("log_loss") is not None:
            assert value("predwatch_log_loss_total", labels) / value(
                "predwatch_log_loss_pairs_total", labels
            ) == pytest.approx(metrics["log_loss"], abs=1e-9)
        if "mae" in metrics:
            assert value("predwatch_absolute_error_total", labels) / n == pytest.approx(
                metrics["mae"], abs=1e-9
            )
            assert (value("predwatch_squared_error_total", labels) / n) ** 0.5 == pytest.approx(
                metrics["rmse"], abs=1e-9
            )
            assert value("predwatch_net_error", labels) / n == pytest.approx(
                metrics["bias"], abs=1e-9
            )
            assert value("predwatch_relative_error_total", labels) / value(
                "predwatch_relative_error_pairs_total", labels
            ) == pytest.approx(metrics["mape"], abs=1e-9)


def _samples(registry: CollectorRegistry, name: str) -> list[Any]:
    return [s for family in registry.collect() for s in family.samples if s.name == name]


def test_label_delay_histogram(monitor: Monitor, registry: CollectorRegistry) -> None:
    # Expected values straight from the pairs: label time minus prediction time.
    delays: dict[str, list[float]] = {}
    for prediction, label in MATCHED:
        delays.setdefault(prediction.model, []).append(label.timestamp - prediction.timestamp)
    for model, values in delays.items():
        labels = {"model": model}
        count = registry.get_sample_value("predwatch_label_delay_seconds_count", labels)
        assert count == len(values)
        total = registry.get_sample_value("predwatch_label_delay_seconds_sum", labels)
        assert total == pytest.approx(sum(max(v, 0.0) for v in values))
        under_a_minute = registry.get_sample_value(
            "predwatch_label_delay_seconds_bucket", {**labels, "le": "60.0"}
        )
        assert under_a_minute == sum(1 for v in values if v <= 60.0)
    assert sum(len(v) for v in delays.values()) == monitor.counts.matched


def test_progress_and_health(monitor: Monitor, registry: CollectorRegistry) -> None:
    value = registry.get_sample_value
    assert value("predwatch_consumer_lag", {"topic": "predictions", "partition": "0"}) == 42
    assert value("predwatch_ready") == 0
    assert value("predwatch_last_poll_timestamp_seconds") == 1_700_000_000.0
    assert value("predwatch_last_event_timestamp_seconds") == monitor.last_event_time
    mark = value("predwatch_watermark_timestamp_seconds", {"partition": "0"})
    assert mark is not None and mark <= NOW


def test_scrape_does_not_change_the_join(tmp_path: Path) -> None:
    # Reading a watermark far in the future must not expire what the join still holds.
    predictions, labels = _events()
    monitor = replay(
        SETTINGS, _write(tmp_path / "p.jsonl", predictions), _write(tmp_path / "l.jsonl", labels)
    )
    monitor.summary(now=1e12)  # a report with watermarks read far in the future
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    pending = monitor.counts.pending_predictions
    generate_latest(registry)
    monitor.process(0, [], [], now=monitor.last_event_time)
    assert pending > 0 and monitor.counts.pending_predictions == pending


def test_a_scrape_reads_the_last_report_and_changes_nothing(monitor: Monitor) -> None:
    lock = threading.Lock()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    report = monitor.report
    with lock:  # the consumer's lock is held: a scrape does not wait for it
        scrape = threading.Thread(target=generate_latest, args=(registry,))
        scrape.start()
        scrape.join(5)
        assert not scrape.is_alive()
    first = generate_latest(registry)
    assert generate_latest(registry) == first and monitor.report is report


def test_every_catalogued_family_is_exposed(registry: CollectorRegistry) -> None:
    exposed = {family.name for family in registry.collect()}
    names = {name.removesuffix("_total") for name in CATALOGUE}
    assert exposed == names


def test_http_endpoints(server: MetricsServer, registry: CollectorRegistry, health: Health) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    status, text = _get(server.url + "/metrics")
    assert status == 200
    served = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    local = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
    }
    assert served.keys() == local.keys()
    assert all(served[key] == pytest.approx(local[key], rel=1e-15) for key in local)
    assert _get(server.url + "/healthz") == (200, "ok\n")
    assert _get(server.url + "/readyz") == (503, "starting: the source has not connected yet\n")
    health.set_ready(True, "consuming")
    try:
        assert _get(server.url + "/readyz") == (200, "consuming\n")
    finally:
        health.set_ready(False, "stopped")
    assert _get(server.url + "/nothing")[0] == 404


def test_port_in_use_is_one_clear_sentence(server: MetricsServer) -> None:
    with pytest.raises(ExporterError) as error:
        start_http_server(HttpSettings(port=server.port), CollectorRegistry(), Health())
    message = str(error.value)
    assert f"127.0.0.1:{server.port}" in message and "already in use" in message
    assert "http.port" in message and "\n" not in message


def test_shutdown_frees_the_port() -> None:
    running = start_http_server(HttpSettings(port=0), CollectorRegistry(), Health())
    port = running.port
    running.shutdown()
    running.shutdown()  # twice is harmless
    again = start_http_server(HttpSettings(port=port), CollectorRegistry(), Health())
    again.shutdown()


def _exposition(server: MetricsServer) -> str:
    return _get(server.url + "/metrics")[1]


def test_docs_list_exactly_the_exposed_metrics(server: MetricsServer) -> None:
    exposed = set(re.findall(r"^# TYPE (\S+) ", _exposition(server), re.MULTILINE))
    documented = set(
        re.findall(
            r"^\| `(predwatch_\w+)` \|", (ROOT / "docs/metrics.md").read_text(), re.MULTILINE
        )
    )
    assert documented - exposed == set(), "documented but not exposed"
    assert exposed - documented == set(), "exposed but not documented in docs/metrics.md"


def test_docs_give_each_family_the_catalogue_type_and_labels() -> None:
    text = (ROOT / "docs/metrics.md").read_text()
    rows = re.findall(r"^\| `(predwatch_\w+)` \| (\w+) \| ([^|]*) \|", text, re.MULTILINE)
    assert rows
    for name, kind, labels in rows:
        spec = CATALOGUE.get(name) or CATALOGUE[name.removesuffix("_total")]
        names = re.sub(r"\s*\(.*?\)", "", labels).split(",")  # without the value lists
        assert (kind, [n.strip() for n in names if n.strip()]) == (spec.kind, list(spec.labels)), (
            name
        )
    assert figures_table() in text, "docs/metrics.md: the table of figures is not the catalogue's"


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        require_binary("promtool", "Debian's 'prometheus' package")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


def test_promtool_accepts_the_exposition(server: MetricsServer) -> None:
    result = _promtool("check", "metrics", stdin=_exposition(server))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_recording_rules() -> None:
    result = _promtool("check", "rules", str(ROOT / "deploy/prometheus/recording-rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# Cumulative recording rules: name -> (numerator terms, denominator terms, factor, square root).
FLEET_RULES: dict[str, tuple[list[str], list[str], float, bool]] = {
    "model_version:predwatch_accuracy:ratio": (["correct"], ["scored_pairs"], 1.0, False),
    "model_version:predwatch_precision:ratio": (
        ["true_positives"],
        ["predicted_positives"],
        1.0,
        False,
    ),
    "model_version:predwatch_recall:ratio": (["true_positives"], ["actual_positives"], 1.0, False),
    "model_version:predwatch_f1:ratio": (
        ["true_positives"],
        ["predicted_positives", "actual_positives"],
        2.0,
        False,
    ),
    "model_version:predwatch_log_loss:mean": (["log_loss"], ["log_loss_pairs"], 1.0, False),
    "model_version:predwatch_absolute_error:mean": (
        ["absolute_error"],
        ["scored_pairs"],
        1.0,
        False,
    ),
    "model_version:predwatch_squared_error:mean_sqrt": (
        ["squared_error"],
        ["scored_pairs"],
        1.0,
        True,
    ),
    "model_version:predwatch_net_error:mean": (["net_error"], ["scored_pairs"], 1.0, False),
    "model_version:predwatch_label_coverage:ratio": (
        ["joined"],
        ["joined", "unlabelled", "evicted"],
        1.0,
        False,
    ),
}


def _fleet_value(rule: str, totals: dict[str, float]) -> float | None:
    """What a rule must give from the statistics summed over instances; None for no sample."""
    numerator, denominator, factor, root = FLEET_RULES[rule]

    def total(terms: list[str]) -> float | None:
        names = [t if t == "net_error" else f"{t}_total" for t in terms]
        if any("predwatch_" + n not in totals for n in names):
            return None
        return sum(totals["predwatch_" + n] for n in names)

    top, bottom = total(numerator), total(denominator)
    if top is None or not bottom:
        return None
    value = factor * top / bottom
    return value**0.5 if root else value


def test_recording_rules_aggregate_two_instances(tmp_path: Path) -> None:
    # Two instances split the ids between them; the rules must give the ratio of the sums.
    predictions, labels = _events()
    inputs: list[dict[str, str]] = []
    sums: dict[tuple[str, str], dict[str, Any]] = {}
    rules_text = (ROOT / "deploy/prometheus/recording-rules.yml").read_text()
    names = set(re.findall(r"\(\s*(predwatch_\w+)\{tag=\"\"\}", rules_text))
    names |= {"predwatch_joined_total", "predwatch_unlabelled_total", "predwatch_evicted_total"}
    for instance, parity in (("a", 0), ("b", 1)):

        def mine(events: list[dict[str, Any]], parity: int = parity) -> list[dict[str, Any]]:
            return [e for e in events if sum(map(ord, e["prediction_id"])) % 2 == parity]

        monitor = replay(
            SETTINGS,
            _write(tmp_path / f"p{instance}", mine(predictions)),
            _write(tmp_path / f"l{instance}", mine(labels)),
        )
        monitor.summary(now=NOW)
        registry = CollectorRegistry()
        registry.register(ReportCollector(lambda report=monitor.report: report))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name not in names or sample.labels.get("tag", ""):
                    continue
                labels_ = {**sample.labels, "instance": instance}
                selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels_.items()))
                inputs.append(
                    {
                        "series": f"{sample.name}{{{selector}}}",
                        "values": f"{float(sample.value)!r}+0x5",
                    }
                )
                key = (sample.labels["model"], sample.labels["version"])
                totals = sums.setdefault(key, {})
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    tests = []
    for rule in FLEET_RULES:
        expected = []
        for (model, version), totals in sorted(sums.items()):
            value = _fleet_value(rule, totals)
            if value is not None:
                expected.append(
                    {"labels": f'{rule}{{model="{model}",version="{version}"}}', "value": value}
                )
        assert expected, rule
        tests.append({"expr": rule, "eval_time": "2m", "exp_samples": expected})
    unit = tmp_path / "rules-test.yml"
    unit.write_text(
        json.dumps(
            {  # JSON is YAML
                "rule_files": [str(ROOT / "deploy/prometheus/recording-rules.yml")],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": tests}],
            }
        )
    )
    result = _promtool("test", "rules", str(unit))
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_estimate_and_calibration_match_the_figures(tmp_path: Path) -> None:
    from predwatch.demo.synthetic import generate, write_jsonl

    settings = Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            "metrics": {"windows": [{"name": "last_2000", "events": 2000}]},
            "drift": {"reference": {"first": 1000}, "min_samples": 200},
        }
    )
    predictions, labels = generate(6000, seed=5, label_delay=30.0)
    for p in predictions[4000:]:  # a covariate shift the reference never saw
        p["features"]["amount"] *= 5
    monitor = replay(settings, *write_jsonl(tmp_path, predictions, labels))
    figures = monitor.summary()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    checked = 0
    for version, entry in figures["models"]["fraud"].items():
        amount = entry["drift"]["data"]["last_2000"]["amount"]
        labels_ = {"model": "fraud", "version": version, "window": "last_2000", "feature": "amount"}
        assert registry.get_sample_value("predwatch_feature_drift_psi", labels_) == amount["psi"]
        assert registry.get_sample_value("predwatch_feature_drift_detected", labels_) == float(
            amount["drift"]
        )
        pending = entry["estimated"]["pending"]["accuracy"]
        assert (
            registry.get_sample_value(
                "predwatch_estimated_accuracy_ratio",
                {"model": "fraud", "version": version, "window": "pending"},
            )
            == pending
        )
        ece = entry["calibration"]["cumulative"]["ece"]
        assert (
            registry.get_sample_value(
                "predwatch_calibration_error_ratio",
                {"model": "fraud", "version": version, "window": "cumulative"},
            )
            == ece
        )
        concept = entry["drift"]["concept"]
        assert (
            registry.get_sample_value(
                "predwatch_concept_drift_total",
                {"model": "fraud", "version": version, "detector": "adwin"},
            )
            == concept["count"]
        )
        checked += 1
    assert checked == 2
    # The shift is large: the majority version's amount drifts in its last 2000.
    assert figures["models"]["fraud"]["v3"]["drift"]["data"]["last_2000"]["amount"]["drift"]


def test_segments_and_comparisons_match_the_figures(tmp_path: Path) -> None:
    """Errors injected in one segment surface as the rank-1 segment, in /metrics as in the
    summary; two versions of different accuracy get a comparison."""
    from predwatch.demo.synthetic import generate, write_jsonl

    rng = random.Random(3)
    predictions, labels = generate(30000, seed=9, unlabelled=0.0)
    truth = {x["prediction_id"]: x for x in labels}
    for p in predictions:
        f = p["features"]
        inside = f["country"] == "BR" and f["amount"] > 60
        wrong = rng.random() < (0.5 if inside else 0.05)
        truth[p["prediction_id"]]["label"] = 1 - p["prediction"] if wrong else p["prediction"]
    settings = Settings.model_validate(
        {"models": {"fraud": {"task": "binary"}}, "diagnostics": {"sample_rate": 0.3}}
    )
    monitor = replay(settings, *write_jsonl(tmp_path, predictions, labels))
    figures = monitor.summary()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    [top, *_] = figures["models"]["fraud"]["v3"]["segments"]
    assert "country" in top["rule"] and "amount" in top["rule"]
    labels_ = {"model": "fraud", "version": "v3", "rank": "1"}
    assert registry.get_sample_value("predwatch_segment_error_ratio", labels_) == top["value"]
    assert (
        registry.get_sample_value(
            "predwatch_segment_info", {**labels_, "segment_id": top["id"], "rule": top["rule"]}
        )
        == 1
    )
    [comparison] = [c for c in figures["comparisons"] if len(c["groups"]) == 2]
    baseline, candidate = comparison["groups"]
    assert (
        registry.get_sample_value(
            "predwatch_version_comparison_p_value",
            {
                "model": "fraud",
                "metric": comparison["metric"],
                "baseline": baseline,
                "candidate": candidate,
            },
        )
        == comparison["p_value"]
    )


def test_a_lone_surrogate_in_a_version_never_breaks_the_exposition() -> None:
    builder = ReportBuilder(clock=0.0)
    for version in ("v\ud800", "v\udfff", "v1"):
        builder.add("predwatch_joined_total", ("fraud", version), 1)
    report = builder.build()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: report))
    text = generate_latest(registry).decode("utf-8")  # raised on a lone surrogate before
    versions = [
        sample.labels["version"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name == "predwatch_joined"
    ]
    assert len(set(versions)) == 3 and "v1" in versions  # two bad versions stay apart
    assert all("\ud800" not in v and "\udfff" not in v for v in versions)
