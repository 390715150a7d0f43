"""Shipped assets: the cluster launcher config and the search spaces."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
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
            Ratio.parse(t["ratio"], pools=space.pools)
        assert list(space.steps) == sorted(space.steps)
