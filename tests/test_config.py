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
    # A cap on pending predictions is a count; 0 turns it off.
    Case(
        "models: {f: {task: binary}}\njoin: {max_pending: -1}",
        "join.max_pending: input should be greater than or equal to 0",
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


def test_check_config_reports_values_and_alert_rules_at_once(tmp_path: Path) -> None:
    # A bad duration and a rule watching a metric that does not exist: both in one run,
    # where the rules used to be checked only once every value was valid.
    text = (
        "models: {fraud: {task: binary}}\n"
        "join: {grace: -5m}\n"
        "alerts: {rules: [{name: Low, metric: acuracy, below: 0.9}]}\n"
    )
    done = run_check(write(tmp_path, text))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].endswith("join.grace: '-5m' is not a duration: durations cannot be negative")
    assert "alerts.rules[0] (Low): unknown metric 'acuracy'" in lines[1]


def test_rules_are_not_checked_against_sections_that_are_invalid(tmp_path: Path) -> None:
    # With the windows invalid, a rule naming a window cannot be judged: only the window
    # problem is reported, not a false "unknown window".
    text = (
        "models: {fraud: {task: binary}}\n"
        "metrics: {windows: [{name: w1, events: 0}]}\n"
        "alerts: {rules: [{name: Low, metric: accuracy, window: w1, below: 0.9}]}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert [p.split(":")[0] for p in error.value.problems] == ["metrics.windows.0.events"]


@dataclass
class EnvCase:
    variables: dict[str, str]
    line: str  # the line check-config prints, exactly


ENV_CASES = [
    # A bad value set by a variable is blamed on the variable, not the file.
    EnvCase(
        {"PREDWATCH_JOIN__GRACE": "-5m"},
        "environment variable PREDWATCH_JOIN__GRACE: join.grace: '-5m' is not a duration: "
        "durations cannot be negative",
    ),
    # A section given as JSON: the variable of the section is named.
    EnvCase(
        {"PREDWATCH_HTTP": '{"port": 70000}'},
        "environment variable PREDWATCH_HTTP: http.port: input should be less than or equal "
        "to 65535",
    ),
    # A structured value that is not JSON.
    EnvCase(
        {"PREDWATCH_KAFKA__CLIENT": "{bad", "PREDWATCH_KAFKA__GROUP_ID": "mine"},
        "environment variable PREDWATCH_KAFKA__CLIENT: is not valid JSON: a variable that sets "
        'a list or a mapping takes JSON, e.g. \'{"key": "value"}\' or \'["a", "b"]\'',
    ),
]


@pytest.mark.parametrize("case", ENV_CASES, ids=lambda c: next(iter(c.variables)))
def test_a_bad_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: EnvCase
) -> None:
    for name, value in case.variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, MINIMAL))
    assert error.value.lines() == [case.line]


def test_the_file_is_blamed_for_what_the_file_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREDWATCH_JOIN__GRACE", "5s")  # valid, and not what is wrong
    path = write(tmp_path, MINIMAL + "http: {port: -1}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert error.value.lines() == [f"{path}: http.port: input should be greater than or equal to 0"]


@dataclass
class DurationCase:
    text: object
    why: str  # what the message says after "is not a duration: "


DURATION_CASES = [
    DurationCase("-5m", "durations cannot be negative"),
    DurationCase(-30, "durations cannot be negative"),
    DurationCase("1h30m", "give one number with one unit, e.g. '90m' rather than '1h30m'"),
    DurationCase("5 minutes", "unknown unit 'minutes'; use ms, s, m, h, d or w"),
    DurationCase("soon", "write a number of seconds or a number with a unit"),
    DurationCase(float("inf"), "it must be a finite number of seconds"),
]


@pytest.mark.parametrize("case", DURATION_CASES, ids=lambda c: repr(c.text))
def test_a_bad_duration_says_why(case: DurationCase) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(case.text)
    assert f"{case.text!r} is not a duration: {case.why}" in str(error.value)
