"""The pure training core: sampler, loss, schedule, config, the worker loop without Ray, the feature cache."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from crucible_ray.cli._main import run
from train_reference import train_in_process

import crucible_ray as cr
from crucible_ray.data import Bundle, Negative
from crucible_ray.errors import ConfigError
from crucible_ray.training import (
    CachedFeatureEncoder,
    CurriculumSampler,
    TrainConfig,
    WorkerContext,
    feature_table,
    info_nce,
    lr_at,
    prepare_training,
    train_worker,
)


def _pool(name: str, n: int, *, pass_counts: list[int] | None = None) -> list[Bundle]:
    return [
        Bundle(
            bundle_id=f"{name}-{i}",
            anchor=f"anchor {name} {i}",
            positive=f"positive {name} {i}",
            negatives=[Negative(text=f"n{t}-{j} {name} {i}", tier=t) for t in (1, 2, 3) for j in range(2)],
            pool=name,
            pass_count=None if pass_counts is None else pass_counts[i],
        )
        for i in range(n)
    ]


POOLS = {"legacy": _pool("legacy", 37), "expansion": _pool("expansion", 11), "organic": _pool("organic", 5)}
RATIO = cr.Ratio.parse("75_15_10")


def test_every_batch_has_the_exact_quotas() -> None:
    s = CurriculumSampler(POOLS, RATIO, 20, seed=1)
    want = RATIO.quotas(20)
    for step in range(50):
        assert Counter(s.batch(step).pools) == {k: v for k, v in want.items() if v}


def test_each_pool_epoch_shows_every_bundle_once() -> None:
    s = CurriculumSampler(POOLS, RATIO, 20, seed=1)
    for pool, bundles in POOLS.items():
        q = s.quotas[pool]
        stream = [i for step in range(3 * len(bundles)) for i in s.indices(pool, step)]
        for e in range(3):  # three whole pool epochs
            assert sorted(stream[e * len(bundles) : (e + 1) * len(bundles)]) == list(range(len(bundles))), (pool, q)
        assert stream[: len(bundles)] != stream[len(bundles) : 2 * len(bundles)]  # reshuffled per epoch


def test_batches_are_a_pure_function_of_seed_step_and_rank() -> None:
    a = CurriculumSampler(POOLS, RATIO, 16, seed=7)
    b = CurriculumSampler(POOLS, RATIO, 16, seed=7)
    assert [a.batch(t) for t in (5, 0, 3)] == [b.batch(t) for t in (5, 0, 3)]  # any order of asking
    c = CurriculumSampler(POOLS, RATIO, 16, seed=8)
    assert [a.batch(t).bundle_ids for t in range(4)] != [c.batch(t).bundle_ids for t in range(4)]
    r0 = CurriculumSampler(POOLS, RATIO, 16, seed=7, rank=0, world_size=2)
    r1 = CurriculumSampler(POOLS, RATIO, 16, seed=7, rank=1, world_size=2)
    legacy0 = [i for i, p in zip(r0.batch(0).bundle_ids, r0.batch(0).pools, strict=True) if p == "legacy"]
    legacy1 = [i for i, p in zip(r1.batch(0).bundle_ids, r1.batch(0).pools, strict=True) if p == "legacy"]
    assert not set(legacy0) & set(legacy1)  # the workers of one step draw disjoint bundles


def test_zero_weight_pool_is_never_drawn_and_may_be_missing() -> None:
    s = CurriculumSampler({"legacy": POOLS["legacy"]}, cr.Ratio.parse("100_0_0"), 16, seed=1)
    assert {p for t in range(30) for p in s.batch(t).pools} == {"legacy"}


def test_weighted_empty_pool_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="pool 'organic' has weight 10"):
        CurriculumSampler({**POOLS, "organic": []}, RATIO, 16, seed=1)


def test_negatives_come_tier_three_first() -> None:
    s = CurriculumSampler(POOLS, RATIO, 16, seed=1, negatives_per_bundle=3)
    batch = s.batch(0)
    for tiers in batch.negative_tiers:
        assert tiers == [3, 3, 2]
    s0 = CurriculumSampler(POOLS, RATIO, 16, seed=1, negatives_per_bundle=0)
    assert all(n == [] for n in s0.batch(0).negatives)


def test_quality_weighting_favours_high_pass_counts() -> None:
    organic = _pool("organic", 10, pass_counts=[10] * 5 + [1] * 5)
    pools = {**POOLS, "organic": organic}
    s = CurriculumSampler(pools, cr.Ratio.parse("0_0_100"), 20, seed=3, quality_weighting=True)
    drawn = Counter(i for t in range(200) for i in s.indices("organic", t))
    high, low = sum(drawn[i] for i in range(5)), sum(drawn[i] for i in range(5, 10))
    assert high / (high + low) == pytest.approx(10 / 11, abs=0.03)


def test_info_nce_matches_a_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    n = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, False], [True, False]])
    tau = 0.5
    got = float(info_nce(a, p, n, mask, temperature=tau))
    # anchor 0: positive 0.6, own negative 0.0, other positive 0.8; anchor 1: 0.6, 0.0, 0.8.
    one = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.0) + math.exp(0.8 / tau)))
    assert got == pytest.approx(one, rel=1e-6)
    # A duplicate positive is not its own negative.
    same = float(info_nce(a, p, n, mask, temperature=tau, positive_ids=["x", "x"]))
    assert same == pytest.approx(-math.log(math.exp(1.2) / (math.exp(1.2) + 1.0)), rel=1e-6)
    # Two positives of one anchor: neither is the other row's negative (the same logits as above).
    shared = float(info_nce(a, p, n, mask, temperature=tau, anchor_ids=["q", "q"]))
    assert shared == pytest.approx(same, rel=1e-6)


def test_lr_schedule() -> None:
    assert lr_at(0, base=1.0, warmup=4, total=10, schedule="cosine") == pytest.approx(0.25)
    assert lr_at(4, base=1.0, warmup=4, total=10, schedule="cosine") == pytest.approx(1.0)
    assert lr_at(9, base=1.0, warmup=4, total=10, schedule="cosine") < 0.1
    assert lr_at(7, base=2.0, warmup=0, total=10, schedule="constant") == 2.0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"ratio": "75_25"}, "'ratio'"),
        ({"steps": "200,100"}, "'steps'"),
        ({"steps": [0]}, "'steps'"),
        ({"encoder": "nope"}, "'encoder'"),
        ({"batch_size": 1}, "'batch_size'"),
        ({"bogus": 1}, "'bogus'"),
    ],
)
def test_bad_training_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_options(**options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratio", "75_25"], "ratio '75_25' has 2 parts"),
        (["--steps", "200,100"], "strictly increasing"),
        (["--encoder", "bogus"], "unknown encoder kind"),
        (["--ratio", "0_0_100"], None),  # replaced below by a missing data dir
    ],
)
def test_train_cli_bad_config_exits_2_with_one_line(
    args: list[str], message: str | None, synthetic_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(synthetic_world) if message else str(tmp_path / "missing")
    code = run(["train", "--data", data, "--output-dir", str(tmp_path / "out"), "--steps", "10", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert (message or "no such data folder") in err
    assert not (tmp_path / "out" / "checkpoint_final.pt").exists()


def test_weighted_pool_missing_from_the_world_is_refused(wordnet_world: Path) -> None:
    with pytest.raises(ConfigError, match="no 'expansion' pool"):
        prepare_training(wordnet_world, TrainConfig(ratio="75_15_10", steps=[10]))


def _run_plain(world: Path, out: Path, **options: object) -> None:
    train_in_process(world, out, **{"ratio": "75_15_10", "steps": [60, 120], "seed": 3, **options})


def test_training_learns_on_the_synthetic_world(synthetic_world: Path, tmp_path: Path) -> None:
    before = cr.evaluate(cr.DEFAULT_ENCODER, cr.World.open(synthetic_world).eval_sets)
    _run_plain(synthetic_world, tmp_path)
    after = cr.Scoreboard.read(tmp_path / "scoreboard_final.json")
    assert before.retention is not None and before.generalization is not None
    assert after.retention is not None and after.generalization is not None
    assert after.retention > before.retention + 0.3
    assert after.generalization > before.generalization + 0.3
    for step in (60, 120):  # per-milestone outputs
        assert (tmp_path / f"scoreboard_step_{step}.json").is_file()
        payload = torch.load(tmp_path / f"checkpoint_step_{step}.pt", weights_only=True)
        assert payload["step"] == step and payload["train_config"]["ratio"] == "75_15_10"
    again = cr.evaluate(tmp_path / "checkpoint_final.pt", cr.World.open(synthetic_world).eval_sets)
    assert again.retention == after.retention and again.generalization == after.generalization


def test_resuming_from_a_recovery_state_gives_the_same_result(synthetic_world: Path, tmp_path: Path) -> None:
    _run_plain(synthetic_world, tmp_path / "straight", eval_every=30)
    states: list[dict[str, object]] = []
    reported: list[dict[str, object]] = []

    def report(metrics: dict[str, object], state: dict[str, object] | None) -> None:
        reported.append(metrics)
        if state:
            states.append(state)

    cfg = TrainConfig(ratio="75_15_10", steps=[60, 120], seed=3, eval_every=30)
    prep = prepare_training(synthetic_world, cfg)
    train_worker(cfg, prep.data, tmp_path / "a", WorkerContext(report=report))
    # What a live trial reports to Tune is named exactly as the scoreboard replayed into a results table.
    replayed = cr.Scoreboard.read(tmp_path / "a" / "scoreboard_step_30.json").flat_metrics()
    live = next(m for m in reported if m.get("step") == 30)
    assert {k: live[k] for k in replayed} == replayed
    assert "frozen_eval_tier3_accuracy" in replayed and "organic_holdout_tierall_accuracy" in replayed
    at_30 = next(s for s in states if s["step"] == 30)
    train_worker(cfg, prep.data, tmp_path / "b", WorkerContext(resume=at_30))  # continue from step 30
    a = cr.Scoreboard.read(tmp_path / "straight" / "scoreboard_final.json").to_dict()
    b = cr.Scoreboard.read(tmp_path / "b" / "scoreboard_final.json").to_dict()
    for doc in (a, b):
        doc.pop("checkpoint")
    assert a == b
    assert not (tmp_path / "b" / "scoreboard_step_30.json").exists()  # nothing before the resume point is redone


def test_frozen_backbone_features_are_cached(minilm: cr.Encoder, tmp_path: Path) -> None:
    texts = ["a small dog", "a large cat", "the river bank", "a bank that lends money", "halothane"]
    table = feature_table(minilm, texts, tmp_path)
    cache = list((tmp_path / ".cache" / "features").glob("*.npz"))
    assert len(cache) == 1 and len(table) == 5
    assert table.rows(texts) is not None  # 'halothane' has a key ending in a NUL byte
    again = feature_table(minilm, [*texts, "one more text"], tmp_path)  # only the new text is encoded
    assert len(again) == 6
    rows = again.rows(texts)
    assert rows is not None
    np.testing.assert_allclose(again.features[rows], table.features[table.rows(texts)], atol=1e-6)
    cached = CachedFeatureEncoder(minilm, again)
    np.testing.assert_allclose(cached.encode(texts), minilm.encode(texts), atol=1e-5)
    assert cached.encode(["not in the cache"]).shape == (1, minilm.dim)  # falls back to the backbone


def test_mining_embeds_a_corpus_from_the_shared_feature_cache(
    minilm: cr.Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mine/expand with a frozen-head model run only the head on the world's cached backbone features:
    a corpus is encoded by the backbone once, whichever command needs it first."""
    from crucible_ray.mining import embed_corpus_to_file, open_embeddings

    corpus = ["a small dog", "a large cat", "the river bank", "a bank that lends money", "halothane"]
    first = embed_corpus_to_file(corpus, minilm, tmp_path / "a.npy", feature_cache=tmp_path)
    np.testing.assert_allclose(open_embeddings(first), minilm.encode(corpus), atol=1e-5)
    assert len(feature_table(minilm, corpus, tmp_path)) == 5  # the corpus is in the cache training reads

    def no_backbone(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone ran again")

    monkeypatch.setattr(minilm.module, "backbone_embed", no_backbone)
    again = embed_corpus_to_file(corpus, minilm, tmp_path / "b.npy", feature_cache=tmp_path)
    np.testing.assert_array_equal(open_embeddings(again), open_embeddings(first))


def test_milestones_train_at_a_constant_rate_and_one_milestone_decays() -> None:
    several = TrainConfig(steps="250,1000,4000")
    assert several.schedule == "constant" and several.warmup == 12  # 5% of the first milestone
    one = TrainConfig(steps=[4000])
    assert one.schedule == "cosine" and one.warmup == 200  # 5% of the last (the only) milestone
    asked = TrainConfig(steps="250,1000", schedule="cosine")
    assert asked.schedule == "cosine" and asked.warmup == 50
    assert TrainConfig.model_validate(several.model_dump()).schedule == "constant"
    # The learning rate by encoder: a linear head on a frozen backbone learns at 1e-3, a whole transformer at 1e-4.
    assert TrainConfig(encoder="minilm:mode=frozen-head").learning_rate == 1e-3
    assert TrainConfig(encoder="minilm:mode=full").learning_rate == 1e-4
    assert TrainConfig().learning_rate == 5e-3


def test_a_milestone_is_the_model_a_separate_run_to_that_step_gives(synthetic_world: Path, tmp_path: Path) -> None:
    # Under the default (constant) schedule of several milestones, step 60 of a run to 120 is exactly a
    # run to 60 with the same warm-up: the steps axis of a sweep means what it says.
    both = TrainConfig(ratio="75_15_10", steps=[60, 120], seed=3)
    alone = TrainConfig(ratio="75_15_10", steps=[60], seed=3, schedule="constant", warmup_steps=both.warmup)
    for cfg, out in ((both, tmp_path / "both"), (alone, tmp_path / "alone")):
        train_worker(cfg, prepare_training(synthetic_world, cfg).data, out, WorkerContext())
    texts = [b.anchor for b in cr.read_bundles(cr.World.open(synthetic_world).eval_sets["frozen_eval"])[:20]]

    def at_60(run: str) -> np.ndarray:
        return cr.load_encoder(tmp_path / run / "checkpoint_step_60.pt", device="cpu").encode(texts)

    np.testing.assert_array_equal(at_60("both"), at_60("alone"))
    cosine = TrainConfig(ratio="75_15_10", steps=[60, 120], seed=3, schedule="cosine", warmup_steps=both.warmup)
    train_worker(cosine, prepare_training(synthetic_world, cosine).data, tmp_path / "cos", WorkerContext())
    assert np.abs(at_60("cos") - at_60("alone")).max() > 1e-4  # a decaying schedule's step 60 is another model


def test_a_model_source_carries_cached_features_to_the_actors(minilm: cr.Encoder, tmp_path: Path) -> None:
    from crucible_ray.mining import ModelSource

    texts = ["a small dog", "a large cat", "the river bank"]
    table = feature_table(minilm, [*texts, "not wanted"], tmp_path).subset(texts)
    assert len(table) == 3 and table.rows(["not wanted"]) is None
    source = ModelSource.resolve(minilm).with_features(table)
    plain = ModelSource.resolve(minilm)  # the features are not part of the model's identity
    assert source.describe() == plain.describe() and source.fingerprint == plain.fingerprint
    built = source.build("cpu")
    assert isinstance(built, CachedFeatureEncoder)
    np.testing.assert_allclose(built.encode(texts), minilm.encode(texts), atol=1e-5)
    assert feature_table(minilm, ["never seen"], tmp_path, encode=False).rows(["never seen"]) is None


def test_pools_by_name_train_on_a_world_with_its_own_pool_names(synthetic_world: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "w"
    shutil.copytree(synthetic_world, root)
    shutil.copy(root / "expansion.jsonl", root / "support.jsonl")
    cr.World.open(root).register("support", root / "support.jsonl", role="pool", rows=1)
    cfg = TrainConfig(ratio="legacy=70,support=20,organic=10", steps=[20], seed=1)
    assert cfg.pools == ("legacy", "support", "organic") and str(cfg.ratio) == "70_20_10"
    prep = prepare_training(root, cfg)
    assert set(prep.data.pools) == {"legacy", "support", "organic"}
    train_worker(cfg, prep.data, tmp_path / "out", WorkerContext())
    payload = torch.load(tmp_path / "out" / "checkpoint_final.pt", weights_only=True)
    assert payload["train_config"]["pools"] == ["legacy", "support", "organic"]
    with pytest.raises(ConfigError, match="no 'tickets' pool"):
        prepare_training(root, TrainConfig(ratio="legacy=50,tickets=50", steps=[5]))
    with pytest.raises(ConfigError, match="pool=percent"):
        TrainConfig.from_options(ratio="legacy=70,support")
