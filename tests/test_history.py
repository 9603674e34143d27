"""The history of closed event-time windows: exact metrics per window, the band, alerts on it.

Expected values come from scikit-learn on each window's own pairs and from
numpy over the windows, never from predwatch's output.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

from predwatch.alerts.settings import check_alerts
from predwatch.config import ConfigError, Settings, settings_from_mapping
from predwatch.consumer.files import replay
from predwatch.metrics.classification import ClassificationStats, binary_metrics
from predwatch.metrics.history import Point, VersionHistory, control, split_binary
from predwatch.monitor import Monitor
from predwatch.records import Raw

START = 1_795_737_600.0  # a multiple of the window
WINDOW = 60.0
PER_WINDOW = 200
STABLE = (0.9, 0.92, 0.88)  # accuracy of stable windows, in turn
DROP_AT = 9  # the first window after the abrupt change
DROPPED = 0.6


@dataclass
class Stream:
    """Predictions and labels of a generated stream, and what each window holds."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)  # prediction id -> label

    def write(self, directory: Path) -> tuple[Path, Path]:
        p, lb = directory / "predictions.jsonl", directory / "labels.jsonl"
        p.write_text("".join(json.dumps(x) + "\n" for x in self.predictions))
        ordered = sorted(self.labels, key=lambda x: x["timestamp"])
        lb.write_text("".join(json.dumps(x) + "\n" for x in ordered))
        return p, lb

    def window_of(self, start: float) -> list[dict[str, Any]]:
        return [p for p in self.predictions if start <= p["timestamp"] < start + WINDOW]


def binary_stream(windows: int, drop: bool, seed: int = 1) -> Stream:
    """Windows of PER_WINDOW predictions with scores on a 0.01 grid (so ROC AUC from
    histograms is exact); 5 % never get a label; accuracy of the labelled pairs follows
    STABLE, and DROPPED from window DROP_AT on when ``drop``."""
    rng = np.random.default_rng(seed)
    stream = Stream()
    for w in range(windows):
        accuracy = DROPPED if drop and w >= DROP_AT else STABLE[w % len(STABLE)]
        times = START + w * WINDOW + (np.arange(PER_WINDOW) + 0.5) * WINDOW / PER_WINDOW
        scores = np.round(rng.uniform(0.01, 0.99, PER_WINDOW), 2)
        predicted = (scores >= 0.5).astype(int)
        labelled = rng.random(PER_WINDOW) >= 0.05
        rows = np.flatnonzero(labelled)
        correct = np.zeros(PER_WINDOW, bool)
        correct[rng.choice(rows, round(accuracy * len(rows)), replace=False)] = True
        for i in range(PER_WINDOW):
            pid = f"{w}-{i}"
            prediction = {
                "prediction_id": pid,
                "model": "m",
                "model_version": "v1",
                "timestamp": float(times[i]),
                "prediction": int(predicted[i]),
            }
            if i % 50 != 7:  # a few predictions come without a score
                prediction["score"] = float(scores[i])
            stream.predictions.append(prediction)
            if labelled[i]:
                label = int(predicted[i]) if correct[i] else 1 - int(predicted[i])
                delay = float(rng.uniform(0.0, 10.0))
                stream.labels.append(
                    {"prediction_id": pid, "timestamp": float(times[i]) + delay, "label": label}
                )
                stream.truth[pid] = label
    return stream


def config(**extra: Any) -> dict[str, Any]:
    return {
        "models": {"m": {"task": "binary"}},
        "join": {"label_timeout": "30s", "grace": "5s"},
        "metrics": {"windows": [], "history": {"window": "1m", "keep": 48}},
        "diagnostics": {"enabled": False},
        **extra,
    }


def replay_watching(settings: Settings, files: tuple[Path, Path]) -> tuple[Monitor, list[Any]]:
    """Replay, and after every batch note (latest closed window start, outside) of accuracy."""
    monitor = Monitor(settings)
    seen: list[tuple[float, bool]] = []

    def look(_: int) -> None:
        entry = monitor.refresh(monitor.last_arrival).summary["models"]["m"]["v1"]
        accuracy = entry["history"]["metrics"]["accuracy"]
        if accuracy["points"]:
            step = (accuracy["points"][-1]["start"], accuracy["outside"])
            if not seen or seen[-1] != step:
                seen.append(step)

    replay(settings, *files, monitor=monitor, on_batch=look)
    return monitor, seen


@pytest.fixture(scope="module")
def dropping(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stream, tuple[Path, Path]]:
    stream = binary_stream(12, drop=True)
    return stream, stream.write(tmp_path_factory.mktemp("dropping"))


@pytest.fixture(scope="module")
def dropping_replay(
    dropping: tuple[Stream, tuple[Path, Path]],
) -> tuple[Monitor, list[Any]]:
    return replay_watching(settings_from_mapping(config()), dropping[1])


def test_each_closed_window_has_the_metrics_of_its_pairs(
    dropping: tuple[Stream, tuple[Path, Path]], dropping_replay: tuple[Monitor, list[Any]]
) -> None:
    stream, _ = dropping
    history = dropping_replay[0].summary()["models"]["m"]["v1"]["history"]
    assert history["window"] == WINDOW
    metrics = history["metrics"]
    points = metrics["accuracy"]["points"]
    # The last windows wait for unlabelled predictions to expire when the files end.
    assert len(points) >= 10
    for k, point in enumerate(points):
        assert (point["start"], point["end"]) == (START + k * WINDOW, START + (k + 1) * WINDOW)
        predictions = stream.window_of(point["start"])
        pairs = [p for p in predictions if p["prediction_id"] in stream.truth]
        y = np.array([stream.truth[p["prediction_id"]] for p in pairs])
        predicted = np.array([p["prediction"] for p in pairs])
        with_score = [p for p in pairs if "score" in p]
        y_scored = np.array([stream.truth[p["prediction_id"]] for p in with_score])
        score = np.array([p["score"] for p in with_score])
        expected = {  # (value, pairs it is computed over)
            "accuracy": (sk.accuracy_score(y, predicted), len(pairs)),
            "precision": (sk.precision_score(y, predicted), len(pairs)),
            "recall": (sk.recall_score(y, predicted), len(pairs)),
            "f1": (sk.f1_score(y, predicted), len(pairs)),
            "roc_auc": (sk.roc_auc_score(y_scored, score), len(with_score)),
            "log_loss": (sk.log_loss(y_scored, score, labels=[0, 1]), len(with_score)),
            "brier": (sk.brier_score_loss(y_scored, score), len(with_score)),
        }
        assert len(with_score) < len(pairs)
        for name, (value, count) in expected.items():
            got = metrics[name]["points"][k]
            assert got["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), (k, name)
            assert got["count"] == count, (k, name)
        # CBPE: the expected share correct over the window's scored predictions, labelled or
        # not.
        scored = [p for p in predictions if "score" in p]
        all_scores = np.array([p["score"] for p in scored])
        all_predicted = np.array([p["prediction"] for p in scored])
        cbpe = np.where(all_predicted == 1, all_scores, 1 - all_scores).mean()
        estimated = metrics["estimated_accuracy"]["points"][k]
        assert estimated["value"] == pytest.approx(cbpe, abs=1e-8)
        assert estimated["count"] == len(scored)


def test_statistics_and_band_over_the_windows_before_the_latest(
    dropping_replay: tuple[Monitor, list[Any]],
) -> None:
    accuracy = dropping_replay[0].summary()["models"]["m"]["v1"]["history"]["metrics"]["accuracy"]
    values = np.array([p["value"] for p in accuracy["points"]])
    reference = values[:-1]
    assert accuracy["mean"] == pytest.approx(np.mean(reference), rel=1e-12)
    assert accuracy["median"] == pytest.approx(np.median(reference), rel=1e-12)
    assert accuracy["variance"] == pytest.approx(np.var(reference, ddof=1), rel=1e-9)
    spread = 3 * np.std(reference, ddof=1)
    low, high = max(0.0, np.mean(reference) - spread), min(1.0, np.mean(reference) + spread)
    assert accuracy["band"] == pytest.approx([low, high], rel=1e-9)
    assert accuracy["outside"] == bool(not low <= values[-1] <= high)


def test_the_window_after_the_drop_lies_outside_the_band(
    dropping_replay: tuple[Monitor, list[Any]],
) -> None:
    seen = dropping_replay[1]
    latest = [start for start, _ in seen]
    assert latest == sorted(latest), "the history grows at its end only"
    outside = {(start - START) / WINDOW: flag for start, flag in seen}
    # Windows 0-2 have no band yet (the band needs three windows before the latest).
    assert not any(flag for k, flag in outside.items() if k < DROP_AT)
    assert outside[DROP_AT] is True


def test_a_stable_stream_never_leaves_its_band(tmp_path: Path) -> None:
    stream = binary_stream(12, drop=False, seed=2)
    _, seen = replay_watching(settings_from_mapping(config()), stream.write(tmp_path))
    assert len(seen) >= 10
    assert [flag for _, flag in seen] == [False] * len(seen)


def test_the_band_is_exported_per_metric(dropping_replay: tuple[Monitor, list[Any]]) -> None:
    monitor = dropping_replay[0]
    report = monitor.refresh(monitor.last_arrival)
    accuracy = report.summary["models"]["m"]["v1"]["history"]["metrics"]["accuracy"]
    lower = report.select("predwatch_history_band_lower", metric="accuracy")
    upper = report.select("predwatch_history_band_upper", metric="accuracy")
    outside = report.select("outside_band", metric="accuracy")
    assert [v.labels for v in outside] == [("m", "v1", "accuracy")]
    assert [lower[0].value, upper[0].value] == accuracy["band"]
    assert outside[0].value == float(accuracy["outside"])
    assert outside[0].samples == accuracy["points"][-1]["count"]
    exported = {v.labels[2] for v in report.select("outside_band")}
    assert {"accuracy", "f1", "roc_auc", "log_loss", "estimated_accuracy"} <= exported


RULE = {
    "name": "AccuracyOutsideBand",
    "metric": "outside_band",
    "above": 0.5,
    "tags": {"metric": "accuracy"},
    "min_samples": 100,
}


def test_an_alert_on_the_band_fires_in_a_replay(
    dropping: tuple[Stream, tuple[Path, Path]],
) -> None:
    settings = settings_from_mapping(config(alerts={"evaluate_every": "10s", "rules": [RULE]}))
    assert check_alerts(settings.alerts, settings) == []
    summary = replay(settings, *dropping[1]).summary()
    firing = [t for t in summary["alerts"] if t["to_state"] == "firing"]
    assert firing, summary["alerts"]
    first = firing[0]
    assert first["labels"]["metric"] == "accuracy"
    assert (first["labels"]["model"], first["labels"]["version"]) == ("m", "v1")
    # Not before the first window after the change has closed: its end plus the grace.
    assert first["at"] >= START + (DROP_AT + 1) * WINDOW + 5


def test_a_rule_may_not_pick_an_unknown_part_of_the_band() -> None:
    bad = {**RULE, "tags": {"feature": "x"}}
    with pytest.raises(ConfigError, match="unknown tag 'feature'; split by: metric"):
        settings_from_mapping(config(alerts={"rules": [bad]}))


def test_history_survives_a_snapshot(dropping_replay: tuple[Monitor, list[Any]]) -> None:
    monitor = dropping_replay[0]
    restored = Monitor.restore(monitor.settings, monitor.snapshot())
    at = monitor.last_arrival
    assert restored.summary(at)["models"] == monitor.summary(at)["models"]


# --- regression and multiclass: exact per window -------------------------------------------


def other_stream(task: str, windows: int = 5, seed: int = 3) -> Stream:
    rng = np.random.default_rng(seed)
    stream = Stream()
    for w in range(windows):
        times = START + w * WINDOW + np.sort(rng.uniform(0, WINDOW, 150))
        for i, t in enumerate(times):
            pid = f"{w}-{i}"
            if task == "regression":
                label = float(np.round(rng.normal(50, 10), 3))
                prediction: Any = float(np.round(label + rng.normal(w, 3), 3))
            else:
                label = int(rng.integers(0, 3))
                prediction = label if rng.random() < 0.7 - 0.05 * w else int(rng.integers(0, 3))
            stream.predictions.append(
                {
                    "prediction_id": pid,
                    "model": "m",
                    "model_version": "v1",
                    "timestamp": float(t),
                    "prediction": prediction,
                }
            )
            stream.labels.append(
                {"prediction_id": pid, "timestamp": float(t) + 2.0, "label": label}
            )
            stream.truth[pid] = label
    return stream


def _regression(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "mae": sk.mean_absolute_error(y, p),
        "rmse": math.sqrt(sk.mean_squared_error(y, p)),
        "mape": sk.mean_absolute_percentage_error(y, p),
        "r2": sk.r2_score(y, p),
        "bias": float(np.mean(p - y)),
    }


def _multiclass(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": sk.accuracy_score(y, p),
        "macro_precision": sk.precision_score(y, p, average="macro", zero_division=0),
        "macro_recall": sk.recall_score(y, p, average="macro", zero_division=0),
        "macro_f1": sk.f1_score(y, p, average="macro", zero_division=0),
    }


@dataclass
class TaskCase:
    task: str
    expected: Any


@pytest.mark.parametrize(
    "case",
    [
        TaskCase("regression", _regression),  # MAE, RMSE, MAPE, R², bias per window
        TaskCase("multiclass", _multiclass),  # accuracy and macro averages per window
    ],
    ids=lambda c: c.task,
)
def test_other_tasks_are_exact_per_window(case: TaskCase, tmp_path: Path) -> None:
    stream = other_stream(case.task)
    settings = settings_from_mapping(config(models={"m": {"task": case.task}}))
    metrics = replay(settings, *stream.write(tmp_path)).summary()["models"]["m"]["v1"]
    metrics = metrics["history"]["metrics"]
    assert "estimated_accuracy" not in metrics
    points = next(iter(metrics.values()))["points"]
    assert len(points) == 4  # the last window waits for events past its end
    for k, point in enumerate(points):
        pairs = stream.window_of(point["start"])
        y = np.array([stream.truth[p["prediction_id"]] for p in pairs])
        predicted = np.array([p["prediction"] for p in pairs])
        for name, value in case.expected(y, predicted).items():
            assert metrics[name]["points"][k]["value"] == pytest.approx(value, rel=1e-9), name


# --- when a window closes -------------------------------------------------------------------


@dataclass
class CloseCase:
    what: str
    steps: list[tuple[str, list[float]]]  # ("arrive" | "match" | "end" | "duplicate", times)
    clock: float
    closed: list[float]  # starts of the closed windows


CLOSE_CASES = [
    # A label still to come holds the window open, however far the clock goes.
    CloseCase("waiting label", [("arrive", [1, 2]), ("match", [1])], 500.0, []),
    # Every pair in, but a prediction of the window could still arrive within the grace.
    CloseCase("within grace", [("arrive", [1, 2]), ("match", [1, 2])], 64.0, []),
    # Every prediction ended (one unlabelled) and the clock passed end + grace.
    CloseCase("complete", [("arrive", [1, 2]), ("match", [1]), ("end", [2])], 65.0, [0.0]),
    # A complete window waits for an earlier one: the history grows at its end only.
    CloseCase("in order", [("arrive", [1, 61]), ("match", [61])], 500.0, []),
    CloseCase("both", [("arrive", [1, 61]), ("match", [61]), ("end", [1])], 500.0, [0.0, 60.0]),
    # A duplicate arrives and is taken back: it never holds its window open.
    CloseCase("duplicate", [("arrive", [1, 1]), ("duplicate", [1]), ("match", [1])], 65.0, [0.0]),
]


def _feed(history: VersionHistory, step: str, times: list[float]) -> None:
    stamps = np.array(times, np.float64)
    if step == "arrive":
        history.arrived(stamps)
    elif step == "duplicate":
        history.arrived(stamps, sign=-1)
    elif step == "end":
        history.ended(stamps)
    else:
        ones = np.ones(len(times), np.intp)
        history.matched({"timestamp": stamps, "actual": ones, "predicted": ones})


@pytest.mark.parametrize("case", CLOSE_CASES, ids=lambda c: c.what)
def test_when_a_window_closes(case: CloseCase) -> None:
    history = VersionHistory("multiclass", window=60.0, keep=4, grace=5.0)
    for step, times in case.steps:
        _feed(history, step, times)
    assert [p.start for p in history.points("accuracy", case.clock)] == case.closed


def test_the_last_windows_are_kept_and_what_comes_late_joins_a_kept_one() -> None:
    history = VersionHistory("multiclass", window=60.0, keep=4, grace=5.0)
    for k in range(6):
        _feed(history, "arrive", [60.0 * k + 1])
        _feed(history, "match", [60.0 * k + 1])
    history.prune(1000.0)
    assert [p.start for p in history.points("accuracy", 1000.0)] == [120.0, 180.0, 240.0, 300.0]
    _feed(history, "match", [60.0 * 2 + 5])  # kept: counted in its window
    _feed(history, "match", [5.0])  # dropped: left out
    assert [p.count for p in history.points("accuracy", 1000.0)] == [2, 1, 1, 1]
    # A prediction of a closed window that still comes opens it again until it ends.
    _feed(history, "arrive", [60.0 * 4 + 7])
    assert [p.start for p in history.points("accuracy", 1000.0)] == [120.0, 180.0]
    _feed(history, "end", [60.0 * 4 + 7])
    assert [p.start for p in history.points("accuracy", 1000.0)] == [120.0, 180.0, 240.0, 300.0]


# --- the band -------------------------------------------------------------------------------


@dataclass
class BandCase:
    what: str
    values: list[float | None]
    band: tuple[float, float] | None
    outside: bool


BAND_CASES = [
    # Three windows before the latest are needed for a band.
    BandCase("too few", [0.9, 0.91, 0.2], None, False),
    # mean 0.9, sample sd 0.02: the band is [0.84, 0.96]; 0.83 is below it.
    BandCase("below", [0.88, 0.9, 0.92, 0.83], (0.84, 0.96), True),
    BandCase("inside", [0.88, 0.9, 0.92, 0.95], (0.84, 0.96), False),
    # mean 0.98, sd 0.02: mean + 3 sd is past 1, clipped to the ratio's range.
    BandCase("clipped", [0.96, 0.98, 1.0, 0.99], (0.92, 1.0), False),
    # Undefined values are left out of the reference; an undefined latest is never outside.
    BandCase("undefined", [0.88, None, 0.9, 0.92, None], (0.84, 0.96), False),
    # A constant reference: only a different value is outside, not the rounding of the mean.
    BandCase("constant", [0.1, 0.1, 0.1, 0.1], (0.1, 0.1), False),
]


@pytest.mark.parametrize("case", BAND_CASES, ids=lambda c: c.what)
def test_band(case: BandCase) -> None:
    points = [Point(float(i), i + 1.0, v, 10) for i, v in enumerate(case.values)]
    result = control(points, sigmas=3.0, bounds=(0.0, 1.0))
    if case.band is None:
        assert result.band is None
    else:
        assert result.band == pytest.approx(case.band, abs=1e-12)
    assert result.outside is case.outside


def test_history_settings_are_checked() -> None:
    settings = settings_from_mapping({"models": {"m": {"task": "binary"}}})
    history = settings.metrics.history
    assert (history.window, history.keep, history.sigmas) == (3600.0, 48, 3.0)
    with pytest.raises(ConfigError, match=r"metrics\.history\.keep"):
        settings_from_mapping(
            {"models": {"m": {"task": "binary"}}, "metrics": {"history": {"keep": 2}}}
        )


@pytest.mark.parametrize("seed", range(5))
def test_one_pass_over_many_windows_equals_a_pass_per_window(seed: int) -> None:
    """What ``split_binary`` counts for each window is what ``ClassificationStats`` counts
    from that window's pairs alone."""
    rng = np.random.default_rng(seed)
    n, span = 500, 7
    offsets = rng.integers(0, span, n)
    offsets[offsets == 3] = 4  # a window without pairs
    columns = {
        "actual": rng.integers(0, 3, n),  # a binary model's negatives may be 0, 2, ...
        "predicted": rng.integers(0, 3, n),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
    }
    split = split_binary(columns, offsets, span)
    assert split[3] is None
    for offset in [o for o in range(span) if o != 3]:
        rows = offsets == offset
        alone = ClassificationStats()
        alone.update(
            columns["actual"][rows], columns["predicted"][rows], score=columns["score"][rows]
        )
        stats = split[offset]
        assert stats is not None
        assert binary_metrics(stats, 1) == pytest.approx(binary_metrics(alone, 1), rel=1e-12)
        assert (stats.log_loss_count, stats.brier_count) == (
            alone.log_loss_count,
            alone.brier_count,
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_the_history_does_not_depend_on_batching(seed: int) -> None:
    """The same events in batches of other sizes give the same closed windows and values:
    when a window closes depends on event time only."""
    stream = binary_stream(6, drop=False, seed=5)
    settings = settings_from_mapping(config())
    decoder = Monitor(settings).decoder
    predictions, _ = decoder.predictions([Raw(json.dumps(p)) for p in stream.predictions])
    labels, _ = decoder.labels([Raw(json.dumps(x)) for x in stream.labels])
    events = sorted(
        [(p.timestamp, 0, p) for p in predictions] + [(x.timestamp, 1, x) for x in labels],
        key=lambda e: (e[0], e[1]),
    )

    def history(sizes: list[int]) -> Any:
        monitor, at = Monitor(settings), 0
        for size in sizes:
            chunk = events[at : at + size]
            at += size
            if chunk:
                p = [e[2] for e in chunk if e[1] == 0]
                x = [e[2] for e in chunk if e[1] == 1]
                monitor.process_records(0, p, x, [], now=chunk[-1][0])
        return monitor.summary()["models"]["m"]["v1"]["history"]

    rng = np.random.default_rng(seed)
    whole = history([len(events)])
    assert len(whole["metrics"]["accuracy"]["points"]) >= 4
    # Sums of log loss and Brier score are floats, added in another order.
    assert _rounded(history(list(rng.integers(1, 400, len(events))))) == _rounded(whole)


def test_the_history_does_not_depend_on_the_order_partitions_are_read_in() -> None:
    """One partition read to its end before the other: windows close early, open again
    when the other partition's predictions come, and end as if both were read together.
    Partition 1 stops in window 3 with its last prediction unlabelled and never expired,
    so window 3 and those after it stay open."""
    stream = binary_stream(6, drop=False, seed=6)
    settings = settings_from_mapping(config())
    decoder = Monitor(settings).decoder
    predictions, _ = decoder.predictions([Raw(json.dumps(p)) for p in stream.predictions])
    labels, _ = decoder.labels([Raw(json.dumps(x)) for x in stream.labels])
    stop = START + 4 * WINDOW
    ones = [p for p in predictions if _partition(p) == 1 and p.timestamp < stop]
    waiting = ones[-1].id
    labels = [x for x in labels if x.id != waiting]

    def part(records: list[Any], partition: int) -> list[Any]:
        kept = [r for r in records if _partition(r) == partition]
        return kept if partition == 0 else [r for r in kept if r.timestamp < stop]

    def chunks(partition: int) -> list[tuple[int, list[Any], list[Any], float]]:
        """Slices of 10 s of event time of one partition's predictions and labels."""
        ps, xs = part(predictions, partition), part(labels, partition)
        out = []
        for start in np.arange(START, START + 7 * WINDOW, 10.0):
            p = [r for r in ps if start <= r.timestamp < start + 10]
            x = [r for r in xs if start <= r.timestamp < start + 10]
            if p or x:  # an idle partition's watermark would follow the clock: none here
                out.append((partition, p, x, start + 10))
        return out

    def history(order: list[tuple[int, list[Any], list[Any], float]]) -> Any:
        monitor = Monitor(settings)
        for partition, p, x, now in order:
            monitor.process_records(partition, p, x, [], now=now)
        return monitor.summary()["models"]["m"]["v1"]["history"]

    together = sorted(chunks(0) + chunks(1), key=lambda c: (c[3], c[0]))
    one_then_other = chunks(0) + chunks(1)
    expected = history(together)
    starts = [p["start"] for p in expected["metrics"]["accuracy"]["points"]]
    assert starts == [START, START + WINDOW, START + 2 * WINDOW]
    assert _rounded(history(one_then_other)) == _rounded(expected)


def _partition(record: Any) -> int:
    return int(record.id.split("-")[1]) % 2


def _rounded(value: Any) -> Any:
    """``value`` with every float to 12 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_duplicates_and_drift_switched_off_change_nothing_but_the_estimate(
    tmp_path: Path,
) -> None:
    """Without drift the stage counts arrivals from every prediction read and takes back the
    duplicates: the same windows close with the same values as with drift on."""
    stream = binary_stream(8, drop=False, seed=8)
    repeated = [{**p, "timestamp": p["timestamp"] + 30.0} for p in stream.predictions[::40]]
    stream.predictions = sorted(stream.predictions + repeated, key=lambda p: p["timestamp"])
    files = stream.write(tmp_path)
    on = replay(settings_from_mapping(config()), *files).summary()
    off = replay(settings_from_mapping(config(drift={"enabled": False})), *files).summary()
    assert off["join"]["duplicate_predictions"] == len(repeated)
    with_drift = on["models"]["m"]["v1"]["history"]["metrics"]
    without = off["models"]["m"]["v1"]["history"]["metrics"]
    assert len(with_drift.pop("estimated_accuracy")["points"]) >= 6
    assert _rounded(without) == _rounded(with_drift)
