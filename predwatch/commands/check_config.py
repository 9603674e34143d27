"""``predwatch check-config --config FILE``: every problem of a config file, at once."""

from __future__ import annotations

import argparse

from predwatch.commands.common import load


def main(args: argparse.Namespace) -> int:
    load(args.config)
    print(f"{args.config}: valid")
    return 0
