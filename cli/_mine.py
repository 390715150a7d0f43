"""``crucible-ray mine`` and ``crucible-ray expand``: the miner on Ray Data, from the terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from crucible_ray.cli._eval import encoder_help
from crucible_ray.cli._params import model_help, model_option

from crucible_ray.encoders import DEFAULT_ENCODER
from crucible_ray.mining import MinerConfig, MiningExecution, MiningResult

#: The miner settings offered as options, in this order; each option's type, default and help come
#: from the MinerConfig field (``holdout_fraction`` is mine's alone: expansion keeps no holdout).
MINER_FIELDS = (
    "lineups",
    "lineup_size",
    "min_passes",
    "neighbors",
    "rank_min",
    "rank_max",
    "danger_margin",
    "max_danger",
    "keep_near_misses",
    "seed",
)

#: The execution settings offered as options; each option's default and help come from the
#: MiningExecution field. ``use_gpu`` is ``--gpu/--no-gpu`` and ``resume`` is ``--restart`` (below).
EXECUTION_FIELDS = (
    "actors",
    "batch_size",
    "gpus_per_actor",
    "address",
    "corpus_store",
    "embedding_cache",
    "embedding_cache_size",
)
_EXEC = MiningExecution.model_fields


def _miner_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``mine`` and ``expand`` (validation rules live in MinerConfig)."""
    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="A trained checkpoint (.pt)."
        ),
        click.option("--encoder", "encoder_spec", help=encoder_help() + f" Default: {DEFAULT_ENCODER}."),
        *(model_option(name, MinerConfig) for name in MINER_FIELDS),
        *(model_option(name, MiningExecution) for name in EXECUTION_FIELDS[:2]),
        click.option(
            "--gpu/--no-gpu",
            "use_gpu",
            default=_EXEC["use_gpu"].default,
            help=model_help(_EXEC["use_gpu"].description),
        ),
        *(model_option(name, MiningExecution) for name in EXECUTION_FIELDS[2:]),
        click.option(
            "--restart", is_flag=True, help="Discard the finished parts of an interrupted run instead of resuming."
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _model(checkpoint: Path | None, encoder_spec: str | None) -> Path | str:
    if checkpoint is not None and encoder_spec is not None:
        raise click.UsageError("give one of --checkpoint CKPT or --encoder SPEC, not both.")
    return checkpoint if checkpoint is not None else (encoder_spec or DEFAULT_ENCODER)


def _config(o: dict[str, Any], holdout_fraction: float = 0.0) -> MinerConfig:
    return MinerConfig.from_options(**{k: o[k] for k in MINER_FIELDS}, holdout_fraction=holdout_fraction)


def _execution(o: dict[str, Any]) -> MiningExecution:
    return MiningExecution.from_options(
        **{k: o[k] for k in EXECUTION_FIELDS}, use_gpu=o["use_gpu"], resume=not o["restart"]
    )


def _report(res: MiningResult) -> None:
    c = res.counts
    click.echo(
        f"candidates {c['candidates']}: accepted {c['accepted']} (pass rate {100 * c['pass_rate']:.1f}%), "
        f"rejected {c['rejected']}, insufficient {c['insufficient']}"
    )
    hist = c["pass_count_histogram"]
    click.echo("pass_count histogram: " + "  ".join(f"{k}:{v}" for k, v in hist.items()))
    click.echo(f"results  {res.results}\nmanifest {res.manifest_path}")
    for name, path in res.manifest["outputs"]["bundles"].items():
        click.echo(f"bundles ({name}) {path}")
    if res.manifest["outputs"]["st_export"]:
        click.echo(f"sentence-transformers export {res.manifest['outputs']['st_export']}")


@click.command("mine")
@click.option(
    "--candidates", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Candidates (JSONL/Parquet)."
)
@click.option(
    "--corpus",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Corpus (id, text) for candidates without negatives.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results (.parquet); manifest beside it.",
)
@model_option("holdout_fraction", MinerConfig)
@click.option(
    "--bundles-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where organic bundles go (default: the folder of --out).",
)
@click.option("--pool", default="organic", show_default=True, help="Pool name of the accepted bundles.")
@click.option("--holdout-pool", default="organic_holdout", show_default=True, help="Name of the holdout eval set.")
@click.option(
    "--st-export",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write anchor/positive/negative_1..n JSONL for sentence-transformers.",
)
@click.option("--st-negatives", type=int, default=3, show_default=True, help="Negatives per row of --st-export.")
@_miner_options
def mine_command(**o: Any) -> None:
    """Validate candidates over K negative lineups; keep those dangerous in at least P of them."""
    from crucible_ray.distributed import mine

    res = mine(
        o["candidates"],
        out=o["out"],
        model=_model(o["checkpoint"], o["encoder_spec"]),
        corpus=o["corpus"],
        config=_config(o, o["holdout_fraction"]),
        bundles_dir=o["bundles_dir"],
        pool=o["pool"],
        holdout_pool=o["holdout_pool"],
        st_export=o["st_export"],
        st_negatives=o["st_negatives"],
        execution=_execution(o),
    )
    _report(res)


@click.command("expand")
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path), help="World folder.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Vetted pool (.jsonl), e.g. DIR/expansion.jsonl.",
)
@click.option(
    "--generator",
    default=None,
    help="wordnet, world, or package.module:function (default: wordnet on WordNet worlds, else world).",
)
@click.option("--limit", type=int, default=2000, show_default=True, help="At most this many generated candidates.")
@_miner_options
def expand_command(**o: Any) -> None:
    """Generate tier-3 candidates near the legacy killers and keep those the validator accepts."""
    from crucible_ray.distributed import expand

    res = expand(
        o["data"],
        out=o["out"],
        model=_model(o["checkpoint"], o["encoder_spec"]),
        generator=o["generator"],
        limit=o["limit"],
        config=_config(o),
        execution=_execution(o),
    )
    _report(res)
