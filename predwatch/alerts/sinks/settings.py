"""Where alert notifications go: the ``alerts.sinks`` settings section.

Every list entry is one independent sink with its own queue and worker.

>>> s = SinkSettings.model_validate({"alertmanager": [{"url": "http://am:9093"}],
...                                  "webhooks": [{"url": "http://hook/x", "format": "slack"}]})
>>> [a.resend_every for a in s.alertmanager], s.sink_names()
([60.0], ['alertmanager-1', 'webhook-1', 'log'])
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from predwatch.durations import Duration
from predwatch.redact import redact_url

WebhookFormat = Literal["alertmanager", "slack"]


class _Section(BaseModel):
    # A URL can carry a password or a token: never echo what was given in an error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _http_url(value: str) -> str:
    """An http(s) URL, without a trailing ``/``; ``user:password@`` is sent as basic auth."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError(f"{redact_url(value)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} is not an http:// or https:// URL")
    return value.rstrip("/") if parts.path in ("", "/") else value


class AlertmanagerSinkSettings(_Section):
    """One Alertmanager; alerts are POSTed to ``<url>/api/v2/alerts``.

    Credentials in the URL (``https://user:password@am:9093``) are sent as HTTP
    basic auth, as Prometheus does with such a URL.

    A firing alert is re-sent every ``resend_every`` until it resolves, because
    Alertmanager resolves an alert it has not heard of for its own ``resolve_timeout``
    (given here as ``resolve_timeout`` so that the two can be checked against each other).
    """

    name: str | None = None
    url: str = Field(repr=False)  # may hold credentials
    resend_every: Duration = 60.0
    resolve_timeout: Duration = 300.0  # Alertmanager's global.resolve_timeout (default 5m)
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _resend_before_resolve(self) -> AlertmanagerSinkSettings:
        if not 0 < self.resend_every < self.resolve_timeout:
            raise ValueError(
                f"resend_every ({self.resend_every:g}s) must be more than 0 and less than "
                f"Alertmanager's resolve_timeout ({self.resolve_timeout:g}s), or Alertmanager "
                "resolves alerts that still fire"
            )
        return self


class WebhookSinkSettings(_Section):
    """One webhook: a JSON POST in Alertmanager's webhook format (version 4) or Slack's.

    With ``secret``, the body's HMAC-SHA256 is sent as ``X-Predwatch-Signature:
    sha256=<hex>``; ``headers`` are added to every request (e.g. ``Authorization``) and
    are kept as secrets. Credentials in the URL are sent as HTTP basic auth.
    """

    name: str | None = None
    url: str = Field(repr=False)  # Slack's and others' URLs hold their token
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    format: WebhookFormat = "alertmanager"
    receiver: str = "predwatch"  # the payload's "receiver" field
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class KafkaSinkSettings(_Section):
    """A topic of alert events (JSON), keyed by the alert's fingerprint, on predwatch's cluster."""

    topic: str = Field(min_length=1)
    timeout: Duration = 10.0


class SinkSettings(_Section):
    """All alert sinks, and how their delivery retries.

    ``queue_size`` bounds each sink's queue (a full queue drops, counted);
    failed deliveries are retried after ``retry_initial`` doubling up to ``retry_max``,
    with jitter, for as long as the sink keeps failing with a retryable error.
    ``external_url`` is predwatch's own address, the webhook payload's ``externalURL``.
    """

    alertmanager: list[AlertmanagerSinkSettings] = Field(default_factory=list)
    webhooks: list[WebhookSinkSettings] = Field(default_factory=list)
    kafka: KafkaSinkSettings | None = None
    log: bool = True
    queue_size: int = Field(default=1000, gt=0)
    retry_initial: Duration = 1.0
    retry_max: Duration = 60.0
    external_url: str = ""

    @model_validator(mode="after")
    def _check(self) -> SinkSettings:
        if not 0 < self.retry_initial <= self.retry_max:
            raise ValueError(
                f"retry_initial ({self.retry_initial:g}s) must be more than 0 and at most "
                f"retry_max ({self.retry_max:g}s)"
            )
        names = self.sink_names()
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sink names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def sink_names(self) -> list[str]:
        """The name of every configured sink, as the notification counts label them."""
        names = [a.name or f"alertmanager-{i}" for i, a in enumerate(self.alertmanager, 1)]
        names += [w.name or f"webhook-{i}" for i, w in enumerate(self.webhooks, 1)]
        if self.kafka is not None:
            names.append("kafka")
        if self.log:
            names.append("log")
        return names
