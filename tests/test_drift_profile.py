"""Reference profiles (build, JSON round trip, bad files) and feature quality counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from predwatch.commands.common import read_profiles, write_profiles
from predwatch.commands.profile import chunks
from predwatch.config import Settings
from predwatch.demo.synthetic import generate, write_jsonl
from predwatch.drift.profile import (
    CategoricalColumn,
    NumericColumn,
    ProfileBuilder,
    ProfileError,
    ReferenceProfile,
    profile_lines,
)
from predwatch.drift.quality import INVALID, FeatureQuality
from predwatch.drift.settings import DataDriftSettings
from predwatch.records import Prediction


def _prediction(i: int, features: object, value: str | float = "1") -> Prediction:
    return Prediction(str(i), "fraud", "v1", float(i), value, 0.5, None, features, {})  # type: ignore[arg-type]


def _profile() -> ReferenceProfile:
    builder = ProfileBuilder("fraud", "v1", numeric_bins=10, max_categories=3)
    rng = np.random.default_rng(0)
    builder.add(
        _prediction(i, {"amount": float(x), "country": c, "flag": bool(i % 2)})
        for i, (x, c) in enumerate(
            zip(rng.lognormal(3, 1, 2000), rng.choice(list("ABCDE"), 2000), strict=True)
        )
    )
    return builder.build()


def test_profile_bins_and_categories() -> None:
    profile = _profile()
    amount = profile.features["amount"]
    assert isinstance(amount, NumericColumn)
    assert len(amount.edges) == 9 and sum(amount.counts) == 2000
    assert max(amount.counts) - min(amount.counts) <= 2  # deciles: equal bins
    country = profile.features["country"]
    assert isinstance(country, CategoricalColumn)
    assert len(country.categories) == 3 and country.other == 2000 - sum(country.counts)
    assert len(country.other_values) == 2 and country.other_complete
    assert profile.schema == {"amount": "numeric", "country": "categorical", "flag": "categorical"}
    assert profile.features["flag"].categories == ["false", "true"]  # type: ignore[union-attr]
    assert isinstance(profile.prediction, CategoricalColumn) and profile.score is not None


def test_discrete_feature_edges_are_deduplicated() -> None:
    builder = ProfileBuilder("m")
    builder.add(_prediction(i, {"hour": i % 3}) for i in range(300))
    hour = builder.build().features["hour"]
    assert isinstance(hour, NumericColumn)
    assert hour.edges == sorted(set(hour.edges)) and all(e > hour.minimum for e in hour.edges)
    assert sum(hour.counts) == 300


def test_json_round_trip(tmp_path: Path) -> None:
    profile = _profile()
    assert ReferenceProfile.from_json(profile.to_json()) == profile
    path = tmp_path / "profile.json"
    write_profiles(path, [profile, msgspec.structs.replace(profile, version=None)])
    loaded = read_profiles(path)
    assert loaded[0] == profile and loaded[1].version is None
    assert json.loads(path.read_text())["format"] == 1


@dataclass
class BadFile:
    text: str | None  # None: the file does not exist
    says: str


BAD_FILES = [
    BadFile(None, "cannot read the profile file"),  # a wrong path
    BadFile("{not json", "is not valid JSON"),
    BadFile('{"profiles": []}', "no 'format' key"),
    BadFile('{"format": 7, "profiles": []}', "format 7"),  # written by a newer predwatch
    BadFile('{"format": 1, "profiles": [{"model": 3}]}', "is not a valid profile"),
    BadFile(  # edges must increase
        '{"format": 1, "profiles": [{"model": "m", "version": null, "count": 2, "features": '
        '{"x": {"type": "numeric", "edges": [2, 1], "minimum": 0, "maximum": 3, '
        '"counts": [1, 1, 0]}}}]}',
        "column 'x' of model 'm' has edges that do not increase",
    ),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=lambda c: c.says)
def test_bad_profile_file_gives_one_clear_sentence(tmp_path: Path, case: BadFile) -> None:
    path = tmp_path / "profile.json"
    if case.text is not None:
        path.write_text(case.text)
    with pytest.raises(ProfileError) as error:
        read_profiles(path)
    message = str(error.value)
    assert message.startswith(str(path)) and case.says in message
    assert "\n" not in message


def test_build_profile_from_jsonl(tmp_path: Path) -> None:
    predictions, labels = generate(3000, seed=4)
    paths = write_jsonl(tmp_path, predictions, labels)
    settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
    with paths[0].open("rb") as lines:
        profiles = profile_lines(settings, chunks(lines, size=700), DataDriftSettings())
    assert [(p.model, p.version) for p in profiles] == [("fraud", "v3"), ("fraud", "v4")]
    assert sum(p.count for p in profiles) == 3000
    whole = profile_lines(settings, [paths[0].read_bytes().splitlines()], DataDriftSettings())
    assert whole == profiles  # reading in chunks changes nothing
    assert len(profiles[0].features) == 10


def test_quality_fast_and_checked_paths_agree() -> None:
    schema = {"amount": "numeric", "country": "categorical"}
    good = [_prediction(i, b'{"amount": %d, "country": "BR"}' % i) for i in range(5)]
    odd = [
        _prediction(10, b'{"country": "DE"}'),  # amount missing
        _prediction(11, b"null"),  # both missing
        _prediction(12, {"amount": float("inf"), "country": None}),  # checked decoder's dict
        _prediction(13, b'{"amount": "7", "country": 7}'),  # wrong types
        _prediction(14, b'{"amount": true, "country": false}'),
    ]
    quality = FeatureQuality()
    fast = quality.observe(good, schema)
    assert quality.counts() == {}
    assert fast["amount"].tolist() == [0, 1, 2, 3, 4] and fast["country"] == ["BR"] * 5
    checked = quality.observe(good + odd, schema)
    np.testing.assert_array_equal(checked["amount"][:5], fast["amount"])
    assert np.isnan(checked["amount"][5:]).all()
    assert checked["country"][5:] == ["DE", INVALID, INVALID, INVALID, "false"]
    assert quality.counts() == {
        ("amount", "missing"): 2,
        ("amount", "non_finite"): 1,
        ("amount", "wrong_type"): 2,
        ("country", "missing"): 1,
        ("country", "null"): 1,
        ("country", "wrong_type"): 1,
    }
