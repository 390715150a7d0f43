"""`data import`: a world from a team's own files (CSV, JSONL, Parquet), any column and pool names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
from crucible_ray.errors import ConfigError, DataError
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker

TOPICS = ["printer", "invoice", "password", "laptop", "vpn", "email", "badge", "payroll", "desk", "phone"]


def _write_inputs(root: Path) -> dict[str, Path]:
    """A help-desk world: questions and answers (CSV, sentence-transformers layout), a Parquet corpus
    with integer ids (as MS MARCO), candidates with integer ids, a support pool and a weekly eval set."""
    root.mkdir(parents=True, exist_ok=True)
    legacy = root / "known.csv"
    with legacy.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer", "negative_1", "negative_2"])
        for i, t in enumerate(TOPICS * 3):
            w.writerow([f"how do I fix my {t} ({i})", f"{t} fix guide {i}", f"{t} order form", f"{t} price list {i}"])
    pd.DataFrame(
        {"id": list(range(200)), "text": [f"document {i} about {TOPICS[i % 10]}" for i in range(200)]}
    ).to_parquet(root / "corpus.parquet")
    cands = root / "new.jsonl"
    cands.write_text(
        "".join(
            json.dumps({"id": 1000 + i, "question": f"new {t} issue", "answer": f"{t} howto"}) + "\n"
            for i, t in enumerate(TOPICS)
        )
    )
    support = root / "support.jsonl"
    support.write_text(
        "".join(
            json.dumps(
                {
                    "question": f"support {t}",
                    "answer": f"{t} support page",
                    "negatives": [f"{t} faq", {"text": f"{t} blog", "tier": 2}],
                }
            )
            + "\n"
            for t in TOPICS
        )
    )
    weekly = root / "weekly.jsonl"
    weekly.write_text(
        "".join(
            json.dumps({"question": f"weekly {t}", "answer": f"{t} weekly", "negative": f"{t} misc"}) + "\n"
            for t in TOPICS
        )
    )
    return {
        "legacy": legacy,
        "corpus": root / "corpus.parquet",
        "candidates": cands,
        "support": support,
        "weekly": weekly,
    }


def _import(tmp_path: Path, out: Path, **over: object) -> Path:
    f = _write_inputs(tmp_path / "in")
    kwargs: dict[str, object] = {
        "corpus": f["corpus"],
        "legacy": f["legacy"],
        "frozen_fraction": 0.3,
        "candidates": f["candidates"],
        "pools": {"support": f["support"]},
        "eval_sets": {"weekly": f["weekly"]},
        "columns": {"anchor": "question", "positive": "answer"},
        "seed": 1,
    }
    kwargs.update(over)
    return cr.import_world(out, **kwargs)  # type: ignore[arg-type]


def test_an_imported_world_opens_and_trains_by_pool_name(tmp_path: Path) -> None:
    root = _import(tmp_path, tmp_path / "world")
    world = cr.World.open(root)
    assert list(world.pools) == ["legacy", "support"]
    assert set(world.eval_sets) == {"frozen_eval", "weekly"}
    legacy = cr.read_bundles(world.pools["legacy"])
    assert len(legacy) == 30 and all(n.tier == 3 for b in legacy for n in b.negatives)
    assert legacy[0].anchor == "how do I fix my printer (0)" and legacy[0].positive == "printer fix guide 0"
    frozen = cr.read_bundles(world.eval_sets["frozen_eval"])
    assert 0 < len(frozen) < 30 and {b.bundle_id for b in frozen} <= {b.bundle_id for b in legacy}
    support = cr.read_bundles(world.pools["support"])
    assert [n.tier for n in support[0].negatives] == [3, 2]
    corpus = cr.read_corpus(world.path("corpus"))
    assert corpus[5].id == "5"  # integer ids become strings
    assert cr.read_candidates(world.path("candidates"))[0].candidate_id == "1000"
    source = world.manifest["source"]
    assert source["kind"] == "import" and len(source["files"]["legacy"]["sha256"]) == 64
    # The same inputs and seed give the same world, file for file.
    again = cr.World.open(_import(tmp_path / "b", tmp_path / "world2"))
    for stem, entry in world.manifest["files"].items():
        assert entry["sha256"] == again.manifest["files"][stem]["sha256"], stem
    cfg = TrainConfig(ratio="legacy=80,support=20", steps=[5], seed=0, batch_size=8)
    prep = prepare_training(root, cfg)
    assert set(prep.data.eval_sets) == {"frozen_eval", "weekly"}
    train_worker(cfg, prep.data, tmp_path / "run", WorkerContext())
    board = cr.Scoreboard.read(tmp_path / "run" / "scoreboard_final.json")
    assert "weekly" in board.eval_sets and board.retention is not None


@pytest.mark.parametrize(
    ("over", "error", "message"),
    [
        ({"columns": {"question": "anchor"}}, ConfigError, "unknown target column"),
        (
            {"columns": {"anchor": "query", "positive": "answer"}},
            DataError,
            "known.csv:2: column 'query' .mapped to 'anchor'. is not there",
        ),
        ({"frozen_fraction": None}, ConfigError, "either a frozen eval file"),
        ({"eval_sets": {"weekly": "LEGACY"}}, DataError, "must not share anchors with a training pool"),
        ({"pools": {"corpus": "SUPPORT"}}, ConfigError, "already used"),
    ],
)
def test_bad_imports_name_the_problem_and_leave_nothing(
    tmp_path: Path, over: dict[str, object], error: type[Exception], message: str
) -> None:
    f = _write_inputs(tmp_path / "in")
    resolved = {
        k: (
            {n: f["legacy"] if p == "LEGACY" else f["support"] if p == "SUPPORT" else p for n, p in v.items()}
            if isinstance(v, dict) and k != "columns"
            else v
        )
        for k, v in over.items()
    }
    out = tmp_path / "world"
    with pytest.raises(error, match=message):
        _import(tmp_path, out, **resolved)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".world.")]


def test_duplicate_corpus_ids_and_empty_files_are_refused(tmp_path: Path) -> None:
    f = _write_inputs(tmp_path / "in")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n')
    with pytest.raises(DataError, match=r"dup.jsonl:2: field 'id': duplicate id '1' \(first at .*dup.jsonl:1\)"):
        _import(tmp_path, tmp_path / "w1", corpus=dup)
    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer,negative\n")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        _import(tmp_path, tmp_path / "w2", legacy=empty)
    only_positives = tmp_path / "only.jsonl"  # every given negative is another positive of its anchor
    only_positives.write_text('{"question": "q", "answer": ["a", "b"], "negatives": ["b"]}\n')
    with pytest.raises(DataError, match="only.jsonl:1: field 'negatives': every negative is another positive"):
        _import(tmp_path, tmp_path / "w3", legacy=only_positives)
    assert not any((tmp_path / w).exists() for w in ("w1", "w2", "w3"))
    assert f["legacy"].is_file()


def test_data_import_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write_inputs(tmp_path / "in")
    base = ["data", "import", "--corpus", str(f["corpus"]), "--legacy", str(f["legacy"]), "--frozen-fraction", "0.3"]
    base += ["--column", "anchor=question", "--column", "positive=answer", "--pool", f"support={f['support']}"]
    assert run([*base, "--out", str(tmp_path / "w")]) == 0
    assert "support" in capsys.readouterr().out
    assert run([*base, "--out", str(tmp_path / "w2"), "--column", "anchor=query"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "column 'query'" in err and "Traceback" not in err
    assert not (tmp_path / "w2").exists()


def test_eval_scores_every_eval_set_a_world_declares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _import(tmp_path, tmp_path / "world")
    out = tmp_path / "board.json"
    assert run(["eval", "--encoder", "hashed-ngram", "--data", str(root), "--output", str(out)]) == 0
    board = cr.Scoreboard.read(out)
    assert set(board.eval_sets) == {"frozen_eval", "weekly"} and board.retention is not None
    assert run(["eval", "--encoder", "hashed-ngram", "--output", str(tmp_path / "b2.json")]) == 2
    assert "--eval-set PATH (repeatable) or --data WORLD" in capsys.readouterr().err


def test_csv_quirks_and_column_maps_that_do_not_apply(tmp_path: Path) -> None:
    f = _write_inputs(tmp_path / "in")
    # Excel's UTF-8 CSV starts with a byte-order mark; a corpus id mapping must not touch the pools;
    # a file that already has the target column keeps it.
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffdoc_id,text\n1,a long document\n2,another\n".encode())
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("anchor,question,answer,negative\nthe real anchor,a question,an answer,a negative\n")
    root = cr.import_world(
        tmp_path / "w",
        corpus=bom,
        legacy=legacy,
        frozen_fraction=0.99,
        pools={"support": f["support"]},
        columns={"id": "doc_id", "anchor": "question", "positive": "answer"},
    )
    world = cr.World.open(root)
    assert [d.id for d in cr.read_corpus(world.path("corpus"))] == ["1", "2"]
    assert cr.read_bundles(world.pools["legacy"])[0].anchor == "the real anchor"


def test_an_eval_anchor_in_a_pool_is_named_at_its_line_and_names_are_not_reused(tmp_path: Path) -> None:
    f = _write_inputs(tmp_path / "in")
    weekly = tmp_path / "weekly.csv"
    weekly.write_text("question,answer,negative\nfresh one,x,y\nhow do I fix my printer (0),z,w\n")
    with pytest.raises(DataError, match=r"weekly.csv:3: field 'anchor'"):
        _import(tmp_path, tmp_path / "w1", eval_sets={"weekly": weekly})
    with pytest.raises(ConfigError, match="already used"):
        _import(tmp_path, tmp_path / "w2", pools={"Candidates": f["support"]})
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()


def test_an_imported_world_is_readable_like_any_folder(tmp_path: Path) -> None:
    import os
    import stat

    root = _import(tmp_path, tmp_path / "world")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(root.stat().st_mode) == 0o777 & ~umask


def test_plain_pairs_get_negatives_mined_from_the_corpus_never_another_positive(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = [f"{t} fix guide {i}" for i, t in enumerate(TOPICS * 3)] + [f"{t} manual page" for t in TOPICS]
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": d}) + "\n" for i, d in enumerate(docs)))
    pairs = tmp_path / "pairs.jsonl"  # plain pairs; the printer question has two answers (qrels style)
    rows = [{"question": f"how do I fix my {t} ({i})", "answer": f"{t} fix guide {i}"} for i, t in enumerate(TOPICS)]
    rows.append({"question": "how do I fix my printer (0)", "answer": "printer manual page"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    root = _import(tmp_path, tmp_path / "world", legacy=pairs, corpus=corpus, negatives=3)
    legacy = cr.read_bundles(root / "legacy.jsonl")
    assert len(legacy) == len(rows) and all(len(b.negatives) == 3 for b in legacy)
    assert all(n.tier == 3 for b in legacy for n in b.negatives)
    printer = [b for b in legacy if b.anchor == "how do I fix my printer (0)"]
    assert {b.positive for b in printer} == {"printer fix guide 0", "printer manual page"}
    enc = cr.build_encoder("hashed-ngram", device="cpu")
    scores = enc.encode(["how do I fix my printer (0)"]) @ enc.encode(docs).T
    nearest = [docs[j] for j in np.argsort(-scores[0], kind="stable")]
    expected = [t for t in nearest if t not in ("printer fix guide 0", "printer manual page")][:3]
    for b in printer:  # the nearest corpus texts under the model, minus both positives
        assert [n.text for n in b.negatives] == expected
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["config"]["mined_negatives"]["per_bundle"] == 3
    assert manifest["config"]["mined_negatives"]["model"]["kind"] == "hashed-ngram"


def test_a_list_of_positives_splits_into_rows_and_the_others_are_never_negatives(tmp_path: Path) -> None:
    cands = tmp_path / "multi.jsonl"
    cands.write_text(
        json.dumps({"id": 7, "question": "reset my vpn", "answer": ["vpn reset guide", "vpn token page"]})
        + "\n"
        + json.dumps({"id": 8, "question": "badge lost", "answer": "badge office"})
        + "\n"
    )
    root = _import(tmp_path, tmp_path / "world", candidates=cands)
    got = {c.candidate_id: c for c in cr.read_candidates(root / "candidates.jsonl")}
    assert set(got) == {"7#0", "7#1", "8"}
    assert got["7#0"].other_positives == ["vpn token page"] and got["7#1"].other_positives == ["vpn reset guide"]
    assert got["8"].other_positives is None


def test_a_datasets_folder_saved_with_save_to_disk_imports_like_a_file(tmp_path: Path) -> None:
    import datasets

    f = _write_inputs(tmp_path / "in")
    rows = list(csv.DictReader(f["legacy"].open()))
    folder = tmp_path / "known_ds"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))  # the sentence-transformers layout, as saved
    from_csv = cr.read_bundles(_import(tmp_path, tmp_path / "w1") / "legacy.jsonl")
    from_ds = cr.read_bundles(_import(tmp_path, tmp_path / "w2", legacy=folder) / "legacy.jsonl")
    assert [(b.anchor, b.positive, b.negatives) for b in from_ds] == [
        (b.anchor, b.positive, b.negatives) for b in from_csv
    ]
    manifest = json.loads((tmp_path / "w2" / "manifest.json").read_text())
    assert manifest["source"]["files"]["legacy"]["path"] == str(folder)
    splits = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(splits))
    with pytest.raises(DataError, match=r"a DatasetDict with splits \['train'\]; save one split"):
        _import(tmp_path, tmp_path / "w3", legacy=splits)
    assert not (tmp_path / "w3").exists()


def test_a_positional_ratio_follows_the_worlds_own_pool_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], synthetic_world: Path
) -> None:
    root = _import(tmp_path, tmp_path / "world")
    assert cr.World.open(root).ratio_pools() == ("legacy", "support")
    assert run(["data", "inspect", str(root), "--ratio", "80_20", "--batch-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "ratio 80_20, batch size 10" in out and "support" in out.split("ratio 80_20")[1]
    assert run(["data", "inspect", str(root), "--ratio", "80_30"]) == 2  # still checked: it sums to 110
    # A world of the default pools reads 75_15_10 as legacy, expansion, organic, in whatever order
    # mine and expand registered them.
    world = cr.World.open(synthetic_world)
    manifest = dict(world.manifest, pools=["legacy", "organic", "expansion"])
    assert cr.World(world.root, manifest).ratio_pools() == cr.DEFAULT_POOLS


def test_wordnet_as_sentence_transformers_rows_round_trips_to_the_same_batches(
    wordnet_world: Path, tmp_path: Path
) -> None:
    from crucible_ray.training import CurriculumSampler
    from crucible_ray.worlds import bundle_st_rows

    world = cr.World.open(wordnet_world)
    files = {}
    for stem in ("legacy", "frozen_eval", "organic_reference"):
        rows = bundle_st_rows(cr.read_bundles(world.path(stem)))
        files[stem] = tmp_path / f"{stem}.jsonl"
        files[stem].write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "negative_1_tier" in json.loads(files["legacy"].read_text().splitlines()[0])
    again = cr.World.open(
        cr.import_world(
            tmp_path / "again",
            corpus=world.path("corpus"),
            legacy=files["legacy"],
            frozen_eval=files["frozen_eval"],
            eval_sets={"organic_reference": files["organic_reference"]},
        )
    )
    for stem in files:  # an eval set's bundles are named after it (WordNet's frozen ones keep "legacy")
        original = [b.model_copy(update={"pool": stem}) for b in cr.read_bundles(world.path(stem))]
        assert [b.model_copy(update={"pool": stem}) for b in cr.read_bundles(again.path(stem))] == original, stem
    ratio = cr.Ratio.parse("100", ["legacy"])
    batches = []
    for w in (world, again):
        sampler = CurriculumSampler({"legacy": cr.read_bundles(w.path("legacy"))}, ratio, 32, seed=11)
        batches.append([sampler.batch(step) for step in range(25)])
    assert batches[0] == batches[1]


def test_review_cases_bad_anchor_types_empty_negatives_cross_file_positives_and_float_ids(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = ["vpn reset guide", "vpn token page", "vpn router manual", "badge office hours", "rain"]
    corpus.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    # A list as anchor: one line naming the row and field, not a traceback.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": ["a"], "answer": "b", "negative": "c"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'anchor'"):
        _import(tmp_path, tmp_path / "w0", legacy=bad)
    # Empty negatives (an empty CSV cell, null, []) make a plain pair, mined from the corpus; an answer
    # of the same question given in another file (the candidates) is never one of its negatives.
    plain = tmp_path / "plain.csv"
    plain.write_text('question,answer,negatives\nreset my vpn,vpn reset guide,\nbadge lost,badge office hours,"[]"\n')
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question": "reset my vpn", "answer": "vpn token page"}) + "\n")
    root = _import(
        tmp_path, tmp_path / "w1", legacy=plain, corpus=corpus, candidates=other, negatives=3, frozen_fraction=0.99
    )
    legacy = {b.anchor: b for b in cr.read_bundles(root / "legacy.jsonl")}
    assert len(legacy["reset my vpn"].negatives) == 3
    assert "vpn token page" not in {n.text for n in legacy["reset my vpn"].negatives}
    # Integer ids that pandas made floats (a missing cell) stay integers as text.
    frame = pd.DataFrame({"anchor": ["x", "y"], "positive": ["p", "q"], "id": [7, None]})
    from crucible_ray.worlds import read_candidate_table

    cands = read_candidate_table(frame)
    assert cands[0].candidate_id == "7" and cands[1].candidate_id not in ("nan", "None")
    with pytest.raises(DataError, match="the DataFrame has no rows"):
        read_candidate_table(frame.iloc[:0])


def test_st_rows_keep_pass_counts_and_csv_tiers_read_back(tmp_path: Path) -> None:
    from crucible_ray.data import Bundle, Negative
    from crucible_ray.worlds import bundle_st_rows

    bundles = [
        Bundle(bundle_id="a", anchor="q1", positive="p1", negatives=[Negative(text="n1", tier=2)], pool="legacy"),
        Bundle(
            bundle_id="b",
            anchor="q2",
            positive="p2",
            negatives=[Negative(text="n2", tier=3), Negative(text="n3", tier=1)],
            pool="legacy",
            pass_count=7,
        ),
    ]
    path = tmp_path / "rows.csv"
    pd.DataFrame(bundle_st_rows(bundles)).to_csv(path, index=False)  # ragged rows: pandas writes 2.0, 7.0
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "d", "text": "doc"}) + "\n")
    root = cr.import_world(tmp_path / "w", corpus=corpus, legacy=path, frozen_fraction=0.99)
    assert cr.read_bundles(root / "legacy.jsonl") == bundles
