"""The checkpoint envelope: magic, format version, predwatch version, config fingerprint, CRC.

A sealed blob is ``MAGIC``, a 4-byte big-endian header length, the msgpack
header and the msgpack payload. ``unseal`` refuses a blob that is not a
checkpoint, of another format version, written under settings that shape state
differently (another fingerprint), cut short or altered (length and CRC-32 of
the payload), each with one sentence saying why.

>>> blob = seal({"counts": [1, 2]}, fingerprint="abc")
>>> unseal(blob, fingerprint="abc")
{'counts': [1, 2]}
>>> unseal(blob[:-1], fingerprint="abc")
Traceback (most recent call last):
...
predwatch.state.codec.StateError: it is truncated (10 of 11 payload bytes)
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

import msgspec

from predwatch import __version__
from predwatch.state.codec import StateError

__all__ = ["FORMAT", "MAGIC", "fingerprint", "seal", "unseal"]

MAGIC = b"PREDWATCH-STATE\n"
FORMAT = 3  # 2 was pickle; 3 is msgpack data of predwatch.state.codec
STATE_SECTIONS = frozenset({"models", "join", "fields", "metrics", "drift", "diagnostics"})
"""The settings that shape the monitor's state; a change to any refuses older checkpoints."""

_LENGTH = struct.Struct(">I")


def fingerprint(settings: Any) -> str:
    """A short hash of the settings sections that shape state (``STATE_SECTIONS``)."""
    shaped = settings.model_dump(mode="json", include=set(STATE_SECTIONS))
    text = json.dumps(shaped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seal(data: Any, fingerprint: str) -> bytes:
    """``data`` (msgpack-ready) with its envelope."""
    payload = msgspec.msgpack.encode(data)
    header = msgspec.msgpack.encode(
        {
            "format": FORMAT,
            "predwatch": __version__,
            "fingerprint": fingerprint,
            "length": len(payload),
            "crc32": zlib.crc32(payload),
        }
    )
    return MAGIC + _LENGTH.pack(len(header)) + header + payload


def unseal(blob: bytes, fingerprint: str) -> Any:
    """The data of a sealed blob; ``StateError`` saying why it is refused."""
    if not blob.startswith(MAGIC):
        raise StateError("it is not a predwatch checkpoint (no magic header)")
    start = len(MAGIC) + _LENGTH.size
    if len(blob) < start:
        raise StateError("it is truncated (no header)")
    (size,) = _LENGTH.unpack_from(blob, len(MAGIC))
    try:
        header = msgspec.msgpack.decode(blob[start : start + size])
    except msgspec.DecodeError as error:
        raise StateError(f"its header is unreadable ({error})") from error
    if not isinstance(header, dict):
        raise StateError("its header is unreadable")
    if header.get("format") != FORMAT:
        raise StateError(
            f"it has format {header.get('format')} (written by predwatch "
            f"{header.get('predwatch')}) but this predwatch reads format {FORMAT}"
        )
    if header.get("fingerprint") != fingerprint:
        raise StateError(
            "it was written under other settings of "
            + ", ".join(sorted(STATE_SECTIONS))
            + ", which shape the state"
        )
    payload = blob[start + size :]
    if len(payload) != header.get("length"):
        raise StateError(
            f"it is truncated ({len(payload)} of {header.get('length')} payload bytes)"
        )
    if zlib.crc32(payload) != header.get("crc32"):
        raise StateError("it is corrupt (the CRC-32 of its payload does not match)")
    try:
        return msgspec.msgpack.decode(payload)
    except RecursionError:
        raise StateError("its payload nests values too deeply") from None
    except msgspec.DecodeError as error:
        raise StateError(f"its payload is unreadable ({error})") from error
