"""``predwatch demo``: the whole service on an embedded broker, fed by traffic with a known story.

It needs nothing but the installed package: it starts an ``EmbeddedBroker``, creates the
two topics, runs the ``Service`` (with the demo's alert rules and drift, see
``predwatch.demo.config``) and a ``Simulator`` of ``demo_traffic`` on threads of their
own. The concept changes at ``change_at`` seconds inside a known segment
(``predwatch.demo.story``). While it runs, the live view (``predwatch.demo.view``) shows
a row per published report and every alert, drift detection and drifting feature as it
appears; after ``duration`` seconds (or Ctrl-C) it stops everything and prints what
predwatch found against what was injected. Everything shown is read from the published
report and the alert log, as any reader of predwatch would.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from predwatch.alerts.engine import Transition
from predwatch.demo.broker import BrokerError, EmbeddedBroker
from predwatch.demo.config import LABELS_TOPIC, PREDICTIONS_TOPIC, demo_settings
from predwatch.demo.record import CONFIG, LABELS, PREDICTIONS, Recorded, Recorder
from predwatch.demo.simulator import MODEL, SimulationStats, Simulator, Traffic
from predwatch.demo.story import (
    SEGMENT,
    Findings,
    Injected,
    Timeline,
    demo_traffic,
    drifting_features,
    findings,
    story_lines,
)
from predwatch.demo.view import View, make_view, read_row
from predwatch.report import Report
from predwatch.service import Service

__all__ = ["DemoResult", "run_demo"]

PARTITIONS = 3
TICK = 0.25  # seconds between the main loop's looks at the report
DRAIN_TIMEOUT = 15.0  # seconds at most for the service to read what was sent, at the end
JOIN_TIMEOUT = 15.0  # seconds to wait for a thread to end


@dataclass(frozen=True)
class DemoResult:
    """What a run injected, what predwatch found, and how many events went each way."""

    injected: Injected
    findings: Findings
    report: Report
    sent: SimulationStats
    recorded: Recorded | None


class _Worker(threading.Thread):
    """A daemon thread that keeps the exception its target raised, for the caller to re-raise."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except Exception as error:  # handed to the main thread, which re-raises it
            self.error = error


def run_demo(
    duration: float = 60,
    rate: float = 200,
    out: TextIO = sys.stdout,
    http_port: int = 0,
    *,
    change_at: float | None = None,
    label_delay: float = 2.0,
    seed: int = 7,
    record: str | Path | None = None,
    plain: bool = False,
) -> DemoResult:
    """Run the demo for ``duration`` seconds at ``rate`` predictions/s; print to ``out``.

    The concept changes at ``change_at`` seconds (default: a third of ``duration``).
    ``record`` names a directory to write the traffic to as it is sent; ``plain`` asks for
    plain lines even on a terminal. Ctrl-C ends the run early, with the findings.
    Raises ``BrokerError`` if the embedded broker cannot start and ``ExporterError`` if
    ``http_port`` is taken.
    """
    if duration <= 0 or rate <= 0:
        raise ValueError(f"duration and rate must be positive, got {duration} and {rate}")
    change_at = duration / 3 if change_at is None else change_at
    # kafka-python logs every reconnect attempt, and predwatch's own information lines would
    # break up the view: the demo says what matters itself (warnings still show).
    quieted = {name: logging.getLogger(name) for name in ("kafka", "predwatch")}
    levels = {name: logger.level for name, logger in quieted.items()}
    quieted["kafka"].setLevel(logging.CRITICAL)
    if not quieted["predwatch"].isEnabledFor(logging.DEBUG):
        quieted["predwatch"].setLevel(logging.WARNING)
    traffic = demo_traffic(rate, change_at, label_delay, seed)
    recorder = Recorder(record, rate, change_at) if record is not None else None
    try:
        with EmbeddedBroker() as broker:
            broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
            settings = demo_settings(broker.bootstrap_servers, rate, change_at, http_port)
            service = Service(settings)
            simulator = Simulator(
                traffic, broker.bootstrap_servers, PREDICTIONS_TOPIC, LABELS_TOPIC,
                on_send=recorder,
            )  # fmt: skip
            view = make_view(out, duration, change_at, plain)
            view.start(_intro(broker.bootstrap_servers, service, traffic, duration))
            run = _Run(service, simulator, view, duration, change_at)
            run.go()
            result = run.result(recorder.recorded if recorder else None)
    finally:
        for name, logger in quieted.items():
            logger.setLevel(levels[name])
        if recorder is not None:
            recorder.close()
    _print_end(result, run.interrupted, record, out)
    return result


def _intro(bootstrap: str, service: Service, traffic: Traffic, duration: float) -> list[str]:
    rate, change_at = traffic.rate, traffic.change_at
    return [
        f"predwatch demo: status page {service.url}/ (also /status, /metrics, /alerts); "
        f"broker {bootstrap}, topics {PREDICTIONS_TOPIC} and {LABELS_TOPIC}",
        f"model '{MODEL}' serves {rate:g} predictions/s for {duration:g} s; labels follow "
        f"after {traffic.label_delay:g} s on average, {traffic.unlabelled:.0%} never. At "
        f"{change_at:g} s the concept changes in segment "
        f"'{SEGMENT.rule}' (the labels there turn into the reverse of what the model "
        f"learnt), which grows to about {SEGMENT.share:.0%} of the traffic.",
        "alert rules: CreditAccuracyLow (accuracy of the last 500 pairs below 0.8 for 10 s), "
        "ConceptDriftDetected and FeatureDriftDetected (each kept firing 20 s after its last "
        "detection)",
    ]


class _Run:
    """One run's loop: watch the reports and the alert log, feed the view."""

    def __init__(
        self,
        service: Service,
        simulator: Simulator,
        view: View,
        duration: float,
        change_at: float,
    ) -> None:
        self.service, self.simulator, self.view = service, simulator, view
        self.duration, self.change_at = duration, change_at
        self.start = time.time()
        self.injected = Injected(self.start, change_at)
        self.timeline = Timeline(self.injected)
        self.interrupted = False
        self._shown: Report | None = None  # the report of the latest row
        self._seen_transitions = 0
        self._announced = False

    def go(self) -> None:
        service_stop, simulator_stop = threading.Event(), threading.Event()
        consumer = _Worker("predwatch-service", lambda: self.service.run(service_stop))
        consumer.start()
        producer = _Worker(
            "predwatch-simulator", lambda: self.simulator.run(simulator_stop, self.start)
        )
        producer.start()
        try:
            elapsed = 0.0
            while elapsed < self.duration and producer.is_alive() and consumer.is_alive():
                time.sleep(TICK)
                elapsed = time.time() - self.start
                self._look(elapsed)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            simulator_stop.set()
            producer.join(JOIN_TIMEOUT)
            if not self.interrupted:
                self._drain()
            service_stop.set()
            consumer.join(JOIN_TIMEOUT)
            with self.service.lock:  # the final figures, for the findings
                self.service.monitor.refresh(time.time(), fresh=True)
            self._look(time.time() - self.start)
            self.view.stop()
        for worker in (consumer, producer):
            if worker.error is not None:
                raise worker.error
        if self.simulator.error is not None:
            raise BrokerError(
                f"the simulator could not send to the embedded broker: {self.simulator.error}"
            )

    def _look(self, elapsed: float) -> None:
        """Show the change when due, then what the latest report and alert log add."""
        self.view.progress(elapsed)
        if not self._announced and elapsed >= self.change_at:
            self._announced = True
            self.view.event(f"{elapsed:.0f} s: the concept changes now")
        report = self.service.monitor.report
        if math.isfinite(report.at) and (
            self._shown is None or report.values is not self._shown.values
        ):
            self._news(report)
            seconds = report.at - self._shown.at if self._shown is not None else elapsed
            self.view.row(read_row(report, self.injected.offset(report.at), self._shown, seconds))
            self._shown = report
        with self.service.lock:
            log = list(self.service.monitor.alert_log)
        for transition in log[self._seen_transitions :]:
            if transition.to_state in ("firing", "resolved"):
                self.view.event(self._alert_text(transition))
        self._seen_transitions = len(log)

    def _news(self, report: Report) -> None:
        """Events for concept drift detections and features that start drifting."""
        known = set(self.timeline.concept_drift)
        drifting = set(self.timeline.drifting)
        self.timeline.see(report)
        for at in sorted(set(self.timeline.concept_drift) - known):
            self.view.event(f"{self.injected.offset(at):.1f} s: concept drift detected (ADWIN)")
        for feature in drifting_features(report):
            if feature not in drifting:
                self.view.event(
                    f"{self.injected.offset(report.at):.0f} s: feature '{feature}' drifts"
                )

    def _alert_text(self, transition: Transition) -> str:
        summary = transition.annotations.get("summary", "")
        return (
            f"{self.injected.offset(transition.at):.0f} s: alert {transition.rule} "
            f"{transition.to_state.upper()}" + (f": {summary}" if summary else "")
        )

    def _drain(self) -> None:
        """Wait (a few seconds at most) until the service has read everything that was sent."""
        sent = self.simulator.stats.predictions + self.simulator.stats.labels
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            with self.service.lock:
                counts = self.service.monitor.counts
                read = counts.predictions + counts.labels + counts.invalid
            if read >= sent:
                return
            time.sleep(0.1)

    def result(self, recorded: Recorded | None) -> DemoResult:
        report = self.service.monitor.report
        with self.service.lock:
            log = list(self.service.monitor.alert_log)
        found = findings(report, log, self.timeline)
        return DemoResult(self.injected, found, report, self.simulator.stats, recorded)


def _print_end(
    result: DemoResult, interrupted: bool, record: str | Path | None, out: TextIO
) -> None:
    sent, join = result.sent, result.report.join
    lines = [
        "",
        f"demo {'interrupted' if interrupted else 'finished'}: sent {sent.predictions} "
        f"predictions and {sent.labels} labels"
        + (f" ({sent.send_errors} failed)" if sent.send_errors else "")
        + f"; predwatch read {join.get('predictions', 0)} and {join.get('labels', 0)}, "
        f"joined {join.get('matched', 0)}, {join.get('pending_predictions', 0)} still "
        f"waiting for a label, {join.get('invalid', 0)} invalid",
        f"accuracy as served (the simulator's truth): before the change "
        f"{_share(sent.correct_before, sent.labelled_before)}, after it "
        f"{_share(sent.correct_after, sent.labelled_after)}",
        *story_lines(result.injected, result.findings),
    ]
    if record is not None and result.recorded is not None:
        directory = Path(record)
        lines += [
            f"recorded {result.recorded.predictions} predictions and {result.recorded.labels} "
            f"labels in {directory}/; replay them with:",
            f"  predwatch replay --config {directory / CONFIG} --predictions "
            f"{directory / PREDICTIONS} --labels {directory / LABELS}",
        ]
    print("\n".join(lines), file=out, flush=True)


def _share(correct: int, total: int) -> str:
    return f"{correct / total:.3f} ({total} labelled)" if total else "n/a"
