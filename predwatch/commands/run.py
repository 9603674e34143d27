"""``predwatch run``: the service, consuming Kafka until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from predwatch.commands.common import load, problem, reference_profiles, tune_gc
from predwatch.consumer.kafka import SourceError
from predwatch.exporter.server import ExporterError
from predwatch.service import Service

log = logging.getLogger("predwatch")


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


def main(args: argparse.Namespace) -> int:
    settings = load(args.config)
    profiles = reference_profiles(settings)
    tune_gc()
    try:
        service = Service(settings, profiles=profiles)
        service.run(stop_on_signals())
    except (ExporterError, SourceError) as error:
        raise problem(error) from None
    return 0
