"""The error of a matched pair: what concept drift, the error trees and version comparisons read.

For classification a pair's error is 1.0 where the predicted class differs from
the actual one, else 0.0; for regression it is the absolute difference.

>>> import numpy as np
>>> errors("binary", np.array([1, 0, 1]), np.array([1, 1, 0]))
array([0., 1., 1.])
>>> errors("regression", np.array([2.5, 1.0]), np.array([2.0, 3.0]))
array([0.5, 2. ])
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter, ne
from typing import Any

import numpy as np

from predwatch.records import Label, Prediction


def errors(task: str, predicted: Any, actual: Any) -> np.ndarray:
    """Each pair's error, as float64, from its predicted and actual values: arrays (class
    indices, or numbers for regression) or iterables (class labels, or numbers)."""
    if task == "regression":
        return np.abs(np.asarray(predicted, np.float64) - np.asarray(actual, np.float64))
    if isinstance(predicted, np.ndarray):
        return np.not_equal(predicted, actual).astype(np.float64)
    return np.fromiter(map(ne, predicted, actual), np.float64)


def pair_errors(pairs: Sequence[tuple[Prediction, Label]], task: str) -> np.ndarray:
    """``errors`` of matched pairs: the prediction's value against the label's (its number,
    for regression).

    >>> p = Prediction("a", "m", "v", 0.0, "1", None, None, {}, {})
    >>> pair_errors([(p, Label("a", 1.0, "0", 0.0)), (p, Label("a", 1.0, "1", 1.0))], "binary")
    array([1., 0.])
    """
    predicted = map(_VALUE, map(_PREDICTION, pairs))
    labels = map(_LABEL, pairs)
    if task == "regression":
        return errors(task, list(predicted), list(map(_NUMBER, labels)))
    return errors(task, predicted, map(_LABEL_VALUE, labels))


_PREDICTION, _LABEL = itemgetter(0), itemgetter(1)  # of a pair
_VALUE, _LABEL_VALUE, _NUMBER = itemgetter(4), itemgetter(2), itemgetter(3)  # of the records
