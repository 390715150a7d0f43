"""Shipped assets: the cluster launcher config and the search spaces."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from crucible_ray.search_spaces import available

from crucible_ray import Ratio
from crucible_ray.sweeps import load_space

ROOT = Path(__file__).resolve().parents[1]


def test_ray_cluster_yaml_is_schema_valid() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in starts and "--dashboard-host=127.0.0.1" in starts
    assert "0.0.0.0" not in starts
    assert any(t.get("resources", {}).get("GPU") for t in config["available_node_types"].values())


def test_shipped_search_spaces_parse() -> None:
    spaces = available()
    assert "seed_style" in spaces
    for path in spaces.values():
        space = load_space(path)  # validates every trial it can produce
        for t in space.trials():
            assert t.ratio == Ratio.parse(str(t.ratio), pools=space.pools)
        assert list(space.steps) == sorted(space.steps)


def test_ray_cluster_yaml_passes_the_launchers_preparation_and_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    prepared = prepare_config(config)  # what `ray up` runs before it creates anything
    validate_config(prepared)
    types = prepared["available_node_types"]
    assert types[prepared["head_node_type"]]["resources"]["CPU"] == 0  # the head only coordinates
    gpu_types = [t for t in types.values() if t["resources"].get("GPU")]
    assert len(gpu_types) >= 2 and all(0 <= t["min_workers"] <= t["max_workers"] for t in gpu_types)
    # Every node gets the token and installs this checkout with the pinned Ray.
    mounts = prepared["file_mounts"]
    assert any(dst.endswith(".ray/auth_token") for dst in mounts) and "." in mounts.values()
    for setup in (prepared["head_setup_commands"], prepared["worker_setup_commands"]):
        text = " ".join(setup)
        assert f"ray[default,tune,train,data]=={ray.__version__}" in text and "crucible-ray[st]" in text
    worker_start = " ".join(prepared["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in worker_start and "RAY_AUTH_TOKEN_PATH" in worker_start


def _cli_command(argv: list[str]) -> tuple[str, dict[str, object]]:
    """Parse a ``crucible-ray ...`` line with the CLI's own click commands (nothing runs): the
    subcommand path and its parameters. Unknown options, bad values, missing required ones raise."""
    import click
    from crucible_ray.cli._main import app

    assert argv[0] == "crucible-ray"
    args, path = list(argv[1:]), []
    cmd: click.Command = app
    ctx = click.Context(app, info_name="crucible-ray")
    while isinstance(cmd, click.Group):
        name = args.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"no command {name!r}"
        path.append(name)
        cmd = sub
    sub_ctx = cmd.make_context(" ".join(path), args)
    return " ".join(path), sub_ctx.params


@pytest.mark.parametrize("name", ["rayjob-sweep.yaml", "rayjob-mine.yaml"])
def test_kuberay_rayjob_manifests(name: str) -> None:
    doc = yaml.safe_load((ROOT / "cluster" / name).read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__  # the image's Ray, the pinned Ray
    assert cluster["authOptions"]["mode"] == "token"
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    pods = [head["template"]["spec"]] + [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    assert any(c["resources"]["limits"].get("nvidia.com/gpu") for p in pods[1:] for c in p["containers"])
    for pod in pods:  # every pod sees the shared data volume the entrypoint reads and writes
        mounts = {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        assert "/data" in mounts
    command, params = _cli_command(shlex.split(spec["entrypoint"]))
    assert command in {"sweep run", "sweep ratio", "mine"}
    assert params["address"] == "auto"
    paths = [str(v) for k, v in params.items() if isinstance(v, Path)]
    assert paths and all(p.startswith("/data/") for p in paths)
    if command == "sweep run":
        assert params["space"] in available()


def test_container_recipe_pins_ray_and_installs_the_project() -> None:
    text = (ROOT / "cluster" / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:(\S+)", text, re.M)
    assert base and base.group(1).startswith(f"{ray.__version__}-")
    assert 'pip install --no-cache-dir ".[st]"' in text and "wordnet-base" in text
    assert re.search(r"^ENV RAY_AUTH_MODE=token", text, re.M)
    for copied in re.findall(r"^COPY \S+ (.+) \S+$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path


@pytest.mark.slow
def test_local_cluster_helper_starts_a_token_protected_multinode_cluster(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    helper = subprocess.Popen(
        [sys.executable, str(ROOT / "cluster" / "local_cluster.py"), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        assert helper.stdout is not None
        while not lines or not lines[-1].startswith("ready"):
            line = helper.stdout.readline()
            assert line, "the helper exited before it was ready"
            lines.append(line)
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in lines if "=" in line)
        token_file = Path(exports["RAY_AUTH_TOKEN_PATH"])
        assert token_file.stat().st_mode & 0o077 == 0  # only the owner can read the token
        assert token_file.read_text() not in "".join(lines)  # and it is never printed
        probe = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()), ray.cluster_resources()['CPU'])"
        out = subprocess.run(
            [sys.executable, "-c", probe], env={**env, **exports}, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-2:] == ["3", "2.0"]  # head + 2 workers; the head has no CPUs
    finally:
        helper.send_signal(signal.SIGINT)
        assert helper.wait(timeout=60) == 0
    assert not token_file.exists()
