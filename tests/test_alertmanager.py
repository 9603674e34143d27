"""The Alertmanager sink against a real Alertmanager; the deploy rule and config files checked."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from alertmanager_fixture import Alertmanager, WebhookReceiver, wait_for

# The fixture, by name (the explicit re-export keeps linters from calling it unused).
from alertmanager_fixture import alertmanager as alertmanager
from conftest import require_binary

from predwatch.alerts.sinks.alertmanager import AlertmanagerSink
from predwatch.alerts.sinks.delivery import Backoff
from predwatch.alerts.sinks.notification import Notification
from predwatch.alerts.sinks.notifier import Notifier
from predwatch.alerts.sinks.settings import AlertmanagerSinkSettings

LABELS = {
    "alertname": "PredwatchAccuracyLow",
    "severity": "page",
    "model": "fraud",
    "version": "v3",
    "window": "1h",
    "team": "risk",
}
SUMMARY = "Accuracy of fraud v3 is 0.81 (< 0.9)"
STATUS_URL = "http://127.0.0.1:9108/status?model=fraud"
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _with_status(hook: WebhookReceiver, status: str) -> Callable[[], dict[str, Any] | None]:
    def find() -> dict[str, Any] | None:
        return next((b for b in hook.bodies() if b["status"] == status), None)

    return find


def test_alert_fires_and_resolves_in_alertmanager(
    alertmanager: Callable[[str], Alertmanager],
) -> None:
    with WebhookReceiver() as hook:
        am = alertmanager(hook.url)
        sink = AlertmanagerSink(AlertmanagerSinkSettings(url=am.url, resend_every=0.3, timeout=5))
        notifier = Notifier([sink], backoff=Backoff(0.05, 0.5))
        starts_at = time.time() - 60
        firing = Notification(
            "fp-1", "firing", LABELS, {"summary": SUMMARY}, starts_at, None, STATUS_URL, 0.81
        )
        notifier.notify([firing])

        # Alertmanager's API shows the alert, active, as sent.
        alerts = wait_for(lambda: am.alerts(alertname=LABELS["alertname"]), 10, "the alert")
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["labels"] == LABELS
        assert alert["annotations"] == {"summary": SUMMARY, "value": "0.81"}
        assert alert["generatorURL"] == STATUS_URL
        assert alert["status"]["state"] == "active"
        assert abs(_time(alert["startsAt"]) - starts_at) < 0.01
        assert _time(alert["endsAt"]) > time.time()  # open: resolve_timeout from the last send

        # The sink re-sends it while it fires: Alertmanager's updatedAt moves on.
        updated = alert["updatedAt"]
        wait_for(
            lambda: am.alerts(alertname=LABELS["alertname"])[0]["updatedAt"] != updated,
            5,
            "a re-send",
        )

        # Its webhook receiver gets the grouped notification, in webhook format version 4.
        body = wait_for(_with_status(hook, "firing"), 10, "the firing notification")
        assert body["version"] == "4"
        assert body["receiver"] == "test"
        assert body["groupLabels"] == {"alertname": "PredwatchAccuracyLow"}
        assert body["commonLabels"] == LABELS
        assert body["commonAnnotations"] == {"summary": SUMMARY, "value": "0.81"}
        assert [a["status"] for a in body["alerts"]] == ["firing"]
        assert body["alerts"][0]["generatorURL"] == STATUS_URL
        assert body["externalURL"] == am.url

        # Resolve: Alertmanager no longer lists it as active, and the receiver is told.
        ends_at = time.time()
        notifier.notify(
            [
                Notification(
                    "fp-1",
                    "resolved",
                    LABELS,
                    {"summary": SUMMARY},
                    starts_at,
                    ends_at,
                    STATUS_URL,
                    0.93,
                )
            ]
        )
        wait_for(lambda: am.alerts(alertname=LABELS["alertname"]) == [], 10, "the resolve")
        body = wait_for(_with_status(hook, "resolved"), 10, "the resolved notification")
        [resolved] = body["alerts"]
        assert resolved["status"] == "resolved"
        assert resolved["labels"] == LABELS
        assert abs(_time(resolved["endsAt"]) - ends_at) < 0.01

        notifier.close(5)
        counts = notifier.counts()
        assert counts[(sink.name, "delivered")] == 2  # re-sends are not new notifications
        assert counts[(sink.name, "dropped")] == 0


def _run(tool: str, package: str, *args: str) -> None:
    if shutil.which(tool) is None:
        require_binary(tool, package)
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_alert_rules_pass_their_promtool_unit_tests() -> None:
    rules = DEPLOY / "prometheus"
    _run(
        "promtool",
        "Debian's 'prometheus' package",
        "check",
        "rules",
        str(rules / "alert-rules.yml"),
    )
    _run(
        "promtool",
        "Debian's 'prometheus' package",
        "test",
        "rules",
        str(rules / "tests" / "alert-rules.test.yml"),
    )


def test_example_alertmanager_config_is_valid() -> None:
    _run(
        "amtool",
        "Debian's 'prometheus-alertmanager' package",
        "check-config",
        str(DEPLOY / "alertmanager" / "alertmanager.yml"),
    )
