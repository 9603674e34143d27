"""Checkpoints with the pending predictions on disk (``state.store: disk``): one atomic commit.

The joins keep their pending predictions in one RocksDB database
(``predwatch.state.disk_store``) in ``<state.dir>/pending``, so memory is
bounded by its caches, not by the label window. A checkpoint is the monitor's
state (in which each join's store is only its partition's name) with the
offsets it reflects, sealed (``predwatch.state.envelope``) and written as an
extra record *in the same atomic, synced commit* as the pending predictions it
refers to. After a crash, even ``kill -9``, the database reopens exactly as of
that commit: state, pending predictions and offsets agree.

Unlike the in-memory checkpoints, a refused checkpoint (corrupt, other
settings) cannot fall back to an older one: the pending predictions exist only
as of the newest commit. It is said in one sentence, every store is emptied
and the monitor starts empty: never a crash loop.

>>> import tempfile
>>> from predwatch.config import Settings
>>> from predwatch.monitor import Monitor
>>> from predwatch.records import Raw
>>> settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
>>> store = DiskCheckpointStore(tempfile.mkdtemp(), settings)
>>> monitor = Monitor(settings, stores=store.stores)
>>> raw = Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 5, "prediction": 1}')
>>> _ = monitor.process(0, [raw], [], now=5.0)
>>> store.save(monitor.state(), {("predictions", 0): 1}).name
'pending'
>>> store.close()
>>> store = DiskCheckpointStore(store.directory, settings)
>>> restored = Monitor(settings, stores=store.stores)
>>> store.load(restored), restored.summary()["join"]["pending_predictions"]
({('predictions', 0): 1}, 1)
>>> store.close()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from predwatch.config import Settings
from predwatch.monitor import Monitor
from predwatch.state.checkpoints import Offsets, pack, unpack
from predwatch.state.codec import StateError
from predwatch.state.disk_store import DiskDatabase, StoreError
from predwatch.state.envelope import fingerprint, seal, unseal

__all__ = ["EARLY", "DiskCheckpointStore"]

log = logging.getLogger(__name__)

CHECKPOINT = b"checkpoint"
EARLY = 200_000  # changes held in memory that make a checkpoint due before its interval


class DiskCheckpointStore:
    """The checkpoint and pending predictions of one instance in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], settings: Settings) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._database = DiskDatabase.open(self.directory / "pending")
        except StoreError as error:
            raise OSError(str(error)) from None
        self._fingerprint = fingerprint(settings)
        self.stores = self._database  # where the monitor's joins keep pending predictions

    def save(self, state: Mapping[str, Any], offsets: Mapping[tuple[str, int], int]) -> Path:
        """Commit the pending predictions and the checkpoint that refers to them, atomically
        and durably; where they are."""
        blob = seal(pack(state, offsets), self._fingerprint)
        try:
            self._database.commit({CHECKPOINT: blob})
        except StoreError as error:
            raise OSError(str(error)) from None
        return self.directory / "pending"

    def load(self, monitor: Monitor) -> Offsets | None:
        """Restore ``monitor`` (made with ``stores=self.stores``) from the last commit; its
        offsets, or None when there is none or it is refused (the monitor is then empty)."""
        blob = self._database.extra(CHECKPOINT)
        if blob is None:
            return None
        try:
            state, offsets = unpack(unseal(blob, self._fingerprint))
            monitor.load_state(state)
        except StateError as error:
            log.error(
                "checkpoint in %s refused: %s; the pending predictions on disk belong to it, so "
                "they are removed and the monitor starts empty",
                self.directory / "pending",
                error,
            )
            self._database.clear_all()
            return None
        log.info("state restored from the checkpoint in %s", self.directory / "pending")
        return offsets

    def due(self) -> bool:
        """Whether so much changed since the last commit that a checkpoint is due early: the
        changes are held in memory until then."""
        return self._database.uncommitted >= EARLY

    def close(self) -> None:
        self._database.close()
