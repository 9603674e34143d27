"""The ``alerts:`` section of the config: rules over predwatch's figures, built-in rules, and
``check_alerts``, which checks rules against the models, windows and tags configured.

>>> alerts = AlertSettings.model_validate({"rules": [
...     {"name": "FraudAccuracyLow", "model": "fraud", "metric": "accuracy", "window": "1h",
...      "below": 0.9, "clear": 0.92, "for": "5m", "min_samples": 500}],
...     "builtin": {"no_events": True}})
>>> rule = alerts.rules[0]
>>> rule.direction, rule.threshold, rule.clear_at, rule.for_
('below', 0.9, 0.92, 300.0)
>>> [r.name for r in alerts.all_rules()]
['FraudAccuracyLow', 'NoEvents']
"""

from __future__ import annotations

import difflib
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from predwatch.alerts.sinks.settings import SinkSettings
from predwatch.catalogue import FIGURES, PARTS, Spec
from predwatch.durations import Duration

if TYPE_CHECKING:
    from predwatch.config import Settings

LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
TagFilter = Literal["*"] | dict[str, str]
RESERVED_LABELS = frozenset({"alertname", "severity", "model", "version", "window"})
TEMPLATE_VARIABLES = frozenset(
    {
        "alertname", "rule", "severity", "metric", "model", "version", "window", "tag",
        "tag_value", "scope", "direction", "value", "threshold", "clear", "samples",
        "min_samples", "top_segments", "last_drift",
    }
)  # fmt: skip
"""What ``{{...}}`` in an annotation may name (see ``engine.render_annotations``)."""
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleSettings(_Section):
    """One alert rule: fire while ``metric`` is ``below`` (or ``above``) a threshold."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    model: str = "*"
    version: str = "*"
    metric: str
    window: str = "cumulative"
    below: float | None = None
    above: float | None = None
    clear: float | None = None  # a firing alert resolves only once the value is past this
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    min_samples: int = Field(default=100, ge=0)
    severity: str = Field(default="warning", min_length=1)
    labels: dict[LabelName, str] = Field(default_factory=dict)
    annotations: dict[LabelName, str] = Field(default_factory=dict)
    tags: TagFilter | None = None  # None: the version as a whole; "*": every tag value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSettings:
        problem = None
        if (self.below is None) == (self.above is None):
            problem = "give exactly one of 'below' or 'above' (the threshold)"
        elif self.clear is not None and self.below is not None and self.clear < self.below:
            problem = (
                f"'clear' ({self.clear:g}) must be at or above 'below' ({self.below:g}): "
                "the alert resolves once the value has recovered to 'clear'"
            )
        elif self.clear is not None and self.above is not None and self.clear > self.above:
            problem = (
                f"'clear' ({self.clear:g}) must be at or below 'above' ({self.above:g}): "
                "the alert resolves once the value has recovered to 'clear'"
            )
        elif reserved := sorted(RESERVED_LABELS & self.labels.keys()):
            problem = f"'labels' may not set {', '.join(reserved)}: predwatch sets them"
        elif isinstance(self.tags, dict) and len(self.tags) != 1:
            problem = (
                "'tags' selects one tag, e.g. {region: eu} or {region: '*'} "
                "(metrics are split per tag, not per combination of tags)"
            )
        if problem:
            raise ValueError(f"rule '{self.name}': {problem}")
        return self

    @property
    def direction(self) -> Literal["below", "above"]:
        return "below" if self.below is not None else "above"

    @property
    def threshold(self) -> float:
        value = self.below if self.below is not None else self.above
        assert value is not None
        return value

    @property
    def clear_at(self) -> float:
        """Where a firing alert resolves: ``clear``, or the threshold itself."""
        return self.threshold if self.clear is None else self.clear


def _switch(value: Any) -> Any:
    """``true`` / ``false`` as shorthand for ``{enabled: ...}``."""
    return {"enabled": value} if isinstance(value, bool) else value


class _Builtin(_Section):
    enabled: bool = False
    severity: str = Field(default="warning", min_length=1)
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    labels: dict[LabelName, str] = Field(default_factory=dict)

    def _rule(self, name: str, metric: str, summary: str, **fields: Any) -> RuleSettings:
        return RuleSettings.model_validate(
            {
                "name": name,
                "metric": metric,
                "severity": self.severity,
                "for": self.for_,
                "keep_firing_for": self.keep_firing_for,
                "labels": self.labels,
                "annotations": {"summary": summary},
                **fields,
            }
        )


class ConceptDriftRule(_Builtin):
    """Fires when the error stream's drift detector of a model version detects a change."""

    keep_firing_for: Duration = 3600.0  # a detection is a moment; keep it visible

    def to_rule(self) -> RuleSettings:
        return self._rule(
            "ConceptDriftDetected",
            "concept_drift",
            "Concept drift detected for {{model}} {{version}}",
            above=0.5,
            min_samples=0,
        )


class FeatureDriftRule(_Builtin):
    """Fires when more than ``max_features`` features of a model version drift."""

    keep_firing_for: Duration = 3600.0
    max_features: int = Field(default=0, ge=0)

    def to_rule(self) -> RuleSettings:
        return self._rule(
            "FeatureDriftDetected",
            "feature_drift",
            "{{value}} features of {{model}} {{version}} drift",
            above=float(self.max_features),
            min_samples=0,
        )


class LabelCoverageRule(_Builtin):
    """Fires when too few predictions get a label before they expire."""

    for_: Duration = Field(default=900.0, alias="for")
    below: float = Field(default=0.5, gt=0, le=1)
    clear: float | None = Field(default=None, gt=0, le=1)
    min_samples: int = Field(default=100, ge=0)

    @model_validator(mode="after")
    def _clear_above(self) -> LabelCoverageRule:
        if self.clear is not None and self.clear < self.below:
            raise ValueError(
                f"'clear' ({self.clear:g}) must be at or above 'below' ({self.below:g})"
            )
        return self

    def to_rule(self) -> RuleSettings:
        return self._rule(
            "LabelCoverageLow",
            "label_coverage",
            "Label coverage is {{value}} (< {{threshold}}): predictions expire without a label",
            below=self.below,
            clear=self.clear,
            min_samples=self.min_samples,
        )


class ConsumerLagRule(_Builtin):
    """Fires when a partition's consumer lag exceeds ``above`` messages."""

    for_: Duration = Field(default=300.0, alias="for")
    above: float = Field(default=10_000, ge=0)

    def to_rule(self) -> RuleSettings:
        return self._rule(
            "ConsumerLagHigh",
            "consumer_lag",
            "Consumer lag of {{scope}} is {{value}} messages (> {{threshold}})",
            above=self.above,
            min_samples=0,
        )


class NoEventsRule(_Builtin):
    """Fires when no event has arrived for ``after``."""

    after: Duration = 600.0

    def to_rule(self) -> RuleSettings:
        return self._rule(
            "NoEvents",
            "seconds_since_last_event",
            "No events for {{value}} (more than {{threshold}})",
            above=self.after,
            min_samples=0,
        )


Switch = BeforeValidator(_switch)


class BuiltinSettings(_Section):
    """Built-in rules, each off until switched on (``true`` or a mapping of its parameters)."""

    concept_drift: Annotated[ConceptDriftRule, Switch] = Field(default_factory=ConceptDriftRule)
    feature_drift: Annotated[FeatureDriftRule, Switch] = Field(default_factory=FeatureDriftRule)
    label_coverage: Annotated[LabelCoverageRule, Switch] = Field(default_factory=LabelCoverageRule)
    consumer_lag: Annotated[ConsumerLagRule, Switch] = Field(default_factory=ConsumerLagRule)
    no_events: Annotated[NoEventsRule, Switch] = Field(default_factory=NoEventsRule)

    def rules(self) -> list[RuleSettings]:
        switches = (
            self.concept_drift,
            self.feature_drift,
            self.label_coverage,
            self.consumer_lag,
            self.no_events,
        )
        return [switch.to_rule() for switch in switches if switch.enabled]


class AlertSettings(_Section):
    """Alert rules, built-in rules, and the cadence of event time at which the report is made
    and the rules are evaluated (``evaluate_every``)."""

    rules: list[RuleSettings] = Field(default_factory=list)
    builtin: BuiltinSettings = Field(default_factory=BuiltinSettings)
    evaluate_every: Duration = Field(default=15.0, gt=0)
    sinks: SinkSettings = Field(default_factory=SinkSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> AlertSettings:
        names = [rule.name for rule in self.all_rules()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"rule names must be unique (built-in rules included); "
                f"repeated: {', '.join(repeated)}"
            )
        return self

    def all_rules(self) -> list[RuleSettings]:
        """The configured rules, then the built-in rules switched on."""
        return [*self.rules, *self.builtin.rules()]


def check_alerts(alerts: AlertSettings, settings: Settings) -> list[str]:
    """One sentence per problem of a rule with the models, windows and tags configured."""
    return [
        f"alerts.rules[{i}] ({rule.name}): {problem}"
        for i, rule in enumerate(alerts.rules)
        for problem in _rule_problems(rule, settings)
    ]


def _rule_problems(rule: RuleSettings, settings: Settings) -> list[str]:
    spec = FIGURES.get(rule.metric)
    model = settings.models.get(rule.model)
    if spec is None:
        tasks = {model.task} if model else {m.task for m in settings.models.values()}
        known = [name for name, s in FIGURES.items() if not s.tasks.isdisjoint(tasks)]
        close = difflib.get_close_matches(rule.metric, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return [
            f"unknown metric {rule.metric!r}; {hint}every figure a rule may watch is listed in "
            "docs/metrics.md"
        ]
    problems = []
    if rule.model != "*" and model is None:
        problems.append(
            f"unknown model {rule.model!r}; configured models: "
            f"{', '.join(settings.models)} (or '*' for every model)"
        )
    if "model" not in spec.labels and (rule.model != "*" or rule.version != "*"):
        problems.append(
            f"metric {rule.metric!r} is one figure for all models; remove 'model' and 'version'"
        )
    windows = ["cumulative", *(w.name for w in settings.metrics.windows)]
    if rule.metric.startswith("estimated_"):
        windows.append("pending")
    if not spec.windowed and rule.window != "cumulative":
        problems.append(f"metric {rule.metric!r} is not kept per window; remove 'window'")
    elif rule.window not in windows:
        problems.append(f"unknown window {rule.window!r}; configured windows: {', '.join(windows)}")
    candidates = [model] if model else list(settings.models.values())
    if "model" in spec.labels and not any(m.task in spec.tasks for m in candidates):
        whose = f"model {rule.model!r}" if model else "any configured model"
        problems.append(
            f"metric {rule.metric!r} is only computed for "
            f"{' and '.join(sorted(spec.tasks))} models, not for {whose}"
        )
    problems.extend(_threshold_problems(rule, spec))
    problems.extend(_tag_problems(rule, spec, settings))
    problems.extend(_template_problems(rule))
    return problems


def _threshold_problems(rule: RuleSettings, spec: Spec) -> list[str]:
    """A threshold outside the values a figure can take makes a rule that never changes."""
    low, high = spec.bounds
    span = f"[{_bound(low)}, {_bound(high)}]"
    problems = []
    for name, value in (("below", rule.below), ("above", rule.above), ("clear", rule.clear)):
        if value is not None and not low <= value <= high:
            problems.append(
                f"'{name}: {value:g}' is outside the values {rule.metric!r} can take {span}, "
                "so the rule could never change state; give a threshold inside that range"
            )
    return problems


def _bound(value: float) -> str:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else f"{value:g}"


def _template_problems(rule: RuleSettings) -> list[str]:
    problems = []
    for name, template in rule.annotations.items():
        for variable in _PLACEHOLDER.findall(template):
            if variable not in TEMPLATE_VARIABLES:
                problems.append(
                    f"annotation {name!r} names an unknown variable {{{{{variable}}}}}; "
                    f"known: {', '.join(sorted(TEMPLATE_VARIABLES))}"
                )
    return problems


def _tag_problems(rule: RuleSettings, spec: Spec, settings: Settings) -> list[str]:
    if rule.tags is None:
        return []
    if "tag" in spec.labels:
        allowed = list(settings.metrics.tags)
    else:
        allowed = [part for part in PARTS if part in spec.labels]
        if not allowed:
            return [f"metric {rule.metric!r} is not split by tag; remove 'tags'"]
    if not allowed:
        return ["'tags' needs metrics split by tag; list the tags under 'metrics.tags'"]
    names = allowed if rule.tags == "*" else list(rule.tags)
    problems = [
        f"unknown tag {name!r}; split by: {', '.join(allowed)}"
        for name in names
        if name not in allowed
    ]
    problems += [
        f"tag {name!r} would become a label that is already set; rename one of them"
        for name in names
        if name in RESERVED_LABELS or name in rule.labels
    ]
    return problems
