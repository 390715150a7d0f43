"""Data worlds: synthetic (always) and WordNet (Debian's wordnet-base, installed by make)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import crucible_ray as cr
from crucible_ray.worlds import World, file_sha256, find_wordnet


def _ids(path: Path) -> set[str]:
    rows = cr.read_candidates(path) if "candidates" in path.name else cr.read_bundles(path)
    return {getattr(r, "bundle_id", None) or r.candidate_id for r in rows}  # type: ignore[union-attr]


def test_synthetic_world_files_and_manifest(synthetic_world: Path) -> None:
    world = World.open(synthetic_world)
    assert world.name == "synthetic"
    assert set(world.pools) == {"legacy", "expansion", "organic"}
    assert set(world.eval_sets) == {"frozen_eval", "organic_holdout"}
    for stem, entry in world.manifest["files"].items():
        assert file_sha256(synthetic_world / entry["path"]) == entry["sha256"], stem
    assert world.manifest["seed"] == 0 and "torch" in world.manifest["versions"]


def test_synthetic_pools_disjoint_and_eval_in_legacy(synthetic_world: Path) -> None:
    world = World.open(synthetic_world)
    ids = {k: _ids(p) for k, p in {**world.pools, **world.eval_sets}.items()}
    assert ids["frozen_eval"] <= ids["legacy"]
    for a in ("legacy", "expansion", "organic", "organic_holdout"):
        for b in ("legacy", "expansion", "organic", "organic_holdout"):
            if a < b:
                assert not ids[a] & ids[b], (a, b)


def test_synthetic_killers_are_sisters(synthetic_world: Path) -> None:
    for b in cr.read_bundles(World.open(synthetic_world).path("legacy")):
        domain, family = b.positive.split()[:2]
        for n in b.negatives:
            words = n.text.split()
            assert (words[0] == domain) == (n.tier >= 2), b.bundle_id
            assert (words[1] == family) == (n.tier == 3), b.bundle_id
            assert n.text != b.positive


def test_synthetic_is_reproducible(tmp_path: Path, synthetic_world: Path) -> None:
    again = World.open(cr.build_world("synthetic", tmp_path / "a", seed=0))
    other = World.open(cr.build_world("synthetic", tmp_path / "b", seed=1))
    first = World.open(synthetic_world)
    assert {k: v["sha256"] for k, v in again.manifest["files"].items()} == {
        k: v["sha256"] for k, v in first.manifest["files"].items()
    }
    assert other.manifest["files"]["legacy"]["sha256"] != first.manifest["files"]["legacy"]["sha256"]


def test_synthetic_parquet(tmp_path: Path) -> None:
    world = World.open(cr.build_world("synthetic", tmp_path / "w", format="parquet"))
    assert world.path("legacy").suffix == ".parquet"
    assert len(cr.read_bundles(world.path("legacy"))) == world.manifest["files"]["legacy"]["rows"]


def test_bad_world_options() -> None:
    with pytest.raises(cr.ConfigError, match="option 'legacyy'"):
        cr.build_world("wordnet", "/tmp/never", legacyy=3)
    with pytest.raises(cr.ConfigError, match="unknown world 'atlantis'"):
        cr.build_world("atlantis", "/tmp/never")


def test_missing_wordnet_names_three_ways(tmp_path: Path) -> None:
    with pytest.raises(cr.DataError) as err:
        find_wordnet(tmp_path)
    text = str(err.value)
    assert "wordnet-base" in text and "NLTK" in text and "--wordnet-dir" in text


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(cr.DataError, match="no such data folder"):
        World.open(tmp_path / "none")
    with pytest.raises(cr.DataError, match="no world manifest"):
        World.open(tmp_path)


@pytest.mark.wordnet
def test_wordnet_world(wordnet_world: Path) -> None:
    world = World.open(wordnet_world)
    files = world.manifest["files"]
    assert files["legacy"]["rows"] == 300 and files["frozen_eval"]["rows"] == 100
    assert files["organic_candidates"]["rows"] >= 200 * 0.9 and files["corpus"]["rows"] == 1500
    assert world.manifest["source"]["kind"] == "wordnet"
    legacy = cr.read_bundles(world.path("legacy"))
    frozen = cr.read_bundles(world.path("frozen_eval"))
    assert {b.bundle_id for b in frozen} <= {b.bundle_id for b in legacy}
    organic = cr.read_candidates(world.path("organic_candidates"))
    expansion = cr.read_candidates(world.path("expansion_candidates"))
    assert not {c.candidate_id for c in organic} & {b.bundle_id for b in legacy}
    assert not {c.candidate_id for c in expansion} & {b.bundle_id for b in legacy}
    assert all(c.negatives is None for c in organic) and all(c.negatives for c in expansion)
    for b in legacy:
        tiers = [n.tier for n in b.negatives]
        assert tiers.count(3) >= 2 and tiers == sorted(tiers, reverse=True)
        assert b.positive.lower() not in {n.text.lower() for n in b.negatives}
        assert '"' not in b.anchor  # usage examples are stripped from the gloss


def test_wordnet_reference_comes_from_families_never_mined_or_trained(wordnet_world: Path) -> None:
    """The label-based reference: bundles like the frozen eval (sisters as killers), from whole families
    that share no parent with a legacy, expansion or organic anchor, evaluated as an eval set."""
    world = World.open(wordnet_world)
    assert world.manifest["files"][cr.worlds.REFERENCE_SET]["role"] == "eval"
    assert cr.worlds.REFERENCE_SET in world.eval_sets
    reference = cr.read_bundles(world.path(cr.worlds.REFERENCE_SET))
    assert len(reference) == 100
    legacy = cr.read_bundles(world.path("legacy"))
    candidates = [
        *cr.read_candidates(world.path("organic_candidates")),
        *cr.read_candidates(world.path("expansion_candidates")),
    ]
    seen_ids = {b.bundle_id for b in legacy} | {c.candidate_id for c in candidates}
    assert not {b.bundle_id for b in reference} & seen_ids
    # Sisters share a parent: a reference family disjoint from the others means no reference positive
    # is the killer of a legacy or expansion anchor, and no killer of a reference anchor is a seen positive.
    seen_positives = {b.positive for b in legacy} | {c.positive for c in candidates}
    killers = {n.text for b in legacy for n in b.negatives if n.tier == 3}
    assert not {b.positive for b in reference} & killers
    assert not {n.text for b in reference for n in b.negatives if n.tier == 3} & seen_positives
    assert all([n.tier for n in b.negatives].count(3) >= 2 for b in reference)


def _anchor_owners(world: World) -> dict[str, set[tuple[str, str]]]:
    """Every anchor text (normalised) of every pool, eval set and candidate file: the ids and positives."""
    owners: dict[str, set[tuple[str, str]]] = {}
    for name in world.manifest["files"]:
        if name == "corpus":
            continue
        path = world.path(name)
        rows = cr.read_candidates(path) if "candidates" in name else cr.read_bundles(path)
        for r in rows:
            key = getattr(r, "bundle_id", None) or r.candidate_id  # type: ignore[union-attr]
            owners.setdefault(" ".join(r.anchor.lower().split()), set()).add((key, r.positive))
    return owners


@pytest.mark.wordnet
def test_wordnet_anchor_texts_are_unique(wordnet_world: Path) -> None:
    # A gloss shared by several synsets (e.g. "one species") gave one anchor text several positives.
    world = World.open(wordnet_world)
    owners = _anchor_owners(world)
    shared = {text: sorted(o) for text, o in owners.items() if len(o) > 1}
    assert not shared, list(shared.items())[:3]
    # every file was looked at, and the sizes asked for are still met (other synsets take their place)
    files = world.manifest["files"]
    assert {"legacy", "frozen_eval", "expansion_candidates", "organic_candidates"} <= set(files)
    assert files["legacy"]["rows"] == 300 and files["frozen_eval"]["rows"] == 100
    assert files["expansion_candidates"]["rows"] == 60 and files["organic_candidates"]["rows"] >= 200 * 0.9


@pytest.mark.wordnet
def test_wordnet_expansion_candidates_keep_anchor_texts_unique(wordnet_world: Path) -> None:
    from crucible_ray.worlds import wordnet_killer_neighbours

    world = World.open(wordnet_world)
    positives = {text: {p for _, p in owners} for text, owners in _anchor_owners(world).items()}
    generated = list(wordnet_killer_neighbours(world, 400))
    assert len(generated) > 50
    for c in generated:
        positives.setdefault(" ".join(c.anchor.lower().split()), set()).add(c.positive)
    assert not {text: p for text, p in positives.items() if len(p) > 1}


@pytest.mark.wordnet
@pytest.mark.slow
def test_default_wordnet_world_anchor_texts_are_unique() -> None:
    # The default sizes reach shared glosses in legacy and frozen_eval too ("an evil spirit").
    from crucible_ray.worlds._wordnet import WordNetWorldConfig, build_wordnet_content

    content = build_wordnet_content(WordNetWorldConfig(), find_wordnet())
    owners: dict[str, set[str]] = {}
    for rows in [*content.bundles.values(), *content.candidates.values()]:
        for r in rows:
            owners.setdefault(" ".join(r.anchor.lower().split()), set()).add(r.positive)
    assert not {text: p for text, p in owners.items() if len(p) > 1}
    assert len(content.bundles["legacy"]) == WordNetWorldConfig().legacy


@pytest.mark.wordnet
def test_wordnet_known_synset(wordnet_world: Path) -> None:
    from crucible_ray.worlds._wordnet_db import read_noun_synsets

    synsets = read_noun_synsets(find_wordnet())
    dog = synsets["02084071"]
    assert dog.text.startswith("dog, domestic dog, Canis familiaris")
    assert dog.definition.startswith("a member of the genus Canis")
    assert dog.lexname == "noun.animal"
    manifest = json.loads((wordnet_world / "manifest.json").read_text())
    assert len(manifest["source"]["data.noun.sha256"]) == 64


def test_eval_sets_are_every_file_with_the_eval_role_by_any_name(synthetic_world: Path, tmp_path: Path) -> None:
    import shutil

    from crucible_ray.training import TrainConfig, prepare_training

    root = tmp_path / "w"
    shutil.copytree(synthetic_world, root)
    held = cr.read_bundles(root / "frozen_eval.jsonl")[:20]
    cr.write_bundles(root / "support_questions.jsonl", held)
    world = World.open(root).register("support_questions", root / "support_questions.jsonl", role="eval", rows=20)
    assert list(world.eval_sets) == ["frozen_eval", "organic_holdout", "support_questions"]
    assert "support_questions" not in world.pools
    prepared = prepare_training(root, TrainConfig(ratio="75_15_10", steps=[10]))
    assert "support_questions" in prepared.data.eval_sets  # every run scores it too
    # A hand-written manifest without roles still has its standard eval sets.
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["files"].values():
        entry.pop("role", None)
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert set(World.open(root).eval_sets) == {"frozen_eval", "organic_holdout"}
