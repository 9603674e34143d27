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
_NUMBER_AND_WORD = re.compile(r"^\s*[+-]?\d+(?:\.\d+)?\s*([A-Za-z]+)\s*$")
_COMPOUND = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*){2,}$")
_EXAMPLES = "such as 90, '90s', '15m', '1h' or '2d'"


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a plain number of seconds, or a number with a unit suffix.

    Raises ``ValueError`` with a sentence a user can act on, saying what is wrong:

    >>> parse_duration("-5m")
    Traceback (most recent call last):
    ...
    ValueError: '-5m' is not a duration: durations cannot be negative
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a duration {_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration: {_why_not(value)}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a duration: it must be a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"{value!r} is not a duration: durations cannot be negative")
    return seconds


def _why_not(value: object) -> str:
    """Why ``value``, which does not parse, is not a duration."""
    general = f"write a number of seconds or a number with a unit, {_EXAMPLES}"
    if value is None:
        return f"it is empty; {general}"
    if not isinstance(value, str):
        return general
    text = value.strip()
    if text.startswith("-") and _PATTERN.match(text[1:]):
        return "durations cannot be negative"
    if _COMPOUND.match(text):
        return "give one number with one unit, e.g. '90m' rather than '1h30m'"
    word = _NUMBER_AND_WORD.match(text)
    if word:
        return f"unknown unit {word.group(1)!r}; use ms, s, m, h, d or w, {_EXAMPLES}"
    return general


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` with one unit."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A settings field in seconds that accepts every spelling ``parse_duration`` does."""
