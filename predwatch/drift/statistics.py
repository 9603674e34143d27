"""Two-sample statistics of binned counts: reference counts against current counts.

Every function takes count vectors over the same bins (the last axis) and is
pure and vectorised. Results match their scipy counterparts where one exists.

>>> reference, current = [50, 30, 20], [20, 30, 50]
>>> round(float(psi(reference, current)), 4), round(float(js_distance(reference, current)), 4)
(0.5498, 0.3095)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr
from scipy.stats import chi2_contingency
from scipy.stats.distributions import kstwo

PSI_EPSILON = 1e-4


def _shares(counts: ArrayLike) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return values / total


def psi(reference: ArrayLike, current: ArrayLike, epsilon: float = PSI_EPSILON) -> Any:
    """Population stability index ``sum((c - r) * ln(c / r))`` of the bin shares.

    A share below ``epsilon`` (an empty bin, on either side) is raised to
    ``epsilon`` first, so an empty bin adds a large but finite term instead of
    infinity; shares are not renormalised afterwards. Usual reading: < 0.1
    stable, 0.1-0.2 a moderate shift, >= 0.2 a significant shift.

    >>> round(float(psi([100, 0], [99, 1])), 4)
    0.0457
    >>> psi([[1, 1], [1, 3]], [[1, 1], [3, 1]]).round(4)
    array([0.    , 1.0986])
    """
    r = np.maximum(_shares(reference), epsilon)
    c = np.maximum(_shares(current), epsilon)
    return np.sum((c - r) * np.log(c / r), axis=-1)


def js_distance(reference: ArrayLike, current: ArrayLike) -> Any:
    """Jensen-Shannon distance in base 2 (0 = same, 1 = disjoint), as
    ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``.

    >>> float(js_distance([1, 0], [0, 1])), float(js_distance([2, 2], [5, 5]))
    (1.0, 0.0)
    """
    r, c = _shares(reference), _shares(current)
    m = (r + c) / 2.0
    divergence = np.sum(rel_entr(r, m) + rel_entr(c, m), axis=-1) / (2.0 * np.log(2.0))
    return np.sqrt(np.maximum(divergence, 0.0))


def ks_binned(reference: ArrayLike, current: ArrayLike) -> tuple[Any, Any]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value from counts over ordered bins.

    The statistic is the largest difference of the two empirical CDFs at the
    bin edges, the p-value ``kstwo.sf(D, round(n*m/(n+m)))`` as scipy's
    ``ks_2samp(method="asymp")`` computes it. Binning can only hide differences
    inside a bin, so the statistic is at most the unbinned one and the test
    is conservative: it flags less often, never more.

    >>> stat, p = ks_binned([25, 25, 25, 25], [10, 20, 30, 40])
    >>> round(float(stat), 2), round(float(p), 3)
    (0.2, 0.031)
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    n_r, n_c = r.sum(axis=-1), c.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.cumsum(r, axis=-1) / n_r[..., None] - np.cumsum(c, axis=-1) / n_c[..., None]
        statistic = np.max(np.abs(gap), axis=-1)
        effective = np.round(n_r * n_c / (n_r + n_c))
    p_value = kstwo.sf(statistic, np.maximum(effective, 1.0))
    return statistic, np.clip(p_value, 0.0, 1.0)


def chi2_homogeneity(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one categorical distribution.

    ``scipy.stats.chi2_contingency`` on the 2 x k table, after dropping the
    categories empty on both sides; fewer than two categories left gives (0, 1).

    >>> stat, p = chi2_homogeneity([50, 50, 0], [30, 70, 0])
    >>> round(stat, 3), round(p, 4)
    (7.521, 0.0061)
    """
    table = np.array([reference, current], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)
