"""Alert lifecycle: pending -> firing -> resolved with `for`, `min_samples`, hysteresis and
`keep_firing_for`, driven through the engine with an explicit clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import msgpack
from reports import report_of

from predwatch.alerts.engine import AlertEngine, Transition
from predwatch.alerts.lifecycle import ALLOWED
from predwatch.alerts.settings import AlertSettings
from predwatch.report import Report
from predwatch.state.codec import from_data, to_data

Step = tuple[float, float | None, int]  # now, accuracy (None: undefined), count


def summary(
    accuracy: float | None, count: int = 1000, versions: tuple[str, ...] = ("v3",)
) -> Report:
    entry = {"task": "binary", "cumulative": {"count": count, "accuracy": accuracy}, "windows": {}}
    return report_of({"join": {}, "models": {"fraud": dict.fromkeys(versions, entry)}})


def engine_for(**rule: Any) -> AlertEngine:
    fields = {"name": "AccuracyLow", "metric": "accuracy", "below": 0.9, "min_samples": 100, **rule}
    return AlertEngine(AlertSettings.model_validate({"rules": [fields]}))


def run(engine: AlertEngine, steps: list[Step]) -> list[Transition]:
    return [t for now, value, count in steps for t in engine.evaluate(summary(value, count), now)]


def every_minute(*values: float | None, count: int = 1000) -> list[Step]:
    return [(60.0 * i, value, count) for i, value in enumerate(values)]


@dataclass
class Case:
    rule: dict[str, Any]
    steps: list[Step]
    transitions: list[tuple[float, str, str]]  # at, from, to
    id: str = field(default="")


CASES = [
    Case(  # with for=0 the first breach fires at once; the first recovery resolves.
        {},
        every_minute(0.95, 0.85, 0.95),
        [(60, "inactive", "firing"), (120, "firing", "resolved")],
        "for-zero",
    ),
    Case(  # fires only once the condition has held for `for` (2m), pending until then.
        {"for": "2m"},
        every_minute(0.85, 0.85, 0.85, 0.85),
        [(0, "inactive", "pending"), (120, "pending", "firing")],
        "fires-after-for",
    ),
    Case(  # a breach shorter than `for` goes back to inactive and never fires.
        {"for": "2m"},
        every_minute(0.85, 0.85, 0.95, 0.85),
        [(0, "inactive", "pending"), (120, "pending", "inactive"), (180, "inactive", "pending")],
        "pending-broken",
    ),
    Case(  # hysteresis: between threshold and clear it stays firing; resolves past clear.
        {"clear": 0.92},
        every_minute(0.85, 0.91, 0.915, 0.93),
        [(0, "inactive", "firing"), (180, "firing", "resolved")],
        "hysteresis",
    ),
    Case(  # keep_firing_for: firing 2m past recovery; a relapse restarts the countdown.
        {"keep_firing_for": "2m"},
        every_minute(0.85, 0.95, 0.85, 0.95, 0.95, 0.95),
        [(0, "inactive", "firing"), (300, "firing", "resolved")],
        "keep-firing-for",
    ),
    Case(  # flapping around the threshold: one firing and one resolve, not a storm.
        {"clear": 0.92},
        every_minute(0.89, 0.91, 0.89, 0.905, 0.899, 0.91, 0.95),
        [(0, "inactive", "firing"), (360, "firing", "resolved")],
        "flapping",
    ),
    Case(  # without hysteresis the same input pages repeatedly: why `clear` exists.
        {},
        every_minute(0.89, 0.91, 0.89, 0.91),
        [
            (0, "inactive", "firing"),
            (60, "firing", "resolved"),
            (120, "resolved", "firing"),
            (180, "firing", "resolved"),
        ],
        "flapping-without-clear",
    ),
    Case(  # never fires on fewer than min_samples, however bad the value.
        {}, every_minute(0.1, 0.1, count=99), [], "min-samples"
    ),
    Case(  # ... and fires once the window has enough samples.
        {}, [(0, 0.1, 99), (60, 0.1, 100)], [(60, "inactive", "firing")], "min-samples-met"
    ),
    Case(  # a firing alert whose samples drop below min_samples counts as recovered.
        {},
        [(0, 0.1, 500), (60, 0.1, 10)],
        [(0, "inactive", "firing"), (60, "firing", "resolved")],
        "samples-drop",
    ),
    Case(  # an undefined value (None) is no observation: the condition is not met.
        {"for": "1m"},
        every_minute(0.8, None, 0.8, 0.8),
        [
            (0, "inactive", "pending"),
            (60, "pending", "inactive"),
            (120, "inactive", "pending"),
            (180, "pending", "firing"),
        ],
        "undefined-value",
    ),
    Case(  # an `above` rule with hysteresis below its threshold.
        {"below": None, "above": 0.2, "clear": 0.1},
        every_minute(0.3, 0.15, 0.05),
        [(0, "inactive", "firing"), (120, "firing", "resolved")],
        "above",
    ),
    Case(  # a resolved alert fires again (through pending) on a new breach.
        {"for": "1m"},
        every_minute(0.8, 0.8, 0.95, 0.8, 0.8),
        [
            (0, "inactive", "pending"),
            (60, "pending", "firing"),
            (120, "firing", "resolved"),
            (180, "resolved", "pending"),
            (240, "pending", "firing"),
        ],
        "refires",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_lifecycle(case: Case) -> None:
    transitions = run(engine_for(**case.rule), case.steps)
    assert [(t.at, t.from_state, t.to_state) for t in transitions] == case.transitions


def test_transition_records_carry_what_sinks_need() -> None:
    engine = engine_for(**{"for": "1m", "severity": "page", "labels": {"team": "risk"}})
    pending, firing, resolved = run(engine, every_minute(0.85, 0.8, 0.95))
    assert firing.labels == {
        "alertname": "AccuracyLow",
        "model": "fraud",
        "severity": "page",
        "team": "risk",
        "version": "v3",
        "window": "cumulative",
    }
    assert (firing.value, firing.threshold, firing.starts_at, firing.ends_at) == (
        0.8,
        0.9,
        60.0,
        None,
    )
    assert (resolved.starts_at, resolved.ends_at, resolved.value) == (60.0, 120.0, 0.95)
    assert pending.fingerprint == firing.fingerprint == resolved.fingerprint
    assert len(firing.fingerprint) == 16
    assert firing.annotations == {
        "summary": "accuracy of fraud v3, window cumulative is 0.8 (below 0.9)"
    }
    assert firing.as_dict()["to_state"] == "firing"


def test_star_model_gives_each_version_its_own_alert() -> None:
    engine = engine_for()
    fired = engine.evaluate(summary(0.8, versions=("v3", "v4")), 0.0)
    assert [t.labels["version"] for t in fired] == ["v3", "v4"]
    assert len({t.fingerprint for t in fired}) == 2
    # A version that disappears from the summary is no longer breaching: it resolves.
    resolved = engine.evaluate(summary(0.8, versions=("v4",)), 60.0)
    assert [(t.labels["version"], t.to_state) for t in resolved] == [("v3", "resolved")]


def test_active_and_state_show_pending_firing_and_resolved() -> None:
    engine = engine_for(**{"for": "1m"})
    engine.evaluate(summary(0.8), 0.0)
    (pending,) = engine.active()
    assert (pending.state, pending.since, pending.starts_at, pending.value) == (
        "pending",
        0.0,
        None,
        0.8,
    )
    engine.evaluate(summary(0.8), 60.0)
    assert [(a.state, a.since, a.starts_at) for a in engine.active()] == [("firing", 0.0, 60.0)]
    engine.evaluate(summary(0.95), 120.0)
    assert engine.active() == []
    assert engine.evaluated_at == 120.0
    assert [(a.state, a.ends_at) for a in engine.alerts()] == [("resolved", 120.0)]
    engine.evaluate(summary(0.95), 120.0 + 900)  # resolved alerts are forgotten after 15m
    assert engine.alerts() == []


def test_due_follows_evaluate_every() -> None:
    engine = engine_for()
    assert engine.due(0.0)
    engine.evaluate(summary(0.95), 0.0)
    assert not engine.due(14.9) and engine.due(15.0)


def test_engine_checkpointed_mid_alert_continues_identically() -> None:
    steps = every_minute(0.85, 0.85, 0.95, 0.85, 0.85, 0.99, 0.99)
    straight = engine_for(**{"for": "1m", "keep_firing_for": "1m"})
    expected = run(straight, steps)
    first = engine_for(**{"for": "1m", "keep_firing_for": "1m"})
    got = run(first, steps[:3])
    restored = from_data(msgpack.decode(msgpack.encode(to_data(first))))
    got += run(restored, steps[3:])
    assert got == expected and len(expected) == 3  # pending, firing, resolved


def test_a_removed_rule_resolves_its_firing_alert() -> None:
    engine = engine_for()
    engine.evaluate(summary(0.8), 0.0)
    engine.reconfigure(AlertSettings())
    (ended,) = engine.evaluate(summary(0.8), 60.0)
    assert (ended.from_state, ended.to_state, ended.ends_at) == ("firing", "resolved", 60.0)
    assert engine.alerts() == []


def test_context_reaches_the_annotations() -> None:
    engine = engine_for(annotations={"description": "last drift: {{last_drift}}"})
    (fired,) = engine.evaluate(
        summary(0.8), 0.0, context=lambda model, version: {"last_drift": "2026-11-27 04:10 UTC"}
    )
    assert fired.annotations["description"] == "last drift: 2026-11-27 04:10 UTC"


steps = st.lists(
    st.tuples(
        st.sampled_from([0.5, 0.85, 0.89, 0.9, 0.91, 0.93, 0.99, None]),
        st.integers(0, 200),
        st.integers(1, 120),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=steps,
    min_samples=st.integers(0, 150),
    for_=st.sampled_from([0, 30, 90]),
    keep=st.sampled_from([0, 45]),
    clear=st.sampled_from([None, 0.92]),
)
def test_never_fires_below_min_samples_and_follows_the_graph(
    steps: list[tuple[float | None, int, int]],
    min_samples: int,
    for_: int,
    keep: int,
    clear: float | None,
) -> None:
    engine = AlertEngine(
        AlertSettings.model_validate(
            {
                "rules": [
                    {
                        "name": "R",
                        "metric": "accuracy",
                        "below": 0.9,
                        "clear": clear,
                        "for": for_,
                        "keep_firing_for": keep,
                        "min_samples": min_samples,
                    }
                ]
            }
        ),
        keep_resolved=120.0,
    )
    now, last = 0.0, "inactive"
    for value, count, gap in steps:
        now += gap
        for t in engine.evaluate(summary(value, count), now):
            if t.to_state == "firing":
                assert count >= min_samples and value is not None and value < 0.9
            assert (t.from_state, t.to_state) in ALLOWED
            # Consecutive transitions chain; a resolved alert may be forgotten silently.
            assert t.from_state == last or (last, t.from_state) == ("resolved", "inactive")
            last = t.to_state
