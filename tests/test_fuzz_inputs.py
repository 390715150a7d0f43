"""Property test: whatever bytes or JSON a file holds, every command that reads it exits 0 or 2 with one
line, never 3 (an internal error) and never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from crucible_ray.cli._main import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Field names the readers look for, so that random documents get past the first checks.
KEYS = [
    "candidate_id",
    "anchor",
    "positive",
    "negatives",
    "positive_id",
    "bundle_id",
    "pool",
    "text",
    "tier",
    "id",
    "pass_count",
    "files",
    "path",
    "role",
    "rows",
    "sha256",
    "pools",
    "kind",
    "name",
    "grid",
    "ratios",
    "seeds",
    "steps",
    "baseline",
    "train",
    "eval_sets",
    "retention",
    "generalization",
    "spec",
    "state",
    "format",
]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


def _as_text(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True)


CONTENT = st.one_of(
    st.binary(max_size=300),
    JSON.map(_as_text).map(str.encode),
    st.lists(JSON.map(_as_text), min_size=1, max_size=4).map(lambda lines: "\n".join(lines).encode()),
    st.integers(1, 200_000).map(lambda depth: ("[" * depth + "]" * depth).encode()),  # nested too deep
    st.binary(max_size=40).map(lambda b: b"PAR1" + b + b"PAR1"),  # Parquet's magic around garbage
    st.binary(max_size=60).map(lambda b: b"PK\x03\x04" + b),  # the start of a zip (torch's .pt format)
)

# {file}: the fuzzed file (its name chosen per command); {dir}: a folder holding it under the name a
# command expects; an unreachable --address keeps any accidentally valid input from starting work.
NOWHERE = ["--address", "127.0.0.1:1"]
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "data validate jsonl": ("rows.jsonl", ["data", "validate", "{file}"]),
    "data validate parquet": ("rows.parquet", ["data", "validate", "{file}"]),
    "data inspect": ("manifest.json", ["data", "inspect", "{dir}"]),
    "eval set": (
        "set.jsonl",
        ["eval", "--encoder", "hashed-ngram:dim=16", "--eval-set", "{file}", "--output", "{out}/b.json"],
    ),
    "eval checkpoint": (
        "model.pt",
        ["eval", "--checkpoint", "{file}", "--eval-set", "{world}/frozen_eval.jsonl", "--output", "{out}/b.json"],
    ),
    "mine candidates": (
        "c.jsonl",
        ["mine", "--candidates", "{file}", "--corpus", "{world}/corpus.jsonl", "--out", "{out}/o.parquet", *NOWHERE],
    ),
    "mine corpus": (
        "corpus.jsonl",
        [
            "mine",
            "--candidates",
            "{world}/organic_candidates.jsonl",
            "--corpus",
            "{file}",
            "--out",
            "{out}/o.parquet",
            *NOWHERE,
        ],
    ),
    "mine checkpoint": (
        "m.pt",
        [
            "mine",
            "--candidates",
            "{world}/organic_candidates.jsonl",
            "--checkpoint",
            "{file}",
            "--out",
            "{out}/o.parquet",
            *NOWHERE,
        ],
    ),
    "train world": (
        "manifest.json",
        ["train", "--data", "{dir}", "--output-dir", "{out}/t", "--steps", "10", *NOWHERE],
    ),
    "sweep space": (
        "space.yaml",
        ["sweep", "run", "--space", "{file}", "--data", "{world}", "--output-dir", "{out}/s", *NOWHERE],
    ),
    "pareto": ("results.parquet", ["pareto", "--results-dir", "{dir}"]),
    "report results": (
        "results.parquet",
        ["report", "--results-dir", "{dir}", "--output", "{out}/r.html", "--bootstrap", "20"],
    ),
    "report manifest": (
        "manifest.json",
        ["report", "--results-dir", "{dir}", "--output", "{out}/r.html", "--bootstrap", "20"],
    ),
    "guardrail scoreboard": ("board.json", ["guardrail", "check", "--scoreboard", "{file}"]),
    "expand world": ("manifest.json", ["expand", "--data", "{dir}", "--out", "{out}/e.jsonl", *NOWHERE]),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_any_file_content_exits_0_or_2_never_3(
    command: str, synthetic_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, template = COMMANDS[command]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(content=CONTENT)
    def check(content: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder, out = Path(tmp) / "in", Path(tmp) / "out"
            folder.mkdir()
            out.mkdir()
            if command == "report manifest":
                _good_results(folder)  # real results beside the fuzzed manifest
            (folder / name).write_bytes(content)
            args = [a.format(file=folder / name, dir=folder, out=out, world=synthetic_world) for a in template]
            code = run(args)
            err = capsys.readouterr().err
            assert code in (0, 2), (command, content[:200], err)
            assert "Traceback" not in err and "internal error" not in err, err
            if code == 2:
                assert len([x for x in err.splitlines() if x.startswith("crucible-ray: error:")]) == 1, err

    check()


def _good_results(folder: Path) -> None:
    import pandas as pd

    rows = [
        {"trial_id": f"t{s}", "ratio": "100_0_0", "seed": s, "step": 10, "retention": 0.5, "generalization": 0.1}
        for s in (0, 1)
    ]
    pd.DataFrame(rows).assign(status="complete").to_parquet(folder / "results.parquet", index=False)
