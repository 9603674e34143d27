"""Configuration: the minimal file, durations, environment overrides, and error messages."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from predwatch.config import ConfigError, load_settings
from predwatch.durations import parse_duration

MINIMAL = """
models:
  fraud:   {task: binary, positive_label: 1}
  species: {task: multiclass}
  price:   {task: regression}
join:
  label_timeout: 1h
  grace: 60s
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_minimal_file_is_valid_and_defaults_the_rest(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.models["fraud"].task == "binary"
    assert settings.join.label_timeout == 3600 and settings.join.grace == 60
    assert settings.http.host == "127.0.0.1"
    assert settings.fields.prediction_id == "prediction_id"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "-5s", "h", True, None, "1h30m"])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@dataclass
class Case:
    yaml: str
    problem: str  # one line of the error list, exactly


CASES = [
    # A misspelt task names the key path and the choices.
    Case(
        "models: {fraud: {task: binry}}",
        "models.fraud.task: must be one of binary, multiclass, regression",
    ),
    # A key predwatch does not know is an error, not silently ignored.
    Case(
        "models: {fraud: {task: binary, positve_label: 1}}",
        "models.fraud.positve_label: is not a known key; remove it or check its spelling",
    ),
    # A duration in a unit predwatch does not know.
    Case(
        "models: {f: {task: binary}}\njoin: {grace: 5 minutes}",
        "join.grace: '5 minutes' is not a duration: unknown unit 'minutes'; use ms, s, m, h, "
        "d or w, such as 90, '90s', '15m', '1h' or '2d'",
    ),
    # Without models there is nothing to monitor.
    Case("join: {grace: 5s}", "models: is required"),
    Case("models: {}", "models: needs at least one model, e.g. 'models: {fraud: {task: binary}}'"),
    # A window needs exactly one size.
    Case(
        "models: {f: {task: binary}}\nmetrics: {windows: [{name: w, events: 5, duration: 1h}]}",
        "metrics.windows.0: give exactly one of 'events' (a count) or 'duration' (event time)",
    ),
    Case(
        "models: {f: {task: binary}}\nmetrics: {windows: [{name: w, events: 5}, "
        "{name: w, duration: 1h}]}",
        "metrics: window names must be unique; repeated: w",
    ),
    # Not YAML at all.
    Case(
        "models: [unclosed", "not valid YAML at line 1: expected ',' or ']', but got '<stream end>'"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.problem.split(":")[0] for c in CASES])
def test_config_errors_name_the_key(tmp_path: Path, case: Case) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, case.yaml))
    assert case.problem in error.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "models: {a: {task: x}, b: {task: regression, extra: 1}}\njoin: {grace: soon}"
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert [p.split(":")[0] for p in error.value.problems] == [
        "models.a.task",
        "models.b.extra",
        "join.grace",
    ]


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDWATCH_JOIN__GRACE", "5s")
    monkeypatch.setenv("PREDWATCH_KAFKA__SASL_PLAIN_PASSWORD", "hunter2")
    monkeypatch.setenv("PREDWATCH_FIELDS__PREDICTION_ID", "request_id")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.join.grace == 5.0
    assert settings.join.label_timeout == 3600.0  # the rest of the file's section stays
    assert settings.fields.prediction_id == "request_id"
    password = settings.kafka.sasl_plain_password
    assert password is not None and password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)  # secrets never show in logs or reprs


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "predwatch.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
    )


def test_check_config_command(tmp_path: Path) -> None:
    good = run_check(write(tmp_path, MINIMAL))
    assert good.returncode == 0, good.stderr
    bad = run_check(write(tmp_path, "models: {fraud: {task: binry}}\njoin: {grace: x}"))
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in bad.stderr
    assert lines[0].endswith("models.fraud.task: must be one of binary, multiclass, regression")
    assert ": join.grace: " in lines[1]
    missing = run_check(tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr
