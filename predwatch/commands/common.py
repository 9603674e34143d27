"""What the verbs share: settings and reference profiles read from files, and the collector tuned.

>>> from pathlib import Path
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_profiles(folder / "p.json", [])
>>> read_profiles(folder / "p.json")
[]
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path

from predwatch.commands import UsageError
from predwatch.config import ConfigError, Settings, load_settings
from predwatch.drift.profile import ProfileError, ReferenceProfile, dump_profiles, parse_profiles


def load(path: str | Path) -> Settings:
    """The settings of a config file; ``UsageError`` with one line per problem otherwise."""
    try:
        return load_settings(path)
    except ConfigError as error:
        raise UsageError(*error.lines()) from None


def read_profiles(path: str | Path) -> list[ReferenceProfile]:
    """Read a profile file; ``ProfileError`` names the path and what is wrong."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile file ({exc.strerror}).") from None
    return parse_profiles(text, str(path))


def write_profiles(path: str | Path, profiles: Iterable[ReferenceProfile]) -> None:
    """Write a profile file (``predwatch.drift.profile.dump_profiles``'s text)."""
    Path(path).write_text(dump_profiles(profiles) + "\n", encoding="utf-8")


def reference_profiles(settings: Settings) -> list[ReferenceProfile]:
    """The profiles of ``drift.reference.path`` when data drift is on and reads a file, else
    none; ``UsageError`` when the file cannot be used."""
    path = settings.drift.reference.path
    if not settings.drift.enabled or not path:
        return []
    try:
        return read_profiles(path)
    except ProfileError as error:
        raise problem(error) from None


def problem(error: Exception) -> UsageError:
    """A user-fixable error of another layer as the CLI says it: ``predwatch: <sentence>``."""
    return UsageError(f"predwatch: {error}")


def tune_gc() -> None:
    """Collect garbage rarely: the monitor keeps many small long-lived objects (pending events)
    and makes almost no reference cycles, so frequent collections only rescan live state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
