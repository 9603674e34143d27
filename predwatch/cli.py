"""The ``predwatch`` command: ``run``, ``demo``, ``replay``, ``compare``, ``profile``,
``check-config``.

This module only parses the command line: a verb's module (``predwatch.commands.<verb>``)
is imported when that verb runs, so ``predwatch --help`` and ``--version`` load nothing
but argparse. Results go to standard output; logs and errors to standard error. Exit
codes: 0 success, 2 a problem the user can fix (config, arguments, files).

>>> args = build_parser().parse_args(["compare", "--config", "c.yaml", "--predictions", "p",
...                                   "--labels", "l", "--split-at", "2026-11-27T04:00:00Z"])
>>> args.verb, args.split_at, args.by
('compare', 1795752000.0, None)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from predwatch import __version__
from predwatch.commands import UsageError

USAGE_ERROR = 2
CONFIG_HELP = "YAML config file (PREDWATCH_* environment variables override its keys)"
FILES = "--predictions predictions.jsonl --labels labels.jsonl"


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC unless it says otherwise) or of a number."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2026-11-27T04:00:00Z) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def positive(text: str) -> float:
    """A positive number, for options such as ``--duration``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _verb(commands: Any, name: str, summary: str, description: str, examples: str) -> Any:
    """A subcommand with a one-line ``summary`` (in ``predwatch --help``), a ``description``
    and ``examples`` (in ``predwatch NAME --help``), run by ``predwatch.commands.<name>``."""
    verb = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verb.set_defaults(verb=name)
    return verb


def _add_run(commands: Any) -> None:
    run = _verb(
        commands,
        "run",
        "consume Kafka topics, serve /metrics and send alerts",
        "Run the service: consume the prediction and label topics of the config's Kafka\n"
        "cluster, join them in event time, serve /metrics, /healthz, /readyz and /alerts\n"
        "(on 127.0.0.1:9108 unless 'http' says otherwise) and send alerts to the configured\n"
        "sinks, until SIGTERM or Ctrl-C.",
        "  predwatch run --config predwatch.yaml\n"
        "  PREDWATCH_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 predwatch run --config predwatch.yaml",
    )
    run.add_argument("--config", required=True, help=CONFIG_HELP)


def _add_demo(commands: Any) -> None:
    demo = _verb(
        commands,
        "demo",
        "run predwatch on an embedded broker with simulated traffic that changes",
        "Start an embedded Kafka-compatible broker, a simulated credit model's traffic\n"
        "and predwatch itself, with alert rules and drift on. A third of the way in, the\n"
        "concept changes inside one segment (region apac, loans above 400,000). A live view\n"
        "shows throughput, accuracy and its estimate, drift and alerts as they fire; at the\n"
        "end the demo sets what predwatch found against what was injected. The status page\n"
        "is printed at the start. Needs the demo extra: pip install 'predwatch[demo]'.",
        "  predwatch demo\n"
        "  predwatch demo --duration 120 --change-at 30 --http-port 9108\n"
        "  predwatch demo --record demo-traffic   # then replay the files it writes",
    )
    demo.add_argument("--duration", type=positive, default=60.0, help="seconds to run (60)")
    demo.add_argument("--rate", type=positive, default=200.0, help="predictions per second (200)")
    demo.add_argument(
        "--change-at",
        type=positive,
        default=None,
        help="seconds after the start when the concept changes (a third of --duration)",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the traffic (7)")
    demo.add_argument(
        "--http-port", type=int, default=0, help="port of the status page and /metrics (free)"
    )
    demo.add_argument(
        "--record",
        metavar="DIR",
        help="also write the traffic sent as DIR/predictions.jsonl, DIR/labels.jsonl and "
        "the demo's DIR/config.yaml, for predwatch replay",
    )
    demo.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (no live table)"
    )


def _add_replay(commands: Any) -> None:
    replay = _verb(
        commands,
        "replay",
        "process prediction and label files as the topics would arrive",
        "Replay JSON Lines files of predictions and labels through the monitor, in event\n"
        "time, and print one JSON document: the join's counts, the invalid events by topic\n"
        "and reason, every model version's metrics, drift and alerts. On standard error:\n"
        "progress every few seconds (on a terminal), and a warning with its likely cause\n"
        "when a file gave nothing valid, e.g. a config naming the wrong model.",
        "  predwatch replay --config examples/config.yaml --predictions "
        "examples/predictions.jsonl --labels examples/labels.jsonl\n"
        f"  predwatch replay --config c.yaml {FILES} --summary-json out.json --strict\n"
        f"  predwatch replay --config c.yaml {FILES} --html report.html",
    )
    replay.add_argument("--config", required=True, help=CONFIG_HELP)
    replay.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    replay.add_argument("--labels", required=True, help="JSON Lines file of labels")
    replay.add_argument("--summary-json", metavar="PATH", help="also write the summary here")
    replay.add_argument(
        "--html",
        metavar="PATH",
        help="also write the status page for the replayed stream here (one self-contained file)",
    )
    replay.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 2 when a warning says the files gave nothing valid or no match",
    )
    replay.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print progress to standard error (default: only when it is a terminal)",
    )


def _add_compare(commands: Any) -> None:
    compare = _verb(
        commands,
        "compare",
        "test whether model versions, or before and after a time, differ",
        "Replay prediction and label files, then test whether each model's versions\n"
        "(--by version; the version with most pairs is the baseline) or its pairs predicted\n"
        "before and after a moment (--split-at) differ, with effect sizes, 95% intervals\n"
        "and p-values.",
        f"  predwatch compare --config c.yaml {FILES} --by version\n"
        f"  predwatch compare --config c.yaml {FILES} --split-at 2026-11-27T04:00:00Z --json",
    )
    compare.add_argument("--config", required=True, help=CONFIG_HELP)
    compare.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    compare.add_argument("--labels", required=True, help="JSON Lines file of labels")
    how = compare.add_mutually_exclusive_group(required=True)
    how.add_argument("--by", choices=["version"], help="compare each model's versions")
    how.add_argument(
        "--split-at",
        type=parse_timestamp,
        metavar="TIMESTAMP",
        help="compare pairs predicted before and after this time (ISO 8601 or epoch seconds)",
    )
    compare.add_argument("--json", action="store_true", help="print one JSON document")


def _add_profile(commands: Any) -> None:
    profile = _verb(
        commands,
        "profile",
        "build reference profiles for drift from a file of predictions",
        "Build the reference profile of every model (per version unless\n"
        "'drift.reference.per_version' is false) from a JSON Lines file of predictions you\n"
        "trust, and write them as one JSON file. Name that file as 'drift.reference.path'\n"
        "for replay and run to measure drift against it.",
        "  predwatch profile --config c.yaml --predictions reference.jsonl -o profile.json",
    )
    profile.add_argument("--config", required=True, help=CONFIG_HELP)
    profile.add_argument("--predictions", required=True, help="JSON Lines file of predictions")
    profile.add_argument("-o", "--output", required=True, help="profile file to write (JSON)")


def _add_check_config(commands: Any) -> None:
    check = _verb(
        commands,
        "check-config",
        "validate a config file and report every problem",
        "Validate a config file with the PREDWATCH_* environment variables applied, and\n"
        "print every problem at once, one line each: where it comes from (the file, or the\n"
        "environment variable at fault), the key path, and what to do. Exit status 2 when\n"
        "there is a problem.",
        "  predwatch check-config --config predwatch.yaml\n"
        "  PREDWATCH_JOIN__GRACE=30s predwatch check-config --config predwatch.yaml",
    )
    check.add_argument("--config", help=CONFIG_HELP)
    # Before --config, check-config took the file as its only argument: still accepted.
    check.add_argument("file", nargs="?", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; nothing but argparse is needed to build it."""
    parser = argparse.ArgumentParser(
        prog="predwatch",
        description="Streaming model monitoring: joins predictions with delayed labels in "
        "event time, keeps quality metrics, drift and error segments, exports them to "
        "Prometheus and sends alerts.",
        epilog="Run 'predwatch COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"predwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_demo, _add_replay, _add_compare, _add_profile, _add_check_config):
        add(commands)
    return parser


def _check_config_file(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``check-config`` takes ``--config FILE`` like every command; the positional FILE of
    earlier versions still works, with a note."""
    if args.file is None:
        if args.config is None:
            parser.error("check-config: the following arguments are required: --config")
        return
    if args.config is not None:
        parser.error("check-config: give the file once, as --config FILE")
    print(
        "predwatch: note: 'check-config FILE' is deprecated; write "
        f"'check-config --config {args.file}'",
        file=sys.stderr,
    )
    args.config = args.file


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "check-config":
        _check_config_file(parser, args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every reconnect attempt; predwatch says each change of state once.
    logging.getLogger("kafka").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    command = importlib.import_module(f"predwatch.commands.{args.verb.replace('-', '_')}")
    try:
        return int(command.main(args))
    except UsageError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
