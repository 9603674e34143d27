"""The deploy files: the Grafana dashboard asks only for what predwatch exports, the Prometheus
files pass promtool, the compose stack is complete and pinned, and its traffic producer works.

No container engine runs here, so the compose file is checked for its structure and for
agreeing with the files it mounts; the producer runs against the embedded broker.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import require_binary
from prometheus_client import CollectorRegistry, generate_latest

from predwatch.config import Settings, load_settings
from predwatch.consumer.files import replay
from predwatch.demo import produce
from predwatch.exporter import Health, ReportCollector

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "predwatch.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "predwatch.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "config" / "prometheus.yml"
PREDWATCH_CONFIG = DEPLOY / "predwatch" / "predwatch.yaml"
RULE_FILES = sorted((DEPLOY / "prometheus").glob("*.yml"))
BUILTIN_SERIES = {"ALERTS"}  # written by Prometheus itself for every alerting rule
DATASOURCE_REF = "${datasource}"


# ------------------------------------------------------------------ what predwatch exports


def exposed_names(exposition: str) -> set[str]:
    """Every series name a Prometheus text exposition can hold, from its ``# TYPE`` lines."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "summary":
            names |= {name, f"{name}_sum", f"{name}_count"}
        elif kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
        else:
            names.add(name)
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The names predwatch serves on /metrics, from a monitor fed the example events."""
    settings = load_settings(ROOT / "examples" / "config.yaml")
    monitor = replay(
        settings, ROOT / "examples" / "predictions.jsonl", ROOT / "examples" / "labels.jsonl"
    )
    monitor.summary()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report, Health()))
    names = exposed_names(generate_latest(registry).decode())
    # Every family is in the exposition even without samples (docs/metrics.md).
    assert {"predwatch_label_delay_seconds_bucket", "predwatch_alerts"} <= names
    return names


@pytest.fixture(scope="module")
def recorded() -> set[str]:
    """The series the recording rules write."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "recording-rules.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


# ------------------------------------------------------------------ metric names in PromQL

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")  # label matchers, and Grafana's ${variable}
_RANGE = re.compile(r"\[[^\[\]]*\]")  # [5m], [$__rate_interval], subqueries [1h:1m]
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not function calls,
    keywords, label names (in matchers and groupings) or strings."""
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENTIFIER.findall(text) if m.lower() not in _KEYWORDS}


@dataclass
class NamesCase:
    expr: str
    names: set[str]


NAMES_CASES = [
    # a function over a counter, with matchers, a range and a grouping
    NamesCase(
        'sum by (model) (rate(a_total{model=~"$model", x="y(z)"}[$__rate_interval]))', {"a_total"}
    ),
    # vector matching: the label lists are not metrics, both sides are
    NamesCase("b * on (instance, rank) group_left (rule) c_info", {"b", "c_info"}),
    # group_left without a label list is a keyword too
    NamesCase("b / ignoring (le) group_left c", {"b", "c"}),
    # numbers, exponents, durations after offset and colons of recording rules
    NamesCase("1 - 2e3 * level:metric:ratio offset 5m > 0.5", {"level:metric:ratio"}),
    # nested calls, a bare function without arguments, and a set operator
    NamesCase(
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m]))) or vector(0) and time()",
        {"h_bucket"},
    ),
    # a name that starts like a function (sum_of) is still a metric
    NamesCase("sum(sum_of_things) unless ALERTS{alertstate='firing'}", {"sum_of_things", "ALERTS"}),
    # label_replace's strings are not names
    NamesCase('label_replace(up, "topic", "predictions", "", "")', {"up"}),
]


@pytest.mark.parametrize("case", NAMES_CASES, ids=lambda c: c.expr[:40])
def test_metric_names_finds_the_selected_series(case: NamesCase) -> None:
    assert metric_names(case.expr) == case.names


def test_metric_names_reads_the_rule_files(exported: set[str], recorded: set[str]) -> None:
    # The rules were checked against predwatch before (test_exporter, promtool unit tests):
    # reading them must find only known names, and many of them.
    found: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found |= metric_names(rule["expr"])
    assert found - exported - recorded == set()
    assert len(found & exported) >= 15


# ------------------------------------------------------------------ the dashboard


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    where: str  # which panel, annotation or variable, for messages
    expr: str
    panel: str | None = None  # the panel's title, for a panel's query


def _label_values_query(definition: str) -> str:
    """The series selector of a variable's ``label_values(selector, label)``."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", definition)
    assert match, f"unexpected variable query {definition!r}"
    return match.group(1)


def queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every PromQL expression of the dashboard: targets, annotations, variable queries."""
    found = [
        Query(f"panel {p['id']} ({p['title']}) {t['refId']}", t["expr"], p["title"])
        for p in _panels(dashboard)
        for t in p.get("targets", [])
    ]
    found += [
        Query(f"annotation {a['name']}", a["expr"])
        for a in dashboard["annotations"]["list"]
        if "expr" in a
    ]
    found += [
        Query(f"variable {v['name']}", _label_values_query(v["definition"]))
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


def test_dashboard_is_a_provisionable_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    # Grafana 11 writes schemaVersion 39 and 40, Grafana 12 41 and later: a current schema
    # is loaded as it is, without migrations.
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] == "predwatch" and dashboard["title"]
    assert dashboard.get("id") is None  # Grafana assigns ids; a provisioned file has none
    assert dashboard["time"]["from"].startswith("now-")


def test_panels_have_unique_ids_places_and_targets(dashboard: dict[str, Any]) -> None:
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {panel['id']} overlap"
                cells[(x, y)] = panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), panel["id"]
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['id']} ({panel['title']}) has no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in targets), panel["title"]


def test_every_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    references = [(p["title"], p["datasource"]) for p in _panels(dashboard) if p["type"] != "row"]
    references += [
        (p["title"], t["datasource"]) for p in _panels(dashboard) for t in p.get("targets", [])
    ]
    references += [(v["name"], v["datasource"]) for v in variables.values() if "datasource" in v]
    references += [
        (a["name"], a["datasource"]) for a in dashboard["annotations"]["list"] if "expr" in a
    ]
    for where, reference in references:
        assert reference == {"type": "prometheus", "uid": DATASOURCE_REF}, where
    # The variables the queries use exist.
    used = {
        name
        for q in queries(dashboard)
        for name in re.findall(r"\$(?:\{)?(\w+)", q.expr)
        if not name.startswith("__")
    }
    assert used <= variables.keys()


def test_every_promql_name_is_one_predwatch_exports(
    dashboard: dict[str, Any], exported: set[str], recorded: set[str]
) -> None:
    known = exported | recorded | BUILTIN_SERIES
    unknown = {
        f"{q.where}: {name}" for q in queries(dashboard) for name in metric_names(q.expr) - known
    }
    assert unknown == set()


def test_the_dashboard_shows_each_part_of_the_story(dashboard: dict[str, Any]) -> None:
    used = {name for q in queries(dashboard) for name in metric_names(q.expr)}
    wanted = {
        # quality per model and window, and across instances
        "predwatch_accuracy_ratio",
        "predwatch_f1_ratio",
        "predwatch_mae",
        "model_version:predwatch_accuracy:ratio_rate1h",
        # estimated against realised
        "predwatch_evaluated_accuracy_ratio",
        "predwatch_estimated_accuracy_ratio",
        # drift per feature
        "predwatch_feature_drift_psi",
        "predwatch_feature_drift_detected",
        # join health
        "predwatch_pending_predictions",
        "predwatch_unlabelled_total",
        "predwatch_orphan_labels_total",
        "predwatch_late_labels_total",
        "predwatch_label_delay_seconds_bucket",
        # consumer lag and throughput
        "predwatch_consumer_lag",
        "predwatch_predictions_total",
        # alerts, predwatch's and Prometheus'
        "predwatch_alerts",
        "ALERTS",
    }
    assert wanted - used == set()


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        require_binary("promtool", "Debian's 'prometheus' package")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, check=False, timeout=60
    )


# Grafana's interval macros, replaced by durations so that promtool can parse the query.
_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def _as_rule_file(found: list[Query], path: Path) -> Path:
    """The expressions as recording rules, for promtool to parse."""
    rules = []
    for i, query in enumerate(found):
        expr = query.expr
        for macro, duration in _MACROS.items():
            expr = expr.replace(macro, duration)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_every_promql_expression_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    found = queries(dashboard)
    result = _promtool("check", "rules", str(_as_rule_file(found, tmp_path / "dashboard.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(found)} rules found" in result.stdout
    # The same path rejects a query that does not parse, so the check above is a real one.
    broken = [Query("broken", "sum(rate(predwatch_labels_total[$__rate_interval])")]
    result = _promtool("check", "rules", str(_as_rule_file(broken, tmp_path / "broken.yml")))
    assert result.returncode != 0


# ------------------------------------------------------------------ Prometheus files


def test_the_rule_glob_holds_rule_files_only_and_passes_promtool() -> None:
    # The documented command: promtool check rules deploy/prometheus/*.yml
    assert {p.name for p in RULE_FILES} == {"alert-rules.yml", "recording-rules.yml"}
    result = _promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_and_loads_the_rules() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


# ------------------------------------------------------------------ Grafana provisioning


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host source of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def test_grafana_provisions_the_datasource_the_dashboard_selects(
    dashboard: dict[str, Any], compose: dict[str, Any]
) -> None:
    provisioning = yaml.safe_load(DATASOURCES.read_text())
    assert provisioning["apiVersion"] == 1
    [source] = provisioning["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    url = urlsplit(source["url"])
    assert url.hostname in compose["services"] and url.port == 9090


def test_grafana_provisions_the_dashboard_folder(compose: dict[str, Any]) -> None:
    provisioning = yaml.safe_load(PROVIDERS.read_text())
    assert provisioning["apiVersion"] == 1
    [provider] = provisioning["providers"]
    assert provider["type"] == "file"
    mounts = _mounts(compose["services"]["grafana"])
    # The provider reads the folder the compose file mounts from deploy/grafana/dashboards.
    host = ROOT / mounts[provider["options"]["path"]]
    assert host.resolve() == DASHBOARD.parent
    for target, source in mounts.items():
        if target.startswith("/etc/grafana/provisioning/"):
            assert (ROOT / source).resolve() in (DATASOURCES, PROVIDERS)


# ------------------------------------------------------------------ docker-compose.yml

SERVICES = {"kafka", "traffic", "predwatch", "prometheus", "alertmanager", "grafana"}
PUBLISHED = {"predwatch": 9108, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_compose_publishes_the_user_facing_ports_on_loopback(compose: dict[str, Any]) -> None:
    for name, port in PUBLISHED.items():
        ports = compose["services"][name]["ports"]
        assert f"127.0.0.1:{port}:{port}" in ports, name
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} widely"


def test_compose_mounts_only_files_of_the_repository(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                assert (ROOT / source).resolve().is_relative_to(ROOT), source
            else:
                assert source in named, f"{name} mounts undeclared volume {source}"
            assert target.startswith("/"), target


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} not pinned"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")


def test_kafka_runs_in_kraft_mode_and_advertises_its_service_name(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    environment = kafka["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in environment)
    assert "PLAINTEXT://kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"].split(",")


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``predwatch check-config`` on a file, with ``--config`` or, where the command takes
    the file as its argument, positionally."""
    command = [sys.executable, "-m", "predwatch.cli", "check-config"]
    result = subprocess.run(
        [*command, "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 2 and result.stderr.startswith("usage:"):
        result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60)
    return result


def test_the_compose_config_of_predwatch_is_valid_and_agrees_with_the_stack(
    compose: dict[str, Any],
) -> None:
    result = _check_config(PREDWATCH_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    settings: Settings = load_settings(PREDWATCH_CONFIG)
    services = compose["services"]
    service = services["predwatch"]
    config_path = service["command"][service["command"].index("--config") + 1]
    assert (ROOT / _mounts(service)[config_path]).resolve() == PREDWATCH_CONFIG
    assert settings.http.port == PUBLISHED["predwatch"]
    # The traffic goes where predwatch reads, and predwatch's alerts reach Alertmanager.
    traffic = produce.build_parser().parse_args(services["traffic"]["command"])
    assert traffic.bootstrap_servers == settings.kafka.bootstrap_servers
    assert (traffic.predictions_topic, traffic.labels_topic) == (
        settings.kafka.predictions_topic,
        settings.kafka.labels_topic,
    )
    assert settings.kafka.bootstrap_servers.split(":")[0] in services
    for sink in settings.alerts.sinks.alertmanager:
        assert urlsplit(sink.url).hostname in services
    # Prometheus scrapes predwatch by its service name and published port.
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for target in c["targets"]
    }
    assert f"predwatch:{settings.http.port}" in targets


def test_prometheus_in_compose_reads_the_checked_config(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    [config_flag] = [a for a in service["command"] if a.startswith("--config.file=")]
    container_path = Path(config_flag.split("=", 1)[1])
    mounts = _mounts(service)
    root = next(t for t in mounts if container_path.is_relative_to(t))
    host = ROOT / mounts[root] / container_path.relative_to(root)
    assert host.resolve() == PROMETHEUS_CONFIG


def test_dockerfile_is_pinned_and_runs_predwatch_unprivileged(compose: dict[str, Any]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)[-1])
    command = json.loads(re.findall(r"^CMD (.+)$", text, re.MULTILINE)[-1])
    assert entrypoint == ["predwatch"]
    assert command == compose["services"]["predwatch"]["command"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
