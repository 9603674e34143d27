"""Settings of diagnostics: the error trees, the failing segments, the version comparisons.

In the config file these keys sit under ``diagnostics``:

>>> settings = DiagnosticsSettings.model_validate({"sample_rate": 0.5, "refresh_interval": "1m"})
>>> settings.sample_rate, settings.evaluation_rate, settings.refresh_interval, settings.top_k
(0.5, 0.5, 60.0, 5)
>>> DiagnosticsSettings().sample_rate  # the default, measured by benchmarks/diagnostics.py
0.05
>>> from pydantic import ValidationError
>>> try:
...     DiagnosticsSettings.model_validate({"sample_rate": 0.7, "evaluation_rate": 0.5})
... except ValidationError as error:
...     print(error.errors()[0]["msg"])
Value error, 'sample_rate' plus 'evaluation_rate' must be at most 1, so that pairs are held out
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from predwatch.durations import Duration

# benchmarks/diagnostics.py: 0.05 cost about 11% of replay throughput (0.1: 19-33%, 0.2: 22-56%)
# and found the injected segment in 9 of 10 seeds at 200,000 pairs (0.1: 10 of 10).
DEFAULT_SAMPLE_RATE = 0.05


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiagnosticsSettings(_Section):
    """Where each model version errs (an online error tree), and whether versions differ.

    Pairs are chosen by a hash of the prediction id, so a replay of the same
    files chooses the same pairs: a share ``sample_rate`` trains the tree, a
    disjoint share ``evaluation_rate`` (default: as many) is held out to count
    each leaf's support and errors, so a segment's p-value is not computed on
    the pairs that shaped it.

    ``window``: sampled pairs a tree learns before a successor starts; the
    successor takes over after ``window // 2`` more (see ``ErrorTree``).
    ``recent_pairs``: held-out pairs kept per version to evaluate leaves on.
    Segments are recomputed when asked for and due: ``refresh_pairs`` new
    held-out pairs, or ``refresh_interval`` seconds of the clock, since the last
    time. ``tie_threshold``: river's ``tau``; 0.1 lets a leaf split after about 350
    pairs when candidate splits tie, where 0.05 needs about 1,400 (the tree's
    spurious splits are undone on held-out pairs). ``alpha``: false discovery
    rate (Benjamini-Hochberg) across leaves. ``merge_alpha``: a segment's
    condition is dropped unless the pairs it excludes err less at this level.
    ``comparison_alpha``: the level at which a version comparison counts as
    significant; 0.01 rather than 0.05 because the service repeats comparisons
    as pairs accrue (a calibrated test at 0.05 calls equal versions different
    in one run of twenty).
    """

    enabled: bool = True
    sample_rate: float = Field(default=DEFAULT_SAMPLE_RATE, gt=0.0, le=1.0)
    evaluation_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    window: int = Field(default=50_000, ge=100)
    grace_period: int = Field(default=200, gt=0)
    max_depth: int = Field(default=6, gt=0)
    split_confidence: float = Field(default=1e-3, gt=0.0, lt=1.0)
    tie_threshold: float = Field(default=0.1, ge=0.0)
    recent_pairs: int = Field(default=20_000, gt=0)
    refresh_pairs: int = Field(default=2_000, gt=0)
    refresh_interval: Duration = 30.0
    top_k: int = Field(default=5, gt=0)
    min_support: int = Field(default=100, gt=0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    merge_alpha: float = Field(default=0.001, gt=0.0, lt=1.0)
    use_tags: bool = True
    exclude_features: list[str] = Field(default_factory=list)
    comparison_alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _default_evaluation(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("evaluation_rate") is None:
            rate = data.get("sample_rate", DEFAULT_SAMPLE_RATE)
            if isinstance(rate, int | float) and not isinstance(rate, bool) and rate < 1.0:
                return {**data, "evaluation_rate": min(float(rate), 1.0 - float(rate))}
        return data

    @model_validator(mode="after")
    def _bands_fit(self) -> DiagnosticsSettings:
        if self.evaluation_rate is None or self.sample_rate + self.evaluation_rate > 1.0:
            raise ValueError(
                "'sample_rate' plus 'evaluation_rate' must be at most 1, so that pairs are held out"
            )
        return self

    @property
    def held_out_rate(self) -> float:
        """The share of pairs held out for evaluation."""
        assert self.evaluation_rate is not None  # set by validation
        return self.evaluation_rate
