"""The status page in a real browser: Debian's chromium, headless, renders what a person sees.

The live test runs the service against the embedded broker, fed by the demo's simulator
whose world changes a few seconds in, with a rule that fires when accuracy falls; the
page at ``/`` must show the model's card, charts drawn from the data and the firing
alert. Its screenshot is kept in ``tests/artifacts/status.png``. The other tests load
pages written from known documents (``replay --html`` and a fixture with a history).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from alertmanager_fixture import wait_for
from conftest import require_binary
from test_status_document import HISTORY, report

from predwatch.config import HttpSettings, settings_from_mapping
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.simulator import Simulator, Traffic
from predwatch.exporter.health import Health
from predwatch.exporter.page import render_page
from predwatch.exporter.server import ExporterError, start_http_server
from predwatch.exporter.status import status_document
from predwatch.service import Service, bearer_token

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
BROWSER_TIMEOUT = 90.0


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Dom(HTMLParser):
    """Every element of a dumped DOM, with the text directly and indirectly inside it."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in {"meta", "link", "br", "img", "input"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and (cls is None or cls in e.classes())]


def browser() -> str:
    path = shutil.which("chromium")
    if path is None:
        require_binary("chromium", "Debian's 'chromium' package")
    assert path is not None
    return path


def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless chromium on ``url`` with a fresh profile; its standard output."""
    command = [browser(), *FLAGS, f"--user-data-dir={profile}", *args, url]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump(url: str, tmp_path: Path) -> Dom:
    return Dom(chromium(url, tmp_path / "profile-dom", "--dump-dom"))


def screenshot(url: str, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    chromium(url, tmp_path / "profile-shot", f"--screenshot={path}", "--window-size=1280,1600")
    assert path.stat().st_size > 10_000  # a page, not a blank
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def test_a_replay_page_has_a_card_per_version_and_charts(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    command = [sys.executable, "-m", "predwatch.cli", "replay"]
    command += ["--config", str(EXAMPLES / "config.yaml"), "--html", str(page)]
    command += ["--predictions", str(EXAMPLES / "predictions.jsonl")]
    command += ["--labels", str(EXAMPLES / "labels.jsonl")]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")
    versions = set()
    for line in (EXAMPLES / "predictions.jsonl").read_text().splitlines():
        try:
            versions.add(json.loads(line)["model_version"])
        except (ValueError, KeyError):
            continue  # the sample's malformed lines
    dom = dump(page.as_uri(), tmp_path)
    cards = dom.find("article", "card")
    assert sorted(c.attrs["data-version"] for c in cards) == sorted(versions)
    bars = dom.find("svg", "chart-windows")
    assert len(bars) == len(versions)
    assert all(int(svg.attrs["data-points"]) > 0 for svg in bars)
    assert len(dom.find("rect", "realised")) >= 2 * len(versions)  # cumulative and a window
    assert "No alert is firing." in "".join(dom.find("section", "alerts")[0].text)


def test_the_history_chart_draws_every_window_and_the_band(tmp_path: Path) -> None:
    page = tmp_path / "history.html"
    page.write_text(render_page(status_document(report()), live=False))
    dom = dump(page.as_uri(), tmp_path)
    points = HISTORY["metrics"]["accuracy"]["points"]  # type: ignore[index]
    [history] = dom.find("svg", "chart-history")
    assert int(history.attrs["data-points"]) == len(points)
    [band] = dom.find("rect", "band")
    assert (float(band.attrs["data-low"]), float(band.attrs["data-high"])) == (0.85, 0.99)
    outside = [float(c.attrs["data-value"]) for c in dom.find("circle", "outside")]
    assert outside == [0.62]  # the one window below 0.85
    # The firing alert is on top, before the first card.
    firing = dom.find("div", "firing")
    assert firing and dom.elements.index(firing[0]) < dom.elements.index(dom.find("article")[0])
    caption = "".join(dom.find("div", "caption")[0].text)
    assert caption.startswith("accuracy per 1h window") and "LATEST OUTSIDE THE BAND" in caption


def test_the_header_names_evicted_predictions_only_when_there_are_some(tmp_path: Path) -> None:
    join = {"matched": 80, "unlabelled": 20, "pending_predictions": 7}
    headers = {}
    for name, evicted in (("none", {}), ("some", {"evicted": 5})):
        page = tmp_path / f"{name}.html"
        page.write_text(render_page(status_document(report(join={**join, **evicted})), False))
        [header] = dump(page.as_uri(), tmp_path / name).find("header", "top")
        headers[name] = " ".join("".join(header.text).split())
    assert "never labelled 20" in headers["none"] and "evicted" not in headers["none"]
    assert "never labelled 20 · evicted 5" in headers["some"]
    # Evicted predictions never got a label: 80 of 105 settled.
    assert "label coverage 76.2%" in headers["some"]


def test_text_from_events_is_shown_as_text_never_as_markup(tmp_path: Path) -> None:
    base = report()
    base.summary["models"]["fraud"]["v2"]["drift"]["data"]["1h"]["<img src=x>"] = {
        "drift": True,
        "n": 1,
    }
    page = tmp_path / "hostile.html"
    page.write_text(render_page(status_document(base), live=False))
    dom = dump(page.as_uri(), tmp_path)
    assert dom.find("img") == []
    chips = ["".join(e.text) for e in dom.find("span", "feature-chip")]
    assert "<img src=x>" in chips


@dataclass
class Auth:
    header: str | None
    status: int


@pytest.mark.parametrize(
    "case",
    [
        Auth(None, 401),
        Auth("Bearer wrong", 401),
        Auth("Basic s3cret", 401),
        Auth("Bearer s3cret", 200),
        Auth("bearer s3cret", 200),
    ],
)
def test_the_token_guards_the_page_and_status_but_not_metrics(case: Auth) -> None:
    from prometheus_client import CollectorRegistry

    pages = {"/status": lambda q: ("application/json", b"{}"), "/": lambda q: ("text/html", b"x")}
    with start_http_server(
        HttpSettings(port=0), CollectorRegistry(), Health(), pages=pages, token="s3cret"
    ) as server:
        for path in ("/", "/status"):
            request = urllib.request.Request(server.url + path)
            if case.header:
                request.add_header("Authorization", case.header)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
                assert error.headers["WWW-Authenticate"].startswith("Bearer")
            assert status == case.status
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            assert response.status == 200


@dataclass
class TokenCase:
    settings: dict[str, str]
    file_text: str | None
    expected: str | None
    error: str | None = None


@pytest.mark.parametrize(
    "case",
    [
        TokenCase({}, None, None),
        TokenCase({"token": " abc "}, None, "abc"),
        TokenCase({"token_file": "{file}"}, "xyz\nrest\n", "xyz"),
        TokenCase({"token_file": "{file}"}, "\n", None, "is empty"),
        TokenCase({"token_file": "{missing}"}, None, None, "cannot read http.token_file"),
    ],
)
def test_bearer_token_from_settings_or_file(case: TokenCase, tmp_path: Path) -> None:
    file = tmp_path / "token"
    if case.file_text is not None:
        file.write_text(case.file_text)
    values = {k: v.format(file=file, missing=tmp_path / "absent") for k, v in case.settings.items()}
    http = HttpSettings.model_validate(values)
    if case.error:
        with pytest.raises(ExporterError, match=case.error):
            bearer_token(http)
    else:
        assert bearer_token(http) == case.expected


def test_the_token_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREDWATCH_HTTP__TOKEN", "t0ken-from-env")
    settings = settings_from_mapping({"models": {"credit": {"task": "binary"}}})
    assert bearer_token(settings.http) == "t0ken-from-env"
    assert "t0ken-from-env" not in f"{settings!r} {settings} {settings.model_dump()}"


def test_token_and_token_file_together_are_refused() -> None:
    with pytest.raises(ValueError, match=r"either http\.token or http\.token_file"):
        HttpSettings.model_validate({"token": "a", "token_file": "b"})


@pytest.fixture
def live(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
) -> Iterator[Service]:
    """The service fed by the simulator: accuracy about 0.94, then about 0.5 from 8 s on."""
    predictions, labels = make_topic("p", partitions=2), make_topic("l", partitions=2)
    settings = settings_from_mapping(
        {
            "models": {"credit": {"task": "binary"}},
            # Labels come 0.5 s late: 3 s of label timeout closes each 2 s history window
            # soon enough for the page to draw the history during the test.
            "join": {"label_timeout": "3s", "grace": "1s", "idle_timeout": "2s"},
            "metrics": {
                "windows": [
                    {"name": "last_300", "events": 300},
                    {"name": "10s", "duration": "10s"},
                ],
                "tags": ["region"],
                "history": {"window": "2s"},
            },
            "kafka": {
                "bootstrap_servers": kafka_broker.bootstrap_servers,
                "group_id": unique_group(),
                "predictions_topic": predictions,
                "labels_topic": labels,
                "session_timeout": "3s",
            },
            "http": {"port": 0},
            # The reference is the first 600 predictions, so data drift is judged early.
            "drift": {"reference": {"first": 600}, "min_samples": 300},
            "alerts": {
                "evaluate_every": "1s",
                "rules": [
                    {
                        "name": "CreditAccuracyLow",
                        "model": "credit",
                        "metric": "accuracy",
                        "window": "last_300",
                        "below": 0.75,
                        "min_samples": 200,
                        "severity": "page",
                        "annotations": {
                            "summary": "Accuracy of {{model}} {{version}} is {{value}} (< 0.75)"
                        },
                    }
                ],
            },
        }
    )
    service = Service(settings)
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    traffic = Traffic(seed=7, rate=150.0, change_at=8.0, label_delay=0.5, train_size=2000)
    simulator = Simulator(traffic, kafka_broker.bootstrap_servers, predictions, labels)
    stop_traffic = threading.Event()
    producing = simulator.start(stop_traffic)
    try:
        yield service
    finally:
        stop_traffic.set()
        producing.join(10)
        stop.set()
        runner.join(15)


def firing(service: Service) -> bool:
    """An alert fires, and the history has its band and a few windows since the change."""
    document = service.status()
    if document["firing"] < 1 or not document["models"]:
        return False
    history = service.monitor.report.summary["models"]["credit"]["v1"].get("history", {})
    accuracy = history.get("metrics", {}).get("accuracy", {})
    return accuracy.get("band") is not None and len(accuracy.get("points", [])) >= 8


def test_the_live_page_shows_cards_charts_and_the_firing_alert(
    live: Service, tmp_path: Path
) -> None:
    browser()  # skip (or fail in CI) before the stream is started, not after
    wait_for(lambda: firing(live), 120, "the accuracy alert to fire and be reported")
    dom = dump(live.url + "/", tmp_path)

    [card] = dom.find("article", "card")
    assert (card.attrs["data-model"], card.attrs["data-version"]) == ("credit", "v1")
    assert "has-firing" in card.classes()
    [windows] = dom.find("svg", "chart-windows")
    assert int(windows.attrs["data-points"]) >= 3  # cumulative, last_300 and an estimate
    assert len(dom.find("rect", "realised")) >= 2
    assert dom.find("path", "estimate")  # the estimate from scores beside the realised
    # Every feature of the traffic has a verdict row (the reference is complete by now).
    features = {row.attrs["data-feature"] for row in dom.find("tr") if "data-feature" in row.attrs}
    assert {"age", "salary", "loan_to_income"} <= features
    [calibration] = dom.find("svg", "chart-calibration")
    assert int(calibration.attrs["data-points"]) > 0
    [history] = dom.find("svg", "chart-history")  # accuracy per closed 2 s window, and its band
    assert int(history.attrs["data-points"]) >= 8 and dom.find("rect", "band")
    alerts = [e for e in dom.find("div", "alert") if e.attrs.get("data-state") == "firing"]
    assert alerts and "CreditAccuracyLow" in "".join(alerts[0].text)

    with urllib.request.urlopen(live.url + "/alerts?model=credit", timeout=5) as response:
        assert [a["rule"] for a in json.load(response)["alerts"]] == ["CreditAccuracyLow"]
    with urllib.request.urlopen(live.url + "/alerts?model=other", timeout=5) as response:
        assert json.load(response)["alerts"] == []
    with urllib.request.urlopen(live.url + "/status", timeout=5) as response:
        document = json.load(response)
    assert document["firing"] >= 1 and document["models"][0]["model"] == "credit"

    screenshot(live.url + "/", tmp_path, "status.png")


@dataclass
class Refresh:
    serve_status: bool
    shown: str  # the card's version the page shows after its refresh
    stale: bool


@pytest.mark.parametrize(
    "case",
    [Refresh(True, "v9", stale=False), Refresh(False, "v1", stale=True)],
)
def test_the_live_page_rereads_status(case: Refresh, tmp_path: Path) -> None:
    """Served with one document and answering /status with a newer one (or 404), the page
    shows the newer document after its refresh (or keeps the old one and says so)."""
    from prometheus_client import CollectorRegistry

    first = status_document(report())
    first["models"] = first["models"][:1]  # fraud v1
    newer = {**first, "models": [{**first["models"][0], "version": "v9"}]}
    pages = {"/": lambda q: ("text/html", render_page(first, live=True, refresh=1.0).encode())}
    if case.serve_status:
        pages["/status"] = lambda q: ("application/json", json.dumps(newer).encode())
    with start_http_server(HttpSettings(port=0), CollectorRegistry(), Health(), pages=pages) as s:
        profile = tmp_path / "profile"
        dom = Dom(chromium(s.url + "/", profile, "--virtual-time-budget=3000", "--dump-dom"))
    [card] = dom.find("article", "card")
    assert card.attrs["data-version"] == case.shown
    assert bool(dom.find("span", "stale")) == case.stale
