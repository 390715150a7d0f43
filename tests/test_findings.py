"""Findings with intervals across seeds: dilution and gain slopes, early-stop peaks (pure, no Ray)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from crucible_ray.analysis import Effect, dilution, findings, gain, peaks

RATIOS = ["100_0_0", "85_10_5", "75_15_10", "65_25_10"]


def _table(retention, generalization, *, steps=(100, 200, 400), seeds=(0, 1, 2)) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = []
    for ratio, seed, step in itertools.product(RATIOS, seeds, steps):
        legacy, _, organic = (int(x) for x in ratio.split("_"))
        rows.append(
            {
                "ratio": ratio,
                "seed": seed,
                "step": step,
                "retention": retention(legacy, seed, step),
                "generalization": generalization(organic, seed, step),
            }
        )
    return pd.DataFrame(rows)


def test_a_dilution_slope_is_found_with_its_interval() -> None:
    # 0.004 retention per point of legacy share (0.04 per 10 points), a little seed noise around it.
    noise = {0: -0.0005, 1: 0.0, 2: 0.0007}
    table = _table(lambda legacy, seed, step: 0.2 + (0.004 + noise[seed] / 10) * legacy, lambda *a: 0.1)
    effects = dilution(table)
    assert [e.subject for e in effects] == ["step 100", "step 200", "step 400"]
    for e in effects:
        assert e.estimate == pytest.approx(0.04 + np.mean(list(noise.values())), abs=1e-9)
        assert e.ci_low < e.estimate < e.ci_high and e.n_seeds == 3
        assert e.detected and "detected" in e.sentence() and "not detected" not in e.sentence()


def test_an_effect_whose_interval_includes_zero_is_not_detected() -> None:
    slope = {0: 0.001, 1: -0.0012, 2: 0.0002}  # per point, signs disagree across seeds
    table = _table(lambda legacy, seed, step: 0.5 + slope[seed] * legacy, lambda *a: 0.1)
    for e in dilution(table):
        assert e.ci_low < 0 < e.ci_high
        assert not e.detected and "not detected" in e.sentence()


def test_gain_is_measured_against_the_organic_share_and_reads_pool_names() -> None:
    table = _table(lambda *a: 0.9, lambda organic, seed, step: 0.05 + 0.002 * organic + 0.0001 * seed)
    effects = gain(table)
    assert all(e.detected and e.estimate == pytest.approx(0.02) for e in effects)
    # The same numbers with the pools named (and ordered) otherwise: the share is found by name.
    renamed = table.assign(
        ratio=[f"{r.split('_')[2]}_{r.split('_')[0]}_{r.split('_')[1]}" for r in table["ratio"]],
        pools="mined,core,support",
    )
    assert [e.estimate for e in gain(renamed, organic_pool="mined")] == pytest.approx([e.estimate for e in effects])


def test_one_seed_gives_an_estimate_without_an_interval() -> None:
    table = _table(lambda legacy, seed, step: 0.003 * legacy, lambda *a: 0.1, seeds=(0,))
    e = dilution(table)[0]
    assert e.n_seeds == 1 and not e.detected and "no interval" in e.sentence()


def test_peaks_find_the_best_milestone_and_a_cliff_beyond_noise() -> None:
    curve = {100: 0.10, 200: 0.20, 400: 0.12}
    table = _table(lambda *a: 0.9, lambda organic, seed, step: curve[step] + 0.001 * seed)
    found = {p.ratio: p for p in peaks(table)}
    assert set(found) == set(RATIOS)
    p = found["75_15_10"]
    assert (p.peak_step, p.last_step) == (200, 400)
    assert p.drop is not None and p.drop.estimate == pytest.approx(0.08) and p.cliff
    assert "peaks at step 200" in p.sentence() and "cliff" in p.sentence()


def test_a_curve_still_rising_has_not_peaked() -> None:
    table = _table(lambda *a: 0.9, lambda organic, seed, step: step / 1000 + 0.001 * seed)
    for p in peaks(table):
        assert p.peak_step == p.last_step == 400 and p.drop is None and not p.cliff
        assert "had not peaked" in p.sentence()


def test_a_drop_within_seed_noise_is_not_a_cliff() -> None:
    wobble = {0: 0.02, 1: -0.04, 2: 0.01}  # a mean drop of 0.0033, seeds disagree
    curve = {100: 0.1, 200: 0.2, 400: 0.2}
    table = _table(lambda *a: 0.9, lambda organic, seed, step: curve[step] + (wobble[seed] if step == 400 else 0))
    for p in peaks(table):
        assert not p.cliff and "no drop after it beyond seed noise" in p.sentence()


def test_effect_sentence_names_the_finding() -> None:
    e = Effect("gain", "step 100", "generalization per 10 points of organic share", 0.0, -0.01, 0.01, 3)
    assert e.sentence().startswith("gain at step 100: generalization per 10 points of organic share +0.0000")


def test_mining_lines_count_the_pseudo_killers_the_rule_caught() -> None:
    from crucible_ray.analysis import mining_lines

    doc = {
        "config": {"lineups": 10, "min_passes": 3},
        "counts": {
            "candidates": 200,
            "accepted": 150,
            "pass_rate": 0.75,
            "pass_count_histogram": {"0": 20, "1": 10, "2": 20, "3": 5, "10": 145},
        },
    }
    head, caught = mining_lines("organic", doc)
    assert head.startswith("organic: 150 of 200 candidates accepted (pass rate 75.0%)")
    assert "0: 20, 1: 10, 2: 20, 3: 5, 10: 145" in head
    # 10 + 20 rejected with 1 or 2 passes; one lineup accepts each with probability passes / 10.
    assert "caught: 30 candidates were dangerous in 1-2 of 10 lineups" in caught
    assert caught.endswith(f"about {10 * 0.1 + 20 * 0.2:.1f} of them")
    assert len(mining_lines("single", {**doc, "config": {"lineups": 1, "min_passes": 1}})) == 1  # nothing to catch


def test_gain_and_peaks_are_also_measured_on_the_label_based_reference() -> None:
    # Mined-holdout generalization rises with the organic share; the reference does not move at all:
    # the findings must show both, named, so the mined-holdout gain is not taken for the real thing.
    table = _table(lambda *a: 0.9, lambda organic, seed, step: 0.05 + 0.002 * organic + 0.0001 * seed)
    ref = {0: 0.47, 1: 0.4705, 2: 0.4695}
    table["organic_reference_tier3_accuracy"] = [
        ref[s] - 0.0001 * st / 100 for s, st in zip(table["seed"], table["step"], strict=True)
    ]
    found = findings(table)
    assert found.reference_gain is not None and found.reference_peaks is not None
    assert all(e.detected for e in found.gain)
    assert all(
        abs(e.estimate) < 1e-9 and "organic_reference accuracy per 10 points" in e.what for e in found.reference_gain
    )
    lines = found.lines()
    assert any(line.startswith("gain at step 100: organic_reference accuracy") for line in lines)
    # The reference falls with steps: it peaks at the first milestone for every ratio.
    assert {p.peak_step for p in found.reference_peaks} == {100}
    assert any("early stop for 100_0_0: organic_reference accuracy peaks at step 100" in line for line in lines)


def test_without_a_reference_set_the_findings_say_so() -> None:
    table = _table(lambda *a: 0.9, lambda organic, seed, step: 0.05 + 0.002 * organic)
    found = findings(table)
    assert found.reference_gain is None
    assert any("gain on a label-based reference: not measured" in line for line in found.lines())
