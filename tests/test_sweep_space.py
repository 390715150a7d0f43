"""Search spaces: presets load and validate, malformed YAML fails with one clear line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
from crucible_ray.errors import ConfigError, DataError
from crucible_ray.sweeps import grid_space, presets, space_with, trial_key


def test_presets_load_and_expand() -> None:
    assert {"seed_style", "optuna_ratio"} <= set(presets())
    seed_style = cr.load_space("seed_style")
    trials = seed_style.trials()
    assert len(trials) == 15 and seed_style.steps == (250, 1000, 4000)
    assert {str(t.ratio) for t in trials} == {"100_0_0", "85_10_5", "75_15_10", "65_25_10", "40_30_30"}
    assert len({t.key for t in trials}) == 15 and trials[0].key == trial_key("100_0_0", 42, {})
    assert seed_style.train["encoder"] == "minilm:mode=frozen-head"  # a model users would train
    opt = cr.load_space("optuna_ratio")
    assert opt.kind == "optuna" and opt.optuna is not None and opt.optuna.trials == 12


def test_grid_params_multiply_the_trials(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("steps: [10, 20]\ngrid:\n  ratio: [85_10_5]\n  seed: [1, 2]\n  params:\n    lr: [0.001, 0.01]\n")
    space = cr.load_space(p)
    assert len(space.trials()) == 4
    assert space.train_config("85_10_5", 1, {"lr": 0.01}).lr == 0.01
    assert trial_key("85_10_5", 1, {"lr": 0.01}) != trial_key("85_10_5", 1, {"lr": 0.001})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("steps: [10\ngrid: {", r"s\.yaml:\d+: not valid YAML"),
        ("- a\n- b\n", "a YAML mapping"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1]}\nbogus: 1\n", "field 'bogus'"),
        ("steps: [10]\ngrid: {ratio: [85_10], seed: [1]}\n", "ratio '85_10' has 2 parts"),
        ("steps: [20, 10]\ngrid: {ratio: [85_10_5], seed: [1]}\n", "steps"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1], params: {lrr: [1]}}\n", "'lrr' is not a training option"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1], params: {encoder: [x]}}\n", "set it under 'train'"),
        ("steps: [10]\n", "exactly one of 'grid' or 'optuna'"),
        ("steps: [10]\noptuna: {trials: 3, legacy: [90, 80]}\n", "legacy bounds"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1], params: {temperature: [-1]}}\n", "temperature"),
        # every field has a fixed type: no nested structure where a value belongs
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1]}\nbaseline: {ratio: [[1, 2]]}\n", "field 'baseline.ratio'"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1], params: {lr: [{a: 1}]}}\n", "field 'grid.params.lr.0'"),
        ("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1]}\ntrain: {lr: {a: [1]}}\n", "field 'train.lr'"),
    ],
)
def test_malformed_spaces_name_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises((ConfigError, DataError), match=match) as e:
        cr.load_space(p)
    assert "s.yaml" in str(e.value) and "\n" not in str(e.value)


def test_cli_rejects_a_bad_space_and_an_empty_results_dir(
    tmp_path: Path, synthetic_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [10]\ngrid: {ratio: [85_10_5], seed: [one]}\n")
    code = run(
        ["sweep", "run", "--space", str(bad), "--data", str(synthetic_world), "--output-dir", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bad.yaml: field 'grid.seed.0'" in err
    assert not (tmp_path / "o").exists()  # nothing started
    assert run(["pareto", "--results-dir", str(tmp_path)]) == 2
    assert "no results file" in capsys.readouterr().err
    code = run(
        [
            "sweep",
            "ratio",
            "--data",
            str(synthetic_world),
            "--ratios",
            "60_30_10",
            "--seeds",
            "1",
            "--steps",
            "10",
            "--output-dir",
            str(tmp_path / "o"),
            "--guardrails",
            "block",
        ]
    )
    assert code == 1 and "dilution floor" in capsys.readouterr().err
    assert grid_space("85_10_5, 75_15_10", "1,2", "5,10").describe().startswith("ratio: grid of 4 trials")


LAUGHS = """steps: [10]
grid: {ratio: [85_10_5], seed: [1]}
baseline:
  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
  a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
  a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
  a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
  a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
  a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
  a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]
  a8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(LAUGHS, 4, id="billion-laughs"),
        pytest.param("steps: &s [10]\ngrid: {ratio: [85_10_5], seed: [1]}\n", 1, id="anchor-alone"),
        pytest.param("x: &s 1\nsteps: [*s]\ngrid: {ratio: [85_10_5], seed: [1]}\n", 1, id="scalar-alias"),
    ],
)
def test_yaml_anchors_and_aliases_are_refused(tmp_path: Path, text: str, line: int) -> None:
    # An anchor/alias expansion (a "billion laughs") would be written out in full into the manifest.
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(DataError, match=rf"s\.yaml:{line}: YAML anchors and aliases .* are not allowed") as e:
        cr.load_space(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("space", ["preset", "file"])
@pytest.mark.parametrize("steps", ["abc", "200,x", "1.5"])
def test_bad_steps_override_is_a_config_error(
    tmp_path: Path, synthetic_world: Path, capsys: pytest.CaptureFixture[str], steps: str, space: str
) -> None:
    # `sweep run --space <file> --steps 200,x` exited 3 (internal error) while one of three copies of
    # the comma-list parser had no error handling; there is one parser now (crucible_ray.config).
    where = "seed_style"
    if space == "file":
        where = str(tmp_path / "s.yaml")
        Path(where).write_text("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1]}\n")
    with pytest.raises(ConfigError, match=rf"--steps .*{steps!r}"):
        space_with(where, steps=steps)
    out = tmp_path / "o"
    code = run(
        [
            "sweep",
            "run",
            "--space",
            where,
            "--steps",
            steps,
            "--data",
            str(synthetic_world),
            "--output-dir",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--steps" in err and repr(steps) in err, err
    assert not out.exists()


def test_comma_lists_name_the_option_and_value() -> None:
    for args, option, bad in [
        (("85_10_5", "1,x", "10"), "--seeds", "1,x"),
        (("85_10_5", "1", "10,y"), "--steps", "10,y"),
    ]:
        with pytest.raises(ConfigError, match=rf"{option} .*{bad!r}"):
            grid_space(*args)
    with pytest.raises(ConfigError, match=r"steps.*'5,z'"):
        cr.TrainConfig.from_options(steps="5,z")


def test_a_ratio_grid_over_a_worlds_own_pools() -> None:
    sp = space_with(None, ratios="70_20_10,100_0_0", seeds="1,2", steps="10,20", pools=["legacy", "support", "organic"])
    assert sp.pools == ("legacy", "support", "organic")
    assert {str(t.ratio) for t in sp.trials()} == {"70_20_10", "100_0_0"}
    assert all(t.ratio.weights.get("support") in (20, 0) for t in sp.trials())
    with pytest.raises(ConfigError, match="named by the search space file"):
        space_with("seed_style", pools=["legacy", "support"])
