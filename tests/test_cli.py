"""The command line as a user meets it: help with examples, one way to pass the config,
replay's warnings and progress, and a front that loads nothing heavy to say its version."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from predwatch.cli import build_parser
from predwatch.demo.synthetic import generate, write_jsonl

VERBS = ["run", "demo", "replay", "compare", "profile", "check-config"]
HEAVY = ["numpy", "scipy", "river", "sklearn", "msgspec", "kafka", "prometheus_client", "pydantic"]


def predwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "predwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_every_command_is_listed_with_a_summary() -> None:
    text = build_parser().format_help()
    for verb in VERBS:
        assert f"    {verb}" in text, verb
    assert "predwatch COMMAND --help" in text


@pytest.mark.parametrize("verb", VERBS)
def test_every_command_has_a_description_and_examples(verb: str) -> None:
    done = predwatch(verb, "--help")
    assert done.returncode == 0, done.stderr
    description = done.stdout.split("\n\n")[1]  # after the usage
    assert len(description.split()) >= 15, description  # a few sentences, not a fragment
    examples = [line for line in done.stdout.split("examples:\n", 1)[1].splitlines() if line]
    assert examples and all(f"predwatch {verb}" in line for line in examples), examples


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["replay", "--help"]])
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    # Start-up is what a user waits for: the front parses with argparse alone and imports
    # a command's module only to run it.
    probe = (
        "import sys\n"
        "from predwatch.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_settings_import_no_numerical_library() -> None:
    probe = (
        "import sys\n"
        "import predwatch.config, predwatch.alerts.settings, predwatch.drift.settings\n"
        "import predwatch.diagnostics.settings, predwatch.alerts.sinks.settings\n"
        "print(sorted(m for m in ('numpy', 'scipy', 'river', 'sklearn', 'msgspec', 'kafka')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


CONFIG = "models:\n  fraud: {task: binary}\n"


def test_check_config_takes_config_like_every_command(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    done = predwatch("check-config", "--config", str(path))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"{path}: valid", "")


def test_check_config_still_accepts_the_file_alone_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    done = predwatch("check-config", str(path))
    assert done.returncode == 0 and done.stdout.strip() == f"{path}: valid"
    assert "deprecated" in done.stderr and f"check-config --config {path}" in done.stderr
    both = predwatch("check-config", str(path), "--config", str(path))
    assert both.returncode == 2 and "once" in both.stderr
    neither = predwatch("check-config")
    assert neither.returncode == 2 and "--config" in neither.stderr


@dataclass
class Stream:
    predictions: Path
    labels: Path


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    folder = tmp_path_factory.mktemp("stream")
    predictions, labels = write_jsonl(folder, *generate(500, seed=3))
    return Stream(predictions, labels)


def replay(
    tmp_path: Path, stream: Stream, config: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return predwatch(
        "replay",
        "--config",
        str(path),
        "--predictions",
        str(stream.predictions),
        "--labels",
        str(stream.labels),
        *extra,
    )


def test_replay_of_a_config_naming_the_wrong_model_warns_with_the_cause(
    tmp_path: Path, stream: Stream
) -> None:
    # The stream's model is "fraud"; a config that lists only "spam" reads no prediction.
    done = replay(tmp_path, stream, "models:\n  spam: {task: binary}\n")
    assert done.returncode == 0  # a warning, not an error, unless --strict
    summary = json.loads(done.stdout)
    assert summary["join"]["predictions"] == 0
    assert summary["invalid"] == {"predictions": {"unknown_model": 500}}
    warning = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert any(
        "no valid prediction was read: all 500 were invalid, 500 as unknown_model" in line
        and "a model the config does not list (they name 'fraud')" in line
        and "'models' (spam)" in line
        for line in warning
    ), done.stderr
    strict = replay(tmp_path, stream, "models:\n  spam: {task: binary}\n", "--strict")
    assert strict.returncode == 2 and "--strict" in strict.stderr
    assert json.loads(strict.stdout)["join"]["predictions"] == 0  # the summary still comes


def test_replay_names_the_field_a_config_maps_wrongly(tmp_path: Path, stream: Stream) -> None:
    config = CONFIG + "fields: {model: model_name}\n"
    done = replay(tmp_path, stream, config, "--strict")
    assert done.returncode == 2
    assert json.loads(done.stdout)["invalid"]["predictions"] == {"missing_field:model_name": 500}
    assert "the events have no field 'model_name'" in done.stderr


def test_replay_of_good_files_has_no_warning_even_when_strict(
    tmp_path: Path, stream: Stream
) -> None:
    done = replay(tmp_path, stream, CONFIG, "--strict")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["join"]["predictions"] == 500 and summary["invalid"] == {}


def test_replay_progress_only_when_asked_or_on_a_terminal(tmp_path: Path, stream: Stream) -> None:
    quiet = replay(tmp_path, stream, CONFIG)  # standard error is a pipe here
    assert "events/s" not in quiet.stderr
    shown = replay(tmp_path, stream, CONFIG, "--progress")
    total = 500 + sum(1 for line in stream.labels.read_text().splitlines() if line.strip())
    assert f"predwatch replay: done, {total:,} events" in shown.stderr
    assert json.loads(shown.stdout) == json.loads(quiet.stdout)  # progress never on stdout
