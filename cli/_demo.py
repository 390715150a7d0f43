"""``crucible-ray demo``: the pipeline on the embedded default world."""

from __future__ import annotations

import time
from pathlib import Path

import click
from crucible_ray.cli._render import scoreboard_table

from crucible_ray.encoders import DEFAULT_ENCODER
from crucible_ray.errors import DataError
from crucible_ray.evaluation import evaluate
from crucible_ray.worlds import World, build_world, find_wordnet


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
@click.option(
    "--encoder",
    "encoder_spec",
    default=DEFAULT_ENCODER,
    show_default=True,
    help="The encoder to score (untrained, from its spec).",
)
def demo(output_dir: Path, world_name: str, encoder_spec: str) -> None:
    """Build the default world and score an untrained encoder on it.

    Later stages (training, mining, sweeps, report) join the demo as they land.
    """
    start = time.monotonic()
    if world_name == "auto":
        try:
            find_wordnet()
            world_name = "wordnet"
        except DataError:
            world_name = "synthetic"
            click.echo(
                "WordNet is not installed: using the synthetic world (apt-get install wordnet-base for the real one).",
                err=True,
            )
    world_dir = output_dir / "world"
    click.echo(f"[1/2] building the {world_name} world in {world_dir} ...", err=True)
    build_world(world_name, world_dir)
    world = World.open(world_dir)
    counts = ", ".join(f"{k} {v['rows']}" for k, v in sorted(world.manifest["files"].items()))
    click.echo(f"      {counts}", err=True)
    click.echo(f"[2/2] scoring the untrained {encoder_spec} encoder on {', '.join(world.eval_sets)} ...", err=True)
    board = evaluate(encoder_spec, world.eval_sets)
    path = board.write(output_dir / "scoreboard_untrained.json")
    click.echo(f"\nworld: {world_name}   encoder: {encoder_spec} (untrained)\n")
    click.echo(scoreboard_table(board))
    click.echo(f"\nworld:      {world_dir}\nscoreboard: {path}\ntook {time.monotonic() - start:.0f}s")
