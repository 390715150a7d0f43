"""Pool ratios: parsing, errors, largest-remainder quotas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_ray import ConfigError, Ratio


@pytest.mark.parametrize(
    "value", ["75_15_10", "R75_15_10", {"legacy": 75, "expansion": 15, "organic": 10}, [75, 15, 10]]
)
def test_parse_forms(value: object) -> None:
    r = Ratio.parse(value)  # type: ignore[arg-type]
    assert r.canonical == "75_15_10"
    assert r.weights == {"legacy": 75, "expansion": 15, "organic": 10}


def test_missing_pool_in_mapping_is_zero() -> None:
    assert Ratio.parse({"legacy": 100}).canonical == "100_0_0"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("75_15_5", "sum to 100"),
        ("75_25", "has 2 parts but there are 3 pools"),
        ("75-15-10", "integer percentages joined by '_'"),
        ("7.5_15_77.5", "integer percentages"),
        ({"legacy": 90, "bogus": 10}, "unknown pools"),
        ({"legacy": 90.0, "organic": 10}, "must be an integer"),
    ],
)
def test_bad_ratios(value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Ratio.parse(value)  # type: ignore[arg-type]


def test_custom_pool_names() -> None:
    r = Ratio.parse("60_40", pools=["core", "fresh"])
    assert r.weights == {"core": 60, "fresh": 40}


def test_quotas_largest_remainder() -> None:
    # 16 * (75, 15, 10)% = 12, 2.4, 1.6 -> floors 12, 2, 1; one left goes to the largest remainder (organic)
    assert Ratio.parse("75_15_10").quotas(16) == {"legacy": 12, "expansion": 2, "organic": 2}
    # equal remainders go to the earlier pool: 3 * (50, 50)% = 1.5, 1.5
    assert Ratio.parse("50_50", pools=["a", "b"]).quotas(3) == {"a": 2, "b": 1}


@given(
    parts=st.lists(st.integers(0, 100), min_size=2, max_size=5).filter(lambda p: sum(p) > 0),
    batch=st.integers(1, 600),
)
def test_quotas_properties(parts: list[int], batch: int) -> None:
    # Scale arbitrary parts to integer percentages summing to exactly 100.
    total = sum(parts)
    pct = [p * 100 // total for p in parts]
    pct[max(range(len(pct)), key=lambda i: parts[i])] += 100 - sum(pct)
    pools = [f"p{i}" for i in range(len(pct))]
    q = Ratio.parse(pct, pools=pools).quotas(batch)
    assert sum(q.values()) == batch
    for pool, p in zip(pools, pct, strict=True):
        exact = p * batch / 100
        assert abs(q[pool] - exact) < 1  # within one slot of the exact share
        if p == 0:
            assert q[pool] == 0  # a zero-weight pool is never drawn


def test_a_named_ratio_brings_its_pools_in_the_order_written() -> None:
    from crucible_ray.cli._params import RATIO

    r = RATIO.convert("legacy=70, support=20, organic=10", None, None)
    assert r.pools == ("legacy", "support", "organic") and r.percents == (70, 20, 10)
    # Against given pools, names are matched to them (the order of the pools wins).
    assert str(Ratio.parse("organic=10,legacy=90", ("legacy", "expansion", "organic"))) == "90_0_10"
    for bad in ("legacy=70,legacy=30", "legacy=60,support=30", "legacy=x"):
        with pytest.raises(ConfigError):
            Ratio.from_named(bad)
