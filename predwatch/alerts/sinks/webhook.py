"""Webhook sink: a JSON POST in Alertmanager's webhook format (version 4) or Slack's.

Alerts are grouped by ``alertname``, one request per group, as an Alertmanager routing
``group_by: [alertname]`` would. With a secret, the request carries
``X-Predwatch-Signature: sha256=<hex HMAC-SHA256 of the body>``, which a receiver checks
by computing the same over the raw body it got.

>>> n = Notification("f1", "firing", {"alertname": "AccuracyLow", "model": "fraud"},
...                  {"summary": "low"}, 0.0)
>>> body = webhook_payload([n], receiver="oncall", external_url="http://pw")
>>> body["version"], body["status"], body["groupKey"], body["alerts"][0]["endsAt"]
('4', 'firing', '{}:{alertname="AccuracyLow"}', '0001-01-01T00:00:00Z')
>>> signature(b"{}", "s3cret")
'sha256=adbde1ce40c89c14215687d5d762a47df6dfaefcfad61e2e86718ffc8498571b'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from predwatch.alerts.sinks.delivery import Sink
from predwatch.alerts.sinks.notification import (
    ZERO_TIME,
    Notification,
    annotations_with_value,
    rfc3339,
    safe_labels,
)
from predwatch.alerts.sinks.settings import WebhookSinkSettings
from predwatch.alerts.sinks.transport import encode, post_json
from predwatch.safe_text import label_value, slack_text

SIGNATURE_HEADER = "X-Predwatch-Signature"
SLACK_MAX_ALERTS = 40  # Slack allows 50 blocks per message


def signature(body: bytes, secret: str) -> str:
    """The ``X-Predwatch-Signature`` value of ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def _group_status(group: Sequence[Notification]) -> str:
    return "firing" if any(n.firing for n in group) else "resolved"


def webhook_payload(
    group: Sequence[Notification], *, receiver: str = "predwatch", external_url: str = ""
) -> dict[str, object]:
    """The Alertmanager webhook (version 4) body of ``group`` (alerts of one ``alertname``)."""
    alertname = label_value(group[0].alertname)
    labels = [safe_labels(n.labels) for n in group]
    annotations = [annotations_with_value(n) for n in group]
    alerts = [
        {
            "status": n.status,
            "labels": safe,
            "annotations": a,
            "startsAt": rfc3339(n.starts_at),
            "endsAt": rfc3339(n.ends_at) if n.ends_at is not None else ZERO_TIME,
            "generatorURL": n.generator_url or "",
            "fingerprint": n.fingerprint,
        }
        for n, safe, a in zip(group, labels, annotations, strict=True)
    ]
    escaped = alertname.replace("\\", "\\\\").replace('"', '\\"')
    return {
        "receiver": receiver,
        "status": _group_status(group),
        "alerts": alerts,
        "groupLabels": {"alertname": alertname},
        "commonLabels": _common(labels),
        "commonAnnotations": _common(annotations),
        "externalURL": external_url,
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{escaped}"}}',
        "truncatedAlerts": 0,
    }


def _slack_label(n: Notification, name: str) -> str:
    """A label's value as Slack text: safe, escaped, ``""`` when absent."""
    return slack_text(label_value(n.labels.get(name) or ""))


def _slack_url(url: str) -> str:
    """``url`` inside ``<url|text>``: escaped, and no ``|`` to end it early."""
    return slack_text(url).replace("|", "%7C")


def _slack_line(n: Notification) -> str:
    """One alert as ``mrkdwn``; every value from events is escaped (no mention, no link)."""
    scope = " ".join(v for v in (_slack_label(n, "model"), _slack_label(n, "version")) if v)
    details = [f"{k} {_slack_label(n, k)}" for k in ("window", "severity") if n.labels.get(k)]
    if n.value is not None:
        details.append(f"value {n.value:.4g}")
    since = datetime.fromtimestamp(n.starts_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    details.append(f"since {since}")
    if n.ends_at is not None and not n.firing:
        details.append("until " + datetime.fromtimestamp(n.ends_at, UTC).strftime("%H:%M UTC"))
    text = slack_text(n.annotations.get("summary") or n.annotations.get("description") or "")
    line = f"{'🔥' if n.firing else '✅'} *{scope or slack_text(n.alertname)}*"
    if text:
        line += f": {text}"
    line += f"\n{' · '.join(details)}"
    if n.generator_url:
        line += f" · <{_slack_url(n.generator_url)}|status>"
    return line


def slack_payload(group: Sequence[Notification]) -> dict[str, object]:
    """A Slack incoming-webhook body for ``group``: a ``text`` summary and one block per alert.

    >>> n = Notification("f1", "resolved", {"alertname": "A", "model": "m"}, {}, 0.0, 60.0)
    >>> slack_payload([n])["text"]
    '[RESOLVED:1] A'
    """
    firing = sum(n.firing for n in group)
    status = _group_status(group)
    count = firing if status == "firing" else len(group)
    title = f"[{status.upper()}:{count}] {slack_text(label_value(group[0].alertname))}"
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}}
    ]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_line(n)}}
        for n in group[:SLACK_MAX_ALERTS]
    ]
    if len(group) > SLACK_MAX_ALERTS:
        more = f"and {len(group) - SLACK_MAX_ALERTS} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": title, "blocks": blocks}


class WebhookSink(Sink):
    """POSTs one request per ``alertname`` group to one URL."""

    def __init__(
        self, settings: WebhookSinkSettings, name: str = "webhook", external_url: str = ""
    ) -> None:
        super().__init__(settings.name or name)
        self.settings = settings
        self.external_url = external_url

    def groups(self, batch: Sequence[Notification]) -> list[list[Notification]]:
        """One group per ``alertname``, in order of first appearance."""
        groups: dict[str, list[Notification]] = {}
        for n in batch:
            groups.setdefault(n.alertname, []).append(n)
        return list(groups.values())

    def body(self, group: Sequence[Notification]) -> bytes:
        """The exact bytes POSTed (and signed) for ``group``."""
        if self.settings.format == "slack":
            return encode(slack_payload(group))
        return encode(
            webhook_payload(group, receiver=self.settings.receiver, external_url=self.external_url)
        )

    def send(self, batch: Sequence[Notification]) -> None:
        """POST ``batch`` (one group); raises ``DeliveryError`` (see ``transport.post_json``)."""
        body = self.body(batch)
        headers = {k: v.get_secret_value() for k, v in self.settings.headers.items()}
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = signature(body, self.settings.secret.get_secret_value())
        post_json(self.settings.url, body, headers, self.settings.timeout)
