"""The alert engine: every rule over every key, evaluated against a report at a given time.

Deterministic and picklable: it never reads a clock (``now`` is passed in: the event time
of the report), and its state travels in the monitor's snapshot. Annotations are rendered
when an alert changes state, so they say what was true when it did.

>>> from predwatch.alerts.settings import AlertSettings
>>> engine = AlertEngine(AlertSettings.model_validate({"rules": [
...     {"name": "AccuracyLow", "model": "*", "metric": "accuracy", "below": 0.9,
...      "for": "1m", "min_samples": 100, "labels": {"team": "risk"},
...      "annotations": {"summary": "Accuracy of {{model}} {{version}} is {{value}}"}}]}))
>>> from predwatch.pipeline.builder import ReportBuilder
>>> def report(accuracy):
...     builder = ReportBuilder(clock=0.0)
...     labels = ("fraud", "v3", "cumulative", "", "")
...     builder.add("predwatch_accuracy_ratio", labels, accuracy, 500)
...     return builder.build()
>>> [t.to_state for t in engine.evaluate(report(0.85), now=0.0)]
['pending']
>>> [(t.to_state, t.annotations["summary"]) for t in engine.evaluate(report(0.8), now=60.0)]
[('firing', 'Accuracy of fraud v3 is 0.8')]
>>> sorted(engine.active()[0].labels.items())  # doctest: +NORMALIZE_WHITESPACE
[('alertname', 'AccuracyLow'), ('model', 'fraud'), ('severity', 'warning'),
 ('team', 'risk'), ('version', 'v3'), ('window', 'cumulative')]
>>> [(t.to_state, t.ends_at) for t in engine.evaluate(report(0.95), now=120.0)]
[('resolved', 120.0)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from predwatch.alerts.lifecycle import Phase, State, advance, signal_of
from predwatch.alerts.rules import AlertKey, Observation, observe_all
from predwatch.alerts.settings import AlertSettings, RuleSettings
from predwatch.catalogue import FIGURES
from predwatch.durations import format_duration
from predwatch.pipeline.builder import frozen
from predwatch.report import Alert, Report, iso

Context = Callable[[str, str], Mapping[str, str]]
"""Extra template variables of a (model, version), e.g. its top failing segments; called only
when an annotation is rendered."""

DEFAULT_SUMMARY = "{{metric}} of {{scope}} is {{value}} ({{direction}} {{threshold}})"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Transition:
    """One alert changing state at ``at``; ``ends_at`` is set when it resolves."""

    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    from_state: State
    to_state: State
    value: float | None
    threshold: float
    at: float
    starts_at: float | None
    ends_at: float | None
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; times as epoch seconds and, beside them, ISO 8601."""
        document = asdict(self)
        for name in ("at", "starts_at", "ends_at"):
            document[name + "_iso"] = iso(document[name])
        return document


@dataclass
class _Alert:
    labels: dict[str, str]
    fingerprint: str
    threshold: float
    phase: Phase = field(default_factory=Phase)
    value: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)


class AlertEngine:
    """Evaluates the alert rules and keeps each alert's state between evaluations.

    ``keep_resolved`` is how long (on the caller's clock) a resolved alert stays in
    ``state()`` before it is forgotten.
    """

    def __init__(self, settings: AlertSettings, keep_resolved: float = 900.0) -> None:
        self._settings = settings
        self._keep_resolved = keep_resolved
        self._alerts: dict[AlertKey, _Alert] = {}
        self._evaluated_at: float | None = None

    @property
    def settings(self) -> AlertSettings:
        return self._settings

    def reconfigure(self, settings: AlertSettings) -> None:
        """Use new rules (e.g. after a restore); alerts of removed rules end at the next
        evaluation."""
        self._settings = settings

    def due(self, now: float) -> bool:
        """Whether ``evaluate_every`` has passed since the last evaluation."""
        last = self._evaluated_at
        return last is None or now - last >= self._settings.evaluate_every

    def evaluate(
        self, report: Report, now: float, context: Context | None = None
    ) -> list[Transition]:
        """Evaluate every rule at ``now``; the state changes, in rule and key order."""
        rules = {rule.name: rule for rule in self._settings.all_rules()}
        observed = observe_all(list(rules.values()), report)
        keys = list(observed) + sorted(k for k in self._alerts if k not in observed)
        transitions = []
        for key in keys:
            rule = rules.get(key.rule)
            alert = self._alerts.get(key)
            observation = observed.get(key)
            if rule is None:
                if alert is not None:  # the rule was removed: end its alert now
                    transitions.extend(self._end(key, alert, now))
                continue
            value = None if observation is None else observation.value
            signal = signal_of(rule, value, None if observation is None else observation.samples)
            if alert is None:
                if signal != "breach":
                    continue
                labels = _labels(rule, key)
                alert = self._alerts[key] = _Alert(labels, fingerprint(labels), rule.threshold)
            before = alert.phase
            alert.phase = advance(before, signal, now, rule.for_, rule.keep_firing_for)
            alert.value = value
            if alert.phase.state != before.state:
                alert.annotations = render_annotations(rule, key, observation, context)
                transitions.append(_transition(key, alert, before.state, now))
            if alert.phase.state == "inactive" or self._forgotten(alert.phase, now):
                del self._alerts[key]
        self._evaluated_at = now
        return transitions

    def _forgotten(self, phase: Phase, now: float) -> bool:
        return (
            phase.state == "resolved"
            and phase.ends_at is not None
            and now - phase.ends_at >= self._keep_resolved
        )

    def _end(self, key: AlertKey, alert: _Alert, now: float) -> list[Transition]:
        before = alert.phase.state
        del self._alerts[key]
        if before == "firing":
            alert.phase = Phase(
                "resolved", alert.phase.active_since, alert.phase.starts_at, ends_at=now
            )
        elif before == "pending":
            alert.phase = Phase()
        else:
            return []
        return [_transition(key, alert, before, now)]

    def active(self) -> list[Alert]:
        """The pending and firing alerts, in rule and key order."""
        return [a for a in self.alerts() if a.state in ("pending", "firing")]

    def alerts(self) -> list[Alert]:
        """Every alert not inactive (resolved ones for ``keep_resolved``), in key order."""
        return [
            Alert(
                key.rule,
                a.phase.state,
                frozen(a.labels),
                frozen(a.annotations),
                a.value,
                a.threshold,
                a.phase.active_since,
                a.phase.starts_at,
                a.phase.ends_at,
                a.fingerprint,
            )
            for key, a in self._alerts.items()
        ]

    @property
    def evaluated_at(self) -> float | None:
        """The time of the last evaluation, None before the first."""
        return self._evaluated_at


def _transition(key: AlertKey, alert: _Alert, before: State, now: float) -> Transition:
    phase = alert.phase
    return Transition(
        key.rule,
        dict(alert.labels),
        dict(alert.annotations),
        before,
        phase.state,
        alert.value,
        alert.threshold,
        now,
        phase.starts_at,
        phase.ends_at,
        alert.fingerprint,
    )


def _labels(rule: RuleSettings, key: AlertKey) -> dict[str, str]:
    labels = dict(rule.labels)
    if key.tag:
        labels[key.tag] = key.tag_value
    labels.update(alertname=rule.name, severity=rule.severity)
    labels.update(
        (name, getattr(key, name)) for name in ("model", "version", "window") if getattr(key, name)
    )
    return dict(sorted(labels.items()))


_FNV_OFFSET, _FNV_PRIME, _SEPARATOR = 14695981039346656037, 1099511628211, 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """An alert's identity as Alertmanager computes it for the same labels: FNV-1a (64 bit)
    over the sorted label names and values, each followed by a 0xff byte, in 16 hex digits.

    >>> fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    True
    >>> fingerprint({})
    'cbf29ce484222325'
    """
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for text in (name, labels[name]):
            for byte in (*text.encode(), _SEPARATOR):
                digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def format_value(value: float | None, unit: str = "number") -> str:
    """A number as people read it in an alert.

    >>> [format_value(v) for v in (0.8873720136518771, 0.9, 12.0, 15234.7, None)]
    ['0.8874', '0.9', '12', '15235', 'n/a']
    >>> format_value(900.0, "seconds")
    '15m'
    """
    if value is None:
        return "n/a"
    if unit == "seconds" and value >= 1:
        return format_duration(float(round(value)))
    if unit == "seconds":
        return f"{value:.3g}s"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def render(template: str, variables: Mapping[str, str]) -> str:
    """``{{name}}`` replaced by its variable; unknown names are left as written.

    >>> render("{{model}} is {{ value }} {{unknown}}", {"model": "fraud", "value": "0.8"})
    'fraud is 0.8 {{unknown}}'
    """
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), template)


def render_annotations(
    rule: RuleSettings,
    key: AlertKey,
    observation: Observation | None,
    context: Context | None = None,
) -> dict[str, str]:
    """The rule's annotations (a default ``summary`` if it has none) for one key."""
    unit = FIGURES[rule.metric].unit if rule.metric in FIGURES else "number"
    samples = None if observation is None else observation.samples
    variables = {
        **(context(key.model, key.version) if context and key.model else {}),
        "alertname": rule.name,
        "rule": rule.name,
        "severity": rule.severity,
        "metric": rule.metric,
        "model": key.model,
        "version": key.version,
        "window": key.window,
        "tag": key.tag,
        "tag_value": key.tag_value,
        "scope": _scope_text(key),
        "direction": rule.direction,
        "value": format_value(None if observation is None else observation.value, unit),
        "threshold": format_value(rule.threshold, unit),
        "clear": format_value(rule.clear_at, unit),
        "samples": "n/a" if samples is None else str(samples),
        "min_samples": str(rule.min_samples),
    }
    templates = {"summary": DEFAULT_SUMMARY, **rule.annotations}
    return {name: render(text, variables) for name, text in templates.items()}


def _scope_text(key: AlertKey) -> str:
    """E.g. ``fraud v3, window 1h, region=eu``; ``partition 0``; ``predwatch``."""
    parts = []
    if key.model:
        parts.append(f"{key.model} {key.version}".strip())
    if key.window:
        parts.append(f"window {key.window}")
    if key.tag:
        parts.append(f"{key.tag}={key.tag_value}" if key.model else f"{key.tag} {key.tag_value}")
    return ", ".join(parts) or "predwatch"
