"""Strings that came from events, made safe for where they go: pure functions, no state.

Events are written by other teams' services and read as untrusted: a model
version can hold a lone surrogate (which no UTF-8 encoder accepts, so one such
value would break every ``/metrics`` scrape and every JSON alert body), control
characters, megabytes of text, or Slack markup such as ``<!channel>``.

- ``label_value``: a Prometheus or Alertmanager label value. Encodable, one
  line, at most ``limit`` characters; two different inputs stay different
  (a changed value gets a short hash of the original), so no two series or
  alerts merge.
- ``alert_text``: free text of an annotation or a log line: encodable, no
  control characters but newline and tab, cut at ``limit``.
- ``slack_text``: ``alert_text`` with Slack's three control characters
  escaped, so text neither pings (``<!channel>``) nor links (``<url|x>``).

>>> label_value("v3")
'v3'
>>> safe = label_value("v\\ud800")
>>> safe.startswith("v\\ufffd~"), len(safe), safe.encode() != b""
(True, 11, True)
>>> slack_text("<!channel> <https://evil.example/login|click> & co")
'&lt;!channel&gt; &lt;https://evil.example/login|click&gt; &amp; co'
>>> alert_text("line\\x00one\\nline two\\x1b[31m")
'lineone\\nline two[31m'
"""

from __future__ import annotations

import hashlib
import re

LABEL_LIMIT = 128  # characters of a label value; longer values are cut and hashed
TEXT_LIMIT = 2000  # characters of an annotation or other alert text
SLACK_LIMIT = 2900  # Slack refuses a section's text over 3000 characters

# Lone surrogates cannot be encoded; C0, DEL and C1 control characters corrupt lines.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SLACK = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_HASH_CHARS = 8


def _digest(value: str) -> str:
    """8 hex digits of SHA-256 of ``value``'s code points (lone surrogates included)."""
    raw = value.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:_HASH_CHARS]


def label_value(value: str, limit: int = LABEL_LIMIT) -> str:
    """``value`` as a label value: valid UTF-8, no control characters, at most ``limit`` long.

    A value that is already safe is returned as it is. Otherwise lone
    surrogates and control characters become U+FFFD, the value is cut, and
    ``~`` with 8 hex digits of a hash of the original is appended, so that
    different inputs never become one label value.

    >>> label_value("fraud-v3.1")
    'fraud-v3.1'
    >>> long = label_value("x" * 500, limit=20)
    >>> long[:11], len(long)
    ('xxxxxxxxxxx', 20)
    >>> label_value("a\\ud800") != label_value("a\\ud801")
    True
    >>> "\\n" in label_value("two\\nlines")
    False
    """
    if limit <= _HASH_CHARS + 1:
        raise ValueError(f"limit must be more than {_HASH_CHARS + 1} characters, not {limit}")
    clean = _CONTROL.sub("\ufffd", _SURROGATE.sub("\ufffd", value))
    if clean == value and len(value) <= limit:
        return value
    return clean[: limit - _HASH_CHARS - 1] + "~" + _digest(value)


def alert_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` for an alert's annotation or message: encodable, no control characters
    except newline and tab, at most ``limit`` characters (cut text ends with ``…``).

    >>> alert_text("accuracy \\ud800 low")
    'accuracy \\ufffd low'
    >>> alert_text("y" * 50, limit=10)
    'yyyyyyyyy…'
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1 character, not {limit}")
    clean = _CONTROL_BUT_LINES.sub("", _SURROGATE.sub("\ufffd", text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def slack_text(text: str, limit: int = SLACK_LIMIT) -> str:
    """``text`` for Slack ``mrkdwn``: ``alert_text`` with ``&``, ``<`` and ``>`` escaped,
    at most ``limit`` characters after escaping (never cut inside an escape).

    Slack reads ``<...>`` as a link or a mention (``<!channel>``, ``<@U123>``,
    ``<https://x|label>``); escaped, it shows the characters instead.

    >>> slack_text("a < b && c > d")
    'a &lt; b &amp;&amp; c &gt; d'
    >>> slack_text("<<<<", limit=10)
    '&lt;&lt;…'
    """
    escaped = "".join(_SLACK.get(c, c) for c in alert_text(text, limit))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]  # a cut escape would show as stray text
    return cut + "…"
