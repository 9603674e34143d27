"""Restart-to-ready time of ``predwatch run`` with many pending predictions, from its state.

Starts one embedded broker (Tansu, in memory) and produces ``--pending``
generated predictions of the binary model ``fraud`` (ten features each) and no
labels to a predictions topic of three partitions (the labels topic, co-partitioned,
stays empty); ``join.label_timeout`` and ``join.idle_timeout`` of 30 days keep
every one pending. Then, per side, ``predwatch run --config FILE`` runs as a
subprocess pinned to one CPU, with a fresh consumer group and HTTP port 0:

- ``state`` (shown as the ``--source``): ``state.dir`` set (``--source
  local``), or ``state.topic`` (``--source kafka``: a fresh compacted topic per
  run, which predwatch creates, holding each partition's state), default
  ``state.checkpoint_every`` (10 s): the first process consumes everything
  and runs until the group's committed offsets reach the end of every
  partition, which happens only once the checkpoint holding all the pending
  predictions is durable; it is then killed (SIGKILL) and restarted;
- ``none``, the baseline: the same without ``state.dir`` (offsets are committed
  after each batch), killed and restarted alike: it starts empty.

Between a kill and the next start the script waits ``--settle`` seconds (8 by
default), so that the group has dropped the dead member (session timeout 6 s)
and the group join costs the same every time. Each restart is timed from just
before the process is started (interpreter start-up and imports included) to:

- ``readyz``: ``/readyz`` first answers 200 (with state, once the first
  assignment's state is restored; without, once the consumer has subscribed);
- ``assigned``: the log line ``partitions assigned`` (the group join is done);
- ``resumed``: the monitor is restored and its partitions are sought to the
  offsets its state reflects (log line ``resuming from ...``, or ``partition
  state from state.topic: ...``): consumption goes on from here; for the
  baseline the same moment as ``assigned``;
- ``visible``: ``/readyz`` answers 200 and ``/metrics`` shows
  ``predwatch_pending_predictions`` equal to the count before the kill; this
  waits for the next report (refreshed every 5 s), so it moves in steps of that
  cadence rather than with the cost of the restore.

``restore`` is ``resumed - assigned``: reading the checkpoint and loading it
into the monitor, the restore's own cost, which the spread of the group join
does not move. ``--repeat`` restarts per side (each SIGKILLed again once
timed; the state is the same every time, as nothing new arrives); the median
and the fastest are shown, with the size of the checkpoint read (of the
newest file in ``state.dir``; not shown for a topic). Log lines are stamped as
they arrive on the parent's pipe.

    .venv/bin/python benchmarks/restart_ready.py                     # 100,000 pending, 3 restarts
    .venv/bin/python benchmarks/restart_ready.py --pending 1000000 --repeat 1
    .venv/bin/python benchmarks/restart_ready.py --source kafka      # from state.topic
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_throughput import LABELS_TOPIC, PARTITIONS, PREDICTIONS_TOPIC, produce
from sides import ROOT, pin_to_one_cpu

SIDES = ("none", "state")
TIMEOUT = 600.0  # seconds a first run or a restart may take before it is declared stuck
POLL = 0.01  # seconds between HTTP checks of a restarting process
PENDING_METRIC = "predwatch_pending_predictions"
SOURCES = ("local", "kafka")
RESUMED = {  # the log line that says the restored state is in place and the partitions sought
    "local": "resuming from the offsets the state reflects",
    "kafka": "partition state from state.topic",
}


def state_section(source: str, directory: Path) -> dict[str, Any]:
    """The ``state`` settings that keep the state in ``source``: ``directory``, or a fresh
    Kafka topic (created by predwatch, compacted, one partition per input partition)."""
    if source == "kafka":
        return {"topic": f"bench-state-{uuid.uuid4().hex}"}
    return {"dir": str(directory)}


def config(bootstrap: str, group: str, state: dict[str, Any] | None) -> dict[str, Any]:
    """The config file of one side: everything stays pending; HTTP on a free port."""
    document: dict[str, Any] = {
        "models": {"fraud": {"task": "binary"}},
        "join": {"label_timeout": "30d", "idle_timeout": "30d"},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "predictions_topic": PREDICTIONS_TOPIC,
            "labels_topic": LABELS_TOPIC,
            "session_timeout": "6s",
        },
        "http": {"port": 0},
    }
    if state is not None:
        document["state"] = state
    return document


# --- one `predwatch run` process, watched from here ------------------------------------------


@dataclass
class Run:
    """A ``predwatch run`` subprocess; its log lines, stamped as they arrive."""

    config: Path
    started: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)
    url: str | None = None
    process: subprocess.Popen[str] | None = None

    def start(self) -> Run:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "predwatch.cli", "run", "--config", str(self.config)]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=pin_to_one_cpu,
        )
        STARTED.append(self)
        threading.Thread(target=self._read, name="bench-log", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.perf_counter(), line.rstrip()))
            if self.url is None and "status page at " in line:
                self.url = line.split("status page at ", 1)[1].split()[0].rstrip("/")

    def seconds_to(self, text: str) -> float | None:
        """Seconds from the start to the first log line holding ``text``."""
        for stamp, line in list(self.lines):
            if text in line:
                return stamp - self.started
        return None

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of GET ``path``; status 0 when nothing answers yet."""
        if self.url is None:
            return 0, ""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def pending(self) -> int | None:
        """``predwatch_pending_predictions`` on /metrics, None when not answered."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        for line in body.splitlines():
            if line.startswith(PENDING_METRIC + " "):
                return int(float(line.split()[1]))
        return None

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not done():
            assert self.process is not None
            if self.process.poll() is not None:
                sys.exit(
                    f"predwatch run exited ({self.process.returncode}) before {what}:\n"
                    + "\n".join(line for _, line in self.lines[-20:])
                )
            if time.monotonic() > deadline:
                self.kill()
                sys.exit(f"predwatch run: no {what} in {TIMEOUT:g} s")
            time.sleep(POLL)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(60)


STARTED: list[Run] = []  # every process started, so that none outlives a failed run


def committed(bootstrap: str, group: str) -> Callable[[], bool]:
    """True once ``group`` has committed the end offset of every partition of both topics."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    partitions = [
        TopicPartition(topic, p)
        for topic in (PREDICTIONS_TOPIC, LABELS_TOPIC)
        for p in range(PARTITIONS)
    ]
    ends = consumer.end_offsets(partitions)

    def check() -> bool:
        if all((consumer.committed(tp) or 0) >= ends[tp] for tp in partitions):
            consumer.close(autocommit=False)
            return True
        time.sleep(0.2)
        return False

    return check


# --- a side: consume, kill, restart and time it ----------------------------------------------


def side(
    name: str, bootstrap: str, pending: int, source: str, repeat: int, settle: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="predwatch-restart-") as tmp:
        directory = Path(tmp)
        group = f"bench-restart-{name}-{uuid.uuid4().hex}"
        state = state_section(source, directory / "state") if name == "state" else None
        path = directory / "config.json"
        path.write_text(json.dumps(config(bootstrap, group, state)))

        first = Run(path).start()
        first.wait_for(lambda: first.pending() == pending, f"{pending:,} pending predictions")
        consumed = time.perf_counter() - first.started
        first.wait_for(committed(bootstrap, group), "commit of every offset")
        first.kill()
        files = sorted((directory / "state").glob("*.pwstate")) if state is not None else []
        checkpoint = files[-1].stat().st_size if files else None

        restarts = []
        for _ in range(repeat):
            time.sleep(settle)  # the group drops the killed member
            run = Run(path).start()
            marks: dict[str, float] = {}

            def restored(run: Run = run, marks: dict[str, float] = marks) -> bool:
                """Ready, assigned, and (with state) the restored pending count on /metrics."""
                if "readyz" not in marks and run.get("/readyz")[0] == 200:
                    marks["readyz"] = time.perf_counter() - run.started
                if "readyz" not in marks or run.seconds_to("partitions assigned") is None:
                    return False
                if state is not None:
                    if run.seconds_to(RESUMED[source]) is None or run.pending() != pending:
                        return False
                    marks["visible"] = time.perf_counter() - run.started
                return True

            run.wait_for(restored, "ready and restored")
            assigned = run.seconds_to("partitions assigned")
            resumed = run.seconds_to(RESUMED[source]) if state else assigned
            run.kill()
            assert assigned is not None and resumed is not None
            marks.update(assigned=assigned, restore=resumed - assigned, resumed=resumed)
            restarts.append(marks)
    return {"consumed": consumed, "checkpoint": checkpoint, "restarts": restarts}


COLUMNS = ("readyz", "assigned", "restore", "resumed", "visible")


def _seconds(values: list[float]) -> str:
    """Median and fastest, or a dash when the side has no such figure."""
    if not values:
        return f"{'-':>13}"
    return f"{statistics.median(values):>6.2f} {min(values):>6.2f}"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nseconds from process start to each mark, median and fastest of {args.repeat} "
        f"restart(s) after SIGKILL (+{args.settle:g} s), {args.pending:,} pending before the kill"
        f"\n{'state':<6} {'checkpoint':>10} " + " ".join(f"{c:>13}" for c in COLUMNS)
    )
    for name, r in results.items():
        size = "-" if r["checkpoint"] is None else f"{r['checkpoint'] / 1e6:.1f} MB"
        figures = (
            _seconds(
                [x[c] for x in r["restarts"] if c in x and (name == "state" or c != "restore")]
            )
            for c in COLUMNS
        )
        print(f"{args.source if name == 'state' else 'none':<6} {size:>10} " + " ".join(figures))
    state, none = results["state"]["restarts"], results["none"]["restarts"]
    restore = statistics.median(x["restore"] for x in state)
    gap = statistics.median(s["resumed"] - n["resumed"] for s, n in zip(state, none, strict=True))
    print(
        f"\nrestoring {args.pending:,} pending predictions takes {restore:.2f} s (median of "
        f"resumed - assigned); resumed, state - none: {gap:+.2f} s (median of pairs, which the "
        "group join's spread moves too)"
    )
    print(
        f"first runs, start to {args.pending:,} pending on /metrics: "
        f"{results['state']['consumed']:.1f} s with {args.source} state, "
        f"{results['none']['consumed']:.1f} s without"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pending", type=int, default=100_000, help="predictions left pending (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="restarts per side (default 3)")
    parser.add_argument(
        "--settle",
        type=float,
        default=8.0,
        help="seconds between a kill and the restart, for the group to drop the dead member "
        "(session timeout 6 s; default 8)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="local",
        help="where the state is restored from: local (state.dir) or kafka (a checkpoint topic)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.broker import EmbeddedBroker
    from predwatch.demo.synthetic import generate

    results: dict[str, dict[str, Any]] = {}
    with EmbeddedBroker() as broker:
        broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
        start = time.perf_counter()
        predictions, _ = generate(args.pending, seed=args.seed)
        produce(broker.bootstrap_servers, predictions, [])
        print(
            f"produced {len(predictions):,} predictions and no labels (seed {args.seed}) to "
            f"{PARTITIONS} partitions in {time.perf_counter() - start:.1f} s (not timed)"
        )
        del predictions
        try:
            for name in SIDES:
                results[name] = side(
                    name,
                    broker.bootstrap_servers,
                    args.pending,
                    args.source,
                    args.repeat,
                    args.settle,
                )
        finally:
            for run in STARTED:
                run.kill()
    report(results, args)


if __name__ == "__main__":
    main()
