"""The report: computed numbers first (STYLE habit 10), then the page's safety (escaping, offline)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
from crucible_ray.data import file_sha256
from crucible_ray.reporting import compute_report, figures, render_html

HOSTILE = "<img src=x onerror=alert(1)>"


def make_sweep_dir(tmp: Path, synthetic_world: Path) -> Path:
    """A sweep folder built by hand: results, trial scoreboards, manifest, a world with a mining run
    (inside the sweep folder, where the report may follow the manifest to it)."""
    world = tmp / "sweep" / "world"
    shutil.copytree(synthetic_world, world)
    bundles = cr.read_bundles(world / "organic.jsonl")
    bundles[0] = bundles[0].model_copy(update={"anchor": HOSTILE, "pass_count": 99})
    cr.write_bundles(world / "organic.jsonl", bundles)
    manifest = json.loads((world / "manifest.json").read_text())
    manifest["files"]["organic"]["sha256"] = file_sha256(world / "organic.jsonl")  # the world's new organic pool
    (world / "manifest.json").write_text(json.dumps(manifest))
    (world / "organic_mined.manifest.json").write_text(
        json.dumps(
            {
                "kind": "mining",
                "config": {"lineups": 10},
                "counts": {
                    "candidates": 50,
                    "insufficient": 5,
                    "accepted": 30,
                    "pass_count_histogram": {"0": 10, "3": 5, "10": 30},
                },
            }
        )
    )
    board = cr.evaluate("hashed-ngram:seed=0", cr.World.open(world).eval_sets)
    out = tmp / "sweep"
    rows = []
    gens = {"85_10_5": [0.30, 0.35, 0.33], "75_15_10": [0.40, 0.42, 0.41]}
    for ratio, curve in gens.items():
        for seed, shift in ((1, 0.0), (2, 0.02)):
            trial = f"r{ratio}-s{seed}"
            for step, g in zip((10, 20, 30), curve, strict=True):
                board.write(out / "trials" / trial / f"scoreboard_step_{step}.json")
                rows.append(
                    dict(
                        trial_id=trial,
                        ratio=ratio,
                        seed=seed,
                        step=step,
                        status="complete",
                        retention=0.9 - (ratio == "75_15_10") * 0.05 + shift,
                        generalization=g + shift,
                    )
                )
    pd.DataFrame(rows).to_parquet(out / "results.parquet")
    (out / "manifest.json").write_text(json.dumps({"kind": "sweep", "data": str(world), "space": {"name": HOSTILE}}))
    return out


def test_report_numbers(tmp_path: Path, synthetic_world: Path) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    data = compute_report(d, n_bootstrap=50)
    table = pd.read_parquet(d / "results.parquet")
    gen = next(h for h in data.heatmaps if h.objective == "generalization")
    assert gen.ratios == ["85_10_5", "75_15_10"] and gen.steps == [10, 20, 30]  # most legacy first
    expected = table[(table.ratio == "75_15_10") & (table.step == 20)]["generalization"].mean()
    assert gen.values[1][1] == pytest.approx(expected)
    assert {c.ratio: c.peak_step for c in data.curves} == {"85_10_5": 20, "75_15_10": 20}
    assert data.recommended in {r["config"] for r in data.pareto_rows if r["on_frontier"]}
    assert data.baseline == ["85_10_5@10", "85_10_5@20", "85_10_5@30"]
    tier3 = next(m for m in data.margins if m.eval_set == "frozen_eval" and m.tier == "3")
    board = cr.Scoreboard.read(d / "trials" / "r75_15_10-s1" / "scoreboard_step_20.json")
    assert tier3.quantiles["p50"] == pytest.approx(board.eval_sets["frozen_eval"]["3"]["margin"]["p50"])
    (mining,) = data.mining
    assert mining.funnel == {"candidates": 50, "with enough negatives": 45, "accepted": 30}
    assert mining.histogram == {0: 10, 3: 5, 10: 30} and mining.lineups == 10
    assert data.guardrails is not None and not (d / "guardrails.json").exists()  # computed, not written
    assert data.examples[0]["anchor"] == HOSTILE and data.examples[0]["pass_count"] == 99
    figs = figures(data)
    assert {
        "pareto",
        "heatmap-retention",
        "heatmap-generalization",
        "curves",
        "margins",
        "funnel-0",
        "passes-0",
    } <= set(figs)
    z = np.array(figs["heatmap-generalization"].data[0].z, dtype=float)
    assert np.allclose(z, np.array(gen.values)) and not math.isnan(z.sum())
    # Findings at the top: 10 fewer legacy points cost 0.05 retention in both seeds, 5 more organic points
    # gain 0.10 generalization at step 10, and both curves fall after their peak at step 20 in both seeds.
    assert data.findings[0].startswith("dilution at step 10: retention per 10 points of legacy share +0.0500")
    assert data.findings[0].endswith(": detected")
    assert any(
        f.startswith("gain at step 10: generalization per 10 points of organic share +0.2000") for f in data.findings
    )
    assert sum("peaks at step 20; a cliff" in f for f in data.findings) == 2
    assert (
        "organic_mined: 30 of 50 candidates accepted (pass rate 60.0%); passes of 10 lineups: 0: 10, 3: 5, 10: 30"
        in data.findings
    )
    page = render_html(data)
    assert page.index("<h2>Findings</h2>") < page.index("<h2>Pareto: retention vs generalization</h2>")
    assert gen.pools == ["legacy", "expansion", "organic"]  # the report names the pools of its ratios
    assert figs["heatmap-generalization"].layout.yaxis.title.text == "ratio (legacy_expansion_organic)"


def test_user_text_is_escaped_and_the_page_is_offline(tmp_path: Path, synthetic_world: Path) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    page = render_html(compute_report(d, n_bootstrap=20))
    assert HOSTILE not in page  # never raw, in the page or in the figure JSON
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    from plotly.offline import get_plotlyjs

    ours = page.replace(get_plotlyjs(), "")  # the page without the inlined library
    assert "<script src" not in ours
    assert "http://" not in ours and "https://" not in ours
    assert "default-src 'none'" in page  # the CSP forbids any request
    assert page.count("<script type='application/json'") >= 7


def test_the_csp_runs_only_the_pages_own_scripts(tmp_path: Path, synthetic_world: Path) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    page = render_html(compute_report(d, n_bootstrap=20))
    (policy,) = re.findall(r"<meta http-equiv='Content-Security-Policy' content=\"([^\"]+)\">", page)
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["default-src"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    # Scripts: one hash per inline script of the page, nothing else ('unsafe-inline' would let an injected
    # <script> or onerror= handler run; a hash lets only the exact text it was computed from run).
    code = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(code) == 2 and len(code[0]) > 1_000_000  # plotly.js, then the lines that draw the figures
    expected = ["'sha256-" + base64.b64encode(hashlib.sha256(c.encode()).digest()).decode() + "'" for c in code]
    assert directives["script-src"] == expected
    # Styles stay inline (plotly.js styles what it draws); with every fetch refused they cannot send anything.
    assert directives["style-src"] == ["'unsafe-inline'"]
    assert set(directives) == {
        "default-src",
        "script-src",
        "style-src",
        "img-src",
        "font-src",
        "base-uri",
        "form-action",
    }
    # In force before any script and before any text from the results (the title is the first).
    assert page.index("Content-Security-Policy") < min(page.index("<script"), page.index("<title>"))


def test_report_command(tmp_path: Path, synthetic_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    out = tmp_path / "dash.html"
    assert run(["report", "--results-dir", str(d), "--output", str(out), "--bootstrap", "20"]) == 0
    assert out.stat().st_size > 1_000_000 and "opens offline" in capsys.readouterr().out  # plotly.js inlined
    assert cr.report(d, tmp_path / "api.html", n_bootstrap=20).is_file()
    assert run(["report", "--results-dir", str(tmp_path / "none"), "--output", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()
