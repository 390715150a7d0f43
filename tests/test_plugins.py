"""Encoder kinds of the user's own reach Ray's processes: miner actors, Ray Train workers, Tune trials.

A kind registered with ``crucible_ray.register_encoder`` exists only in the process that registered
it; these tests run real drivers (a script that defines the kind in ``__main__``, and the CLI with
``--plugin MODULE``) against the session's cluster, whose workers never imported either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import crucible_ray as cr
from crucible_ray.encoders import encoder_kinds

KIND = """
from pydantic import ConfigDict

import crucible_ray as cr
from crucible_ray.encoders import encoder_kinds
from crucible_ray.encoders import HashedNgramModule, HashedNgramParams


class TinyParams(HashedNgramParams):
    model_config = ConfigDict(extra="forbid")
    label: str = "ours"


def tiny(params):
    return HashedNgramModule(HashedNgramParams(**params.model_dump(exclude={"label"})))


cr.register_encoder("tiny-ngram", TinyParams, tiny, "a kind of the user's own")
"""

MINER = {"lineups": 4, "lineup_size": 4, "min_passes": 2, "neighbors": 8, "seed": 3}


def _run(args: list[str], cwd: Path, ray_cluster: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}  # the session's cluster and token
    env.pop("PYTHONPATH", None)  # the workers find the user's module only the way Ray ships it
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_kind_defined_in_a_driver_script_mines_and_trains_on_ray(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        KIND
        + f"""
import json, sys
world = {str(synthetic_world)!r}
res = cr.mine(world + "/organic_candidates.jsonl", corpus=world + "/corpus.jsonl", out="mined.parquet",
              model="tiny-ngram:dim=32,label=x", actors=1, **json.loads(sys.argv[1]))
run = cr.train(world, output_dir="run", ratio="100_0_0", steps=[4], seed=1, encoder="tiny-ngram:dim=32",
               batch_size=16, workers=1)
print(json.dumps({{"mined": res.manifest["counts"], "train": str(run.checkpoint)}}))
"""
    )
    out = _run([sys.executable, str(script), json.dumps(MINER)], tmp_path, ray_cluster)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["mined"]["candidates"] > 0
    assert "tiny-ngram" not in encoder_kinds()  # only the driver registered it
    exec(compile(KIND, "kind", "exec"), {})  # now this process has it too, to read the checkpoint back
    enc = cr.load_encoder(report["train"], device="cpu")
    assert enc.spec["kind"] == "tiny-ngram" and enc.spec["label"] == "ours"
    assert enc.encode(["a dog"]).shape == (1, 32)


@pytest.mark.slow
def test_the_cli_imports_a_plugin_module_whose_kind_reaches_the_actors(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path
) -> None:
    (tmp_path / "my_encoders.py").write_text(KIND)
    cli = str(Path(sys.executable).with_name("crucible-ray"))
    args = [cli, "--plugin", "my_encoders", "mine", "--candidates", str(synthetic_world / "organic_candidates.jsonl")]
    args += ["--corpus", str(synthetic_world / "corpus.jsonl")]
    args += ["--out", "mined.parquet", "--encoder", "tiny-ngram:dim=32", "--actors", "1"]
    args += [x for k, v in MINER.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    _run(args, tmp_path, ray_cluster)
    manifest = json.loads((tmp_path / "mined.manifest.json").read_text())
    assert '"kind": "tiny-ngram"' in json.dumps(manifest) and manifest["counts"]["candidates"] > 0
    # Without the plugin: one line naming the kind, exit 2.
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    bad = subprocess.run([args[0], *args[3:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown encoder kind 'tiny-ngram'" in bad.stderr, bad.stderr[-2000:]
