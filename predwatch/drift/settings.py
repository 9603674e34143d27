"""Settings of data drift: where the reference comes from, and when a difference counts as drift.

In the config file these keys sit under ``drift``:

>>> settings = DataDriftSettings.model_validate({"reference": {"first": 2000}, "alpha": 0.05})
>>> settings.reference.first, settings.min_samples, settings.psi_threshold, settings.alpha
(2000, 500, 0.2, 0.05)
>>> DataDriftSettings().reference.first  # the default: the first 5000 predictions of each version
5000
>>> DataDriftSettings.model_validate({"reference": {"first": 10, "path": "p.json"}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for DataDriftSettings
reference
  Value error, give exactly one of 'first' (a count of predictions) or 'path' (a profile file) [...]
...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceSettings(_Section):
    """Where the reference profile comes from: the first ``first`` predictions, or a file.

    ``per_version``: with ``first``, each model version gets its own reference from
    its own first predictions (a new version may rightly shift predictions and
    scores); with ``path`` and ``predwatch profile``, profiles are built per version.
    """

    first: int | None = Field(default=None, gt=0)
    path: str | None = None
    per_version: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("first") is None and data.get("path") is None:
            return {**data, "first": 5000}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ReferenceSettings:
        if (self.first is None) == (self.path is None):
            raise ValueError(
                "give exactly one of 'first' (a count of predictions) or 'path' (a profile file)"
            )
        return self


class DataDriftSettings(_Section):
    """When a feature, the prediction or the score of a window counts as drifted.

    A verdict needs all three: at least ``min_samples`` values in the window, a
    population stability index of at least ``psi_threshold`` (effect size), and a
    Benjamini-Hochberg adjusted p-value below ``alpha`` across all columns of the
    model version and window. ``numeric_bins`` quantile bins are cut from the
    reference for numeric columns; categorical columns keep their
    ``max_categories`` most frequent values and group the rest as ``other``.
    """

    enabled: bool = True
    reference: ReferenceSettings = Field(default_factory=lambda: ReferenceSettings(first=5000))
    min_samples: int = Field(default=500, gt=0)
    psi_threshold: float = Field(default=0.2, ge=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    numeric_bins: int = Field(default=10, ge=2, le=100)
    max_categories: int = Field(default=20, ge=1, le=1000)


DetectorName = Literal["adwin", "page_hinkley", "kswin", "ddm", "eddm", "hddm_a", "hddm_w"]
DETECTOR_PARAMETERS: dict[str, tuple[str, ...]] = {
    "adwin": ("clock", "delta", "grace_period", "max_buckets", "min_window_length"),
    "page_hinkley": ("alpha", "delta", "min_instances", "mode", "threshold"),
    "kswin": ("alpha", "seed", "stat_size", "window_size"),
    "ddm": ("drift_threshold", "warm_start", "warning_threshold"),
    "eddm": ("alpha", "beta", "warm_start"),
    "hddm_a": ("drift_confidence", "two_sided_test", "warning_confidence"),
    "hddm_w": ("drift_confidence", "lambda_val", "two_sided_test", "warning_confidence"),
}
"""The keyword arguments of each river detector a config may set (``kswin``'s ``window``, a
list of values, excepted). A table, so that reading settings never imports river;
``tests/test_river_adapter.py`` checks it against the installed river's signatures."""
BINARY_ONLY = frozenset({"ddm", "eddm", "hddm_a", "hddm_w"})  # they take 0/1 inputs only
KEPT_DETECTIONS = 100  # the most recent detections kept for reading; ``count`` counts all


class ConceptDriftSettings(BaseModel):
    """Which river detector watches the error stream, with which parameters.

    ``parameters`` are the detector's own keyword arguments (river's defaults
    otherwise); detections within the first ``warmup`` pairs are not reported.

    >>> ConceptDriftSettings(detector="page_hinkley", parameters={"mode": "up"}).detector
    'page_hinkley'
    >>> ConceptDriftSettings(parameters={"delta_": 0.1})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ConceptDriftSettings
      Value error, parameters: 'delta_' is not a parameter of adwin; use one of: clock, delta, ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: DetectorName = "adwin"
    parameters: dict[str, float | int | bool | str] = Field(default_factory=dict)
    warmup: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _known_parameters(self) -> ConceptDriftSettings:
        allowed = DETECTOR_PARAMETERS[self.detector]
        for key in self.parameters:
            if key not in allowed:
                raise ValueError(
                    f"parameters: {key!r} is not a parameter of {self.detector}; "
                    f"use one of: {', '.join(allowed)}"
                )
        if self.parameters:
            # river checks the values themselves (e.g. a mode or an alpha). Only parameters
            # a config sets need it, so river is imported only then.
            from predwatch.river_adapter import make_detector

            make_detector(self.detector, self.parameters)
        return self


class DriftSettings(DataDriftSettings):
    """The ``drift:`` section: data drift keys at its top level, concept drift under ``concept``."""

    concept: ConceptDriftSettings = Field(default_factory=ConceptDriftSettings)
