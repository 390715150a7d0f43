"""``crucible-ray sweep ratio|run``: sweeps on Ray Tune; ``crucible-ray pareto``; ``crucible-ray guardrail check``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from crucible_ray.cli._export import check_export_folder
from crucible_ray.cli._params import mlflow_options, model_option, wandb_option
from crucible_ray.cli._render import table

from crucible_ray.guardrails import GuardrailConfig
from crucible_ray.training import TrainConfig

if TYPE_CHECKING:
    from crucible_ray.analysis import ParetoResult


def guardrail_options(f: Any) -> Any:
    f = click.option(
        "--legacy-pool",
        default=GuardrailConfig.model_fields["legacy_pool"].default,
        show_default=True,
        help="The pool of known hard cases whose share the dilution floor guards (by name, not position).",
    )(f)
    f = click.option(
        "--dilution-floor", type=float, default=None, help="Least legacy share a ratio may give (default 0.70)."
    )(f)
    return click.option(
        "--guardrails",
        "guardrail_mode",
        type=click.Choice(["warn", "block"]),
        default="warn",
        show_default=True,
        help="block: refuse a ratio below the dilution floor before starting.",
    )(f)


def guardrails_from(o: dict[str, Any]) -> GuardrailConfig:
    """The guardrail config of the options ``guardrail_options`` adds."""
    return GuardrailConfig.from_options(
        mode=o["guardrail_mode"], dilution_floor=o["dilution_floor"], legacy_pool=o["legacy_pool"]
    )


def _common(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--data", required=True, type=click.Path(path_type=Path), help="World folder (with its pools)."
            ),
            click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path)),
            click.option("--resume", is_flag=True, help="Continue the interrupted sweep in --output-dir."),
            click.option(
                "--address", default=None, help="Ray cluster address, e.g. auto (default: RAY_ADDRESS or local)."
            ),
            click.option("--workers", type=int, default=None, help="Ray Train workers per trial (default 1)."),
            click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Train on GPUs (default: when present)."),
            click.option("--max-concurrent-trials", type=int, default=None, help="Cap on trials running at once."),
            click.option("--max-failures", type=int, default=2, show_default=True, help="Retries of a crashed trial."),
            click.option("--encoder", "encoder_spec", default=None, help="Encoder spec shared by every trial."),
            click.option("--batch-size", type=int, default=None),
            model_option("retention_set", TrainConfig),
            model_option("generalization_set", TrainConfig),
            guardrail_options,
            mlflow_options,
            wandb_option,
        ]
    ):
        f = opt(f)
    return f


@click.group("sweep")
def sweep_group() -> None:
    """Sweeps over ratio x seed x steps (and training params) on Ray Tune."""


@sweep_group.command("ratio")
@click.option("--ratios", required=True, help='Comma-separated ratios, e.g. "85_10_5,75_15_10".')
@click.option("--seeds", required=True, help="Comma-separated seeds, e.g. 42,123.")
@click.option("--steps", required=True, help="Milestones, e.g. 1000,2000 (each trial is evaluated at every one).")
@click.option("--baseline", default=None, help="Baseline ratio for Pareto and guardrails (default: most legacy).")
@click.option(
    "--pools",
    default=None,
    help="The pools the ratios are read against, in order, for worlds with their own pools "
    "(e.g. legacy,support,organic; default legacy,expansion,organic).",
)
@_common
def sweep_ratio(**o: Any) -> None:
    """A grid of ratios x seeds, each trial evaluated at every step milestone."""
    pools = [p.strip() for p in o["pools"].split(",")] if o["pools"] else None
    _run(o, space=None, ratios=o["ratios"], seeds=o["seeds"], steps=o["steps"], pools=pools)


@sweep_group.command("run")
@click.option("--space", required=True, help="A search-space YAML file, or a preset name (e.g. seed_style).")
@click.option("--steps", default=None, help="Override the space's milestones, e.g. 200,400.")
@_common
def sweep_run(**o: Any) -> None:
    """A sweep from a search-space YAML (a grid, or an Optuna multi-objective search)."""
    _run(o, space=o["space"], ratios=None, seeds=None, steps=o["steps"])


def _run(o: dict[str, Any], **what: Any) -> None:
    from crucible_ray.analysis import pareto
    from crucible_ray.distributed import sweep

    gcfg = guardrails_from(o)
    train = {"workers": o["workers"], "batch_size": o["batch_size"]}
    train.update({k: o[k] for k in ("retention_set", "generalization_set")})
    if o["encoder_spec"]:
        train["encoder"] = o["encoder_spec"]
    results = sweep(
        o["data"],
        output_dir=o["output_dir"],
        resume=o["resume"],
        address=o["address"],
        use_gpu=o["use_gpu"],
        max_concurrent_trials=o["max_concurrent_trials"],
        max_failures=o["max_failures"],
        guardrails=gcfg,
        mlflow_uri=o["mlflow_uri"],
        mlflow_experiment=o["mlflow_experiment"],
        baseline=o.get("baseline"),
        wandb_project=o["wandb_project"],
        **what,
        **train,
    )
    failed = results.failed_trials
    table_ = results.table
    click.echo(f"{results.trials} trials, {len(failed)} failed; results in {o['output_dir']}/results.parquet")
    for t in failed:
        err = table_.loc[table_["trial_id"] == t, "error"].iloc[0]
        click.echo(f"  failed: {t}: {err}")
    if (table_["status"] == "complete").any():
        click.echo(pareto_table(pareto(results, baseline=o.get("baseline"), legacy_pool=gcfg.legacy_pool)))
    click.echo(f"TensorBoard: tensorboard --logdir {o['output_dir']}/trials")


def pareto_table(front: ParetoResult) -> str:
    """The terminal table of :func:`crucible_ray.pareto`, frontier first."""
    rows = []
    order = front.table.sort_values(["on_frontier", "frontier_probability"], ascending=[False, False], kind="stable")
    for _, r in order.iterrows():
        mark = "*" if r["recommended"] else ("F" if r["on_frontier"] else "")
        rows.append(
            [
                mark,
                r["config"],
                int(r["n_seeds"]),
                _pm(r["retention_mean"], r["retention_ci_low"], r["retention_ci_high"]),
                _pm(r["generalization_mean"], r["generalization_ci_low"], r["generalization_ci_high"]),
                f"{r['frontier_probability']:.2f}",
                "baseline" if r["is_baseline"] else _delta(r),
            ]
        )
    head = [
        "",
        "config",
        "seeds",
        "retention (95% CI)",
        "generalization (95% CI)",
        "P(frontier)",
        "vs baseline (Holm p)",
    ]
    foot = (
        f"* recommended: {front.recommended}   F on the frontier   hypervolume vs (0,0): {front.hypervolume:.4f}   "
        f"baseline: {', '.join(front.baseline['configs'])}"
    )
    return table(head, rows) + "\n" + foot


def _pm(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.3f}" if math.isnan(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _delta(r: Any) -> str:
    if math.isnan(r["retention_delta"]):
        return "-"
    parts = []
    for obj, short in (("retention", "ret"), ("generalization", "gen")):
        p = r[f"{obj}_p_holm"]
        parts.append(f"{short} {r[f'{obj}_delta']:+.3f}" + ("" if math.isnan(p) else f" (p={p:.3f})"))
    return ", ".join(parts)


@click.command("pareto")
@click.option("--results-dir", required=True, type=click.Path(path_type=Path), help="A sweep output dir.")
@click.option("--baseline", default=None, help="Baseline config, e.g. 85_10_5 or 85_10_5@2000 (default: most legacy).")
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True, help="Seed-bootstrap resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option(
    "--export-recommended",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the recommended config's model (its best seed's checkpoint at that step) as a "
    "sentence-transformers model folder.",
)
@click.option(
    "--optuna-storage",
    default=None,
    help="Also write the configs as an Optuna study (two objectives, seed means) to this storage, e.g. "
    "sqlite:///sweep.db, for optuna-dashboard and Optuna's plots.",
)
@click.option("--optuna-study", default=None, help="The study's name (default: crucible-ray/<results dir name>).")
def pareto_command(
    results_dir: Path,
    baseline: str | None,
    n_bootstrap: int,
    as_json: bool,
    export_recommended: Path | None,
    optuna_storage: str | None,
    optuna_study: str | None,
) -> None:
    """Per-config seed statistics, the retention/generalization frontier and a recommended config."""
    from crucible_ray.analysis import pareto

    check_export_folder(export_recommended)
    front = pareto(results_dir, baseline=baseline, n_bootstrap=n_bootstrap)
    if optuna_storage is not None:
        from crucible_ray.sweeps import write_optuna_study

        study = write_optuna_study(front, optuna_storage, source=results_dir, study_name=optuna_study)
        wrote = f"wrote {len(study.trials)} configs as Optuna study {study.study_name!r} in {optuna_storage}"
        click.echo(wrote, err=True)
    if as_json:
        rows = json.loads(front.table.to_json(orient="records"))
        click.echo(json.dumps({"rows": rows, **front.summary()}, indent=2, default=str))
    else:
        click.echo(pareto_table(front))
    if export_recommended is not None:
        from crucible_ray.encoders import export_sentence_transformer
        from crucible_ray.sweeps import recommended_checkpoint

        checkpoint, trial = recommended_checkpoint(results_dir, front)
        folder = export_sentence_transformer(checkpoint, export_recommended)
        click.echo(
            f"exported {front.recommended} (trial {trial}) as a sentence-transformers model: {folder}", err=as_json
        )


@click.group("guardrail")
def guardrail_group() -> None:
    """Dilution, regression and overfitting-cliff guardrails."""


@guardrail_group.command("check")
@click.option("--results-dir", type=click.Path(path_type=Path), default=None, help="A sweep output dir.")
@click.option("--scoreboard", type=click.Path(path_type=Path), default=None, help="One scoreboard JSON.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None, help="Baseline scoreboard (regression).")
@click.option("--baseline-config", default=None, help="Baseline config of the dilution-outcome check.")
@click.option("--mode", type=click.Choice(["warn", "block"]), default="warn", show_default=True)
@click.option("--dilution-floor", type=float, default=None)
@click.option("--dilution-drop", type=float, default=None)
@click.option("--regression-drop", type=float, default=None)
@click.option("--cliff-drop", type=float, default=None)
@click.option("--legacy-pool", default=None, help="The pool whose share the dilution floor guards (default legacy).")
def guardrail_check(**o: Any) -> None:
    """Check a sweep's results (or a scoreboard); exit 1 on a violation in block mode."""
    from crucible_ray.guardrails import check_guardrails

    cfg = GuardrailConfig.from_options(
        mode=o["mode"],
        dilution_floor=o["dilution_floor"],
        dilution_drop=o["dilution_drop"],
        regression_drop=o["regression_drop"],
        cliff_drop=o["cliff_drop"],
        legacy_pool=o["legacy_pool"],
    )
    report = check_guardrails(
        results_dir=o["results_dir"],
        scoreboard=o["scoreboard"],
        baseline=o["baseline"],
        baseline_config=o["baseline_config"],
        config=cfg,
    )
    rows = [[v.check, v.subject, v.message] for v in report.violations]
    click.echo(f"checked: {', '.join(report.checked)} (mode {cfg.mode})")
    if rows:
        click.echo(table(["check", "subject", "finding"], rows))
    else:
        click.echo("no violation")
    for subject, step in sorted(report.early_stop.items()):
        click.echo(f"early stop for {subject}: step {step} (generalization peak)")
    if report.blocked:
        from crucible_ray.errors import GuardrailViolation

        raise GuardrailViolation(f"guardrails blocked: {len(report.violations)} violation(s) in block mode")


@click.command("report")
@click.option("--results-dir", required=True, type=click.Path(path_type=Path), help="A sweep output dir.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="e.g. dashboard.html")
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True, help="Seed-bootstrap resamples.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The sweep's world folder, for the mining funnel (default: the sweep's world if inside --results-dir).",
)
def report_command(results_dir: Path, output: Path, n_bootstrap: int, data: Path | None) -> None:
    """One self-contained HTML report (opens offline): Pareto plot, heatmaps, curves, margins, mining, guardrails."""
    from crucible_ray.reporting import report

    path = report(results_dir, output, n_bootstrap=n_bootstrap, data=data)
    click.echo(f"report written to {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")
