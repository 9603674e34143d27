"""The checkpoint store: the monitor's state with the input offsets it reflects, in a directory.

A checkpoint is one file, ``checkpoint-<sequence>.pwstate``: the sealed
(``predwatch.state.envelope``) data of the monitor (``Monitor.state``) and the
next offset of every topic-partition whose events that state holds. A write is
atomic: a temporary file is written and fsynced, renamed over, and the directory
fsynced, so a crash at any moment leaves the previous checkpoints whole. The
newest ``KEEP`` are kept.

``load`` reads the newest; one that is refused (corrupt, truncated, of another
format or other settings) is said once, renamed to ``.refused`` (kept for a
look, never read again) and the previous one is read instead. With none left,
the monitor starts empty: never a crash loop.

>>> import tempfile
>>> from predwatch.config import Settings
>>> from predwatch.monitor import Monitor
>>> settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
>>> store = CheckpointStore(tempfile.mkdtemp(), settings)
>>> path = store.save(Monitor(settings).state(), {("predictions", 0): 42})
>>> path.name
'checkpoint-000000000001.pwstate'
>>> store.load(Monitor(settings))
{('predictions', 0): 42}
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from predwatch.config import Settings
from predwatch.monitor import Monitor
from predwatch.state.codec import StateError
from predwatch.state.envelope import fingerprint, seal, unseal

__all__ = ["KEEP", "CheckpointStore", "Offsets", "pack", "unpack"]

log = logging.getLogger(__name__)

KEEP = 2  # checkpoints kept: the newest, and one to fall back to
_NAME = re.compile(r"^checkpoint-(\d{12})\.pwstate$")

Offsets = dict[tuple[str, int], int]
"""The next offset to read, per (topic, partition), that a checkpoint's state reflects."""


class CheckpointStore:
    """Checkpoints of one instance in ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str], settings: Settings) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fingerprint = fingerprint(settings)
        for stale in self.directory.glob(".checkpoint-*.tmp"):  # a write cut short by a crash
            stale.unlink(missing_ok=True)

    def paths(self) -> list[Path]:
        """The checkpoints, newest first."""
        found = [p for p in self.directory.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def save(self, state: Mapping[str, Any], offsets: Mapping[tuple[str, int], int]) -> Path:
        """Write a checkpoint durably (temp file, fsync, rename, fsync the directory); its
        path. Older checkpoints beyond ``KEEP`` are removed afterwards."""
        blob = seal(pack(state, offsets), self._fingerprint)
        existing = self.paths()
        sequence = _sequence(existing[0]) + 1 if existing else 1
        path = self.directory / f"checkpoint-{sequence:012d}.pwstate"
        temporary = self.directory / f".checkpoint-{sequence:012d}.tmp"
        with temporary.open("wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
        _fsync_directory(self.directory)
        for old in self.paths()[KEEP:]:
            old.unlink(missing_ok=True)
        return path

    def load(self, monitor: Monitor) -> Offsets | None:
        """Restore ``monitor`` in place from the newest checkpoint that is accepted; its
        offsets, or None when there is none (the monitor is then unchanged)."""
        for path in self.paths():
            try:
                offsets = self._read(path, monitor)
            except StateError as error:
                log.error(
                    "checkpoint %s refused: %s; it is renamed to %s.refused and the previous "
                    "checkpoint is read instead",
                    path,
                    error,
                    path.name,
                )
                path.replace(path.with_name(path.name + ".refused"))
                continue
            log.info("state restored from checkpoint %s", path)
            return offsets
        return None

    def _read(self, path: Path, monitor: Monitor) -> Offsets:
        try:
            blob = path.read_bytes()
        except OSError as error:
            raise StateError(f"it cannot be read ({error.strerror})") from error
        state, offsets = unpack(unseal(blob, self._fingerprint))
        monitor.load_state(state)
        return offsets

    def due(self) -> bool:
        """Whether a checkpoint is due before its interval (never: state is in memory)."""
        return False

    def close(self) -> None:
        """Nothing to release: every write is a whole file."""


def pack(state: Mapping[str, Any], offsets: Mapping[tuple[str, int], int]) -> dict[str, Any]:
    """A checkpoint's data: the monitor's state and the offsets it reflects."""
    listed = [[topic, partition, offset] for (topic, partition), offset in offsets.items()]
    return {"offsets": listed, "monitor": state}


def unpack(data: Mapping[str, Any]) -> tuple[Any, Offsets]:
    """The monitor's state and offsets of a checkpoint's data; ``StateError`` if malformed."""
    try:
        offsets = {(str(t), int(p)): int(o) for t, p, o in data["offsets"]}
        return data["monitor"], offsets
    except (LookupError, TypeError, ValueError) as error:
        raise StateError(f"its offsets are malformed ({error!r})") from error


def _sequence(path: Path) -> int:
    found = _NAME.match(path.name)
    return int(found.group(1)) if found else 0


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
