"""``crucible-ray export``: a checkpoint as a sentence-transformers model folder."""

from __future__ import annotations

from pathlib import Path

import click

from crucible_ray.data import check_new_folder


def check_export_folder(out: Path | None) -> None:
    """Refuse an export folder that would be refused after the work (before any work starts)."""
    if out is not None:
        check_new_folder(out, "the export folder")


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
