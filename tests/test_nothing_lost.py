"""Bad input loses nothing: outputs never overwrite inputs, bad input exits 2 before any work starts,
manifest paths stay inside their folder. Each case runs the real command (in-process, or in a fresh
process where Ray start-up or the file system matters)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr

EXE = str(Path(sys.executable).parent / "crucible-ray")


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links as links) with a hash of its bytes."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link->" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _one_error(code: int, err: str, message: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("crucible-ray: error: "), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err


def _fake_sweep(folder: Path) -> Path:
    """A results folder as a sweep leaves it (a results table and a manifest)."""
    folder.mkdir(parents=True)
    rows = [
        {"trial_id": f"t{s}", "ratio": r, "seed": s, "step": 100, "retention": 0.5 + s / 100, "generalization": 0.1}
        for r in ("100_0_0", "75_15_10")
        for s in (0, 1)
    ]
    pd.DataFrame(rows).assign(status="complete").to_parquet(folder / "results.parquet", index=False)
    (folder / "manifest.json").write_text(json.dumps({"kind": "sweep", "data": str(folder / "nowhere")}))
    return folder


@pytest.fixture
def world(synthetic_world: Path, tmp_path: Path) -> Path:
    w = tmp_path / "world"
    shutil.copytree(synthetic_world, w)
    return w


def _cases(w: Path, t: Path) -> list[tuple[list[str], str]]:
    sweep = t / "sweep"
    link = t / "link.json"
    link.symlink_to(w / "frozen_eval.jsonl")
    shutil.copy(w / "organic_candidates.jsonl", t / "c.jsonl")
    return [
        (
            [
                "eval",
                "--encoder",
                "hashed-ngram",
                "--eval-set",
                f"{w}/frozen_eval.jsonl",
                "--output",
                f"{w}/frozen_eval.jsonl",
            ],
            "would destroy the input",
        ),
        (
            ["eval", "--encoder", "hashed-ngram", "--eval-set", f"{w}/frozen_eval.jsonl", "--output", str(link)],
            "would destroy the input",
        ),
        (["report", "--results-dir", str(sweep), "--output", f"{sweep}/results.parquet"], "would destroy the input"),
        (["report", "--results-dir", str(sweep), "--output", f"{sweep}/manifest.json"], "would destroy the input"),
        (["report", "--results-dir", str(sweep), "--output", f"{sweep}/trials/x.html"], "inside the sweep's trials/"),
        (
            ["mine", "--candidates", f"{t}/c.jsonl", "--out", f"{t}/c.parquet", "--st-export", f"{t}/c.jsonl"],
            "would destroy the input",
        ),
        (["mine", "--candidates", f"{t}/c.jsonl", "--out", f"{t}/o.parquet", "--pool", "c"], "would destroy the input"),
        (
            [
                "mine",
                "--candidates",
                f"{t}/c.jsonl",
                "--out",
                f"{t}/o.parquet",
                "--bundles-dir",
                str(w),
                "--pool",
                "legacy",
            ],
            "was not mined",
        ),
        (
            [
                "mine",
                "--candidates",
                f"{t}/c.jsonl",
                "--out",
                f"{t}/o.parquet",
                "--bundles-dir",
                str(w),
                "--holdout-pool",
                "frozen_eval",
            ],
            "was not mined",
        ),
        (["train", "--data", str(w), "--output-dir", str(w), "--steps", "10"], "is the folder --data reads"),
        (["train", "--data", str(w), "--output-dir", str(sweep), "--steps", "10"], "holds a manifest.json of a sweep"),
        (
            [
                "sweep",
                "ratio",
                "--data",
                str(w),
                "--output-dir",
                str(w),
                "--ratios",
                "100_0_0",
                "--seeds",
                "0",
                "--steps",
                "10",
            ],
            "is the folder --data reads",
        ),
        (["expand", "--data", str(w), "--out", f"{w}/legacy.jsonl"], "would destroy the input"),
        (["data", "build", "--world", "synthetic", "--out", str(sweep)], "holds a manifest.json of a sweep"),
    ]


def test_no_command_writes_over_its_inputs(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _fake_sweep(work / "sweep")
    for args, message in _cases(world, work):
        before = (_snapshot(world), _snapshot(work))
        code = run(args)
        _one_error(code, capsys.readouterr().err, message)
        assert (_snapshot(world), _snapshot(work)) == before, args
    assert cr.World.open(world).pools  # the world still opens


def test_writing_into_a_world_a_mined_pool_may_be_replaced(world: Path, tmp_path: Path) -> None:
    from crucible_ray.distributed._mine import check_world_targets

    w = cr.World.open(world)
    w.register("mined_pool", world / "legacy.jsonl", role="pool", rows=1, origin=cr.worlds.MINED_ORIGIN)
    check_world_targets(world, {"train": world / "mined_pool.jsonl"})  # registered by a miner: may be replaced
    with pytest.raises(cr.ConfigError, match="was not mined"):
        check_world_targets(world, {"train": world / "legacy.jsonl"})


MINE_BAD_INPUT = [
    ([{"candidate_id": "a", "anchor": "x"}], [], "field 'positive': Field required"),
    ([], [], "file is empty"),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y", "negatives": ["n1", "n2"]}], [], "lineup_size must be <="),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y"}], ["--min-passes", "11"], "min_passes must be <= lineups"),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y"}], ["--lineup-size", "20"], "lineup_size must be <="),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y"}], ["--corpus", "BADCORPUS"], "field 'id': Field required"),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y"}], ["--corpus", ""], "no corpus was given"),
    ([{"candidate_id": "a", "anchor": "x", "positive": "y"}], ["--checkpoint", "TEXTPT"], "TEXTPT"),
]


@pytest.mark.parametrize(("rows", "extra", "message"), MINE_BAD_INPUT)
def test_mine_bad_input_exits_2_leaves_nothing_and_starts_no_ray(
    rows: list[dict[str, object]], extra: list[str], message: str, tmp_path: Path
) -> None:
    """In a fresh process (no Ray running, none reachable): every bad input is found before Ray starts
    or anything is embedded, and the run leaves its folder exactly as it was."""
    data = tmp_path / "in"
    data.mkdir()
    cands = data / "c.jsonl"
    # a good first row, so that a bad row is found past the start of the file
    good = {"candidate_id": "g", "anchor": "an anchor", "positive": "a positive"}
    first = [good] if rows and "negatives" not in rows[0] else []
    cands.write_text("".join(json.dumps(r) + "\n" for r in first + rows))
    corpus = data / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"document {i}"}) + "\n" for i in range(40)))
    bad_corpus = data / "bad_corpus.jsonl"
    bad_corpus.write_text(json.dumps({"text": "no id"}) + "\n")
    text_pt = data / "model.pt"
    text_pt.write_text("not a checkpoint\n")
    extra = [str(bad_corpus) if e == "BADCORPUS" else str(text_pt) if e == "TEXTPT" else e for e in extra]
    message = "model.pt" if message == "TEXTPT" else message
    args = ["mine", "--candidates", str(cands), "--out", str(data / "o.parquet")]
    if "--corpus" not in extra:
        args += ["--corpus", str(corpus)]
    elif extra[extra.index("--corpus") + 1] == "":
        extra = extra[:-2]
    before = _snapshot(data)
    ray_tmp = tmp_path / "ray-temp"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(ray_tmp)  # where a Ray started by this process would put its session
    proc = subprocess.run([EXE, *args, *extra], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    _one_error(proc.returncode, proc.stderr, message)
    assert _snapshot(data) == before  # no results, no .o.parquet.work, no corpus embeddings
    assert not ray_tmp.exists()  # Ray never started


def test_a_linked_mining_work_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cands = tmp_path / "c.jsonl"
    cands.write_text(
        json.dumps({"candidate_id": "a", "anchor": "x", "positive": "y", "negatives": list("abcdef")}) + "\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    (tmp_path / ".o.parquet.work").symlink_to(elsewhere)
    code = run(["mine", "--candidates", str(cands), "--out", str(tmp_path / "o.parquet")])
    _one_error(code, capsys.readouterr().err, "is a symbolic link")
    assert (elsewhere / "keep.txt").read_text() == "precious"


def _unshare_available() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


def test_an_output_on_a_read_only_file_system_exits_2(world: Path, tmp_path: Path) -> None:
    """A read-only mount (a tmpfs in a private mount namespace, as an unprivileged user would meet one)."""
    if not _unshare_available():  # pragma: no cover - the CI machine has it (util-linux)
        pytest.fail("this test needs `unshare -rm` (util-linux) to mount a read-only file system")
    ro = tmp_path / "ro"
    ro.mkdir()
    sweep = _fake_sweep(tmp_path / "sweep")
    commands = {
        "eval": f"eval --encoder hashed-ngram --eval-set {world}/frozen_eval.jsonl --output {ro}/board.json",
        "report": f"report --results-dir {sweep} --output {ro}/r.html",
        "data build": f"data build --world synthetic --out {ro}/w",
        "mine": f"mine --candidates {world}/organic_candidates.jsonl --corpus {world}/corpus.jsonl --out {ro}/o.pq",
    }
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(tmp_path / "ray-temp")
    for name, command in commands.items():
        script = f"mount -t tmpfs -o ro tmpfs {ro} && exec {EXE} {command}"
        proc = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=180, env=env
        )
        _one_error(proc.returncode, proc.stderr, "read-only file system")
        assert str(ro) in proc.stderr, name
    assert not (tmp_path / "ray-temp").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "build", "--world", "synthetic", "--out", "{tmp}/file/sub"], "not a folder"),
        (["data", "build", "--world", "synthetic", "--out", "{tmp}/w", "-o", "items=100000000"], "option 'items'"),
        (
            ["data", "build", "--world", "synthetic", "--out", "{tmp}/w", "-o", "domains=1000", "-o", "families=1000"],
            "domains x families x items must be <=",
        ),
        (
            ["data", "build", "--world", "wordnet", "--out", "{tmp}/w", "-o", "min_killers=100000"],
            "option 'min_killers'",
        ),
        (["data", "build", "--world", "wordnet", "--out", "{tmp}/w", "-o", "tier3=1000000000"], "option 'tier3'"),
        (["data", "build", "--world", "synthetic", "--out", "{tmp}/w", "-o", "distractors=10000000000"], "distractors"),
    ],
)
def test_bad_build_options_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    code = run([a.format(tmp=tmp_path) for a in args])
    _one_error(code, capsys.readouterr().err, message)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("ratio", "seventy_thirty", "field 'ratio'"),
        ("ratio", "75_15_11", "field 'ratio'"),
        ("retention", "high", "field 'retention': must be a number"),
        ("seed", "x", "field 'seed'"),
        ("step", 1.5, "field 'step'"),
        ("seed", -1, "field 'seed'"),
    ],
)
def test_a_results_table_with_bad_types_exits_2(
    column: str, value: object, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _fake_sweep(tmp_path / "sweep")
    table = pd.read_parquet(sweep / "results.parquet")
    # Parquet columns have one type: a string in a number column makes the whole column strings.
    as_text = isinstance(value, str) and not isinstance(table.loc[0, column], str)
    table = table.astype({column: str if as_text else object})
    table.loc[2, column] = value
    table.to_parquet(sweep / "results.parquet", index=False)
    row = 0 if as_text else 2
    for args in (
        ["pareto", "--results-dir", str(sweep)],
        ["report", "--results-dir", str(sweep), "--output", str(tmp_path / "r.html")],
    ):
        code = run(args)
        err = capsys.readouterr().err
        _one_error(code, err, message)
        assert f"results.parquet:row {row}:" in err


def test_a_results_manifest_cannot_send_the_report_elsewhere(
    tmp_path: Path, synthetic_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_ray.reporting import compute_report

    sweep = _fake_sweep(tmp_path / "sweep")
    for data in (123, str(synthetic_world), "../../../"):
        (sweep / "manifest.json").write_text(json.dumps({"kind": "sweep", "data": data}))
        report = compute_report(sweep, n_bootstrap=50)
        assert report.mining == [] and report.examples == []
    assert run(["report", "--results-dir", str(sweep), "--output", str(tmp_path / "r.html")]) == 0


@pytest.mark.parametrize("path", ["../outside/secret.jsonl", "/etc/hostname", "link.jsonl"])
def test_a_world_manifest_cannot_point_outside_its_folder(world: Path, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(world / "frozen_eval.jsonl", outside / "secret.jsonl")
    (world / "link.jsonl").symlink_to(outside / "secret.jsonl")
    manifest = json.loads((world / "manifest.json").read_text())
    manifest["files"]["frozen_eval"]["path"] = path
    (world / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(cr.DataError, match="leads out of the world folder"):
        cr.World.open(world)


def test_a_world_file_changed_since_the_build_is_refused(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = world / "legacy.jsonl"
    legacy.write_text(legacy.read_text().replace('"', '"', 1) + "\n")  # same rows, different bytes
    code = run(["data", "inspect", str(world)])
    _one_error(code, capsys.readouterr().err, "changed since the world was built")
