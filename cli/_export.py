"""``crucible-ray export``: a checkpoint as a sentence-transformers model folder."""

from __future__ import annotations

from pathlib import Path

import click

from crucible_ray.errors import ConfigError


def check_export_folder(out: Path | None) -> None:
    """Refuse an export folder that would be refused after the work (before any work starts)."""
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose a new folder to export to")


@click.command("export")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint (.pt) of a sentence-transformer encoder (full or frozen-head).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The model folder to write (new, or an empty folder).",
)
def export_command(checkpoint: Path, out: Path) -> None:
    """Write a checkpoint as a sentence-transformers model folder: SentenceTransformer(OUT) loads it and
    gives the checkpoint's embeddings (safetensors weights, a model card with ratio, steps, seed, scores)."""
    from crucible_ray.encoders import export_sentence_transformer

    folder = export_sentence_transformer(checkpoint, out)
    click.echo(f"sentence-transformers model: {folder}")
    click.echo(f"load it with: SentenceTransformer({str(folder)!r})")
