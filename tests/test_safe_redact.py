"""Secrets never reach a message: config errors, check-config, sink settings and their reprs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from predwatch.alerts.sinks.settings import SinkSettings
from predwatch.config import ConfigError, settings_from_mapping
from predwatch.redact import redact, redact_url


@dataclass
class UrlCase:
    url: str
    shown: str
    why: str


URLS = [
    UrlCase("http://am:9093", "http://am:9093", "nothing secret: unchanged"),
    UrlCase("https://ops:hunter2@am:9093", "https://ops:***@am:9093", "the password"),
    UrlCase("https://tok123@am/", "https://***@am/", "a lone user part can be a token"),
    UrlCase(
        "https://hooks.slack.com/services/T0/B0/abcDEF",
        "https://hooks.slack.com/***",
        "a webhook path holds its token",
    ),
    UrlCase(
        "http://am:9093/?token=t0k&api_key=k3y",
        "http://am:9093/?token=***&api_key=***",
        "query values",
    ),
    UrlCase("http://u:p@[::1]:9093", "http://u:***@[::1]:9093", "an IPv6 host keeps its brackets"),
    UrlCase("http://u:pw@am:99x", "http://***", "no URL shape at all: all after the scheme"),
]


@pytest.mark.parametrize("case", URLS, ids=[c.why for c in URLS])
def test_redact_url(case: UrlCase) -> None:
    assert redact_url(case.url) == case.shown


def test_redact_finds_urls_and_credentials_in_text() -> None:
    text = "cannot reach 'https://a:s3cret@am/x?sig=abc' or SASL_SSL user:pa55@broker:9092 (12s)"
    assert redact(text) == (
        "cannot reach 'https://a:***@am/***?sig=***' or SASL_SSL user:***@broker:9092 (12s)"
    )


@dataclass
class ConfigCase:
    config: dict[str, object]
    key: str
    secrets: tuple[str, ...]
    why: str


CONFIGS = [
    ConfigCase(
        {"alertmanager": [{"url": "ftp://admin:HUNTER2@am:9093/?token=TOKEN1"}]},
        "alerts.sinks.alertmanager.0.url",
        ("HUNTER2", "TOKEN1"),
        "a URL of the wrong scheme, with a password and a token",
    ),
    ConfigCase(
        {"webhooks": [{"url": "hooks.slack.com/services/T0/B0/SLACKSECRET"}]},
        "alerts.sinks.webhooks.0.url",
        ("SLACKSECRET",),
        "a Slack URL without its scheme",
    ),
    ConfigCase(
        {"webhooks": [{"url": "http://u:PW5@am:99999x"}]},
        "alerts.sinks.webhooks.0.url",
        ("PW5",),
        "a port that is not a number",
    ),
    ConfigCase(
        {"webhooks": [{"url": "http://hook", "timeout": "https://u:PW3@x/?key=K3"}]},
        "alerts.sinks.webhooks.0.timeout",
        ("PW3", "K3"),
        "a URL pasted into a duration",
    ),
]


def _config(case: ConfigCase) -> dict[str, object]:
    return {"models": {"fraud": {"task": "binary"}}, "alerts": {"sinks": case.config}}


@pytest.mark.parametrize("case", CONFIGS, ids=[c.why for c in CONFIGS])
def test_config_errors_name_the_key_and_hide_the_secret(case: ConfigCase) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(_config(case))
    [problem] = caught.value.problems
    assert problem.startswith(f"{case.key}: ")
    for secret in case.secrets:
        assert secret not in problem


def test_check_config_prints_no_secret(tmp_path: Path) -> None:
    sinks: dict[str, list[object]] = {"alertmanager": [], "webhooks": []}
    for case in CONFIGS:
        for kind, entries in case.config.items():
            sinks[kind] += entries  # type: ignore[operator]
    path = tmp_path / "config.yaml"
    config = {"models": {"fraud": {"task": "binary"}}, "alerts": {"sinks": sinks}}
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "predwatch.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == len(CONFIGS)
    output = done.stdout + done.stderr
    for case in CONFIGS:  # the keys are checked one by one above
        for secret in case.secrets:
            assert secret not in output


def test_sink_settings_errors_and_reprs_hide_secrets() -> None:
    with pytest.raises(ValidationError) as caught:
        SinkSettings.model_validate({"webhooks": [{"url": "ftp://u:PW9@hook/?token=T9"}]})
    assert "PW9" not in str(caught.value) and "T9" not in str(caught.value)
    settings = SinkSettings.model_validate(
        {
            "alertmanager": [{"url": "http://ops:AMPW@am:9093"}],
            "webhooks": [
                {
                    "url": "https://hooks.slack.com/services/T0/B0/SLACKSECRET",
                    "headers": {"Authorization": "Bearer HEADERTOKEN"},
                }
            ],
        }
    )
    shown = repr(settings) + str(settings)
    for secret in ("AMPW", "SLACKSECRET", "HEADERTOKEN"):
        assert secret not in shown


SECRET = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$", min_size=8)


@given(
    user=st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True),
    password=SECRET,
    token=SECRET,
    path=SECRET,
    scheme=st.sampled_from(["http", "https", "ftp", "kafka"]),
)
def test_no_password_token_or_path_survives_redaction(
    user: str, password: str, token: str, path: str, scheme: str
) -> None:
    for secret in (password, token, path):
        assume(secret not in f"cannot use here; nor broker:9092 host.example:9093 {user}")
    url = f"{scheme}://{user}:{password}@host.example:9093/{path}?token={token}"
    shown = redact(f"cannot use '{url}' here; nor {user}:{password}@broker:9092")
    for secret in (password, token, path):
        assert secret not in shown
    assert "host.example:9093" in shown and f"{user}:***@" in shown
