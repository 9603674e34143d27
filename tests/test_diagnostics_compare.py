"""Statistical comparisons against scipy's reference computations, their power and size,
and ``predwatch compare`` end to end on replayed files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from predwatch.cli import main, parse_timestamp
from predwatch.demo.synthetic import generate, write_jsonl
from predwatch.diagnostics.compare import (
    ErrorStats,
    anova,
    compare_versions,
    kruskal,
    mann_whitney,
    mcnemar,
    proportions_chi_square,
    two_proportions,
    welch,
)
from predwatch.diagnostics.settings import DiagnosticsSettings

RNG = np.random.default_rng(42)
A, B, C = RNG.exponential(1.0, 400), RNG.exponential(1.2, 500), RNG.exponential(1.1, 300)


def _stats(values: np.ndarray) -> ErrorStats:
    s = ErrorStats()
    s.update(values)
    return s


def test_two_proportions_match_the_chi_square_of_the_table() -> None:
    c = two_proportions(900, 1000, 870, 1000)
    chi2, p, *_ = stats.chi2_contingency([[900, 100], [870, 130]], correction=False)
    assert c.statistic**2 == pytest.approx(chi2) and c.p_value == pytest.approx(p)
    assert c.difference == pytest.approx(-0.03) and c.ci_low < -0.03 < c.ci_high
    assert c.effect_size == pytest.approx(2 * math.asin(0.87**0.5) - 2 * math.asin(0.9**0.5))


def test_welch_matches_scipy() -> None:
    c, ref = welch(A, B), stats.ttest_ind(B, A, equal_var=False)
    assert c.statistic == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
    low, high = ref.confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high))


def test_mann_whitney_matches_scipy_and_its_effect_is_the_auc() -> None:
    c, ref = mann_whitney(A, B), stats.mannwhitneyu(B, A, alternative="two-sided")
    assert c.p_value == pytest.approx(ref.pvalue)
    greater = (B[:, None] > A[None, :]).mean() + 0.5 * (B[:, None] == A[None, :]).mean()
    assert c.effect_size == pytest.approx(greater) and c.ci_low < greater < c.ci_high


def test_anova_kruskal_and_chi_square_match_scipy() -> None:
    groups = {"a": A, "b": B, "c": C}
    f, h = anova(groups), kruskal(groups)
    ref_f, ref_h = stats.f_oneway(A, B, C), stats.kruskal(A, B, C)
    assert (f.statistic, f.p_value) == pytest.approx((ref_f.statistic, ref_f.pvalue))
    assert (h.statistic, h.p_value) == pytest.approx((ref_h.statistic, ref_h.pvalue))
    assert f.ci_low <= f.effect_size <= f.ci_high and h.ci_low <= h.effect_size <= h.ci_high
    x = proportions_chi_square({"a": 90, "b": 80, "c": 70}, {"a": 100, "b": 100, "c": 100})
    chi2, p, *_ = stats.chi2_contingency([[90, 10], [80, 20], [70, 30]], correction=False)
    assert (x.statistic, x.p_value) == pytest.approx((chi2, p))
    assert x.effect_size == pytest.approx(math.sqrt(chi2 / 300))


def test_mcnemar_is_the_exact_binomial_test_of_discordant_pairs() -> None:
    a = np.array([True] * 50 + [False] * 10 + [True] * 30 + [False] * 10)
    b = np.array([True] * 50 + [True] * 10 + [False] * 30 + [False] * 10)
    c = mcnemar(a, b)
    assert c.p_value == pytest.approx(stats.binomtest(10, 40, 0.5).pvalue)
    assert c.difference == pytest.approx(-0.2) and c.effect_size == pytest.approx(10 / 30)


@dataclass
class Case:
    accuracy_b: float
    seeds: int
    max_significant: int  # at the default comparison_alpha


@pytest.mark.parametrize(
    "case",
    [
        Case(0.87, 10, 10),  # 0.90 vs 0.87 on 20,000 pairs each: always significant (checked below)
        Case(0.90, 100, 5),  # equal versions: not significant in at least 95 of 100 seeds
    ],
    ids=str,
)
def test_versions_power_and_size(case: Case) -> None:
    alpha = DiagnosticsSettings().comparison_alpha
    significant = 0
    for seed in range(case.seeds):
        rng = np.random.default_rng(seed)
        v1 = _stats(1.0 - (rng.random(20_000) < 0.90))
        v2 = _stats(1.0 - (rng.random(20_000) < case.accuracy_b))
        (c,) = compare_versions({"v1": v1, "v2": v2}, "binary")
        significant += c.significant(alpha)
    if case.accuracy_b != 0.90:
        assert significant == case.seeds
    assert significant <= case.max_significant


def test_compare_versions_baseline_and_omnibus() -> None:
    by = {"v1": _stats(A[:300]), "v2": _stats(B), "v3": _stats(C)}
    results = compare_versions(by, "regression")
    assert [c.test for c in results] == ["welch_t", "welch_t", "anova_f"]
    assert results[0].groups == ("v2", "v1")  # the version with most pairs is the baseline
    assert compare_versions({"v1": _stats(A)}, "binary") == []


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_predwatch_compare_prints_a_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions, labels = write_jsonl(tmp_path, *generate(6000, seed=2, unlabelled=0.0))
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  fraud:\n    task: binary\n", encoding="utf-8")
    files = ["--config", str(config), "--predictions", str(predictions), "--labels", str(labels)]
    text = _run(["compare", *files, "--by", "version"], capsys)
    assert "two_proportion_z" in text and "v3 vs v4" in text and "p-value" in text
    document = json.loads(_run(["compare", *files, "--by", "version", "--json"], capsys))
    (row,) = document["comparisons"]
    assert row["model"] == "fraud" and row["groups"] == ["v3", "v4"] and sum(row["sizes"]) > 5000
    split = json.loads(_run(["compare", *files, "--split-at", "1795737750", "--json"], capsys))
    assert split["comparisons"][0]["groups"] == ["before", "after"]
    assert parse_timestamp("2026-11-27T00:02:30Z") == 1795737750.0
