"""What is P-of-K validation worth? Pass rates by miner setting, then training on validated vs unvalidated pools.

    python benchmarks/validation_value.py [--world DIR] [--seeds 1,2,3] [--steps 1000] [--ratio 75_0_25]
                                          [--margins 0.05,0,-0.05,-0.1,-0.2] [--settings 0.05:3,-0.1:8]

On the WordNet world with a base model (a linear head on the frozen all-MiniLM-L6-v2, trained on the
legacy pool; every stage runs on the world's cached backbone features):

1. **Pass rates.** The organic candidates are mined once per danger margin with K=10 lineups of 4
   corpus negatives; the pass-count histogram gives the pass rate for every P at once.
2. **The value of validation**, for each ``margin:P`` setting. Three organic pools of equal size:
   (a) *validated*: candidates that killed in at least P of K lineups (their killers as tier-3
   negatives, near misses as tier 2: what ``mine`` writes); (b) *one lineup*: a K=1, P=1 run at the
   same margin; (c) *no validation*: every candidate with its retrieved negatives (killers and near
   misses), as a top-N hard-negative miner gives them. The mined holdout (the validated candidates whose
   id falls in the 20% holdout split) is kept out of all three. Each pool trains the same ratio
   (legacy + organic) for every seed, next to a legacy-only baseline, and is scored on the label-based
   reference (``organic_reference``: held-out families, never trained on), on the mined holdout and on
   retention. Differences are paired by seed, with a 95% interval.
3. **False negatives.** The share of each pool's tier-3 negatives that WordNet says are not negatives
   at all: the anchor synset's own lemma, its direct hypernym or a direct hyponym.

Runs in-process (no Ray). The tables go to stdout; README and docs/findings.md keep the latest.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import crucible_ray as cr
from crucible_ray._rng import stable_fraction
from crucible_ray.analysis import seed_summary
from crucible_ray.data import read_corpus, write_bundles
from crucible_ray.encoders import CachedFeatureEncoder, feature_table, load_encoder
from crucible_ray.mining import in_holdout, mine_local, row_to_bundle
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker
from crucible_ray.worlds import REFERENCE_SET, World, find_wordnet, read_noun_synsets

ENCODER = "minilm:mode=frozen-head"
HOLDOUT = 0.2
POOL = "organic"
MINED_HOLDOUT = "organic_holdout"


def _ci(values: list[float]) -> str:
    s = seed_summary(np.array(values))
    if np.isnan(s["ci_low"]):
        return f"{s['mean']:+.4f}"
    verdict = "" if s["ci_low"] > 0 or s["ci_high"] < 0 else " (n.d.)"
    return f"{s['mean']:+.4f} [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]{verdict}"


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)  # 0.0 is a measurement, not a missing value


def _metrics(board: cr.Scoreboard) -> dict[str, float]:
    return {
        "reference": _number(board.accuracy(REFERENCE_SET)),
        "mined holdout": _number(board.accuracy(MINED_HOLDOUT)),
        "retention": _number(board.retention),
    }


def _train(world: Path, out: Path, cfg: TrainConfig) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    prepared = prepare_training(world, cfg)
    train_worker(cfg, prepared.data, out, WorkerContext())
    board = cr.Scoreboard.read(out / f"scoreboard_step_{cfg.max_step}.json")
    return _metrics(board)


def _score(baselines: dict[int, Path], seed: int, world: Path, out: Path, cfg: TrainConfig) -> dict[str, float]:
    """The legacy-only baseline is trained once per seed and re-scored on each setting's mined holdout."""
    if seed not in baselines:
        _train(world, out, cfg)
        baselines[seed] = out / f"checkpoint_step_{cfg.max_step}.pt"
    trained = load_encoder(baselines[seed], device="cpu")
    cached = CachedFeatureEncoder(trained, feature_table(trained, [], world, encode=False))  # the whole cache
    board = cr.evaluate(cached, World.open(world).eval_sets)
    return _metrics(board)


def _false_negative_share(rows: list[dict[str, Any]], synsets: dict[str, Any]) -> float:
    """Share of tier-3 negatives (killers) that are the anchor's synonym, direct hypernym or hyponym."""
    bad = total = 0
    for row in rows:
        anchor = synsets.get(str(row["candidate_id"]).removeprefix("wn:n:"))
        if anchor is None:
            continue
        lemmas = {lemma.lower() for lemma in anchor.lemmas}
        for k in row["killers"]:
            total += 1
            neg = synsets.get(str(k.get("id") or "").removeprefix("wn:n:"))
            if neg is None:
                continue
            related = neg.offset in anchor.hypernyms or anchor.offset in neg.hypernyms
            if related or lemmas & {lemma.lower() for lemma in neg.lemmas}:
                bad += 1
    return bad / total if total else float("nan")


def _register(world: World, stem: str, rows: list[dict[str, Any]], role: str) -> World:
    path = world.root / f"{stem}.jsonl"
    write_bundles(path, [row_to_bundle(r, stem) for r in rows])
    return world.register(stem, path, role=role, rows=len(rows), origin="mined")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None, help="a WordNet world (default: built in a temp folder)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--base-steps", type=int, default=1000)
    ap.add_argument("--ratio", default="75_0_25")
    ap.add_argument("--margins", default="0.05,0,-0.05,-0.1,-0.2")
    ap.add_argument("--settings", default="0.05:3,-0.1:8", help="margin:P pairs to train on ('' for none)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    margins = [float(m) for m in args.margins.split(",")]
    settings = [(float(m), int(p)) for m, p in (s.split(":") for s in args.settings.split(",") if s)]
    tmp = Path(tempfile.mkdtemp(prefix="crucible-validation-"))
    t_start = time.perf_counter()
    src = args.world or cr.build_world("wordnet", tmp / "source", seed=0)
    world_dir = tmp / "world"
    shutil.copytree(src, world_dir)  # pools are registered into a copy
    world = World.open(world_dir)
    print(f"# validation value: {ENCODER}, ratio {args.ratio} at {args.steps} steps, seeds {seeds}")
    print(f"# machine: {platform.machine()}, Python {platform.python_version()}; world {src}")

    base_cfg = TrainConfig(ratio="100_0_0", steps=[args.base_steps], seed=0, encoder=ENCODER)
    base_dir = tmp / "base"
    prepare = prepare_training(world_dir, base_cfg)
    train_worker(base_cfg, prepare.data, base_dir, WorkerContext())
    base = load_encoder(base_dir / "checkpoint_final.pt", device="cpu")
    candidates = world.path("organic_candidates")
    corpus = [d.text for d in read_corpus(world.path("corpus"))]
    cand_texts = [t for c in cr.data.iter_rows(candidates, cr.data.Candidate) for t in (c.anchor, c.positive)]
    encoder = CachedFeatureEncoder(base, feature_table(base, [*corpus, *cand_texts], world_dir))

    def mine(margin: float, lineups: int, passes: int) -> list[dict[str, Any]]:
        table: pa.Table = mine_local(
            candidates,
            model=encoder,
            corpus=world.path("corpus"),
            lineups=lineups,
            lineup_size=4,
            min_passes=passes,
            danger_margin=margin,
            holdout_fraction=HOLDOUT,
        )
        return table.to_pylist()

    # 1. pass rates
    by_margin = {m: mine(m, 10, 1) for m in margins}
    ps = (1, 3, 5, 8, 10)
    print("\n## Pass rate by danger margin and P (K=10 lineups of 4 corpus negatives)\n")
    print("| danger margin | " + " | ".join(f"P={p}" for p in ps) + " | pass-count histogram (0..10) |")
    print("|---|" + "---|" * len(ps) + "---|")
    for m, rows in by_margin.items():
        counts = np.bincount([int(r["pass_count"]) for r in rows], minlength=11)
        rates = [f"{counts[p:].sum() / len(rows):.1%}" for p in ps]
        print(f"| {m:+.2f} | " + " | ".join(rates) + f" | {' '.join(str(int(c)) for c in counts)} |")

    # 2. the value of validation
    synsets = read_noun_synsets(find_wordnet())
    baselines: dict[int, Path] = {}
    for margin, p in settings:
        rows = by_margin.get(margin) or mine(margin, 10, 1)
        holdout = [r for r in rows if r["pass_count"] >= p and in_holdout(r["candidate_id"], HOLDOUT)]
        held = {r["candidate_id"] for r in holdout}
        single = [r for r in mine(margin, 1, 1) if r["accepted"] and r["candidate_id"] not in held]
        pools = {
            f"validated ({p} of 10)": [r for r in rows if r["pass_count"] >= p and r["candidate_id"] not in held],
            "one lineup (1 of 1)": single,
            "no validation": [r for r in rows if r["killers"] and r["candidate_id"] not in held],
        }
        size = min(len(v) for v in pools.values())
        for name, v in pools.items():  # equal size: the same stable draw for every pool
            pools[name] = sorted(v, key=lambda r: stable_fraction(0, "equal-size", r["candidate_id"]))[:size]
        world = _register(World.open(world_dir), MINED_HOLDOUT, holdout, "eval")
        print(f"\n## Margin {margin:+.2f}, P={p}: pools of {size} bundles, mined holdout of {len(holdout)}\n")
        results: dict[str, dict[int, dict[str, float]]] = {"legacy only (100_0_0)": {}}
        for seed in seeds:  # the baseline does not use the organic pool, but it is scored on this holdout
            cfg = TrainConfig(ratio="100_0_0", steps=[args.steps], seed=seed, encoder=ENCODER)
            results["legacy only (100_0_0)"][seed] = _score(baselines, seed, world_dir, tmp / f"b-{seed}", cfg)
        fn = {}
        for name, v in pools.items():
            _register(World.open(world_dir), POOL, v, "pool")
            fn[name] = _false_negative_share(v, synsets)
            results[name] = {}
            for seed in seeds:
                cfg = TrainConfig(ratio=args.ratio, steps=[args.steps], seed=seed, encoder=ENCODER)
                results[name][seed] = _train(world_dir, tmp / f"t-{margin}-{p}-{len(results)}-{seed}", cfg)
        metrics = ("reference", "mined holdout", "retention")
        print("| organic pool | " + " | ".join(metrics) + " | killers that are WordNet relatives |")
        print("|---|---|---|---|---|")
        for name, per_seed in results.items():
            means = [np.mean([per_seed[s][k] for s in seeds]) for k in metrics]
            sds = [np.std([per_seed[s][k] for s in seeds], ddof=1) if len(seeds) > 1 else np.nan for k in metrics]
            cells = [f"{m:.4f} (sd {sd:.4f})" for m, sd in zip(means, sds, strict=True)]
            share = f"{fn[name]:.1%}" if name in fn else "-"
            print(f"| {name} | " + " | ".join(cells) + f" | {share} |")
        validated = next(iter(pools))
        print("\nPaired by seed, mean difference [95% CI] (n.d.: the interval includes zero):\n")
        print("| comparison | " + " | ".join(metrics) + " |")
        print("|---|---|---|---|")
        for other in [n for n in results if n != validated]:
            diffs = [_ci([results[validated][s][k] - results[other][s][k] for s in seeds]) for k in metrics]
            print(f"| {validated} - {other} | " + " | ".join(diffs) + " |")
    print(f"\n# {time.perf_counter() - t_start:.0f} s; artefacts in {tmp}")
    (tmp / "done.json").write_text(json.dumps({"seconds": time.perf_counter() - t_start}))


if __name__ == "__main__":
    main()
