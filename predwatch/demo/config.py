"""The demo's config: model ``credit``, windows, drift, segments and alert rules sized to a run.

The same mapping configures the live demo (with a ``kafka`` and ``http`` section) and the
``config.yaml`` written beside recorded traffic for ``predwatch replay``. The reference of
data drift is the first predictions before the change; rules fire on what the change
does: accuracy below 0.8, a concept drift detection, drifting features.

>>> config = demo_config(rate=200.0, change_at=20.0)
>>> config["drift"]["reference"], [r["name"] for r in config["alerts"]["rules"]]
({'first': 2000}, ['CreditAccuracyLow'])
>>> from predwatch.config import settings_from_mapping
>>> [r.name for r in settings_from_mapping(config).alerts.all_rules()]
['CreditAccuracyLow', 'ConceptDriftDetected', 'FeatureDriftDetected']
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from predwatch.config import Settings, settings_from_mapping
from predwatch.demo.simulator import MODEL

__all__ = [
    "ACCURACY_RULE",
    "LABELS_TOPIC",
    "PREDICTIONS_TOPIC",
    "WINDOW",
    "demo_config",
    "demo_settings",
    "write_config",
]

PREDICTIONS_TOPIC = "predictions"
LABELS_TOPIC = "labels"
WINDOW = "last_500"  # the window the live view and the accuracy rule read
ACCURACY_RULE = "CreditAccuracyLow"
MIN_REFERENCE, MAX_REFERENCE = 500, 5000


def demo_config(rate: float, change_at: float) -> dict[str, Any]:
    """The demo's config for traffic at ``rate`` predictions/s changing at ``change_at`` s."""
    # Half the predictions before the change make the reference of data drift.
    reference = int(min(MAX_REFERENCE, max(MIN_REFERENCE, rate * change_at / 2)))
    return {
        "models": {MODEL: {"task": "binary", "positive_label": 1}},
        "join": {"label_timeout": "30s", "grace": "2s", "idle_timeout": "5s"},
        "metrics": {
            "windows": [{"name": WINDOW, "events": 500}, {"name": "1m", "duration": "1m"}],
            "tags": ["region"],
        },
        "drift": {"reference": {"first": reference}, "min_samples": 500},
        # Segments from a fifth of the pairs, recomputed every few seconds, with a tree and
        # held-out pairs of the last 1000 sampled pairs (about 30 s at 200/s): a short run
        # has few pairs, and its segments should follow the change within seconds.
        "diagnostics": {
            "sample_rate": 0.2,
            "evaluation_rate": 0.2,
            "window": 1000,
            "recent_pairs": 1000,
            "refresh_pairs": 500,
            "refresh_interval": "5s",
        },
        "alerts": {
            "evaluate_every": "5s",
            "rules": [
                {
                    "name": ACCURACY_RULE,
                    "model": MODEL,
                    "metric": "accuracy",
                    "window": WINDOW,
                    "below": 0.8,
                    "clear": 0.85,
                    "for": "10s",
                    "min_samples": 300,
                    "severity": "page",
                    "annotations": {
                        "summary": "Accuracy of {{model}} {{version}} is {{value}} "
                        "(< {{threshold}}); where it errs most: {{top_segments}}"
                    },
                }
            ],
            # A detection is a moment: keep it firing for 20 s, so that it also resolves
            # within the run.
            "builtin": {
                "concept_drift": {"enabled": True, "keep_firing_for": "20s"},
                "feature_drift": {"enabled": True, "keep_firing_for": "20s"},
            },
            # The demo prints alerts itself; no log line per notification.
            "sinks": {"log": False},
        },
    }


def demo_settings(
    bootstrap_servers: str, rate: float, change_at: float, http_port: int = 0
) -> Settings:
    """The live demo's settings: ``demo_config`` with a fresh consumer group on the broker."""
    config = demo_config(rate, change_at)
    config["kafka"] = {
        "bootstrap_servers": bootstrap_servers,
        "group_id": f"predwatch-demo-{uuid.uuid4().hex[:12]}",
        "predictions_topic": PREDICTIONS_TOPIC,
        "labels_topic": LABELS_TOPIC,
        # A group join on the embedded broker takes about half the session timeout.
        "session_timeout": "3s",
    }
    config["http"] = {"host": "127.0.0.1", "port": http_port}
    return settings_from_mapping(config)


def write_config(path: Any, rate: float, change_at: float) -> None:
    """Write ``demo_config`` as YAML, for ``predwatch replay --config``."""
    text = yaml.safe_dump(demo_config(rate, change_at), sort_keys=False, width=100)
    header = (
        "# The demo's config (predwatch.demo.config), for replaying recorded traffic:\n"
        "#   predwatch replay --config config.yaml --predictions predictions.jsonl "
        "--labels labels.jsonl\n"
    )
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + text)
