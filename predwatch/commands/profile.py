"""``predwatch profile``: reference profiles for data drift from a JSON Lines file of predictions.

The file is read in chunks of ``CHUNK_LINES`` lines, so a large reference fits in memory
as its profile, not as its lines.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from predwatch.commands import UsageError
from predwatch.commands.common import load, write_profiles
from predwatch.drift.profile import profile_lines

log = logging.getLogger("predwatch")
CHUNK_LINES = 5000


def chunks(lines: Iterable[bytes], size: int = CHUNK_LINES) -> Iterator[list[bytes]]:
    """The non-blank lines of a file, ``size`` lines read at a time.

    >>> import io
    >>> [len(c) for c in chunks(io.BytesIO(b"a\\n\\nb\\nc\\n"), size=2)]
    [1, 2]
    """
    lines = iter(lines)
    while raw := list(islice(lines, size)):
        chunk = [line for line in raw if line.strip()]
        if chunk:
            yield chunk


def main(args: argparse.Namespace) -> int:
    settings = load(args.config)
    path = Path(args.predictions)
    if not path.is_file():
        raise UsageError(f"predwatch: {path}: no such file; give a JSON Lines file of predictions")
    with path.open("rb") as lines:
        profiles = profile_lines(settings, chunks(lines), settings.drift)
    write_profiles(args.output, profiles)
    for profile in profiles:
        log.info(
            "profiled %s %s from %d predictions",
            profile.model,
            profile.version or "(every version)",
            profile.count,
        )
    print(f"{args.output}: {len(profiles)} profile(s)")
    return 0
