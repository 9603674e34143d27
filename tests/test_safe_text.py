"""Event strings made safe: Prometheus labels (checked by promtool), Slack text, alert text."""

from __future__ import annotations

import html
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_binary
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from predwatch.safe_text import LABEL_LIMIT, alert_text, label_value, slack_text

# Any code point, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)


@dataclass
class Case:
    value: str
    why: str


HOSTILE = [
    Case("\ud800", "a lone surrogate: no UTF-8 encoder takes it"),
    Case("v3\udfff\ud83d", "lone halves of surrogate pairs"),
    Case("v\x00\x01\x1b[31mred", "NUL and an ANSI escape"),
    Case('v"} 1\nfake_metric{x="1', "an attempt to end the series and start another"),
    Case("\\", "a lone backslash, the exposition's escape character"),
    Case("é" * 10_000, "ten thousand characters"),
    Case("\u2028\u0085\x7f", "line and paragraph separators, NEL, DEL"),
]


def _controls(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) == "Cc"]


class _Versions(Collector):
    def __init__(self, versions: list[str]) -> None:
        self.versions = versions

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily("predwatch_test_info", "one series per version", labels=["v"])
        for version in self.versions:
            family.add_metric([version], 1.0)
        yield family


def _exposition(versions: list[str]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Versions(versions))
    return generate_latest(registry)


@pytest.mark.parametrize("case", HOSTILE, ids=[c.why for c in HOSTILE])
def test_label_value_is_one_encodable_bounded_line(case: Case) -> None:
    safe = label_value(case.value)
    safe.encode("utf-8")  # raises for a lone surrogate
    assert not _controls(safe)
    assert len(safe) <= LABEL_LIMIT
    assert safe != label_value(case.value + "x")  # still tells values apart


def test_a_lone_surrogate_breaks_the_exposition_unless_made_safe(tmp_path: Path) -> None:
    versions = [c.value for c in HOSTILE] + ["v1", "v2"]
    with pytest.raises(UnicodeEncodeError):
        _exposition(versions)  # the failure every scrape would hit
    text = _exposition([label_value(v) for v in versions])
    if shutil.which("promtool") is None:
        require_binary("promtool", "Debian's 'prometheus' package")
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    series = [line for line in text.decode().splitlines() if line.startswith("predwatch_test")]
    assert len(series) == len(versions)  # none merged, none injected
    assert 'v="v1"' in text.decode() and 'v="v2"' in text.decode()


@given(ANY_TEXT, ANY_TEXT)
def test_label_value_keeps_different_values_apart(a: str, b: str) -> None:
    if a != b:
        assert label_value(a) != label_value(b)


@given(st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=LABEL_LIMIT))
def test_a_safe_value_is_left_as_it_is(value: str) -> None:
    assert label_value(value) == value


@given(ANY_TEXT)
def test_alert_text_is_encodable_bounded_and_keeps_only_line_breaks(text: str) -> None:
    safe = alert_text(text, limit=100)
    safe.encode("utf-8")
    assert len(safe) <= 100
    assert set(_controls(safe)) <= {"\n", "\t"}


SLACK = [
    Case("<!channel> please look", "a channel-wide ping"),
    Case("<!here|here> <!everyone>", "other broadcast mentions"),
    Case("<@U024BE7LH> <#C024BE7LR>", "a user and a channel reference"),
    Case("<https://evil.example/login|Sign in again>", "a disguised link"),
    Case("&lt;!channel&gt;", "text that is already an escape stays literal"),
    Case("accuracy 0.8 (< 0.9) & falling", "ordinary comparisons keep their meaning"),
]


@pytest.mark.parametrize("case", SLACK, ids=[c.why for c in SLACK])
def test_slack_text_neither_pings_nor_links(case: Case) -> None:
    safe = slack_text(case.value)
    assert "<" not in safe and ">" not in safe
    # Slack shows the escapes as the characters: the reader sees exactly what was sent.
    assert html.unescape(safe) == case.value


@given(ANY_TEXT)
def test_slack_text_is_bounded_and_never_cuts_an_escape(text: str) -> None:
    safe = slack_text(text, limit=50)
    assert len(safe) <= 50
    assert "<" not in safe and ">" not in safe
    body = safe.removesuffix("…")
    assert all(
        body[i:].startswith(("&amp;", "&lt;", "&gt;")) for i, c in enumerate(body) if c == "&"
    )


@given(ANY_TEXT)
def test_making_a_value_safe_twice_changes_nothing_more(value: str) -> None:
    once = label_value(value)
    assert label_value(once) == once  # sinks may meet a value the collector already made safe
    assert alert_text(alert_text(value)) == alert_text(value)
