"""``crucible-ray demo``: the whole pipeline on the embedded default world (WordNet when installed)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from crucible_ray.cli._params import mlflow_options
from crucible_ray.cli._render import table


@click.command()
@click.option(
    "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"), show_default=True
)
@click.option(
    "--world",
    "world_name",
    type=click.Choice(["auto", "wordnet", "synthetic"]),
    default="auto",
    show_default=True,
    help="auto: WordNet when it is installed, else the synthetic world.",
)
@click.option("--quick", is_flag=True, help="A smaller run: fewer steps, trials and expansion candidates.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local instance).")
@mlflow_options
def demo(
    output_dir: Path,
    world_name: str,
    quick: bool,
    address: str | None,
    mlflow_uri: str | None,
    mlflow_experiment: str | None,
) -> None:
    """Build the world, train a base model, mine and vet killers with it, sweep ratio x seed x steps,
    analyse (Pareto, guardrails) and write the HTML report."""
    from crucible_ray.analysis import mining_lines
    from crucible_ray.demo import run_demo

    start = time.monotonic()
    res = run_demo(
        output_dir,
        world=world_name,
        quick=quick,
        address=address,
        mlflow_uri=mlflow_uri,
        mlflow_experiment=mlflow_experiment,
    )
    c, e = res.organic.counts, res.expansion.counts
    base = res.base.final
    click.echo(f"\nworld: {res.world_name} ({res.world})")
    click.echo(f"base model (legacy only): retention {base.retention:.3f}  -> {res.base.checkpoint}")
    click.echo(
        f"organic mining: {c['accepted']} of {c['candidates']} candidates survived the lineups "
        f"(pass rate {c['pass_rate']:.1%}); expansion: {e['accepted']} of {e['candidates']} vetted"
    )
    click.echo(f"sweep: {res.results.trials} trials -> {res.sweep_dir / 'results.parquet'}")
    front = res.front.table.sort_values("frontier_probability", ascending=False)
    rows = [
        [
            r["config"],
            f"{r['retention_mean']:.3f}",
            f"{r['generalization_mean']:.3f}",
            "yes" if r["on_frontier"] else "",
            f"{r['frontier_probability']:.2f}",
        ]
        for _, r in front.iterrows()
    ]
    click.echo(table(["config", "retention", "generalization", "frontier", "P(frontier)"], rows))
    for line in res.recommendation():
        click.echo(line)
    click.echo("findings (95% intervals across seeds):")
    for line in [*res.findings.lines(), *mining_lines("organic mining", res.organic.manifest)]:
        click.echo(f"  {line}")
    v = res.guardrails.violations
    click.echo(f"guardrails: {len(v)} finding(s)" + "".join(f"\n  {x.check}: {x.subject}: {x.message}" for x in v))
    click.echo(f"report: {res.dashboard}  (open it in a browser; works offline)")
    click.echo(f"TensorBoard: tensorboard --logdir {res.sweep_dir / 'trials'}")
    click.echo("stages: " + ", ".join(f"{k} {s:.0f}s" for k, s in res.seconds.items()))
    click.echo(f"took {time.monotonic() - start:.0f}s")
