"""The ``predwatch`` command: ``run``, ``demo``, ``replay``, ``compare``, ``profile``,
``check-config``.

Results go to standard output; logs and errors to standard error. Exit codes:
0 success, 2 a problem the user can fix (config, arguments, files).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from predwatch import __version__
from predwatch.config import ConfigError, Settings, load_settings
from predwatch.consumer.files import replay
from predwatch.consumer.kafka import SourceError
from predwatch.demo.app import add_demo_parser
from predwatch.diagnostics.cli import add_compare_parser
from predwatch.drift.profile import ProfileError, ReferenceProfile, build_profile, load_profiles
from predwatch.exporter import ExporterError
from predwatch.monitor import Monitor
from predwatch.service import Service

log = logging.getLogger("predwatch")
USAGE_ERROR = 2


def _load(path: str) -> Settings:
    return load_settings(path)


def tune_gc() -> None:
    """Collect garbage rarely: the monitor keeps many small long-lived objects (pending events)
    and makes almost no reference cycles, so frequent collections only rescan live state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def cmd_check_config(args: argparse.Namespace) -> int:
    _load(args.config)
    print(f"{args.config}: valid")
    return 0


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the service finishes its batch and exits."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info(
            "%s received: finishing the batch in hand, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _profiles(settings: Settings) -> list[ReferenceProfile]:
    """The reference profiles drift compares with, read from ``drift.reference.path``."""
    path = settings.drift.reference.path
    return load_profiles(path) if settings.drift.enabled and path else []


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    tune_gc()
    service = Service(settings, profiles=_profiles(settings))
    service.run(stop_on_signals())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    tune_gc()
    monitor = replay(
        settings, args.predictions, args.labels, Monitor(settings, _profiles(settings))
    )
    document = json.dumps(monitor.summary(), indent=2, sort_keys=False)
    if args.summary_json:
        Path(args.summary_json).write_text(document + "\n", encoding="utf-8")
    print(document)
    counts = monitor.counts
    log.info(
        "replayed %d predictions and %d labels: %d matched, %d invalid",
        counts.predictions,
        counts.labels,
        counts.matched,
        counts.invalid,
    )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if not Path(args.predictions).is_file():
        raise FileNotFoundError(f"{args.predictions}: no such file; give a JSON Lines file")
    profiles = build_profile(settings, args.predictions, args.output, settings.drift)
    for profile in profiles:
        log.info(
            "profiled %s %s from %d predictions",
            profile.model,
            profile.version or "(every version)",
            profile.count,
        )
    print(f"{args.output}: {len(profiles)} profile(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predwatch",
        description="Streaming model monitoring: joins predictions with delayed labels.",
    )
    parser.add_argument("--version", action="version", version=f"predwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="consume Kafka topics and serve /metrics")
    run.add_argument("--config", required=True, help="YAML config file")
    run.set_defaults(run=cmd_run)

    add_demo_parser(commands)
    add_compare_parser(commands)

    prof = commands.add_parser(
        "profile", help="build reference profiles for drift from a file of predictions"
    )
    prof.add_argument("--config", required=True, help="YAML config file")
    prof.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    prof.add_argument("-o", "--output", required=True, help="profile file to write (JSON)")
    prof.set_defaults(run=cmd_profile)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("config", help="YAML config file")
    check.set_defaults(run=cmd_check_config)

    rep = commands.add_parser(
        "replay", help="process prediction and label files as the topics would arrive"
    )
    rep.add_argument("--config", required=True, help="YAML config file")
    rep.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    rep.add_argument("--labels", required=True, help="JSON Lines file of labels")
    rep.add_argument("--summary-json", metavar="PATH", help="also write the summary here")
    rep.set_defaults(run=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every reconnect attempt; predwatch says each change of state once.
    logging.getLogger("kafka").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        return int(args.run(args))
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return USAGE_ERROR
    except (FileNotFoundError, ExporterError, SourceError, ProfileError) as error:
        print(f"predwatch: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
