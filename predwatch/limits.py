"""Limits on what one message may hold, checked before any of its values is trusted.

Messages come from other teams' producers and are untrusted: a message over a
limit is counted invalid with its own reason (``too_large``, ``too_deep``,
``too_long:<field>``, ``too_many:<field>``, ``out_of_range:<field>``,
``future_timestamp``, ``too_old``) and never reaches the monitor's state.

>>> limits = LimitsSettings()
>>> limits.max_message_bytes, limits.max_depth, limits.max_future_skew, limits.max_age
(1048576, 32, 3600.0, None)
>>> LimitsSettings.model_validate({"max_depth": 5000})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for LimitsSettings
max_depth
  Input should be less than or equal to 500 ...
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from predwatch.durations import Duration

YEAR_2100 = 4_102_444_800.0  # 2100-01-01T00:00:00Z


class LimitsSettings(BaseModel):
    """Input limits of the ``limits`` section; every one has a default that fits real traffic.

    ``max_depth`` counts the brackets a value sits in: a message object is
    depth 1, its ``features`` object depth 2. It stays well below Python's
    recursion limit, so parsing an accepted message can never exhaust the stack.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_message_bytes: int = Field(default=1_048_576, gt=0)
    max_depth: int = Field(default=32, ge=2, le=500)
    max_id_length: int = Field(default=256, gt=0)
    max_string_length: int = Field(default=1024, gt=0)
    max_features: int = Field(default=1000, gt=0)
    max_tags: int = Field(default=64, gt=0)
    max_classes: int = Field(default=1000, gt=0)  # entries of ``probabilities``
    max_abs_number: float = Field(default=1e15, gt=0)
    min_timestamp: float = 0.0
    max_timestamp: float = YEAR_2100
    max_future_skew: Duration = 3600.0
    max_age: Duration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LimitsSettings:
        if not math.isfinite(self.max_abs_number):
            raise ValueError("'max_abs_number' must be finite, e.g. 1e15")
        if not self.min_timestamp < self.max_timestamp:
            raise ValueError("'min_timestamp' must be below 'max_timestamp' (epoch seconds)")
        if not (math.isfinite(self.min_timestamp) and math.isfinite(self.max_timestamp)):
            raise ValueError("'min_timestamp' and 'max_timestamp' must be finite epoch seconds")
        return self
