"""Secrets out of messages: URL passwords, query tokens and secret paths become ``***``.

Every error and log line that can quote a configured value goes through
``redact``; a URL alone through ``redact_url``. Hosts, ports and user names
stay, so the message still says which address is meant.

>>> redact_url("https://admin:hunter2@am.example:9093/api?token=abc&x=1")
'https://admin:***@am.example:9093/***?token=***&x=***'
>>> redact("'ftp://u:pw@am:9093' is not an http:// URL; also kafka user:pw@broker:9092")
"'ftp://u:***@am:9093' is not an http:// URL; also kafka user:***@broker:9092"
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

# A URL: scheme:// up to whitespace or a quote/bracket that would end it in a message.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# user:password@ outside a URL (e.g. a bootstrap server written as user:pw@host:9092).
_USERINFO = re.compile(r"(?<![\w/:])([^\s:/@'\"]+):[^\s@/'\"]+@")


def redact_url(url: str) -> str:
    """``url`` with its password, path and query values replaced by ``***``.

    A path can be a secret (Slack's and other webhook URLs carry their token in
    it), so any path but ``/`` is masked whole.

    >>> redact_url("https://hooks.slack.com/services/T0/B0/XYZ")
    'https://hooks.slack.com/***'
    >>> redact_url("http://am:9093")
    'http://am:9093'
    >>> redact_url("http://token@am:9093/")
    'http://***@am:9093/'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not even a URL's shape (e.g. a bad port): mask all after the scheme
        scheme = url.split("://", 1)[0]
        return f"{scheme}://{MASK}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    if parts.password is not None:
        host = f"{parts.username}:{MASK}@{host}"
    elif parts.username is not None:
        host = f"{MASK}@{host}"  # a lone user part is often a token (user@ basic auth)
    path = parts.path if parts.path in ("", "/") else f"/{MASK}"
    query = "&".join(f"{name}={MASK}" for name, _ in parse_qsl(parts.query, True))
    return f"{parts.scheme}://{host}{path}" + (f"?{query}" if query else "")


def redact(text: str) -> str:
    """``text`` with every URL in it redacted, and any ``user:password@`` outside a URL.

    >>> redact("no secrets here: 12s")
    'no secrets here: 12s'
    """
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
