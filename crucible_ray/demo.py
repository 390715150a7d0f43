"""``run_demo``: the whole pipeline on the embedded default world, as composed public API calls.

world -> a base model trained on the legacy pool -> organic killers mined with it -> expansion
candidates vetted with it -> a ratio x seed x steps sweep -> Pareto and guardrails -> the report.
One Ray instance serves every stage.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.analysis import Findings, ParetoResult, findings, pareto
from crucible_ray.distributed import MiningResult, TrainResult, expand, mine, ray_session, sweep, train
from crucible_ray.errors import DataError
from crucible_ray.guardrails import GuardrailReport, check_guardrails
from crucible_ray.reporting import report
from crucible_ray.sweeps import SweepResult
from crucible_ray.tracking import MlflowTarget
from crucible_ray.worlds import MINED_ORIGIN, World, build_world, find_wordnet

log = get_logger(__name__)

# (full, quick) settings of each stage. The full demo trains a linear head on the frozen pretrained
# all-MiniLM-L6-v2 (every stage on the world's cached backbone features): a model users would train,
# on which dilution and recovery show (docs/findings.md). --quick uses the from-scratch hashed-ngram
# encoder, which memorises every pool: it exercises the pipeline, not the findings.
DEMO_ENCODER = "minilm:mode=frozen-head"
_SETTINGS: dict[str, tuple[Any, Any]] = {
    "encoder": (DEMO_ENCODER, "hashed-ngram"),
    "base_steps": (500, 100),
    "expand_limit": (1000, 300),
    "ratios": ("100_0_0,85_10_5,70_20_10,40_30_30", "100_0_0,75_15_10"),
    "seeds": ("1,2,3", "1"),
    "steps": ("150,500,1000", "50,100"),
}


@dataclass
class DemoResult:
    """Where everything went and what it found."""

    output_dir: Path
    world_name: str
    world: Path
    base: TrainResult
    organic: MiningResult
    expansion: MiningResult
    sweep_dir: Path
    results: SweepResult
    front: ParetoResult
    guardrails: GuardrailReport
    dashboard: Path
    findings: Findings
    seconds: dict[str, float] = field(default_factory=dict)

    def recommendation(self) -> list[str]:
        """The recommended config and why: how often it is on the frontier, and what the guardrails say."""
        return recommendation_lines(self.front, self.guardrails, self.findings)


def recommendation_lines(front: ParetoResult, guardrails: GuardrailReport, found: Findings | None = None) -> list[str]:
    """``recommended: <config> ...`` and the reasons: its frontier probability against the other frontier
    configs (seed-bootstrap resamples), the guardrail findings on its ratio or config, and a detected
    early-stop cliff of its ratio (from ``found``), if any."""
    rec = front.recommended_row
    table = front.table
    on_front = table[table["on_frontier"]]
    others = on_front[on_front["config"] != rec["config"]].sort_values("frontier_probability", ascending=False)
    shown = ", ".join(f"{r['config']} {r['frontier_probability']:.2f}" for _, r in others.head(3).iterrows())
    ratio, config = str(rec["ratio"]), str(rec["config"])
    flags = [v for v in guardrails.violations if v.subject in (ratio, config)]
    lines = [
        f"recommended: {config} "
        f"(retention {rec['retention_mean']:.3f}, generalization {rec['generalization_mean']:.3f})",
        f"  why: on the retention/generalization frontier in {rec['frontier_probability']:.0%} of seed resamples"
        + (f" (other frontier configs: {shown})" if shown else " (the only frontier config)")
        + "; ties go to the larger retention + generalization, then the larger legacy share",
    ]
    if flags:
        lines += [f"  but the guardrails flag it: {v.check}: {v.message}" for v in flags]
    else:
        lines.append("  guardrails: no finding on it")
    peaks = [*found.peaks, *(found.reference_peaks or [])] if found is not None else []
    for peak in peaks:
        if peak.ratio == ratio and peak.cliff and int(rec["step"]) > peak.peak_step:
            lines.append(
                f"  but its {peak.objective} peaked at step {peak.peak_step} and fell after it beyond seed noise: "
                f"an earlier step keeps more of it"
            )
    return lines


def run_demo(
    output_dir: str | Path,
    *,
    world: str = "auto",
    quick: bool = False,
    address: str | None = None,
    mlflow_uri: str | None = None,
    mlflow_experiment: str | None = None,
) -> DemoResult:
    """Run every stage into ``output_dir`` (``world/``, ``base/``, ``sweep/``, ``dashboard.html``).

    Args:
        world: ``wordnet``, ``synthetic``, or ``auto`` (WordNet when installed, else synthetic).
        quick: a smaller run (fewer steps, trials and expansion candidates).
        address: a Ray cluster (default: ``RAY_ADDRESS`` or a local instance).
        mlflow_uri, mlflow_experiment: also log the base model's run and the sweep (its trials nested
            under it) to MLflow (docs/tracking.md).
    """
    tracking: dict[str, Any] = {"mlflow_uri": mlflow_uri, "mlflow_experiment": mlflow_experiment}
    target = MlflowTarget.from_options(mlflow_uri, mlflow_experiment)
    if target is not None:
        target.open()  # a flag error or a store that cannot be opened stops the demo before any work
    out = Path(output_dir).resolve()
    pick = 1 if quick else 0
    s = {k: v[pick] for k, v in _SETTINGS.items()}
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = round(now - t, 1)
        t = now

    if world == "auto":
        try:
            find_wordnet()
            world = "wordnet"
        except DataError:
            world = "synthetic"
            log.warning("WordNet is not installed: using the synthetic world (apt-get install wordnet-base)")
    wdir = out / "world"
    log.info("[1/7] the %s world", world)
    build_world(world, wdir)
    w = World.open(wdir)
    stage("world")
    with ray_session(address):
        log.info("[2/7] training a base model (%s) on the legacy pool (%d steps)", s["encoder"], s["base_steps"])
        base = train(
            wdir,
            output_dir=out / "base",
            ratio="100_0_0",
            steps=[s["base_steps"]],
            seed=0,
            encoder=s["encoder"],
            **tracking,
        )
        stage("base model")
        log.info("[3/7] mining organic killers with the base model (10 lineups each)")
        mined = out / "mined"
        organic = mine(
            w.root / "organic_candidates.jsonl",
            corpus=w.root / "corpus.jsonl",
            out=w.root / "organic_mined.parquet",  # its manifest beside it: the report's mining funnel
            model=base.checkpoint,
            bundles_dir=mined,
        )
        _adopt(w.root, {"organic": "pool", "organic_holdout": "eval"}, mined, organic)
        stage("mining")
        log.info("[4/7] vetting up to %d expansion candidates next to the legacy killers", s["expand_limit"])
        expansion = expand(w.root, out=mined / "expansion.jsonl", model=base.checkpoint, limit=s["expand_limit"])
        shutil.copy(expansion.manifest_path, w.root / expansion.manifest_path.name)
        _adopt(w.root, {"expansion": "pool"}, mined, expansion)
        stage("expansion")
        log.info("[5/7] sweeping ratios %s x seeds %s x steps %s", s["ratios"], s["seeds"], s["steps"])
        sweep_dir = out / "sweep"
        shutil.rmtree(sweep_dir, ignore_errors=True)  # the demo starts over: its world was just rebuilt
        results = sweep(
            wdir,
            output_dir=sweep_dir,
            ratios=s["ratios"],
            seeds=s["seeds"],
            steps=s["steps"],
            resume=sweep_dir.exists(),
            encoder=s["encoder"],
            **tracking,
        )
        stage("sweep")
    log.info("[6/7] Pareto analysis and guardrails")
    front = pareto(sweep_dir)
    guard = check_guardrails(results_dir=sweep_dir)
    stage("analysis")
    log.info("[7/7] writing the report")
    dashboard = report(sweep_dir, out / "dashboard.html", data=wdir)
    stage("report")
    found = findings(results.table)
    return DemoResult(
        out, world, wdir, base, organic, expansion, sweep_dir, results, front, guard, dashboard, found, seconds
    )


# Fewer mined bundles than this and the world keeps the pool it was built with (the synthetic world
# ships every pool; a base model that already separates nearly every candidate leaves too few killers
# to train on or to hold out).
MIN_POOL_ROWS = {"pool": 20, "eval": 10}


def _adopt(world: Path, stems: dict[str, str], mined: Path, result: MiningResult) -> None:
    """Copy mined bundles into the world and register them, when there are enough of them."""
    rows = result.counts.get("bundles", {})
    short = [s for s, role in stems.items() if rows.get(s, 0) < MIN_POOL_ROWS[role]]
    if short:
        have = World.open(world).pools | World.open(world).eval_sets
        kept = [s for s in short if s in have]
        log.warning(
            "only %s mined for %s: too few to use; %s",
            ", ".join(str(rows.get(s, 0)) for s in short),
            ", ".join(short),
            f"keeping the world's own {', '.join(kept)}" if kept else "the sweep will leave them out",
        )
        if len(kept) < len(short):
            raise DataError(f"{world}: the base model left too few mined bundles for {', '.join(short)}")
        return
    w = World.open(world)
    for stem, role in stems.items():
        shutil.copy(mined / f"{stem}.jsonl", world / f"{stem}.jsonl")
        w = w.register(stem, world / f"{stem}.jsonl", role=role, rows=int(rows[stem]), origin=MINED_ORIGIN)
