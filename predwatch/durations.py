"""Durations as users write them in the config: ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``.

>>> parse_duration("15m")
900.0
>>> parse_duration(90)
90.0
>>> format_duration(5400.0)
'90m'
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a plain number of seconds, or a number with a unit suffix.

    Raises ``ValueError`` with a sentence a user can act on.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90, '90s', '15m', '1h' or '2d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"{value!r} is not a duration: write a number of seconds or a number with "
            "a unit, such as 90, '90s', '15m', '1h' or '2d'"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration: it must be finite and not negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` with one unit."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A settings field in seconds that accepts every spelling ``parse_duration`` does."""
