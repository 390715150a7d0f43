"""The Pareto analyzer: dominance vs brute force (hypothesis), hypervolume, seed statistics, Holm, pareto()."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crucible_ray as cr
from crucible_ray.analysis import frontier_mask, frontier_probability, holm, hypervolume, seed_summary
from crucible_ray.errors import ConfigError, DataError

# Few distinct values so ties and duplicates (the hard cases of dominance) are common.
_points = st.lists(
    st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.sampled_from([0.0, 0.3, 0.6, 0.9])),
    min_size=1,
    max_size=12,
)


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


@given(_points)
def test_frontier_matches_brute_force_dominance(points: list[tuple[float, float]]) -> None:
    mask = frontier_mask(np.array(points))
    expected = [not any(_dominates(q, p) for q in points) for p in points]
    assert mask.tolist() == expected


@given(_points)
@settings(max_examples=60)
def test_hypervolume_matches_a_grid_count(points: list[tuple[float, float]]) -> None:
    # Exact on this grid: every coordinate is a multiple of 0.05, so count 0.05 x 0.05 cells.
    cells = 0
    for i, j in itertools.product(range(20), range(20)):
        cx, cy = (i + 0.5) * 0.05, (j + 0.5) * 0.05
        if any(p[0] >= cx and p[1] >= cy for p in points):
            cells += 1
    assert hypervolume(np.array(points)) == pytest.approx(cells * 0.0025, abs=1e-9)


def test_hypervolume_of_two_points() -> None:
    assert hypervolume(np.array([[1.0, 0.5], [0.5, 1.0], [0.4, 0.4]])) == pytest.approx(0.75)


def test_seed_summary_uses_student_t() -> None:
    s = seed_summary(np.array([0.5, 0.6, 0.7]))
    assert s["mean"] == pytest.approx(0.6)
    assert s["std"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert math.isnan(seed_summary(np.array([0.5]))["std"])


def test_holm_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_frontier_probability_reflects_seed_noise() -> None:
    steady = {1: (0.9, 0.5), 2: (0.9, 0.5), 3: (0.9, 0.5)}
    dominated = {1: (0.5, 0.2), 2: (0.5, 0.2), 3: (0.5, 0.2)}
    noisy = {1: (0.95, 0.6), 2: (0.8, 0.4), 3: (0.92, 0.55)}  # beats `steady` only on some draws
    p = frontier_probability([steady, dominated, noisy], n_bootstrap=400, seed=1)
    assert p[1] == 0.0
    assert 0.0 < p[2] < 1.0
    assert 0.0 < p[0] < 1.0  # noisy dominates it when seeds 1 and 3 are drawn, and not otherwise
    assert p[0] + p[2] >= 1.0  # a frontier is never empty and `dominated` is never on it
    again = frontier_probability([steady, dominated, noisy], n_bootstrap=400, seed=1)
    assert p.tolist() == again.tolist()


def crafted_table() -> pd.DataFrame:
    """Three ratios x 3 seeds x 2 steps, with known structure."""
    base = {"85_10_5": (0.90, 0.30), "75_15_10": (0.86, 0.40), "65_25_10": (0.70, 0.35)}
    noise = {42: 0.00, 123: 0.01, 7: -0.01}
    rows = []
    for ratio, (r, g) in base.items():
        for seed, e in noise.items():
            for step, lift in ((100, 0.0), (200, 0.02)):
                rows.append(
                    {
                        "trial_id": f"{ratio}-{seed}",
                        "ratio": ratio,
                        "seed": seed,
                        "step": step,
                        "retention": r + e,
                        "generalization": g + lift + e / 2,
                        "status": "complete",
                    }
                )
    return pd.DataFrame(rows)


def test_pareto_on_a_crafted_table() -> None:
    front = cr.pareto(crafted_table(), n_bootstrap=200)
    df = front.table
    assert len(df) == 6 and set(df["n_seeds"]) == {3}
    by = df.set_index("config")
    assert by.loc["85_10_5@100", "retention_mean"] == pytest.approx(0.90)
    assert by.loc["75_15_10@200", "generalization_mean"] == pytest.approx(0.42)
    # 65_25_10 is worse than 75_15_10 on both at each step; 85_10_5@200 dominates 85_10_5@100.
    assert set(df.loc[df["on_frontier"], "config"]) == {"85_10_5@200", "75_15_10@200"}
    assert not by.loc["65_25_10@200", "on_frontier"]
    assert df["recommended"].sum() == 1 and front.recommended in {"85_10_5@200", "75_15_10@200"}
    assert front.recommended_row["config"] == front.recommended
    assert front.hypervolume == pytest.approx(0.86 * 0.42 + (0.90 - 0.86) * 0.32)
    assert front.baseline == {"ratio": "85_10_5", "configs": ["85_10_5@100", "85_10_5@200"]}
    # default baseline: the most legacy ratio, compared at the same step, paired by seed
    assert by.loc["85_10_5@100", "is_baseline"] and by.loc["85_10_5@200", "is_baseline"]
    assert by.loc["75_15_10@100", "retention_delta"] == pytest.approx(-0.04)
    assert by.loc["75_15_10@100", "generalization_delta"] == pytest.approx(0.10)
    assert by.loc["75_15_10@100", "n_pairs"] == 3
    assert by.loc["65_25_10@100", "retention_p_holm"] >= by.loc["65_25_10@100", "retention_p"]
    assert (df["frontier_probability"][df["on_frontier"]] > 0).all()


def test_pareto_reads_a_results_dir_and_its_space_baseline(tmp_path: Path) -> None:
    crafted_table().to_parquet(tmp_path / "results.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"space": {"baseline": {"ratio": "75_15_10"}}}))
    df = cr.pareto(tmp_path, n_bootstrap=50).table
    assert set(df.loc[df["is_baseline"], "ratio"]) == {"75_15_10"}
    df2 = cr.pareto(tmp_path, baseline="65_25_10@200", n_bootstrap=50).table
    assert df2.loc[df2["is_baseline"], "config"].tolist() == ["65_25_10@200"]


def test_failed_rows_are_left_out_and_param_columns_are_config() -> None:
    t = crafted_table()
    t["param_lr"] = 0.01
    extra = t[t["ratio"] == "85_10_5"].assign(param_lr=0.02, retention=0.1)
    failed = t.iloc[:2].assign(status="failed", retention=math.nan, generalization=math.nan, seed=99)
    df = cr.pareto(pd.concat([t, extra, failed]), n_bootstrap=20).table
    assert "param_lr" in df.columns and len(df) == 8
    assert "85_10_5@100 lr=0.02" in set(df["config"])
    assert set(df["n_seeds"]) == {3}  # the failed seed 99 never counts


def test_bad_inputs_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no results file"):
        cr.pareto(tmp_path)
    with pytest.raises(DataError, match="field 'generalization'"):
        cr.pareto(crafted_table().drop(columns=["generalization"]))
    with pytest.raises(ConfigError, match="matches no config"):
        cr.pareto(crafted_table(), baseline="50_25_25")


def test_pareto_cli_prints_a_table_and_the_same_rows_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_ray.cli._main import run

    crafted_table().to_parquet(tmp_path / "results.parquet")
    assert run(["pareto", "--results-dir", str(tmp_path), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "recommended" in out and "75_15_10@200" in out and "hypervolume" in out
    assert run(["pareto", "--results-dir", str(tmp_path), "--bootstrap", "100", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    front = cr.pareto(tmp_path, n_bootstrap=100)
    df = front.table
    assert [r["config"] for r in doc["rows"]] == df["config"].tolist()
    assert [r["on_frontier"] for r in doc["rows"]] == df["on_frontier"].tolist()
    assert {k: v for k, v in doc.items() if k != "rows"} == front.summary()
    assert doc["rows"][0]["retention_mean"] == pytest.approx(df["retention_mean"].iloc[0])
