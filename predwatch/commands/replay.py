"""``predwatch replay``: prediction and label files through the monitor, one JSON summary out.

The summary goes to standard output (and to ``--summary-json``); ``--html`` writes the
status page of the replayed stream, the page the service serves at ``/``, as one
self-contained file; on standard error, progress every few seconds
(on a terminal, or with ``--progress``), the invalid events by topic and reason, and a
warning with the likely cause when a file gave nothing valid. ``--strict`` turns such a
warning into exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from predwatch.commands.common import load, problem, reference_profiles, tune_gc
from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.exporter.page import render_page
from predwatch.exporter.status import status_document
from predwatch.monitor import Monitor

log = logging.getLogger("predwatch")
PROGRESS_EVERY = 5.0  # seconds between progress lines
STRICT_FAILURE = 2
NAMED_LINES = 1000  # lines read to say which models the events name
NAMED_MODELS = 5

HINTS = {
    "unknown_model": (
        "the events name a model the config does not list{named}: check 'models' "
        "({models}), and that 'fields.model' names the field that holds the model"
    ),
    "missing_field": (
        "the events have no field {field!r}: if your producer spells it differently, "
        "map it under 'fields' in the config"
    ),
    "bad_type": "field {field!r} holds values of the wrong type (see the README's wire format)",
    "non_finite": "field {field!r} holds NaN or infinite numbers",
    "bad_timestamp": (
        "timestamps must be ISO 8601 with a zone (2026-11-27T04:00:00Z) or epoch seconds"
    ),
    "not_json": "the file is not JSON Lines: one JSON object per line",
    "not_object": "the file is not JSON Lines: one JSON object per line",
}


class Progress:
    """Counts replayed events and says, every ``every`` seconds of ``clock``, how many and
    how fast.

    >>> from io import StringIO
    >>> ticks = iter([0.0, 1.0, 6.0, 7.0])
    >>> out = StringIO()
    >>> progress = Progress(out, clock=lambda: next(ticks))
    >>> progress.add(1000); progress.add(29_000)
    >>> out.getvalue()
    'predwatch replay: 30,000 events, 5,000 events/s\\n'
    """

    def __init__(
        self,
        out: TextIO,
        every: float = PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out, self._every, self._clock = out, every, clock
        self._start = self._last = clock()
        self.events = 0

    def add(self, events: int) -> None:
        """``events`` more were replayed; print a line if ``every`` has passed."""
        self.events += events
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            print(f"predwatch replay: {self._line(now)}", file=self._out, flush=True)

    def done(self) -> None:
        """Print the total and the average rate."""
        print(f"predwatch replay: done, {self._line(self._clock())}", file=self._out, flush=True)

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = f", {self.events / elapsed:,.0f} events/s" if elapsed > 0 else ""
        return f"{self.events:,} events{rate}"


def invalid_by_topic(reasons: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """The monitor's ``invalid_reasons`` as ``{topic: {reason: count}}``, most frequent first.

    >>> invalid_by_topic(Counter({("predictions", "not_json"): 2,
    ...                           ("predictions", "unknown_model"): 5, ("labels", "not_json"): 1}))
    {'labels': {'not_json': 1}, 'predictions': {'unknown_model': 5, 'not_json': 2}}
    """
    out: dict[str, dict[str, int]] = {}
    for (topic, reason), count in sorted(reasons.items(), key=lambda i: (i[0][0], -i[1])):
        out.setdefault(topic, {})[reason] = count
    return out


def hint(reason: str, settings: Settings, named: Sequence[str] = ()) -> str:
    """The likely cause of events invalid for ``reason``, as a sentence a user can act on;
    ``named`` are models the events name, if known.

    >>> from predwatch.config import Settings
    >>> hint("missing_field:model_version", Settings(models={"fraud": {"task": "binary"}}))
    "the events have no field 'model_version': if your producer spells it differently, map it \
under 'fields' in the config"
    """
    kind, _, field = reason.partition(":")
    template = HINTS.get(kind)
    if template is None:
        return f"they are invalid: {reason}"
    shown = f" (they name {', '.join(map(repr, named))})" if named else ""
    return template.format(field=field, models=", ".join(settings.models), named=shown)


def models_named(path: str | Path, field: str, lines: int = NAMED_LINES) -> list[str]:
    """The distinct models (at most ``NAMED_MODELS``) that the first ``lines`` lines of a
    predictions file name in ``field``, for a hint; lines that are not JSON are passed over.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "p.jsonl"
    >>> _ = path.write_text('{"model": "fraud"}\\nnot json\\n{"model": "fraud"}\\n{"model": 3}\\n')
    >>> models_named(path, "model")
    ['fraud']
    """
    named: dict[str, None] = {}
    with Path(path).open("rb") as file:
        for line in islice(file, lines):
            try:
                value = json.loads(line).get(field)
            except (ValueError, AttributeError):  # not JSON, or not an object
                continue
            if isinstance(value, str):
                named[value] = None
                if len(named) == NAMED_MODELS:
                    break
    return list(named)


def warnings(monitor: Monitor, named: Sequence[str] = ()) -> list[str]:
    """What suggests the replay did not read what the user meant, each with a likely cause;
    ``named`` are the models the predictions name, if known."""
    counts, found = monitor.counts, []
    by_topic = invalid_by_topic(monitor.invalid_reasons)
    for topic, valid in (("predictions", counts.predictions), ("labels", counts.labels)):
        invalid = by_topic.get(topic, {})
        if valid == 0 and invalid:
            reason, count = next(iter(invalid.items()))  # the most frequent
            found.append(
                f"no valid {topic[:-1]} was read: all {sum(invalid.values())} were invalid, "
                f"{count} as {reason}; likely cause: {hint(reason, monitor.settings, named)}"
            )
        elif valid == 0:
            found.append(f"no {topic[:-1]} was read: the {topic} file holds no events")
    if counts.predictions and counts.labels and not counts.matched:
        found.append(
            "no label matched a prediction: check that both files use the same prediction ids "
            f"('fields.prediction_id') and that labels come within 'join.label_timeout' "
            f"({monitor.settings.join.label_timeout:g} s) of their predictions"
        )
    return found


def summary(monitor: Monitor) -> dict[str, Any]:
    """The monitor's summary, with the invalid events by topic and reason."""
    return {**monitor.summary(), "invalid": invalid_by_topic(monitor.invalid_reasons)}


def _show_progress(args: argparse.Namespace, err: TextIO) -> bool:
    return args.progress if args.progress is not None else err.isatty()


def main(args: argparse.Namespace) -> int:
    settings = load(args.config)
    monitor = Monitor(settings, reference_profiles(settings))
    tune_gc()
    progress = Progress(sys.stderr) if _show_progress(args, sys.stderr) else None
    try:
        replay(
            settings,
            args.predictions,
            args.labels,
            monitor,
            on_batch=progress.add if progress else None,
        )
    except FileNotFoundError as error:
        raise problem(error) from None
    if progress:
        progress.done()
    document = json.dumps(summary(monitor), indent=2, sort_keys=False)
    if args.summary_json:
        Path(args.summary_json).write_text(document + "\n", encoding="utf-8")
    if args.html:
        title = f"predwatch replay of {Path(args.predictions).name}"
        page = render_page(status_document(monitor.report), live=False, title=title)
        try:
            Path(args.html).write_text(page, encoding="utf-8")
        except OSError as error:
            message = f"cannot write --html {args.html}: {error.strerror or error}"
            raise problem(OSError(message + "; name a file in a writable directory")) from None
        log.info("wrote the status page of the replay to %s", args.html)
    print(document)
    counts = monitor.counts
    log.info(
        "replayed %d predictions and %d labels: %d matched, %d invalid",
        counts.predictions,
        counts.labels,
        counts.matched,
        counts.invalid,
    )
    for topic, reasons in invalid_by_topic(monitor.invalid_reasons).items():
        log.info(
            "invalid %s: %s", topic, ", ".join(f"{n} {reason}" for reason, n in reasons.items())
        )
    named = []
    if ("predictions", "unknown_model") in monitor.invalid_reasons:
        named = models_named(args.predictions, settings.fields.model)
    found = warnings(monitor, named)
    for warning in found:
        log.warning("%s", warning)
    if found and args.strict:
        log.error("--strict: exiting with status %d because of the warnings above", STRICT_FAILURE)
        return STRICT_FAILURE
    return 0
