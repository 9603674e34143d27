"""``predwatch replay`` end to end, as a user runs it: files in, one JSON document out.

The files hold every kind of trouble a stream has: events out of order, labels
before their predictions, duplicates, orphans, late labels and malformed lines.
What each event must end as is known by construction; metrics are checked
against scikit-learn on the pairs that must match.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

CONFIG = """
models:
  fraud:   {task: binary, positive_label: 1}
  species: {task: multiclass}
  price:   {task: regression}
join:
  label_timeout: 1000s
  grace: 10s
metrics:
  windows:
    - {name: last_50, events: 50}
"""
SPECIES = ["setosa", "versicolor", "virginica"]


@dataclass
class Scenario:
    predictions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    pairs: dict[str, list[tuple[dict, dict]]] = field(default_factory=dict)  # model -> matched
    expected: dict[str, int] = field(default_factory=dict)


def build(seed: int) -> Scenario:
    rng = random.Random(seed)
    s = Scenario(pairs={"fraud": [], "species": [], "price": []})
    preds: list[dict] = []
    labels: list[dict] = []
    n = 600
    for i in range(n):
        model = ("fraud", "species", "price")[i % 3]
        ts = 1_800_000_000 + i * 10
        pred: dict = {
            "prediction_id": f"p{i}",
            "model": model,
            "model_version": "v1",
            "timestamp": ts,
        }
        if model == "fraud":
            score = rng.uniform(0.01, 0.99)
            pred |= {"prediction": int(score > 0.5), "score": score}
            truth: object = int(rng.random() < score)
        elif model == "species":
            weights = [rng.uniform(0.05, 1) for _ in SPECIES]
            probabilities = {c: w / sum(weights) for c, w in zip(SPECIES, weights, strict=True)}
            pred |= {
                "prediction": max(probabilities, key=probabilities.__getitem__),
                "probabilities": probabilities,
            }
            truth = rng.choice(SPECIES)
        else:
            value = rng.uniform(10, 100)
            pred |= {"prediction": value}
            truth = value + rng.gauss(0, 5) if i % 31 else 0.0  # some zero labels (MAPE)
        preds.append(pred)
        kind = rng.random()
        if kind < 0.75:  # labelled in time, sometimes stamped before its prediction (skew)
            delay = rng.uniform(-5, 900)
            label = {"prediction_id": f"p{i}", "timestamp": ts + delay, "label": truth}
            labels.append(label)
            s.pairs[model].append((pred, label))
        elif kind < 0.80 and i < n - 150:  # late: after the prediction expired, well before the end
            labels.append({"prediction_id": f"p{i}", "timestamp": ts + 1100, "label": truth})
            s.expected["late_labels"] = s.expected.get("late_labels", 0) + 1
        # else: never labelled
    matched = sum(len(v) for v in s.pairs.values())
    # Duplicates: a repeated prediction and a repeated label of a matched pair, a little later.
    dup_preds = [
        dict(pr, timestamp=pr["timestamp"] + 50, prediction=pr["prediction"])
        for pr, _ in s.pairs["fraud"][:7]
    ]
    dup_labels = [dict(lb, timestamp=lb["timestamp"] + 3) for _, lb in s.pairs["price"][:6]]
    orphans = [
        {"prediction_id": f"ghost{i}", "timestamp": 1_800_000_000 + i * 500, "label": 1}
        for i in range(5)
    ]
    preds += dup_preds
    labels += dup_labels + orphans
    # Each topic arrives roughly, not exactly, in time order.
    preds.sort(key=lambda x: x["timestamp"] + rng.uniform(-3, 3))
    labels.sort(key=lambda x: x["timestamp"] + rng.uniform(-3, 3))
    s.predictions = [json.dumps(x) for x in preds]
    s.labels = [json.dumps(x) for x in labels]
    malformed_predictions = [
        "{not json",
        json.dumps({"prediction_id": "bad1", "model": "weather", "timestamp": 1, "prediction": 1}),
        json.dumps(
            {"prediction_id": "bad2", "model": "price", "timestamp": 1, "prediction": "a lot"}
        ),
        '{"prediction_id": "bad3", "model": "price", "timestamp": 1, "prediction": NaN}',
        json.dumps({"model": "fraud", "timestamp": 1, "prediction": 1}),
    ]
    malformed_labels = [
        "[1, 2]",
        json.dumps({"prediction_id": "p1", "timestamp": "soon", "label": 1}),
    ]
    for line in malformed_predictions:
        s.predictions.insert(rng.randrange(len(s.predictions)), line)
    for line in malformed_labels:
        s.labels.insert(rng.randrange(len(s.labels)), line)
    # The last events are far past every deadline but the final ones: what expires is known.
    unlabelled = n - matched  # a late label's prediction expired unlabelled too
    s.expected |= {
        "predictions": n + len(dup_preds),
        "labels": matched + s.expected.get("late_labels", 0) + len(dup_labels) + len(orphans),
        "matched": matched,
        "duplicate_predictions": len(dup_preds),
        "duplicate_labels": len(dup_labels),
        "invalid": len(malformed_predictions) + len(malformed_labels),
        "unlabelled+pending_predictions": unlabelled,
        "orphan_labels+pending_labels": len(orphans),
    }
    return s


def run_replay(tmp_path: Path, scenario: Scenario) -> tuple[dict, dict]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "p.jsonl").write_text("\n".join(scenario.predictions) + "\n")
    (tmp_path / "l.jsonl").write_text("\n".join(scenario.labels) + "\n")
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "predwatch.cli",
            "replay",
            "--config",
            str(tmp_path / "config.yaml"),
            "--predictions",
            str(tmp_path / "p.jsonl"),
            "--labels",
            str(tmp_path / "l.jsonl"),
            "--summary-json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout), json.loads(out.read_text())


@pytest.mark.parametrize("seed", [1, 2])
def test_replay_counts_and_metrics(tmp_path: Path, seed: int) -> None:
    scenario = build(seed)
    summary, written = run_replay(tmp_path, scenario)
    assert summary == written  # --summary-json writes the same document
    join = summary["join"]
    # The invariants: every valid event has exactly one outcome.
    assert join["predictions"] == (
        join["matched"]
        + join["unlabelled"]
        + join["pending_predictions"]
        + join["duplicate_predictions"]
    )
    assert join["labels"] == (
        join["matched"]
        + join["orphan_labels"]
        + join["late_labels"]
        + join["duplicate_labels"]
        + join["pending_labels"]
    )
    expected = scenario.expected
    for key, value in expected.items():
        if "+" in key:
            assert sum(join[k] for k in key.split("+")) == value, key
        else:
            assert join[key] == value, key
    assert join["orphan_labels"] >= 4  # all but, at most, the last ghost have expired

    check_binary(summary["models"]["fraud"]["v1"], scenario.pairs["fraud"])
    check_multiclass(summary["models"]["species"]["v1"], scenario.pairs["species"])
    check_regression(summary["models"]["price"]["v1"], scenario.pairs["price"])


def in_arrival_order(pairs: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    # A pair is matched when the later of its two events arrives.
    return sorted(pairs, key=lambda pl: max(pl[0]["timestamp"], pl[1]["timestamp"]))


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def check_binary(report: dict, pairs: list[tuple[dict, dict]]) -> None:
    y = np.array([lb["label"] for _, lb in pairs])
    pred = np.array([pr["prediction"] for pr, _ in pairs])
    score = np.array([pr["score"] for pr, _ in pairs])
    got = report["cumulative"]
    assert got["count"] == len(pairs)
    assert close(got["accuracy"], skm.accuracy_score(y, pred))
    assert close(got["precision"], skm.precision_score(y, pred))
    assert close(got["recall"], skm.recall_score(y, pred))
    assert close(got["f1"], skm.f1_score(y, pred))
    assert close(got["log_loss"], skm.log_loss(y, score))
    assert close(got["brier"], skm.brier_score_loss(y, score))
    assert abs(got["roc_auc"] - skm.roc_auc_score(y, score)) <= 0.005


def check_multiclass(report: dict, pairs: list[tuple[dict, dict]]) -> None:
    y = [lb["label"] for _, lb in pairs]
    pred = [pr["prediction"] for pr, _ in pairs]
    proba = np.array([[pr["probabilities"][c] for c in SPECIES] for pr, _ in pairs])
    got = report["cumulative"]
    assert close(got["accuracy"], skm.accuracy_score(y, pred))
    assert close(got["macro_precision"], skm.precision_score(y, pred, average="macro"))
    assert close(got["macro_recall"], skm.recall_score(y, pred, average="macro"))
    assert close(got["macro_f1"], skm.f1_score(y, pred, average="macro"))
    assert close(got["log_loss"], skm.log_loss(y, proba, labels=SPECIES))
    last = in_arrival_order(pairs)[-50:]
    window = report["windows"]["last_50"]
    assert window["count"] == 50
    assert close(
        window["accuracy"],
        skm.accuracy_score([lb["label"] for _, lb in last], [pr["prediction"] for pr, _ in last]),
    )


def check_regression(report: dict, pairs: list[tuple[dict, dict]]) -> None:
    y = np.array([lb["label"] for _, lb in pairs])
    pred = np.array([pr["prediction"] for pr, _ in pairs])
    got = report["cumulative"]
    assert close(got["mae"], skm.mean_absolute_error(y, pred))
    assert close(got["rmse"], skm.root_mean_squared_error(y, pred))
    assert close(got["r2"], skm.r2_score(y, pred))
    assert close(got["bias"], float(np.mean(pred - y)))
    nonzero = y != 0
    assert nonzero.sum() < len(y)  # the data has zero labels, which MAPE leaves out
    assert close(got["mape"], skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]))


def test_replay_reports_problems_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "predwatch.cli",
            "replay",
            "--config",
            str(tmp_path / "config.yaml"),
            "--predictions",
            str(tmp_path / "missing.jsonl"),
            "--labels",
            str(tmp_path / "l.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "missing.jsonl: no such file" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
