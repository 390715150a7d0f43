"""``crucible-ray eval``: score a checkpoint or an untrained encoder on eval sets."""

from __future__ import annotations

from pathlib import Path

import click
from crucible_ray.cli._params import EVAL_SET, model_option
from crucible_ray.cli._render import scoreboard_table

from crucible_ray.data import check_outputs
from crucible_ray.encoders import encoder_kinds
from crucible_ray.errors import ConfigError
from crucible_ray.evaluation import eval_set_name, evaluate
from crucible_ray.mining import MiningExecution
from crucible_ray.scoreboard import DEFAULT_DANGER_MARGIN, GENERALIZATION_SET, RETENTION_SET


def encoder_help() -> str:
    kinds = "; ".join(f"{k}: {v.description}" for k, v in encoder_kinds().items())
    return (
        "Untrained encoder spec, e.g. hashed-ngram or hashed-ngram:dim=256,seed=0 or minilm:mode=frozen-head "
        f"(JSON also works). Kinds: {kinds}."
    )


@click.command("eval")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="A checkpoint (.pt).")
@click.option("--encoder", "encoder_spec", help=encoder_help())
@click.option(
    "--eval-set",
    "eval_sets",
    type=EVAL_SET,
    multiple=True,
    help="Eval set file (JSONL/Parquet bundles), as PATH or NAME=PATH; repeatable. The name defaults to the file stem.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="A world folder: score every eval set it declares, by its name (with any --eval-set).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scoreboard JSON to write (atomically).",
)
@click.option(
    "--danger-margin",
    type=float,
    default=DEFAULT_DANGER_MARGIN,
    show_default=True,
    help="A bundle is in danger when its margin is <= this.",
)
@click.option(
    "--retention-set", default=RETENTION_SET, show_default=True, help="Eval set whose tier-3 accuracy is the retention."
)
@click.option(
    "--generalization-set",
    default=GENERALIZATION_SET,
    show_default=True,
    help="Eval set whose tier-3 accuracy is the generalization.",
)
@click.option("--device", help="cpu, cuda, cuda:1... (default: CUDA when available).")
@model_option("embedding_cache", MiningExecution)
@model_option("embedding_cache_size", MiningExecution)
def eval_command(
    checkpoint: Path | None,
    encoder_spec: str | None,
    eval_sets: tuple[tuple[str | None, Path], ...],
    output: Path,
    danger_margin: float,
    retention_set: str,
    generalization_set: str,
    device: str | None,
    data: Path | None,
    embedding_cache: str | None,
    embedding_cache_size: str | None,
) -> None:
    """Score a model on eval sets and write a scoreboard."""
    if (checkpoint is None) == (encoder_spec is None):
        raise click.UsageError("give exactly one of --checkpoint CKPT or --encoder SPEC.")
    if not eval_sets and data is None:
        raise click.UsageError("give --eval-set PATH (repeatable) or --data WORLD.")
    named: dict[str, Path] = {}
    if data is not None:
        from crucible_ray.worlds import World

        named.update(World.open(data).eval_sets)
    for name, path in eval_sets:
        key = name or eval_set_name(path)
        if key in named:
            raise ConfigError(f"two eval sets are named {key!r}; name them as NAME=PATH.")
        named[key] = path
    check_outputs(
        outputs={"--output": output},
        inputs={"--checkpoint": checkpoint, **{f"--eval-set {name}": path for name, path in named.items()}},
    )
    model = checkpoint if checkpoint is not None else encoder_spec
    assert model is not None
    board = evaluate(
        model,
        named,
        danger_margin=danger_margin,
        retention_set=retention_set,
        generalization_set=generalization_set,
        device=device,
        embedding_cache=True if embedding_cache is None else embedding_cache,
        embedding_cache_size=embedding_cache_size,
    )
    board.write(output)
    click.echo(scoreboard_table(board))
    click.echo(f"\nscoreboard written to {output}")
