"""Splitting a batch by key (model, version, tag value) and taking its rows, column by column.

The monitor groups each batch once and hands every part (metrics, drift,
diagnostics) the same rows: each pass over a batch's records costs more than
the arithmetic done on its columns.

>>> import numpy as np
>>> groups = group_rows(["v2", "v1", "v2"])
>>> groups
[('v1', array([1])), ('v2', array([0, 2]))]
>>> take_columns({"score": np.array([0.1, 0.2, 0.3])}, groups[1][1])
{'score': array([0.1, 0.3])}
>>> group_rows(["v1", "v1"])  # one key: the whole batch, no copy
[('v1', None)]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np

Columns = dict[str, np.ndarray]  # one batch, a column per field, aligned by row
Rows = np.ndarray | None  # row indices of a batch; None for all of them
K = TypeVar("K", bound=Hashable)


def group_rows(keys: Sequence[K]) -> list[tuple[K, Rows]]:
    """The rows of each distinct key, keys in sorted order; rows None when there is one key."""
    if not keys:
        return []
    first = keys[0]
    if keys.count(first) == len(keys):
        return [(first, None)]
    distinct = sorted(set(keys))  # type: ignore[type-var]
    index = {key: i for i, key in enumerate(distinct)}
    codes = np.fromiter(map(index.__getitem__, keys), np.intp, len(keys))
    return [(key, np.flatnonzero(codes == i)) for i, key in enumerate(distinct)]


def take(values: np.ndarray, rows: Rows) -> np.ndarray:
    """``values`` at ``rows``."""
    return values if rows is None else values[rows]


def take_columns(columns: Columns, rows: Rows) -> Columns:
    """Every column at ``rows``."""
    return columns if rows is None else {name: values[rows] for name, values in columns.items()}


def take_records(records: Sequence[Any], rows: Rows) -> Sequence[Any]:
    """The records at ``rows``."""
    if rows is None:
        return records
    if len(rows) == 1:
        return [records[int(rows[0])]]
    return itemgetter(*rows.tolist())(records)  # type: ignore[no-any-return]
