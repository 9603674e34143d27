"""The demo: seeded traffic with a known concept change, its producer, a whole short run whose
findings match what was injected, and recorded traffic that replays to the same counts."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from predwatch.cli import build_parser
from predwatch.config import Settings, load_settings
from predwatch.consumer.files import replay
from predwatch.demo.app import DemoResult, run_demo
from predwatch.demo.record import record
from predwatch.demo.simulator import Segment, Served, Simulator, Traffic
from predwatch.demo.story import Injected, Timeline, findings, story_lines
from predwatch.demo.synthetic import START
from predwatch.demo.view import LEGEND, PlainView, RichView, make_view, read_row
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.report import Report, Value

CHANGE_AT = 10.0


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return Traffic(seed=11, rate=100.0, change_at=CHANGE_AT, label_delay=2.0, unlabelled=0.1)


@pytest.fixture(scope="module")
def served(traffic: Traffic) -> list[Served]:
    return list(traffic.until(2 * CHANGE_AT, start=1_800_000_000.0))


def _accuracy(events: list[Served]) -> float:
    labelled = [e for e in events if e.label is not None]
    return float(
        np.mean(
            [
                e.label["label"] == e.prediction["prediction"]  # type: ignore[index]
                for e in labelled
            ]
        )
    )


def test_same_seed_gives_the_same_traffic(traffic: Traffic, served: list[Served]) -> None:
    again = Traffic(seed=11, rate=100.0, change_at=CHANGE_AT, label_delay=2.0, unlabelled=0.1)
    assert list(again.until(2 * CHANGE_AT, start=1_800_000_000.0)) == served
    other = Traffic(seed=12, rate=100.0, change_at=CHANGE_AT, train_size=500)
    assert [e.prediction for e in other.until(1.0, 1_800_000_000.0)] != [
        e.prediction for e in served if e.offset < 1.0
    ]


def test_traffic_follows_the_wire_contract(served: list[Served]) -> None:
    assert 1500 < len(served) < 2500  # 100/s over 20 s, Poisson
    ids = [e.prediction["prediction_id"] for e in served]
    assert len(set(ids)) == len(ids)
    for event in served:
        message = event.prediction
        assert message["model"] == "credit" and len(message["features"]) == 10
        assert message["tags"]["region"] in ("eu", "us", "apac")
        assert message["prediction"] == int(message["score"] >= 0.5)
        if event.label is not None:
            assert event.label["prediction_id"] == message["prediction_id"]
            assert event.label_offset is not None and event.label_offset >= event.offset
    unlabelled = sum(e.label is None for e in served) / len(served)
    assert 0.06 < unlabelled < 0.14
    delays = [e.label_offset - e.offset for e in served if e.label_offset is not None]
    assert 1.6 < np.mean(delays) < 2.4


def test_accuracy_drops_at_the_concept_change(served: list[Served]) -> None:
    before = [e for e in served if e.offset < CHANGE_AT]
    after = [e for e in served if e.offset >= CHANGE_AT]
    assert all(not e.changed for e in before) and all(e.changed for e in after)
    assert _accuracy(before) > 0.85
    assert _accuracy(after) < 0.65
    # Just before and just after the change, too: the change is abrupt.
    assert _accuracy([e for e in before if e.offset >= CHANGE_AT - 3]) > 0.8
    assert _accuracy([e for e in after if e.offset < CHANGE_AT + 3]) < 0.7


def test_the_monitor_sees_the_traffic_as_generated(served: list[Served]) -> None:
    """Replayed through the core, every labelled prediction joins and scores as generated."""
    settings = Settings.model_validate({"models": {"credit": {"task": "binary"}}})
    monitor = Monitor(settings)
    predictions = [Raw(json.dumps(e.prediction).encode()) for e in served]
    labels = [Raw(json.dumps(e.label).encode()) for e in served if e.label is not None]
    monitor.process(0, predictions, labels, now=1_800_000_000.0 + 2 * CHANGE_AT)
    assert monitor.counts.invalid == 0
    assert monitor.counts.matched == len(labels)
    accuracy = monitor.summary()["models"]["credit"]["v1"]["cumulative"]["accuracy"]
    assert accuracy == pytest.approx(_accuracy(served))


@dataclass
class _Sent:
    topic: str
    key: bytes
    value: bytes


class _FakeFuture:
    def add_errback(self, *_: Any) -> _FakeFuture:
        return self


class _FakeProducer:
    """Records what is sent; sets ``stop`` once ``limit`` messages went out."""

    def __init__(self, stop: threading.Event, limit: int, **_: Any) -> None:
        self.sent: list[_Sent] = []
        self._stop, self._limit = stop, limit
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> _FakeFuture:
        self.sent.append(_Sent(topic, key, value))
        if len(self.sent) >= self._limit:
            self._stop.set()
        return _FakeFuture()

    def close(self, timeout: float) -> None:
        self.closed = True


def test_simulator_sends_predictions_then_their_labels_when_due(traffic: Traffic) -> None:
    stop = threading.Event()
    producer = _FakeProducer(stop, limit=600)
    ticks = iter(np.arange(0.0, 1000.0, 0.05))  # a fake clock: 50 ms per look
    simulator = Simulator(
        traffic,
        "unused:9092",
        "p",
        "l",
        clock=lambda: float(next(ticks)),
        producer_factory=lambda **_: producer,
    )
    simulator.run(stop, start=0.0)
    assert producer.closed
    order = {s.key: i for i, s in enumerate(producer.sent) if s.topic == "p"}
    labels = [(i, s) for i, s in enumerate(producer.sent) if s.topic == "l"]
    assert labels and all(order[s.key] < i for i, s in labels)
    assert simulator.stats.predictions == len(order)
    assert simulator.stats.labels == len(labels)


# --- the injected segment -------------------------------------------------------------------

SEGMENT = Segment(region="apac", min_loan=400_000.0, share=0.3)


@pytest.fixture(scope="module")
def local_change() -> list[Served]:
    traffic = Traffic(seed=5, rate=100.0, change_at=CHANGE_AT, segment=SEGMENT)
    return list(traffic.until(4 * CHANGE_AT, start=START))


def _inside(event: Served) -> bool:
    message = event.prediction
    return bool(message["tags"]["region"] == "apac" and message["features"]["loan"] > 400_000)


def test_a_local_change_hits_the_segment_only(local_change: list[Served]) -> None:
    before = [e for e in local_change if not e.changed]
    after = [e for e in local_change if e.changed]
    # Before the change the model is as good inside the region as outside it.
    assert _accuracy([e for e in before if _inside(e)]) > 0.75  # few pairs: ~70
    assert _accuracy([e for e in before if not _inside(e)]) > 0.85
    # After it, the labels inside are the reverse of the old ones; outside nothing changed.
    assert _accuracy([e for e in after if _inside(e)]) < 0.2
    assert _accuracy([e for e in after if not _inside(e)]) > 0.85
    # The segment grows: 30% moved in, plus a third (apac) of the fifth above 400,000.
    share = np.mean([_inside(e) for e in after])
    assert 0.3 < share < 0.4
    assert np.mean([_inside(e) for e in before]) < 0.1


def test_without_a_segment_the_traffic_is_unchanged() -> None:
    """The option leaves the whole-traffic change (used by the compose stack) as it was."""
    plain = Traffic(seed=5, rate=50.0, change_at=2.0, train_size=500)
    local = Traffic(seed=5, rate=50.0, change_at=2.0, train_size=500, segment=SEGMENT)
    first, second = list(plain.until(1.9, START)), list(local.until(1.9, START))
    assert [e.prediction for e in first] == [e.prediction for e in second]


# --- the command line --------------------------------------------------------------------------


def test_demo_parser_takes_its_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["demo", "--duration", "5", "--rate", "50"])
    assert (args.duration, args.rate, args.http_port, args.change_at) == (5.0, 50.0, 0, None)
    assert (args.record, args.plain, args.verb) == (None, False, "demo")
    args = parser.parse_args(["demo", "--change-at", "20", "--record", "d", "--plain"])
    assert (args.change_at, args.record, args.plain) == (20.0, "d", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--rate", "0"])


# --- a whole run -------------------------------------------------------------------------------

DURATION, RATE, DEMO_CHANGE = 36.0, 200.0, 12.0
DETECTION_BOUND = 10.0  # seconds after the change by which ADWIN must have seen it


@dataclass
class Run:
    result: DemoResult
    text: str
    directory: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One short demo on its own embedded broker, recording what it sends."""
    directory = tmp_path_factory.mktemp("demo") / "traffic"
    out = StringIO()
    result = run_demo(DURATION, RATE, out, change_at=DEMO_CHANGE, record=directory)
    return Run(result, out.getvalue(), directory)


def test_the_demo_detects_the_injected_change(run: Run) -> None:
    found, change = run.result.findings, run.result.injected.start + DEMO_CHANGE
    # A detection carries its pair's prediction time: a pair predicted a few seconds before
    # the change may be labelled after it. None may come earlier than that.
    early = run.result.injected.early()
    assert [at for at in found.concept_drift if at < early] == [], run.text
    after = [at for at in found.concept_drift if at >= early]
    assert after and after[0] - change < DETECTION_BOUND, run.text
    # Rules are evaluated at the join's watermark, every 5 s of it: no alert before the
    # first labels of the change could be read, and the concept drift alert soon after.
    fired = {(t.rule, t.to_state): t.at for t in found.transitions}
    assert early <= fired[("ConceptDriftDetected", "firing")] < change + DETECTION_BOUND + 5
    assert fired[("FeatureDriftDetected", "firing")] >= early, run.text
    assert all(t.at >= early for t in found.transitions), run.text
    assert dict(found.drifting).keys() & {"loan", "loan_to_income"}, run.text


def test_the_top_segment_is_the_injected_one(run: Run) -> None:
    segment = run.result.findings.segment
    assert segment is not None, run.text
    assert "loan" in segment.rule or "tags.region" in segment.rule, run.text
    # The segment's pairs err mostly (reversed labels); elsewhere about as before.
    assert segment.value > 0.5 and segment.rest < 0.2, run.text


def test_the_demo_explains_itself(run: Run) -> None:
    text = run.text
    assert re.search(r"status page http://127\.0\.0\.1:\d+/ ", text), text
    assert LEGEND in text
    rows = re.findall(r"^\s+\d+s\s+\d+\s+\d+\s+\d+", text, flags=re.MULTILINE)
    assert len(rows) >= 4, text
    assert "the concept changes now" in text
    assert re.search(r"alert ConceptDriftDetected FIRING", text), text
    assert re.search(r"concept drift \(ADWIN on the errors\): first detected at [\d.]+ s", text)
    assert re.search(r"top failing segment: '[^']*(loan|tags\.region)", text), text


def test_recorded_traffic_replays_to_the_same_counts(run: Run) -> None:
    directory, sent = run.directory, run.result.sent
    lines = [
        len((directory / name).read_text().splitlines())
        for name in ("predictions.jsonl", "labels.jsonl")
    ]
    assert lines == [sent.predictions, sent.labels]
    settings = load_settings(directory / "config.yaml")
    monitor = replay(settings, directory / "predictions.jsonl", directory / "labels.jsonl")
    live = run.result.report.join
    counts = monitor.counts
    assert (counts.predictions, counts.labels, counts.matched) == (
        live["predictions"],
        live["labels"],
        live["matched"],
    )
    assert counts.invalid == 0


def test_recording_without_a_broker_is_deterministic(tmp_path: Path) -> None:
    first = record(tmp_path / "a", minutes=0.25, rate=50.0)
    second = record(tmp_path / "b", minutes=0.25, rate=50.0)
    assert first == second and 600 < first.predictions < 900
    for name in ("predictions.jsonl", "labels.jsonl", "config.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    labels = [json.loads(x) for x in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == first.labels


def _readme_alert() -> dict[str, Any]:
    """The JSON example under "The summary's `alerts`" in the README."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    after = text[text.index("The summary's `alerts` lists") :]
    block = after[after.index("```json") + len("```json") : after.index("```\n", 8)]
    return dict(json.loads(block))


def test_the_readmes_alert_example_is_what_its_commands_give(tmp_path: Path) -> None:
    """``python -m predwatch.demo.record demo-traffic`` then ``predwatch replay`` on it."""
    record(tmp_path)  # the command's defaults
    settings = load_settings(tmp_path / "config.yaml")
    summary = replay(settings, tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl").summary()
    fired = [a for a in summary["alerts"] if a["rule"] == "CreditAccuracyLow"]
    assert [a["to_state"] for a in fired] == ["pending", "firing"]  # "fires once"
    expected = _readme_alert()
    # The fingerprint's scheme is the alert engine's, not the example's: compared by form.
    assert re.fullmatch(r"[0-9a-f]{16}", expected.pop("fingerprint"))
    assert {k: v for k, v in fired[1].items() if k != "fingerprint"} == expected


# --- the view and the story, from hand-made reports --------------------------------------------


def _report(at: float, **join: int) -> Report:
    rows = [
        Value("predwatch_accuracy_ratio", ("credit", "v1", "last_500", "", ""), 0.61, 500),
        Value("predwatch_accuracy_ratio", ("credit", "v1", "last_500", "region", "eu"), 0.9, 90),
        Value("predwatch_estimated_accuracy_ratio", ("credit", "v1", "last_500"), 0.92),
        Value("predwatch_feature_drift_detected", ("credit", "v1", "last_500", "loan"), 1.0),
        Value("predwatch_feature_drift_detected", ("credit", "v1", "1m", "age"), 0.0),
        Value("predwatch_concept_drift", ("credit", "v1", "adwin"), 2.0),
    ]
    values: dict[str, tuple[Value, ...]] = {}
    for row in rows:
        values[row.metric] = (*values.get(row.metric, ()), row)
    return Report(at=at, join=join, values=values)


def test_a_row_reads_the_report_alone() -> None:
    before = _report(100.0, predictions=1000, labels=900, matched=850)
    now = _report(105.0, predictions=2000, labels=1500, matched=1400, pending_predictions=300)
    row = read_row(now, 25.0, before, 5.0)
    # 1000 predictions and 600 labels more in 5 s; the untagged figures of the view's window.
    assert (row.predictions_per_second, row.labels_per_second) == (200.0, 120.0)
    assert (row.joined, row.pending, row.accuracy, row.estimated) == (1400, 300, 0.61, 0.92)
    assert (row.drifting, row.concept, row.firing) == (("loan",), 2, ())


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_unless_on_a_terminal() -> None:
    assert isinstance(make_view(StringIO(), 60, 20), PlainView)
    assert isinstance(make_view(_Terminal(), 60, 20, plain=True), PlainView)
    assert isinstance(make_view(_Terminal(), 60, 20), RichView)


@dataclass
class StoryCase:
    detections: list[float]  # seconds of the traffic
    expected: str


STORY_CASES = [
    # After the change: the delay is counted from it.
    StoryCase([23.5], "first detected at 23.5 s, 3.5 s after the change"),
    # A pair predicted just before the change, labelled after it, may tip the detector.
    StoryCase([18.0], "first detected at 18.0 s, on a pair predicted 2.0 s before the change"),
    # Well before the change is a false alarm, told apart from the detection.
    StoryCase([5.0, 21.0], "first detected at 21.0 s, 1.0 s after the change; 1 false alarm"),
    StoryCase([5.0], "not detected after the change"),
]


@pytest.mark.parametrize("case", STORY_CASES)
def test_the_story_sets_detections_against_the_change(case: StoryCase) -> None:
    injected = Injected(start=1000.0, change_at=20.0)
    timeline = Timeline(injected, concept_drift=[1000.0 + at for at in case.detections])
    lines = story_lines(injected, findings(Report(), [], timeline))
    assert case.expected in lines[1]
