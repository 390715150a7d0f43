"""``crucible-ray train``: one curriculum training run on Ray Train."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from crucible_ray.cli._eval import encoder_help
from crucible_ray.cli._export import check_export_folder
from crucible_ray.cli._params import RATIO, mlflow_options, model_option
from crucible_ray.cli._render import table
from crucible_ray.cli._sweep import guardrail_options, guardrails_from

from crucible_ray.encoders import DEFAULT_ENCODER, normalize_spec
from crucible_ray.errors import ConfigError
from crucible_ray.training import TrainConfig

_F = TrainConfig.model_fields


#: The training settings offered as options, in this order; each option's type, default and help come
#: from the TrainConfig field (the ratio, the steps and the encoder are parsed by their own types).
TRAIN_FIELDS = (
    "seed",
    "workers",
    "batch_size",
    "negatives_per_bundle",
    "temperature",
    "lr",
    "weight_decay",
    "warmup_steps",
    "schedule",
    "grad_clip",
    "eval_every",
    "quality_weighting",
    "retention_set",
    "generalization_set",
)


def _train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed(TRAIN_FIELDS):
        fn = model_option(name, TrainConfig)(fn)
    return fn


@click.command("train")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="World folder (with its pools).")
@click.option(
    "--ratio",
    type=RATIO,
    default=str(_F["ratio"].default),
    show_default=True,
    help="Pool mix: 75_15_10 (legacy 75%, expansion 15%, organic 10%) or by pool name, for worlds with "
    "other pools (legacy=70,support=20,organic=10).",
)
@click.option(
    "--steps",
    default=",".join(map(str, _F["steps"].default)),
    show_default=True,
    help="Milestones, e.g. 5000,10000 (one run, evaluated at each).",
)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--encoder", "encoder_spec", default=None, help=encoder_help() + f" Default: {DEFAULT_ENCODER}.")
@_train_options
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Train on GPUs (default: when the cluster has them).")
@click.option("--max-failures", type=int, default=3, show_default=True, help="Worker-group restarts allowed.")
@click.option("--restart", is_flag=True, help="Start over instead of continuing an interrupted run.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local instance).")
@click.option(
    "--export-st",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the final model as a sentence-transformers model folder (sentence-transformer encoders).",
)
@guardrail_options
@mlflow_options
def train_command(**o: Any) -> None:
    """Train an encoder on a world's pools by a ratio; checkpoints, scoreboards and TensorBoard per milestone."""
    from crucible_ray.distributed import train

    if o["export_st"] is not None:  # refused now rather than after the training
        check_export_folder(o["export_st"])
        kind = normalize_spec(o["encoder_spec"] or DEFAULT_ENCODER)["kind"]
        if kind != "sentence-transformer":
            raise ConfigError(
                f"--export-st needs a sentence-transformer encoder (e.g. --encoder minilm:mode=frozen-head); "
                f"a {kind!r} model has no sentence-transformers form"
            )
    options = {k: o[k] for k in TRAIN_FIELDS if k not in ("seed", "workers") and o[k] is not None}
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
        mlflow_uri=o["mlflow_uri"],
        mlflow_experiment=o["mlflow_experiment"],
        **options,
    )
    rows = [[step, b.retention, b.generalization] for step, b in sorted(res.milestones.items())]
    click.echo(table(["step", "retention", "generalization"], rows))
    click.echo(f"checkpoints, scoreboards and TensorBoard logs in {res.output_dir}")
    if o["export_st"] is not None:
        from crucible_ray.encoders import export_sentence_transformer

        folder = export_sentence_transformer(res.checkpoint, o["export_st"])
        click.echo(f"the final model as a sentence-transformers model folder: {folder}")
