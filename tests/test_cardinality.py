"""Values that come from events cannot grow the exposition without bound: a thousand model
versions, hundreds of label values, every tag value unique. Each value past its cap is
counted as folded into "other", and the exposition stays small."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.exporter import ReportCollector

SETTINGS = Settings.model_validate(
    {
        "models": {"fraud": {"task": "binary"}, "species": {"task": "multiclass"}},
        "metrics": {"tags": ["user"], "windows": [{"name": "last_100", "events": 100}]},
        "diagnostics": {"enabled": False},
    }
)
VERSIONS, LABELS = 1000, 300


def write(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_hostile_cardinality_is_folded_and_counted(tmp_path: Path) -> None:
    predictions, labels = [], []
    for i in range(VERSIONS):  # a new version, a new user tag and a new class every time
        t = 1000.0 + i
        predictions.append(
            {"prediction_id": f"f{i}", "model": "fraud", "model_version": f"v{i}",
             "timestamp": t, "prediction": i % 2, "tags": {"user": f"u{i}"}}
        )  # fmt: skip
        labels.append(
            {"prediction_id": f"f{i}", "timestamp": t + 1, "label": f"class-{i % LABELS}"}
        )
        predictions.append(
            {"prediction_id": f"s{i}", "model": "species", "timestamp": t,
             "prediction": f"class-{(i + 1) % LABELS}"}
        )  # fmt: skip
        labels.append(
            {"prediction_id": f"s{i}", "timestamp": t + 1, "label": f"class-{i % LABELS}"}
        )
    monitor = replay(
        SETTINGS, write(tmp_path / "p.jsonl", predictions), write(tmp_path / "l.jsonl", labels)
    )
    monitor.summary()
    registry = CollectorRegistry()
    registry.register(ReportCollector(lambda: monitor.report))
    exposition = generate_latest(registry).decode()
    folded = {
        (sample.labels["model"], sample.labels["kind"]): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "predwatch_folded_values_total"
    }
    cap = SETTINGS.metrics
    # Versions past the cap, by construction: every prediction of fraud has its own version.
    assert folded[("fraud", "version")] == VERSIONS - cap.max_versions
    # A binary model's labels other than 0 and 1 are invalid, never classes: of "class-N"
    # labels none is 0 or 1, so every fraud label is refused.
    assert monitor.invalid_reasons["labels", "bad_type:label"] == VERSIONS
    # species sees LABELS classes; those past the cap are folded (each label or prediction).
    species_classes = {f"class-{i % LABELS}" for i in range(VERSIONS)}
    assert len(species_classes) > cap.max_classes
    assert folded[("species", "class")] > 0
    series = sum(len(family.samples) for family in text_string_to_metric_families(exposition))
    # Bounded: versions x tag values x windows x metrics, and classes squared for confusion.
    assert series < 10_000, series
    assert len(exposition) < 2_000_000
