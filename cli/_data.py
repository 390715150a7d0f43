"""``crucible-ray data``: build, inspect and validate data worlds and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from crucible_ray.cli._params import KEY_VALUE, RATIO
from crucible_ray.cli._render import table
from pydantic import BaseModel

from crucible_ray.config import Ratio
from crucible_ray.data import Bundle, Candidate, CorpusDoc, read_rows
from crucible_ray.worlds import WORLDS, SyntheticWorldConfig, WordNetWorldConfig, World, build_world, world_config


def _option_help() -> str:
    def names(model: type[BaseModel]) -> str:
        return ", ".join(k for k in model.model_fields if k not in ("seed", "format"))

    return (
        "World option as KEY=VALUE (repeatable). wordnet: "
        f"{names(WordNetWorldConfig)}. synthetic: {names(SyntheticWorldConfig)}."
    )


@click.group()
def data() -> None:
    """Build, inspect and validate data."""


@data.command("build")
@click.option(
    "--world",
    "world_name",
    type=click.Choice(WORLDS),
    default="wordnet",
    show_default=True,
    help="wordnet: the real world (WordNet 3.0 nouns); synthetic: tiny, seeded, dependency-free.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option(
    "--wordnet-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding WordNet's data.noun (default: $WORDNET_DIR, /usr/share/wordnet, NLTK data).",
)
@click.option("-o", "--option", "options", type=KEY_VALUE, multiple=True, help=_option_help())
def build(
    world_name: str, out: Path, seed: int, fmt: str, wordnet_dir: Path | None, options: tuple[tuple[str, Any], ...]
) -> None:
    """Build a data world: pools, frozen eval, candidates, corpus and a manifest."""
    opts = {**dict(options), "seed": seed, "format": fmt}
    world_config(world_name, opts)  # validate before any work
    root = build_world(world_name, out, wordnet_dir=wordnet_dir, **opts)
    click.echo(_world_summary(World.open(root)))


def _named(values: tuple[str, ...], option: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise click.BadParameter(f"expected NAME=FILE, but got {v!r}", param_hint=option)
        if name.strip() in out:
            raise click.BadParameter(f"{name.strip()!r} is given twice", param_hint=option)
        out[name.strip()] = Path(path.strip())
    return out


@data.command("import")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The world folder to create."
)
@click.option(
    "--corpus", required=True, type=click.Path(path_type=Path), help="id, text rows (negatives are mined from it)."
)
@click.option(
    "--legacy",
    required=True,
    type=click.Path(path_type=Path),
    help="The known hard cases: bundles, sentence-transformers rows (anchor, positive, negative[_1..n]), "
    "or plain anchor, positive pairs (negatives mined from the corpus).",
)
@click.option("--frozen-eval", type=click.Path(path_type=Path), help="The retention eval set (same layouts).")
@click.option(
    "--frozen-fraction", type=float, help="Or: hold this seeded share of the legacy bundles as the frozen eval."
)
@click.option("--candidates", type=click.Path(path_type=Path), help="anchor, positive (optional id) rows for `mine`.")
@click.option("--expansion", type=click.Path(path_type=Path), help="An expansion pool (same layouts as --legacy).")
@click.option("--pool", "pools", multiple=True, help="Another pool as NAME=FILE (repeatable).")
@click.option("--eval", "evals", multiple=True, help="Another eval set as NAME=FILE (repeatable); never trained on.")
@click.option(
    "--column", "columns", type=KEY_VALUE, multiple=True, help="Map a column: TARGET=YOURS, e.g. anchor=question."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the frozen-eval draw.")
@click.option(
    "--negatives",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Negatives mined from the corpus per plain pair (rows without negatives).",
)
@click.option(
    "--negatives-model",
    default="hashed-ngram",
    show_default=True,
    help="Encoder spec that ranks the corpus for those negatives (e.g. your model: sentence-transformer:model=DIR).",
)
def import_command(**o: Any) -> None:
    """Make a world folder from your files (JSONL, CSV, Parquet or a datasets save_to_disk folder)."""
    from crucible_ray.worlds import import_world

    root = import_world(
        o["out"],
        corpus=o["corpus"],
        legacy=o["legacy"],
        frozen_eval=o["frozen_eval"],
        frozen_fraction=o["frozen_fraction"],
        candidates=o["candidates"],
        expansion=o["expansion"],
        pools=_named(o["pools"], "--pool"),
        eval_sets=_named(o["evals"], "--eval"),
        columns={k: str(v) for k, v in o["columns"]},
        seed=o["seed"],
        negatives=o["negatives"],
        negatives_model=o["negatives_model"],
    )
    click.echo(_world_summary(World.open(root)))


def _world_summary(world: World) -> str:
    files = world.manifest["files"]
    rows = [[stem, f["role"], f["rows"], f["path"]] for stem, f in sorted(files.items(), key=lambda kv: kv[1]["role"])]
    return f"world {world.name} in {world.root}\n" + table(["file", "role", "rows", "path"], rows)


@data.command("inspect")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--ratio", type=RATIO, help="Show the per-batch pool quotas of this ratio (e.g. 75_15_10).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
def inspect(data_dir: Path, ratio: Ratio | str | None, batch_size: int) -> None:
    """Show a world's files and, with --ratio, how a batch would be drawn from its pools."""
    world = World.open(data_dir)
    click.echo(_world_summary(world))
    if ratio is not None:
        ratio = Ratio.parse(ratio, world.ratio_pools()) if isinstance(ratio, str) else ratio
        quotas = ratio.quotas(batch_size)
        files = world.manifest["files"]
        rows = []
        for pool, q in quotas.items():
            size = files.get(pool, {}).get("rows", 0)
            note = "" if q == 0 or size else "  <- no bundles: training would refuse this ratio"
            rows.append([pool, f"{ratio.weights[pool]}%", q, size, note])
        click.echo(f"\nratio {ratio.canonical}, batch size {batch_size}:")
        click.echo(table(["pool", "share", "per batch", "bundles", ""], rows))


_KINDS: dict[str, type[BaseModel]] = {"bundles": Bundle, "candidates": Candidate, "corpus": CorpusDoc}


@data.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["auto", *_KINDS]),
    default="auto",
    show_default=True,
    help="Row type; auto: *candidates* files are candidates, *corpus* files a corpus, others bundles.",
)
def validate(files: tuple[Path, ...], kind: str) -> None:
    """Validate data files row by row; the first bad row is reported as path:line."""
    for path in files:
        k = kind
        if k == "auto":
            k = "candidates" if "candidates" in path.name else "corpus" if "corpus" in path.name else "bundles"
        rows: list[BaseModel] = read_rows(path, _KINDS[k])
        click.echo(f"{path}: {len(rows)} valid {k} rows")
