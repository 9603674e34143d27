"""Checks both decoders share: a raw message's size and nesting, and its event time.

They run before a message is parsed (size, depth: a deeply nested message would
exhaust the parser's recursion) or on the one value every record has (the
timestamp), and raise ``Rejected`` with the reason the message is counted under.
Sharing them is what makes the fast and the checked decoder agree.

>>> limits = LimitsSettings()
>>> depth(b'{"a": [1, {"b": "]]]"}]}')
3
>>> check_shape(b"[" * 100 + b"]" * 100, limits)
Traceback (most recent call last):
...
predwatch.screening.Rejected: too_deep
>>> parse_timestamp("2026-11-27t04:00:00.1234567z")
1795752000.123457
>>> Window(limits, now=1795752000.0).reason(1795752000.0 + 7200)
'future_timestamp'
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import numpy as np

from predwatch.limits import LimitsSettings

_OPEN, _CLOSE, _QUOTE, _BACKSLASH = (
    np.frombuffer(b"[{", np.uint8),
    np.frombuffer(b"]}", np.uint8),
    ord('"'),
    ord("\\"),
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_LONG_FRACTION = re.compile(r"([.,])([0-9]{7,})")


class Rejected(ValueError):
    """A message cannot be used; ``str(error)`` is the reason it is counted under."""


def message_bytes(value: object) -> bytes:
    """A message's bytes; text is encoded as UTF-8, a lone surrogate kept as invalid bytes so
    that parsing refuses it the same way on both paths."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise Rejected("not_json")


def shallow(data: bytes, max_depth: int) -> bool:
    """True when ``data`` cannot nest deeper than ``max_depth``: it has no more brackets than
    that. Cheap (two scans in C); the exact ``depth`` is needed only when this is False."""
    objects = data.count(b"{")
    if data.find(b"[") < 0:  # most messages hold no array: one count, not two
        return objects <= max_depth
    return objects + data.count(b"[") <= max_depth


def depth(data: bytes) -> int:
    """How deeply the brackets of a JSON text nest, brackets inside strings not counted.

    Linear and vectorised, so a hostile megabyte of brackets costs milliseconds:
    a quote is a string's edge unless an odd run of backslashes precedes it.
    """
    text = np.frombuffer(data, np.uint8)
    if text.size == 0:
        return 0
    positions = np.arange(text.size)
    backslash = text == _BACKSLASH
    # Where the run of backslashes ending just before each position began.
    last_other = np.maximum.accumulate(np.where(backslash, -1, positions))
    run = np.empty(text.size, np.int64)
    run[0] = 0
    run[1:] = positions[:-1] - last_other[:-1]
    quotes = (text == _QUOTE) & (run % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0  # a closing quote itself counts as outside
    step = np.isin(text, _OPEN).astype(np.int64) - np.isin(text, _CLOSE)
    step[~outside | quotes] = 0
    return int(max(np.cumsum(step).max(), 0))


def check_shape(data: bytes, limits: LimitsSettings) -> None:
    """Reject a message over the size limit (``too_large``) or nested too deeply (``too_deep``)."""
    if len(data) > limits.max_message_bytes:
        raise Rejected("too_large")
    if not shallow(data, limits.max_depth) and depth(data) > limits.max_depth:
        raise Rejected("too_deep")


def may_hold_lone_surrogate(text: str) -> bool:
    """False when no string of this JSON text can decode to a lone UTF-16 surrogate (which
    only an escape such as ``\\ud800`` can produce)."""
    return "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def parse_timestamp(value: object) -> float:
    """Epoch seconds from ISO 8601 text with a zone, or from a number of epoch seconds.

    Lower-case ``t`` and ``z`` are accepted (RFC 3339 allows them); a fraction of
    a second beyond six digits is rounded half up to the microsecond, as msgspec
    (the fast decoder) rounds it. Raises ``Rejected("bad_timestamp")``.

    >>> parse_timestamp("2026-11-27T04:00:00Z"), parse_timestamp(1795752000)
    (1795752000.0, 1795752000.0)
    >>> parse_timestamp("2026-11-27t04:00:59.9999995z")
    1795752060.0
    """
    if isinstance(value, bool):
        raise Rejected("bad_timestamp")
    if isinstance(value, int):
        return _in_float_range(value)
    if isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        seconds = _iso_seconds(value)
    else:
        raise Rejected("bad_timestamp")
    if not math.isfinite(seconds):
        raise Rejected("bad_timestamp")
    return seconds


def _in_float_range(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise Rejected("out_of_range:timestamp") from None


def _iso_seconds(text: str) -> float:
    carry = False
    fraction = _LONG_FRACTION.search(text)
    if fraction is not None:  # Python would truncate it: round it as msgspec does
        digits = fraction.group(2)
        micro = int(digits[:6]) + (digits[6] >= "5")
        carry = micro == 1_000_000
        text = f"{text[: fraction.start(2)]}{micro % 1_000_000:06d}{text[fraction.end(2) :]}"
    try:
        parsed = datetime.fromisoformat(text.upper())
        if parsed.tzinfo is None:
            raise Rejected("bad_timestamp")  # a time without a zone is ambiguous
        if carry:
            parsed += timedelta(seconds=1)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        raise Rejected("bad_timestamp") from None


def event_time(value: object, transport: float | None, field: str, limits: LimitsSettings) -> float:
    """A message's event time: its own field (``value``), else the transport's; checked against
    ``limits.min_timestamp`` and ``max_timestamp`` (``out_of_range:timestamp``)."""
    if value is None:
        if transport is None:
            raise Rejected(f"missing_field:{field}")
        seconds = transport
    else:
        seconds = parse_timestamp(value)
    if not limits.min_timestamp <= seconds <= limits.max_timestamp:
        raise Rejected("out_of_range:timestamp")
    return seconds


class Window:
    """Event times accepted at processing time ``now``: at most ``max_future_skew`` ahead and,
    when ``max_age`` is set, at most that far behind. ``now=None`` accepts every time."""

    def __init__(self, limits: LimitsSettings, now: float | None) -> None:
        self.lower, self.upper = -math.inf, math.inf
        if now is not None:
            self.upper = now + limits.max_future_skew
            if limits.max_age is not None:
                self.lower = now - limits.max_age

    def reason(self, seconds: float) -> str | None:
        """Why an event at ``seconds`` falls outside the window; None when it is inside."""
        if seconds > self.upper:
            return "future_timestamp"
        if seconds < self.lower:
            return "too_old"
        return None
