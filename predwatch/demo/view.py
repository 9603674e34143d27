"""The demo's live view: one row of figures every few seconds, and the moments that matter.

A ``Row`` is read from the published report alone (``Monitor.report``), with the
predictions and labels read per second since the previous row. ``PlainView`` prints rows
and events as lines (a pipe, a file, CI); ``RichView`` draws a progress bar, the table of
rows and the events on a terminal with ``rich``. Both print ``LEGEND`` first, so every
column is explained.

>>> from io import StringIO
>>> out = StringIO()
>>> view = PlainView(out)
>>> view.row(Row(5.0, 201.0, 180.0, 812, 223, 0.941, 0.932, ("loan",), 0, ("CreditAccuracyLow",)))
>>> print(out.getvalue().splitlines()[-1])
    5s    201     180    812     223  0.941  0.932 loan                  0 CreditAccuracyLow
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from predwatch.demo.config import WINDOW
from predwatch.demo.simulator import MODEL
from predwatch.report import Report

__all__ = ["LEGEND", "PlainView", "RichView", "Row", "View", "make_view", "read_row"]

LEGEND = (
    "columns: time = seconds since the traffic started; pred/s, label/s = predictions and "
    "labels read per second since the previous row (labels come ~2 s after their "
    "prediction, 10% never); joined = predictions matched with their label so far; pending "
    "= predictions still waiting for their label; acc = accuracy of the last 500 joined "
    "pairs; est = accuracy of the latest 500 predictions estimated from their scores alone "
    "(CBPE): acc falling below est means the link between features and labels changed; "
    "drifting = features whose distribution drifts from the reference (the first "
    "predictions); concept = concept drift detections on the stream of errors (ADWIN); "
    "firing = alerts firing now"
)
HEADER = (
    f"{'time':>6} {'pred/s':>6} {'label/s':>7} {'joined':>6} {'pending':>7} {'acc':>6} "
    f"{'est':>6} {'drifting':<15} {'concept':>7} firing"
)


@dataclass(frozen=True)
class Row:
    """The figures of one moment of the run."""

    time: float
    predictions_per_second: float
    labels_per_second: float
    joined: int
    pending: int
    accuracy: float | None
    estimated: float | None
    drifting: tuple[str, ...]
    concept: int
    firing: tuple[str, ...]

    def cells(self) -> list[str]:
        return [
            f"{self.time:.0f}s",
            f"{self.predictions_per_second:.0f}",
            f"{self.labels_per_second:.0f}",
            str(self.joined),
            str(self.pending),
            _ratio(self.accuracy),
            _ratio(self.estimated),
            ", ".join(self.drifting) or "-",
            str(self.concept),
            ", ".join(self.firing) or "-",
        ]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _one(report: Report, figure: str, **labels: str) -> float | None:
    rows = report.select(figure, model=MODEL, **labels)
    return rows[0].value if rows else None


def read_row(report: Report, time: float, previous: Report | None, seconds: float) -> Row:
    """The row of ``report`` at ``time`` s; rates from the counts of the ``previous`` report,
    ``seconds`` of wall clock before."""

    def rate(name: str) -> float:
        before = previous.join.get(name, 0) if previous is not None else 0
        return max(0, report.join.get(name, 0) - before) / max(seconds, 1e-9)

    drifting = report.select("feature_drift_detected", model=MODEL)
    return Row(
        time=time,
        predictions_per_second=rate("predictions"),
        labels_per_second=rate("labels"),
        joined=report.join.get("matched", 0),
        pending=report.join.get("pending_predictions", 0),
        accuracy=_one(report, "accuracy", window=WINDOW, tag=""),
        estimated=_one(report, "estimated_accuracy", window=WINDOW),
        drifting=tuple(sorted({r.label("feature") for r in drifting if r.value >= 1})),
        concept=int(sum(r.value for r in report.select("predwatch_concept_drift", model=MODEL))),
        firing=tuple(sorted({a.rule for a in report.alerts_of(MODEL) if a.state == "firing"})),
    )


class View(Protocol):
    def start(self, lines: list[str]) -> None: ...
    def progress(self, elapsed: float) -> None: ...
    def row(self, row: Row) -> None: ...
    def event(self, text: str) -> None: ...
    def stop(self) -> None: ...


class PlainView:
    """Rows and events as plain lines, for output that is not a terminal."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._rows = 0

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def start(self, lines: list[str]) -> None:
        for line in [*lines, LEGEND]:
            self._print(line)

    def progress(self, elapsed: float) -> None:
        """Plain output shows progress by its rows' times."""

    def row(self, row: Row) -> None:
        if self._rows == 0:
            self._print(HEADER)
        widths = (6, 6, 7, 6, 7, 6, 6, -15, 7, 0)
        cells = row.cells()
        text = " ".join(
            f"{c:>{w}}" if w > 0 else f"{c:<{-w}}" if w < 0 else c
            for c, w in zip(cells, widths, strict=True)
        )
        self._print(text)
        self._rows += 1

    def event(self, text: str) -> None:
        self._print(f"-- {text}")

    def stop(self) -> None:
        """Nothing to close."""


class RichView:
    """A progress bar, the latest rows as a table and the events, redrawn in place."""

    ROWS = 14  # rows kept on screen
    EVENTS = 8

    def __init__(self, out: TextIO, duration: float, change_at: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self._console = Console(file=out)
        self._duration, self._change_at = duration, change_at
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>3.0f}/{task.total:.0f} s"),
            console=self._console,
        )
        self._task = self._bar.add_task("traffic", total=duration)
        self._rows: deque[Row] = deque(maxlen=self.ROWS)
        self._events: deque[str] = deque(maxlen=self.EVENTS)
        self._live: Any = None

    def start(self, lines: list[str]) -> None:
        from rich.live import Live

        for line in lines:
            self._console.print(line, highlight=False)
        self._console.print(LEGEND, style="dim", highlight=False)
        self._live = Live(self._render(), console=self._console, refresh_per_second=4)
        self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False, box=None, header_style="bold")
        for name in HEADER.split()[:-3]:
            table.add_column(name, justify="right", no_wrap=True)
        # Names wrap rather than being cut, so that a narrow terminal still shows them all.
        table.add_column("drifting", overflow="fold", style="yellow")
        table.add_column("concept", justify="right", no_wrap=True)
        table.add_column("firing", overflow="fold", style="red")
        for row in self._rows:
            table.add_row(*row.cells())
        changed = "changed" if self._bar.tasks[0].completed >= self._change_at else "changes"
        description = f"the concept {changed} at {self._change_at:g} s"
        self._bar.update(self._task, description=description)
        # Text, not markup: an alert's summary may hold brackets.
        events = [Text(text, style="bold") for text in self._events]
        return Group(self._bar, table, *events)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def progress(self, elapsed: float) -> None:
        self._bar.update(self._task, completed=min(elapsed, self._duration))
        self._refresh()

    def row(self, row: Row) -> None:
        self._rows.append(row)
        self._refresh()

    def event(self, text: str) -> None:
        self._events.append(text)
        self._refresh()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()


def make_view(out: TextIO, duration: float, change_at: float, plain: bool = False) -> View:
    """A ``RichView`` when ``out`` is a terminal (and ``plain`` is not asked), else plain."""
    if not plain and out.isatty():
        try:
            return RichView(out, duration, change_at)
        except ImportError:  # rich is in the demo extra; without it, plain lines still work
            pass
    return PlainView(out)
