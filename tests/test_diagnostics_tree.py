"""Error trees and failing segments: sampling, rotation, rules, and the injected-segment stream.

The full validation (10 seeds at 200,000 pairs, default settings) is in
benchmarks/diagnostics.py; here fewer pairs with a larger sample keep it fast.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from predwatch.config import ModelSettings, Settings
from predwatch.diagnostics.segments import Condition, find_segments, rule_text, segment_id
from predwatch.diagnostics.settings import DiagnosticsSettings
from predwatch.diagnostics.tree import (
    ErrorTree,
    ModelDiagnostics,
    feature_rows,
    hash_unit,
    pair_errors,
)
from predwatch.pipeline.builder import ReportBuilder
from predwatch.pipeline.diagnostics import DiagnosticsStage
from predwatch.records import Label, Prediction

_spec = importlib.util.spec_from_file_location(
    "diagnostics_benchmark", Path(__file__).parent.parent / "benchmarks" / "diagnostics.py"
)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

FAST = DiagnosticsSettings(sample_rate=0.3)  # 30% learned, 30% held out


@dataclass
class Case:
    seed: int
    task: str


@pytest.mark.parametrize(
    "case",
    [Case(0, "binary"), Case(1, "binary"), Case(2, "binary"), Case(3, "regression")],
    ids=str,
)
def test_injected_segment_is_the_top_segment(case: Case) -> None:
    # Errors only in country == BR and amount > 500: the top rule must describe that set.
    result = bench.segment_run(60_000, case.seed, uniform=False, task=case.task, settings=FAST)
    assert result["segments"] >= 1
    assert "country = BR" in result["rule"] and "amount >" in result["rule"]
    assert result["precision"] >= 0.8 and result["recall"] >= 0.8, result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_errors_give_no_segment(seed: int) -> None:
    assert bench.segment_run(60_000, seed, uniform=True, settings=FAST)["segments"] == 0


def test_sampling_is_by_id_so_replays_learn_the_same() -> None:
    pairs, _ = bench.injected_stream(5000, 0)
    settings = DiagnosticsSettings(sample_rate=0.2)
    first, second = ErrorTree("binary", settings), ErrorTree("binary", settings)
    assert (
        first.learn(pairs)
        == second.learn(pairs[::-1])
        == sum(hash_unit(p.id) < 0.2 for p, _ in pairs)
    )
    assert hash_unit("a1") == 0x6CE14823 / 2**32  # zlib.crc32: the same on every machine
    assert 800 < first.learned < 1200


def test_tree_rotates_after_its_window() -> None:
    tree = ErrorTree("binary", DiagnosticsSettings(window=1000))
    rows = [{"x": float(i % 10)} for i in range(2600)]
    tree.learn_rows(rows, [float(r["x"] > 7) for r in rows])
    # Successors start at 1000 learned and take over 500 later: at 1500 and again at 2500.
    assert tree.rotations == 2 and tree.learned == 2600
    tree.rotate()  # a drift signal starts a successor at once
    tree.learn_rows(rows[:500], [0.0] * 500)
    assert tree.rotations == 3


def test_feature_rows_decode_raw_json_and_tags() -> None:
    raw = msgspec.Raw(b'{"amount": 12.5, "country": "BR", "nested": {"a": 1}}')
    pairs = [
        (
            Prediction("a", "m", "v", 0.0, "1", None, None, raw, {"region": "eu"}),
            Label("a", 0.0, "1", 1.0),
        ),
        (
            Prediction("b", "m", "v", 0.0, "1", None, None, {"amount": 3}, {}),
            Label("b", 0.0, "0", 0.0),
        ),
    ]
    assert feature_rows(pairs, exclude=["country"]) == [
        {"amount": 12.5, "tags.region": "eu"},
        {"amount": 3},
    ]
    assert pair_errors(pairs, "binary").tolist() == [0.0, 1.0]


def test_rules_are_normalised_and_ids_survive_small_threshold_moves() -> None:
    path = (
        Condition("country", "in", frozenset({"BR"})),
        Condition("amount", ">", 300.0),
        Condition("amount", ">", 503.21),
        Condition("age", "<=", 52.3),
        Condition("device", "not in", frozenset({"ios"})),
        Condition("device", "not in", frozenset({"web"})),
    )
    assert rule_text(path) == (
        "age <= 52.3 and amount > 503.2 and country = BR and device not in {ios, web}"
    )
    moved = (*path[:2], Condition("amount", ">", 498.7), *path[3:])
    assert segment_id(moved) == segment_id(path)
    assert segment_id(path[:2]) != segment_id(path)
    assert Condition("amount", ">", 500.0).matches({"amount": "high"}) is False  # wrong type
    assert Condition("country", "not in", frozenset({"BR"})).matches({}) is False  # missing


def test_find_segments_without_a_tree_or_pairs() -> None:
    assert find_segments(None, [], np.array([]), "binary") == []


def test_model_diagnostics_report_alerts_and_comparisons() -> None:
    diagnostics = ModelDiagnostics(ModelSettings(task="binary"), FAST)
    pairs, _ = bench.injected_stream(60_000, 5)
    v2 = [(p._replace(version="v2"), label._replace(value="1")) for p, label in pairs[:5000]]
    diagnostics.update(pairs + v2, clock=100.0)
    report = diagnostics.report(clock=100.0)
    assert set(report) == {"v1", "v2"} and report["v1"]["pairs"] == 60_000
    top = report["v1"]["segments"][0]
    assert top["lift"] > 3 and top["q_value"] < 0.01 and len(top["id"]) == 12
    line = diagnostics.segments_for_alerts("v1")
    assert line.startswith(top["rule"] + " (error ") and "pairs)" in line
    assert diagnostics.segments_for_alerts("v2") == ""  # v2 never errs
    (comparison,) = diagnostics.comparisons()
    assert comparison.groups == ("v1", "v2") and comparison.p_value < 1e-10


def test_reports_search_segments_again_after_new_pairs_or_time() -> None:
    settings = Settings.model_validate(
        {
            "models": {"m": {"task": "binary"}},
            "diagnostics": {"sample_rate": 0.3, "refresh_pairs": 10_000, "refresh_interval": 60},
        }
    )
    stage = DiagnosticsStage(settings)
    diagnostics = stage.diagnostics["m"]
    pairs, _ = bench.injected_stream(30_000, 6)

    def reported(clock: float) -> list[object]:
        builder = ReportBuilder(clock)
        stage.report(builder)
        return builder.build().summary["models"]["m"]["v1"]["segments"]

    diagnostics.update(pairs[:20_000], clock=0.0)
    first = reported(0.0)  # never searched: due
    assert first == [seg.as_dict() for seg in diagnostics.segments("v1")]
    diagnostics.update(pairs[20_000:21_000], clock=10.0)  # ~300 held out, under 10,000
    assert reported(10.0) == first  # not due: the same segments as before
    assert reported(61.0) == [seg.as_dict() for seg in diagnostics.segments("v1")]  # due by time
    assert diagnostics.segments("v1") == diagnostics.segments("v1")  # a search changes nothing


def test_disabled_diagnostics_keep_nothing() -> None:
    diagnostics = ModelDiagnostics(
        ModelSettings(task="regression"), DiagnosticsSettings(enabled=False)
    )
    pairs, _ = bench.injected_stream(1000, 0, task="regression")
    diagnostics.update(pairs, clock=1.0)
    assert diagnostics.report(clock=1.0) == {} and diagnostics.comparisons() == []
    assert math.isnan(diagnostics.stats("v1").mean)
