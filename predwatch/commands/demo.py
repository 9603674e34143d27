"""``predwatch demo``: the whole service on an embedded broker, fed by simulated traffic."""

from __future__ import annotations

import argparse

from predwatch.commands.common import problem
from predwatch.demo.app import run_demo
from predwatch.demo.broker import BrokerError
from predwatch.exporter.server import ExporterError


def main(args: argparse.Namespace) -> int:
    try:
        return run_demo(args.duration, args.rate, http_port=args.http_port)
    except (BrokerError, ExporterError) as error:
        raise problem(error) from None
