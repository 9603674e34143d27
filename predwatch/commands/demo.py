"""``predwatch demo``: the whole service on an embedded broker, fed by simulated traffic."""

from __future__ import annotations

import argparse

from predwatch.commands.common import problem
from predwatch.demo.app import run_demo
from predwatch.demo.broker import BrokerError
from predwatch.exporter.server import ExporterError


def main(args: argparse.Namespace) -> int:
    try:
        run_demo(
            args.duration,
            args.rate,
            http_port=args.http_port,
            change_at=args.change_at,
            seed=args.seed,
            record=args.record,
            plain=args.plain,
        )
    except (BrokerError, ExporterError, OSError) as error:
        raise problem(error) from None
    return 0
