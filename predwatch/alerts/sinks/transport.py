"""One JSON POST over urllib, with errors sorted into retryable and not.

A URL is never logged whole: webhook URLs (Slack's) carry their secret in the path.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from predwatch.alerts.sinks.delivery import DeliveryError

# Status codes worth trying again: the server may be fine later.
RETRYABLE_STATUS = frozenset({408, 425, 429})


def safe_url(url: str) -> str:
    """``url`` without credentials, path or query, for messages.

    >>> safe_url("https://user:pw@hooks.slack.com/services/T0/B0/secret?x=1")
    'https://hooks.slack.com/...'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/..."


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without ``user:password@``, and the basic-auth header those credentials make.

    urllib would take ``user:password@host`` for a host name and never connect; Prometheus
    and Alertmanager's own clients send such credentials as basic auth, and so does this.

    >>> split_credentials("http://am:9093/api/v2/alerts")
    ('http://am:9093/api/v2/alerts', {})
    >>> split_credentials("https://ops:p%40ss@am:9093/api/v2/alerts")
    ('https://am:9093/api/v2/alerts', {'Authorization': 'Basic b3BzOnBAc3M='})
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, {"Authorization": f"Basic {token}"}


def encode(payload: object) -> bytes:
    """The compact UTF-8 JSON bytes of ``payload``."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body`` (JSON bytes) to ``url``; raise ``DeliveryError`` unless the answer is 2xx.

    Connection errors, timeouts, 5xx and 408/425/429 are retryable; other 4xx are not
    (the request itself is wrong, so sending it again cannot help). Credentials in ``url``
    are sent as basic auth unless ``headers`` has its own ``Authorization``.
    """
    bare, auth = split_credentials(url)
    given = {name.lower() for name in headers}
    auth = {} if "authorization" in given else auth
    request = urllib.request.Request(
        bare,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "predwatch", **auth, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read(300).decode(errors="replace").strip()
        retryable = error.code >= 500 or error.code in RETRYABLE_STATUS
        raise DeliveryError(
            f"{safe_url(url)} answered {error.code} {error.reason}: {detail}", retryable=retryable
        ) from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"cannot reach {safe_url(url)}: {reason}") from error
