"""Alert sinks: payload formats, signatures, retries, outages, drops and the counts."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from alertmanager_fixture import Alertmanager, BasicAuth, WebhookReceiver, free_port, wait_for

# The fixture, by name (the explicit re-export keeps linters from calling it unused).
from alertmanager_fixture import alertmanager as alertmanager
from pydantic import ValidationError

from predwatch.alerts.sinks.alertmanager import AlertmanagerSink
from predwatch.alerts.sinks.build import build_sinks
from predwatch.alerts.sinks.delivery import Backoff, DeliveryError, Sink
from predwatch.alerts.sinks.log import LogSink
from predwatch.alerts.sinks.notification import Notification
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.alerts.sinks.settings import (
    AlertmanagerSinkSettings,
    SinkSettings,
    WebhookSinkSettings,
)
from predwatch.alerts.sinks.transport import post_json
from predwatch.alerts.sinks.webhook import WebhookSink
from predwatch.config import KafkaSettings
from predwatch.demo.broker import EmbeddedBroker

FAST = Backoff(0.02, 0.2, random.Random(7))


def note(
    fingerprint: str,
    status: str = "firing",
    alertname: str = "AccuracyLow",
    model: str = "fraud",
    **annotations: str,
) -> Notification:
    labels = {
        "alertname": alertname,
        "severity": "page",
        "model": model,
        "version": "v3",
        "window": "1h",
    }
    ends_at = None if status == "firing" else 1_800_000_600.0
    return Notification(
        fingerprint,
        status,
        labels,
        annotations,  # type: ignore[arg-type]
        1_800_000_000.0,
        ends_at,
        f"http://pw/status?model={model}",
        0.8,
    )


def totals(notifier: Notifier, sink: str) -> dict[str, int]:
    return {result: n for (name, result), n in notifier.counts().items() if name == sink}


class Recording(Sink):
    """A sink that records batches; ``gate`` (if given) holds ``send`` until it is set."""

    def __init__(
        self, resend_every: float | None = None, gate: threading.Event | None = None
    ) -> None:
        super().__init__("recording")
        self.resend_every = resend_every
        self.gate = gate
        self.entered = threading.Event()
        self.batches: list[list[Notification]] = []

    def send(self, batch: Sequence[Notification]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(batch))


def test_webhook_body_is_alertmanager_format_4_signed_with_custom_headers() -> None:
    with WebhookReceiver() as hook:
        settings = WebhookSinkSettings(
            url=hook.url,
            secret="s3cret",  # type: ignore[arg-type]
            headers={"Authorization": "Bearer t0ken"},
            receiver="oncall",
        )
        notifier = Notifier([WebhookSink(settings, external_url="http://pw:9108")])
        notifier.notify(
            [
                note("a", model="fraud", summary="low"),
                note("b", model="churn", summary="low"),
                note("c", alertname="NoEvents"),
            ]
        )
        wait_for(lambda: len(hook.requests) == 2, 5, "two grouped requests")
        notifier.close(5)

    by_name = {r.json()["groupLabels"]["alertname"]: r for r in hook.requests}
    request = by_name["AccuracyLow"]
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Predwatch-Signature"] == f"sha256={expected}"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert {
        k: body[k]
        for k in ("receiver", "status", "version", "externalURL", "groupKey", "truncatedAlerts")
    } == {
        "receiver": "oncall",
        "status": "firing",
        "version": "4",
        "externalURL": "http://pw:9108",
        "groupKey": '{}:{alertname="AccuracyLow"}',
        "truncatedAlerts": 0,
    }
    # Common labels are those every alert of the group shares: not the model.
    assert body["commonLabels"] == {
        "alertname": "AccuracyLow",
        "severity": "page",
        "version": "v3",
        "window": "1h",
    }
    assert body["commonAnnotations"] == {"summary": "low", "value": "0.8"}
    first = body["alerts"][0]
    assert first == {
        "status": "firing",
        "labels": note("a").labels,
        "annotations": {"summary": "low", "value": "0.8"},
        "startsAt": "2027-01-15T08:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://pw/status?model=fraud",
        "fingerprint": "a",
    }
    assert [a["fingerprint"] for a in body["alerts"]] == ["a", "b"]
    assert by_name["NoEvents"].json()["alerts"][0]["fingerprint"] == "c"
    # A tampered body no longer matches the signature.
    forged = hmac.new(b"s3cret", request.body + b" ", hashlib.sha256).hexdigest()
    assert request.headers["X-Predwatch-Signature"] != f"sha256={forged}"


def test_slack_format_is_a_readable_summary_without_signature() -> None:
    with WebhookReceiver() as hook:
        sink = WebhookSink(WebhookSinkSettings(url=hook.url, format="slack"))
        notifier = Notifier([sink])
        notifier.notify(
            [
                note("a", summary="Accuracy of fraud v3 is 0.8 (< 0.9)"),
                note("b", "resolved", model="churn"),
            ]
        )
        wait_for(lambda: hook.requests, 5, "the Slack request")
        notifier.close(5)
    [request] = hook.requests
    assert "X-Predwatch-Signature" not in request.headers
    body = request.json()
    assert body["text"] == "[FIRING:1] AccuracyLow"
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert texts[0] == "*[FIRING:1] AccuracyLow*"
    # Slack reads "<" as the start of a link or a mention: it is sent escaped.
    assert "*fraud v3*: Accuracy of fraud v3 is 0.8 (&lt; 0.9)" in texts[1]
    assert "window 1h · severity page · value 0.8" in texts[1]
    assert "<http://pw/status?model=fraud|status>" in texts[1]
    assert texts[2].startswith("✅ *churn v3*")


def test_failures_are_retried_with_growing_backoff_then_delivered() -> None:
    with WebhookReceiver(statuses=[503, 500, 429]) as hook:
        sink = WebhookSink(WebhookSinkSettings(url=hook.url, timeout=2))
        notifier = Notifier([sink], backoff=Backoff(0.05, 1.0, random.Random(1)))
        notifier.notify([note("a")])
        wait_for(lambda: hook.requests, 5, "delivery after three failures")
        notifier.close(5)
    gaps = [b - a for a, b in zip(hook.attempts, hook.attempts[1:], strict=False)]
    assert len(gaps) == 3
    # attempt n waits 0.05 * 2**(n-1) times a jitter factor in [0.5, 1]
    for n, gap in enumerate(gaps, 1):
        assert gap >= 0.5 * 0.05 * 2 ** (n - 1) - 0.005
    assert gaps[2] > gaps[0]
    assert totals(notifier, sink.name) == {
        "delivered": 1,
        "retried": 3,
        "dropped": 0,
        "superseded": 0,
    }


def test_a_request_the_sink_refuses_is_dropped_not_retried() -> None:
    with WebhookReceiver(statuses=[400]) as hook:
        sink = WebhookSink(WebhookSinkSettings(url=hook.url))
        notifier = Notifier([sink], backoff=FAST)
        notifier.notify([note("a")])
        wait_for(lambda: totals(notifier, sink.name)["dropped"] == 1, 5, "the drop")
        notifier.notify([note("b")])
        wait_for(lambda: hook.requests, 5, "the next delivery")
        notifier.close(5)
    assert len(hook.attempts) == 2
    assert totals(notifier, sink.name) == {
        "delivered": 1,
        "retried": 0,
        "dropped": 1,
        "superseded": 0,
    }


def test_unreachable_url_is_a_retryable_error_that_hides_the_path() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/secret-token"
    with pytest.raises(DeliveryError) as error:
        post_json(url, b"{}", {}, timeout=2)
    assert error.value.retryable
    assert "secret-token" not in str(error.value)


def test_sink_down_then_back_gets_the_latest_state_of_every_alert() -> None:
    with WebhookReceiver() as hook:
        hook.down = True
        sink = WebhookSink(WebhookSinkSettings(url=hook.url))
        notifier = Notifier([sink], backoff=FAST)
        # During the outage: a fires and resolves, b fires, c fires and resolves, d fires.
        notifier.notify([note("a"), note("b")])
        notifier.notify([note("a", "resolved"), note("c")])
        notifier.notify([note("c", "resolved"), note("d")])
        wait_for(lambda: len(hook.attempts) >= 3, 5, "a few failed attempts")
        hook.down = False
        wait_for(lambda: totals(notifier, sink.name)["delivered"] == 4, 5, "all four alerts")
        notifier.close(5)

    delivered = {a["fingerprint"]: a["status"] for body in hook.bodies() for a in body["alerts"]}
    # Nothing still firing is lost; resolves still pending are delivered too.
    assert delivered == {"a": "resolved", "b": "firing", "c": "resolved", "d": "firing"}
    counts = totals(notifier, sink.name)
    assert counts["retried"] >= 3
    # Six notifications: four delivered (latest states), two superseded by their resolve.
    assert counts["delivered"] + counts["superseded"] + counts["dropped"] == 6
    assert counts["superseded"] == 2


def test_full_queue_drops_are_counted_and_notify_never_blocks() -> None:
    gate = threading.Event()
    sink = Recording(gate=gate)
    notifier = Notifier([sink], queue_size=2)
    notifier.notify([note("first")])
    assert sink.entered.wait(5)  # the worker is now stuck in send()
    started = time.monotonic()
    notifier.notify([note(f"n{i}") for i in range(10)])
    assert time.monotonic() - started < 0.1
    assert totals(notifier, "recording")["dropped"] == 8
    gate.set()
    notifier.close(5)
    assert totals(notifier, "recording") == {
        "delivered": 3,
        "retried": 0,
        "dropped": 8,
        "superseded": 0,
    }
    assert [n.fingerprint for batch in sink.batches for n in batch] == ["first", "n0", "n1"]


def test_firing_alerts_are_resent_until_resolved_without_counting_resends() -> None:
    sink = Recording(resend_every=0.05)
    notifier = Notifier([sink])
    notifier.notify([note("a"), note("b")])
    wait_for(lambda: len(sink.batches) >= 4, 5, "re-sends")
    notifier.notify([note("a", "resolved")])
    wait_for(lambda: any(n.status == "resolved" for b in sink.batches for n in b), 5, "resolve")
    seen = len(sink.batches)
    wait_for(lambda: len(sink.batches) >= seen + 2, 5, "more re-sends")
    notifier.close(5)
    after = [n for b in sink.batches[seen:] for n in b]
    assert {(n.fingerprint, n.status) for n in after} == {("b", "firing")}
    assert totals(notifier, "recording")["delivered"] == 3


def test_close_drops_what_a_dead_sink_still_holds_and_returns_in_time() -> None:
    class Down(Sink):
        def send(self, batch: Sequence[Notification]) -> None:
            raise DeliveryError("connection refused")

    notifier = Notifier([Down("down")], backoff=FAST)
    notifier.notify([note("a"), note("b")])
    wait_for(lambda: totals(notifier, "down")["retried"] >= 2, 5, "retries")
    started = time.monotonic()
    notifier.close(2)
    assert time.monotonic() - started < 1
    assert totals(notifier, "down")["dropped"] == 2
    notifier.notify([note("late")])  # after close: counted, not queued
    assert totals(notifier, "down")["dropped"] == 3


def test_an_unexpected_sink_error_is_retried_and_the_worker_survives() -> None:
    class Buggy(Sink):
        calls = 0

        def send(self, batch: Sequence[Notification]) -> None:
            Buggy.calls += 1
            if Buggy.calls == 1:
                raise RuntimeError("bug")

    notifier = Notifier([Buggy("buggy")], backoff=FAST)
    notifier.notify([note("a")])
    wait_for(lambda: totals(notifier, "buggy")["delivered"] == 1, 5, "the retry")
    notifier.close(5)
    assert totals(notifier, "buggy")["retried"] == 1


def test_log_sink_writes_one_structured_line_per_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="predwatch.alerts")
    notifier = Notifier([LogSink()])
    notifier.notify([note("a", summary="low accuracy"), note("b", "resolved")])
    notifier.close(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "predwatch.alerts"]
    assert lines == [
        "alert firing alertname=AccuracyLow severity=page model=fraud version=v3 window=1h "
        'value=0.8 fingerprint=a summary="low accuracy"',
        "alert resolved alertname=AccuracyLow severity=page model=fraud version=v3 window=1h "
        "value=0.8 fingerprint=b",
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # Alertmanager would resolve alerts between two re-sends.
        (
            {"alertmanager": [{"url": "http://am:9093", "resend_every": "5m"}]},
            "must be more than 0 and less than Alertmanager's resolve_timeout",
        ),
        ({"webhooks": [{"url": "ftp://x"}]}, "is not an http:// or https:// URL"),
        ({"webhooks": [{"url": "http://a", "format": "teams"}]}, "'alertmanager' or 'slack'"),
        (
            {"webhooks": [{"url": "http://a", "name": "x"}, {"url": "http://b", "name": "x"}]},
            "sink names must be unique; repeated: x",
        ),
        ({"retry_initial": "2m", "retry_max": "1m"}, "at most retry_max"),
    ],
)
def test_settings_errors_name_the_problem(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SinkSettings.model_validate(settings)


def test_sinks_are_built_and_named_from_settings() -> None:
    settings = SinkSettings.model_validate(
        {
            "alertmanager": [{"url": "http://am1:9093"}, {"url": "http://am2:9093", "name": "am2"}],
            "webhooks": [{"url": "https://hooks.example/x", "secret": "s"}],
            "kafka": {"topic": "alerts"},
        }
    )
    sinks = build_sinks(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    assert (
        [s.name for s in sinks]
        == settings.sink_names()
        == ["alertmanager-1", "am2", "webhook-1", "kafka", "log"]
    )
    assert "'s'" not in repr(settings)  # the secret stays hidden
    with pytest.raises(ValueError, match="kafka settings must be given"):
        build_sinks(settings)


def test_kafka_sink_writes_json_events_keyed_by_fingerprint(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    def counts_delivered(n: Notifier) -> int:
        return totals(n, "kafka")["delivered"]

    topic = make_topic("alerts")
    kafka = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers)
    settings = SinkSettings.model_validate({"kafka": {"topic": topic}, "log": False})
    notifier = Notifier(build_sinks(settings, kafka))
    notifier.notify([note("fp-a", summary="low"), note("fp-a", "resolved")])
    wait_for(lambda: totals(notifier, "kafka")["delivered"] >= 1, 20, "the Kafka delivery")
    notifier.close(10)

    # A partition assigned by hand: no consumer-group join to wait for.
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    consumer.assign([TopicPartition(topic, 0)])
    records: list[Any] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(records) < counts_delivered(notifier):
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    consumer.close()
    events = [(r.key, json.loads(r.value)) for r in records]
    assert events, "no alert event on the topic"
    assert all(key == b"fp-a" for key, _ in events)
    last = events[-1][1]
    assert last["status"] == "resolved"
    assert last["labels"]["alertname"] == "AccuracyLow"
    assert last["endsAt"] == "2027-01-15T08:10:00.000Z"
    counts = totals(notifier, "kafka")
    assert counts["delivered"] + counts["superseded"] == 2
    assert counts["delivered"] == len(events)


# --- values from events, made safe in every sink ----------------------------------------------

HOSTILE_VERSION = "<!channel> <https://evil.example/login|Sign in> \ud800\n"


def hostile_note(fingerprint: str = "h", starts_at: float = 1_800_000_000.0) -> Notification:
    base = note(fingerprint, summary=f"Accuracy of fraud {HOSTILE_VERSION} is 0.8 (< 0.9)")
    labels = base.labels | {"version": HOSTILE_VERSION}
    return Notification(
        base.fingerprint,
        base.status,
        labels,
        base.annotations,
        starts_at,
        None,
        base.generator_url,
        base.value,
    )


def test_slack_text_from_events_neither_pings_nor_links() -> None:
    with WebhookReceiver() as hook:
        notifier = Notifier([WebhookSink(WebhookSinkSettings(url=hook.url, format="slack"))])
        notifier.notify([hostile_note()])
        wait_for(lambda: hook.requests, 5, "the Slack request")
        notifier.close(5)
    body = hook.requests[0].body.decode()  # as Slack reads it: valid UTF-8 JSON
    texts = [b["text"]["text"] for b in json.loads(body)["blocks"]]
    line = texts[1]
    assert "<!channel>" not in line and "<https://evil" not in line
    assert "&lt;!channel&gt; &lt;https://evil.example/login|Sign in&gt;" in line
    # The only link left is predwatch's own status page.
    assert line.count("<") == 1 and "<http://pw/status?model=fraud|status>" in line


def test_a_lone_surrogate_in_a_label_is_delivered_not_retried_forever() -> None:
    with WebhookReceiver() as hook:
        notifier = Notifier([WebhookSink(WebhookSinkSettings(url=hook.url))], backoff=FAST)
        notifier.notify([hostile_note()])
        wait_for(lambda: hook.requests, 5, "the webhook request")
        notifier.close(5)
    assert totals(notifier, "webhook")["delivered"] == 1
    [alert] = hook.requests[0].json()["alerts"]
    version = alert["labels"]["version"]
    assert "\n" not in version and "\ufffd" in version
    assert alert["annotations"]["summary"].startswith("Accuracy of fraud <!channel>")


def test_log_sink_keeps_one_line_per_hostile_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="predwatch.alerts")
    LogSink().send([hostile_note()])
    [record] = [r for r in caplog.records if r.name == "predwatch.alerts"]
    message = record.getMessage()
    assert "\n" not in message
    message.encode("utf-8")  # a log handler writing UTF-8 would fail on a lone surrogate


def test_kafka_event_of_a_hostile_notification_is_valid_json() -> None:
    from predwatch.alerts.sinks.notification import as_event
    from predwatch.alerts.sinks.transport import encode

    event = json.loads(encode(as_event(hostile_note())))
    assert "\n" not in event["labels"]["version"]


# --- URL credentials against a real Alertmanager ------------------------------------------------

# bcrypt of "am-s3cret" (cost 4), made with Python's crypt module; Alertmanager checks it.
AM_AUTH = BasicAuth(
    "ops", "am-s3cret", "$2b$04$K.db3LGUz7nTx7H7mu/s2OfI8Oa9zoa.x8O955QGn2PeymM4jr5l2"
)


def test_alertmanager_url_credentials_are_sent_as_basic_auth(
    alertmanager: Callable[..., Alertmanager], caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookReceiver() as hook:
        am = alertmanager(hook.url, basic_auth=AM_AUTH)
        host = am.url.removeprefix("http://")
        good = AlertmanagerSinkSettings(url=f"http://ops:am-s3cret@{host}", timeout=5)
        wrong = AlertmanagerSinkSettings(url=f"http://ops:not-it@{host}", timeout=5, name="bad")
        notifier = Notifier(
            [AlertmanagerSink(good), AlertmanagerSink(wrong)], backoff=Backoff(0.05, 0.5)
        )
        notifier.notify([hostile_note("fp-auth", starts_at=time.time() - 60)])
        wait_for(lambda: am.alerts(alertname="AccuracyLow"), 10, "the alert in Alertmanager")
        wait_for(lambda: totals(notifier, "bad")["dropped"] == 1, 10, "the refused request")
        notifier.close(5)
    [alert] = am.alerts(alertname="AccuracyLow")
    version = alert["labels"]["version"]
    assert version.startswith("<!channel>") and "\ufffd" in version and "\n" not in version
    assert totals(notifier, "alertmanager")["delivered"] == 1
    # The wrong password is refused (401, not retried) and named nowhere in the log.
    assert any("401" in r.getMessage() for r in caplog.records)
    assert not any(
        "not-it" in r.getMessage() or "am-s3cret" in r.getMessage() for r in caplog.records
    )
