"""Is a difference real? Tests between model versions, or before and after a moment.

Each test returns a ``Comparison``: the groups' sizes and estimates (accuracy,
or mean absolute error), the statistic, a two-sided p-value, an effect size
and a 95% confidence interval. Two-group tests compare ``groups[1]`` (the
candidate) with ``groups[0]`` (the baseline); their interval is of the
candidate minus the baseline, except Mann-Whitney's, which is of its effect
size. Omnibus tests (3+ groups) give an interval of their effect size.

The service keeps only ``ErrorStats`` (counts, error sums and squared sums) per
version, enough for ``compare_versions``; tests on ranks or paired outcomes
(Mann-Whitney, Kruskal-Wallis, McNemar) need the pairs themselves and are run
by ``predwatch compare``.

>>> c = two_proportions(900, 1000, 870, 1000, groups=("v1", "v2"))
>>> c.test, round(c.difference, 3), round(c.p_value, 4), c.significant(0.05)
('two_proportion_z', -0.03, 0.0355, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
_Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


@dataclass(frozen=True)
class Comparison:
    """The outcome of one test; ``ci_low``/``ci_high`` bound ``ci_of`` at 95% confidence."""

    test: str
    metric: str  # "accuracy" or "absolute_error"
    groups: tuple[str, ...]
    sizes: tuple[int, ...]
    estimates: tuple[float, ...]
    statistic: float
    p_value: float
    effect: str
    effect_size: float
    ci_of: str
    ci_low: float
    ci_high: float
    difference: float | None = None  # candidate minus baseline, for two groups

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class ErrorStats:
    """Sufficient statistics of a group's errors (0/1 wrong, or absolute errors).

    >>> s = ErrorStats(); s.update(np.array([0.0, 1.0, 1.0])); s.n, s.mean
    (3, 0.6666666666666666)
    """

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def update(self, errors: np.ndarray) -> None:
        self.n += int(errors.size)
        self.total += float(errors.sum())
        self.squares += float(np.dot(errors, errors))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator)."""
        if self.n < 2:
            return math.nan
        return max(self.squares - self.total * self.total / self.n, 0.0) / (self.n - 1)


def two_proportions(
    successes_a: float,
    n_a: int,
    successes_b: float,
    n_b: int,
    groups: tuple[str, str] = ("a", "b"),
    metric: str = "accuracy",
) -> Comparison:
    """Pooled two-proportion z test; Wald interval of ``p_b - p_a``; Cohen's h."""
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (p_b - p_a) / se0 if se0 > 0 else 0.0
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    h = 2 * math.asin(math.sqrt(p_b)) - 2 * math.asin(math.sqrt(p_a))
    return Comparison(
        "two_proportion_z",
        metric,
        groups,
        (n_a, n_b),
        (p_a, p_b),
        z,
        float(2 * stats.norm.sf(abs(z))),
        "cohen_h",
        h,
        "difference",
        p_b - p_a - _Z * se,
        p_b - p_a + _Z * se,
        p_b - p_a,
    )


def mcnemar(
    correct_a: np.ndarray, correct_b: np.ndarray, groups: tuple[str, str] = ("a", "b")
) -> Comparison:
    """McNemar's exact test on paired outcomes (both versions scored the same ids).

    Effect size: the odds ratio of the discordant pairs (b right, a wrong vs the
    reverse, 0.5 added to each when one is zero); interval of the accuracy difference.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = int(a.size)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p = float(stats.binomtest(only_b, discordant, 0.5).pvalue) if discordant else 1.0
    chi2 = (abs(only_a - only_b) - 1) ** 2 / discordant if discordant else 0.0
    diff = (only_b - only_a) / n
    se = math.sqrt(max(discordant - (only_b - only_a) ** 2 / n, 0.0)) / n
    odds = (only_b + 0.5) / (only_a + 0.5) if 0 in (only_a, only_b) else only_b / only_a
    return Comparison(
        "mcnemar",
        "accuracy",
        groups,
        (n, n),
        (float(a.mean()), float(b.mean())),
        chi2,
        p,
        "odds_ratio",
        odds,
        "difference",
        diff - _Z * se,
        diff + _Z * se,
        diff,
    )


def welch_from_stats(
    a: ErrorStats,
    b: ErrorStats,
    groups: tuple[str, str] = ("a", "b"),
    metric: str = "absolute_error",
) -> Comparison:
    """Welch's t test of ``mean_b - mean_a`` (``scipy.stats.ttest_ind_from_stats``); Cohen's d
    with the pooled standard deviation; the interval of the difference with the test's
    Welch-Satterthwaite degrees of freedom. Without any spread the test says nothing (t = 0,
    p = 1)."""
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    diff = b.mean - a.mean
    if se > 0:
        result = stats.ttest_ind_from_stats(
            b.mean, math.sqrt(b.variance), b.n, a.mean, math.sqrt(a.variance), a.n, equal_var=False
        )
        t, p = float(result.statistic), float(result.pvalue)
        df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    else:
        t, p, df = 0.0, 1.0, 1.0
    pooled = math.sqrt(((a.n - 1) * a.variance + (b.n - 1) * b.variance) / (a.n + b.n - 2))
    q = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
    return Comparison(
        "welch_t",
        metric,
        groups,
        (a.n, b.n),
        (a.mean, b.mean),
        t,
        p,
        "cohen_d",
        diff / pooled if pooled > 0 else 0.0,
        "difference",
        diff - q * se,
        diff + q * se,
        diff,
    )


def _stats_of(values: np.ndarray) -> ErrorStats:
    s = ErrorStats()
    s.update(np.asarray(values, np.float64))
    return s


def welch(a: np.ndarray, b: np.ndarray, groups: tuple[str, str] = ("a", "b")) -> Comparison:
    """``welch_from_stats`` on two arrays of absolute errors."""
    return welch_from_stats(_stats_of(a), _stats_of(b), groups)


def mann_whitney(a: np.ndarray, b: np.ndarray, groups: tuple[str, str] = ("a", "b")) -> Comparison:
    """Mann-Whitney U test; effect size P(b > a) + P(b = a) / 2, interval by Hanley-McNeil."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    result = stats.mannwhitneyu(b, a, alternative="two-sided")
    theta = float(result.statistic) / (a.size * b.size)
    q1, q2 = theta / (2 - theta), 2 * theta * theta / (1 + theta)
    var = (
        theta * (1 - theta) + (b.size - 1) * (q1 - theta**2) + (a.size - 1) * (q2 - theta**2)
    ) / (a.size * b.size)
    se = math.sqrt(max(var, 0.0))
    return Comparison(
        "mann_whitney_u",
        "absolute_error",
        groups,
        (a.size, b.size),
        (float(a.mean()), float(b.mean())),
        float(result.statistic),
        float(result.pvalue),
        "probability_of_superiority",
        theta,
        "probability_of_superiority",
        max(theta - _Z * se, 0.0),
        min(theta + _Z * se, 1.0),
        float(b.mean() - a.mean()),
    )


def _noncentrality_interval(cdf: Any, statistic: float) -> tuple[float, float]:
    """Confidence limits of a noncentrality parameter: where ``cdf(statistic, nc)`` crosses
    the upper and lower tail probabilities (``cdf`` falls as ``nc`` grows)."""
    limits = []
    for tail in (0.5 + CONFIDENCE / 2, 0.5 - CONFIDENCE / 2):
        if cdf(statistic, 0.0) <= tail:
            limits.append(0.0)
            continue
        high = max(1.0, statistic)
        while cdf(statistic, high) > tail:
            high *= 2
        limits.append(float(optimize.brentq(lambda nc, t=tail: cdf(statistic, nc) - t, 0, high)))
    return limits[0], limits[1]


def anova_from_stats(groups: Mapping[str, ErrorStats]) -> Comparison:
    """One-way ANOVA across groups; eta squared, interval by noncentral-F inversion."""
    names = tuple(groups)
    ns = np.array([groups[g].n for g in names], np.float64)
    means = np.array([groups[g].mean for g in names])
    variances = np.array([groups[g].variance for g in names])
    total = ns.sum()
    grand = float(np.dot(ns, means) / total)
    between = float(np.dot(ns, (means - grand) ** 2))
    within = float(np.dot(ns - 1, variances))
    df1, df2 = len(names) - 1, total - len(names)
    f = (between / df1) / (within / df2) if within > 0 else 0.0
    low, high = _noncentrality_interval(lambda x, nc: stats.ncf.cdf(x, df1, df2, nc), f)
    return Comparison(
        "anova_f",
        "absolute_error",
        names,
        tuple(int(n) for n in ns),
        tuple(means.tolist()),
        f,
        float(stats.f.sf(f, df1, df2)),
        "eta_squared",
        between / (between + within),
        "eta_squared",
        low / (low + total),
        high / (high + total),
    )


def anova(groups: Mapping[str, np.ndarray]) -> Comparison:
    """``anova_from_stats`` on arrays of absolute errors."""
    return anova_from_stats({name: _stats_of(values) for name, values in groups.items()})


def kruskal(groups: Mapping[str, np.ndarray]) -> Comparison:
    """Kruskal-Wallis H test; epsilon squared, interval by noncentral chi-square (approximate)."""
    names = tuple(groups)
    arrays = [np.asarray(groups[g], np.float64) for g in names]
    result = stats.kruskal(*arrays)
    n = sum(a.size for a in arrays)
    h, df = float(result.statistic), len(names) - 1
    low, high = _noncentrality_interval(lambda x, nc: stats.ncx2.cdf(x, df, nc), h)
    return Comparison(
        "kruskal_wallis_h",
        "absolute_error",
        names,
        tuple(a.size for a in arrays),
        tuple(float(a.mean()) for a in arrays),
        h,
        float(result.pvalue),
        "epsilon_squared",
        h / (n - 1),
        "epsilon_squared",
        low / (n - 1),
        min(high / (n - 1), 1.0),
    )


def proportions_chi_square(successes: Mapping[str, float], sizes: Mapping[str, int]) -> Comparison:
    """Chi-square test that 3+ groups share one accuracy; Cramér's V, noncentral-chi2 interval."""
    names = tuple(successes)
    ok = np.array([successes[g] for g in names], np.float64)
    n = np.array([sizes[g] for g in names], np.float64)
    table = np.vstack([ok, n - ok])
    expected = table.sum(1, keepdims=True) * n / n.sum()
    chi2 = float(np.sum((table - expected) ** 2 / expected)) if np.all(expected > 0) else 0.0
    df = len(names) - 1
    low, high = _noncentrality_interval(lambda x, nc: stats.ncx2.cdf(x, df, nc), chi2)
    total = float(n.sum())
    return Comparison(
        "chi_square",
        "accuracy",
        names,
        tuple(int(x) for x in n),
        tuple((ok / n).tolist()),
        chi2,
        float(stats.chi2.sf(chi2, df)),
        "cramers_v",
        math.sqrt(chi2 / total),
        "cramers_v",
        math.sqrt(low / total),
        math.sqrt(high / total),
    )


def baseline_first(sizes: Mapping[str, int]) -> list[str]:
    """Group names with the baseline first: the one with most pairs (ties by name)."""
    return sorted(sizes, key=lambda g: (-sizes[g], g))


def compare_versions(stats_by_version: Mapping[str, ErrorStats], task: str) -> list[Comparison]:
    """Each version against the baseline (most pairs), and all together when 3+.

    Classification: two-proportion z tests on accuracy and a chi-square test;
    regression: Welch t tests and ANOVA on absolute errors.
    """
    usable = {v: s for v, s in stats_by_version.items() if s.n >= 2}
    order = baseline_first({v: s.n for v, s in usable.items()})
    if len(order) < 2:
        return []
    base = usable[order[0]]
    results: list[Comparison] = []
    for version in order[1:]:
        other = usable[version]
        if task == "regression":
            results.append(welch_from_stats(base, other, (order[0], version)))
        else:
            results.append(
                two_proportions(
                    base.n - base.total, base.n, other.n - other.total, other.n, (order[0], version)
                )
            )
    if len(order) >= 3:
        ordered = {v: usable[v] for v in order}
        if task == "regression":
            results.append(anova_from_stats(ordered))
        else:
            results.append(
                proportions_chi_square(
                    {v: s.n - s.total for v, s in ordered.items()},
                    {v: s.n for v, s in ordered.items()},
                )
            )
    return results


def compare_arrays(
    errors: Mapping[str, np.ndarray],
    task: str,
    paired: Mapping[str, Mapping[str, bool]] | None = None,
) -> list[Comparison]:
    """Every test that applies to raw errors per group (the first group is the baseline).

    ``paired``: per group, prediction id to "was correct", for McNemar between
    the baseline and each group on the ids both scored (classification only).
    """
    names: Sequence[str] = list(errors)
    stats_by = {g: _stats_of(errors[g]) for g in names}
    results: list[Comparison] = []
    base = names[0]
    for name in names[1:]:
        pair = (base, name)
        if task == "regression":
            results += [
                welch(errors[base], errors[name], pair),
                mann_whitney(errors[base], errors[name], pair),
            ]
            continue
        a, b = stats_by[base], stats_by[name]
        results.append(two_proportions(a.n - a.total, a.n, b.n - b.total, b.n, pair))
        if paired is not None:
            shared = sorted(set(paired[base]) & set(paired[name]))
            if shared:
                results.append(
                    mcnemar(
                        np.array([paired[base][i] for i in shared]),
                        np.array([paired[name][i] for i in shared]),
                        pair,
                    )
                )
    if len(names) >= 3:
        if task == "regression":
            results += [anova(errors), kruskal(errors)]
        else:
            successes = {g: s.n - s.total for g, s in stats_by.items()}
            results.append(proportions_chi_square(successes, {g: s.n for g, s in stats_by.items()}))
    return results
