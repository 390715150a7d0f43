"""The Ray dashboard side: mining counters on the Prometheus endpoint, readable actor names."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_mining_ray import CFG, _copies

import crucible_ray as cr
from crucible_ray.data import write_candidates

pytestmark = [pytest.mark.usefixtures("ray_local"), pytest.mark.slow]


def _scrape() -> str:
    """Every live node's Prometheus endpoint (each node exports what its own workers recorded)."""
    import ray

    texts = []
    for node in ray.nodes():
        if node["Alive"]:
            url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - a node of this machine's cluster
                texts.append(r.read().decode())
    return "\n".join(texts)


def test_mining_counters_reach_the_metrics_endpoint_and_actors_have_names(wordnet_world: Path, tmp_path: Path) -> None:
    from ray.util.state import list_actors

    path = tmp_path / "c.parquet"
    write_candidates(path, _copies(wordnet_world, 30))  # long enough for several metric exports
    result: dict[str, Any] = {}
    names: set[str] = set()

    def work() -> None:
        result["res"] = cr.mine(path, corpus=wordnet_world / "corpus.jsonl", out=tmp_path / "m.parquet", **CFG)

    t = threading.Thread(target=work)
    t.start()
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        names |= {a.class_name for a in list_actors(filters=[("state", "=", "ALIVE")])}
        text = _scrape()
        if "ray_crucible_miner_candidates_seen" in text:
            seen = text
            if not t.is_alive():
                break
        elif not t.is_alive() and time.monotonic() > deadline - 60:
            break
        time.sleep(0.5)
    t.join(timeout=300)
    names |= {a.class_name for a in list_actors(limit=10_000)}  # dead ones too: a short run may end between polls
    assert "res" in result
    assert any("CrucibleMiner" in n for n in names), names  # the dashboard shows what the actor is
    for metric in ("candidates_seen", "lineups_evaluated", "accepted", "pass_rate"):
        assert f"ray_crucible_miner_{metric}" in seen, metric
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in seen.splitlines()
        if line.startswith("ray_crucible_miner_candidates_seen")
    ]
    assert values and max(values) > 0
