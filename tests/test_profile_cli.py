"""``predwatch profile`` builds reference profiles that a replay then compares against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from predwatch.demo.synthetic import generate, write_jsonl


def predwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "predwatch.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_profile_then_replay_against_it(tmp_path: Path) -> None:
    reference, _ = generate(3000, seed=1)
    current, labels = generate(3000, seed=2)
    for p in current:  # the country mix moves: BR becomes most of the traffic
        if p["features"]["country"] in ("DE", "FR", "GB"):
            p["features"]["country"] = "BR"
    ref_path, _ = write_jsonl(tmp_path / "ref", reference, [])
    predictions, labels_path = write_jsonl(tmp_path / "now", current, labels)
    profile = tmp_path / "profile.json"
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "models": {"fraud": {"task": "binary"}},
                "metrics": {"windows": [{"name": "last_2000", "events": 2000}]},
                "drift": {"reference": {"path": str(profile), "per_version": False}},
            }
        )
    )

    made = predwatch(
        "profile", "--config", str(config), "--predictions", str(ref_path), "-o", str(profile)
    )
    assert made.returncode == 0, made.stderr
    document = json.loads(profile.read_text())
    assert document["format"] == 1
    assert [(p["model"], p["version"], p["count"]) for p in document["profiles"]] == [
        ("fraud", None, 3000)
    ]

    replayed = predwatch(
        "replay",
        "--config",
        str(config),
        "--predictions",
        str(predictions),
        "--labels",
        str(labels_path),
    )
    assert replayed.returncode == 0, replayed.stderr
    columns = json.loads(replayed.stdout)["models"]["fraud"]["v3"]["drift"]["data"]["last_2000"]
    assert columns["country"]["drift"] is True
    assert columns["amount"]["drift"] is False  # unchanged features stay quiet


def test_missing_profile_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "models": {"fraud": {"task": "binary"}},
                "drift": {"reference": {"path": str(tmp_path / "none.json")}},
            }
        )
    )
    (tmp_path / "p.jsonl").write_text("")
    done = predwatch(
        "replay",
        "--config",
        str(config),
        "--predictions",
        str(tmp_path / "p.jsonl"),
        "--labels",
        str(tmp_path / "p.jsonl"),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"predwatch: {tmp_path / 'none.json'}: cannot read the profile file "
        "(No such file or directory)."
    ]
