"""Synthetic wire-format traffic of a binary model ``fraud``: predictions and their delayed labels.

The same ``seed`` and options always give the same events. Each prediction has
ten features (seven numeric, three categorical), a score, a prediction, a
model version and a ``region`` tag. Labels follow their prediction after an
exponentially distributed delay; a fraction of predictions is never labelled.
``jitter`` makes each file out of order by up to that many seconds, as a topic
fed by several producers would be.

>>> predictions, labels = generate(4, seed=1, unlabelled=0.0)
>>> first = predictions[0]
>>> first["model"], first["model_version"] in ("v3", "v4"), len(first["features"]), first["tags"]
('fraud', True, 10, {'region': 'us'})
>>> len(labels), sorted(labels[0]), generate(4, seed=1) == generate(4, seed=1)
(4, ['label', 'prediction_id', 'timestamp'], True)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

START = 1_795_737_600.0  # 2026-11-27T00:00:00Z
COUNTRIES = ("BR", "DE", "FR", "GB", "IN", "NG", "US")
CHANNELS = ("web", "app", "pos")
DEVICES = ("ios", "android", "desktop", "other")
REGIONS = ("eu", "us", "apac")

Message = dict[str, Any]


def _stamp(seconds: float, style: str) -> str | float:
    if style == "epoch":
        return seconds
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _arrival_order(times: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """File order: by event time, each event delayed in transit by up to ``jitter`` seconds."""
    delay = rng.uniform(0.0, jitter, times.size) if jitter > 0 else 0.0
    return np.argsort(times + delay, kind="stable")


def generate(
    n: int,
    seed: int = 0,
    *,
    start: float = START,
    rate: float = 20.0,
    label_delay: float = 300.0,
    unlabelled: float = 0.1,
    jitter: float = 0.0,
    new_version_share: float = 0.2,
    timestamps: Literal["iso", "epoch"] = "iso",
) -> tuple[list[Message], list[Message]]:
    """``n`` prediction messages and their label messages, each list in arrival order.

    Predictions arrive at ``rate`` per second on average (Poisson) from
    ``start``; a label comes a mean of ``label_delay`` seconds after its
    prediction, except for a share ``unlabelled`` that never get one. A share
    ``new_version_share`` comes from model version ``v4``, the rest from ``v3``.
    """
    rng = np.random.default_rng(seed)
    times = np.round(start + np.cumsum(rng.exponential(1.0 / rate, n)), 3)
    amount = np.round(rng.lognormal(3.5, 1.2, n), 2)
    age = rng.integers(0, 3650, n)
    hour = rng.integers(0, 24, n)
    tx_24h = rng.poisson(3.0, n)
    distance = np.round(rng.exponential(20.0, n), 1)
    velocity = np.round(rng.gamma(2.0, 1.5, n), 3)
    merchant_risk = np.round(rng.beta(2.0, 5.0, n), 4)
    country, channel, device = (rng.integers(0, len(c), n) for c in (COUNTRIES, CHANNELS, DEVICES))
    region = rng.integers(0, len(REGIONS), n)
    new_version = rng.random(n) < new_version_share
    # The true fraud log-odds; the model sees it with noise (more noise in v4).
    logit = (
        -5.5
        + 0.6 * np.log1p(amount)
        - 0.0004 * age
        + 0.25 * tx_24h
        + 3.0 * merchant_risk
        + 0.4 * (channel == 0)
        + 0.5 * (country == 5)
    )
    truth = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    noisy = logit + rng.normal(0.0, np.where(new_version, 1.5, 0.8))
    score = np.round(1.0 / (1.0 + np.exp(-noisy)), 4)
    labelled = rng.random(n) >= unlabelled
    label_times = np.round(times + rng.exponential(label_delay, n), 3)

    predictions: list[Message] = []
    for i in _arrival_order(times, jitter, rng).tolist():
        predictions.append(
            {
                "prediction_id": f"{seed:x}-{i:09d}",
                "model": "fraud",
                "model_version": "v4" if new_version[i] else "v3",
                "timestamp": _stamp(float(times[i]), timestamps),
                "features": {
                    "amount": float(amount[i]),
                    "account_age_days": int(age[i]),
                    "hour": int(hour[i]),
                    "tx_24h": int(tx_24h[i]),
                    "distance_km": float(distance[i]),
                    "velocity": float(velocity[i]),
                    "merchant_risk": float(merchant_risk[i]),
                    "country": COUNTRIES[country[i]],
                    "channel": CHANNELS[channel[i]],
                    "device": DEVICES[device[i]],
                },
                "prediction": int(score[i] >= 0.5),
                "score": float(score[i]),
                "tags": {"region": REGIONS[region[i]]},
            }
        )
    kept = np.flatnonzero(labelled)
    labels = [
        {
            "prediction_id": f"{seed:x}-{i:09d}",
            "timestamp": _stamp(float(label_times[i]), timestamps),
            "label": int(truth[i]),
        }
        for i in kept[_arrival_order(label_times[kept], jitter, rng)].tolist()
    ]
    return predictions, labels


def write_jsonl(
    directory: str | Path, predictions: list[Message], labels: list[Message]
) -> tuple[Path, Path]:
    """Write ``predictions.jsonl`` and ``labels.jsonl`` in ``directory``; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "predictions.jsonl", directory / "labels.jsonl"
    for path, messages in zip(paths, (predictions, labels), strict=True):
        with path.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(m, separators=(",", ":")) + "\n" for m in messages)
    return paths
