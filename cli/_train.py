"""``crucible-ray train``: one curriculum training run on Ray Train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from crucible_ray.cli._eval import encoder_help
from crucible_ray.cli._params import RATIO
from crucible_ray.cli._render import table
from crucible_ray.cli._sweep import guardrail_options, guardrails_from

from crucible_ray.training import TrainConfig

_F = TrainConfig.model_fields


@click.command("train")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="World folder (with its pools).")
@click.option(
    "--ratio",
    type=RATIO,
    default=str(_F["ratio"].default),
    show_default=True,
    help="Pool mix legacy_expansion_organic.",
)
@click.option(
    "--steps", default="1000", show_default=True, help="Milestones, e.g. 5000,10000 (one run, evaluated at each)."
)
@click.option("--seed", type=int, default=_F["seed"].default, show_default=True)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--encoder", "encoder_spec", default=None, help=encoder_help() + " Default: hashed-ngram.")
@click.option("--workers", type=int, default=1, show_default=True, help="Ray Train workers.")
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Train on GPUs (default: when the cluster has them).")
@click.option("--batch-size", type=int, default=_F["batch_size"].default, show_default=True)
@click.option("--negatives-per-bundle", type=int, default=_F["negatives_per_bundle"].default, show_default=True)
@click.option("--temperature", type=float, default=_F["temperature"].default, show_default=True)
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: by encoder kind).")
@click.option("--warmup-steps", type=int, default=None, help="Default: 5% of the largest milestone.")
@click.option("--schedule", type=click.Choice(["cosine", "linear", "constant"]), default="cosine", show_default=True)
@click.option("--eval-every", type=int, default=0, show_default=True, help="Also evaluate every N steps.")
@click.option("--quality-weighting", is_flag=True, help="Draw organic bundles in proportion to pass_count.")
@click.option("--max-failures", type=int, default=3, show_default=True, help="Worker-group restarts allowed.")
@click.option("--restart", is_flag=True, help="Start over instead of continuing an interrupted run.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local instance).")
@guardrail_options
def train_command(**o: Any) -> None:
    """Train an encoder on a world's pools by a ratio; checkpoints, scoreboards and TensorBoard per milestone."""
    from crucible_ray.distributed import train

    options = {
        k: o[k]
        for k in (
            "batch_size",
            "negatives_per_bundle",
            "temperature",
            "lr",
            "warmup_steps",
            "schedule",
            "eval_every",
            "quality_weighting",
        )
        if o[k] is not None
    }
    res = train(
        o["data"],
        output_dir=o["output_dir"],
        ratio=o["ratio"],
        steps=o["steps"],
        seed=o["seed"],
        encoder=o["encoder_spec"],
        workers=o["workers"],
        use_gpu=o["use_gpu"],
        address=o["address"],
        max_failures=o["max_failures"],
        restart=o["restart"],
        guardrails=guardrails_from(o),
        **options,
    )
    rows = [[step, b.retention, b.generalization] for step, b in sorted(res.milestones.items())]
    click.echo(table(["step", "retention", "generalization"], rows))
    click.echo(f"checkpoints, scoreboards and TensorBoard logs in {res.output_dir}")
