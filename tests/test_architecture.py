"""The layers check themselves (docs/architecture.md): Ray only in the Ray shell, no reaching into
another package's private modules, and ``import crucible_ray`` stays free of Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package it is installed as (the top-level folders are the user's; see pyproject.toml).
PACKAGES = {"crucible_ray": "crucible_ray", "cli": "crucible_ray.cli", "search_spaces": "crucible_ray.search_spaces"}
RAY_SHELL = "crucible_ray.distributed"


def _modules() -> Iterator[tuple[str, Path]]:
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _nodes(tree: ast.AST, lazy: bool) -> Iterator[ast.AST]:
    """The tree's nodes; without ``lazy``, leave out what runs only on demand or for the type checker:
    a module's ``__getattr__`` (the domains' lazy re-exports of the Ray entry points) and
    ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(tree):
        if not lazy:
            if isinstance(child, ast.FunctionDef) and child.name == "__getattr__":
                continue
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
        yield child
        yield from _nodes(child, lazy)


def _imports(path: Path, module: str, *, lazy: bool = True) -> Iterator[tuple[int, str]]:
    """Every imported module name in ``path`` (relative imports resolved), with its line; without
    ``lazy``, only the imports that run when the module is imported."""
    is_package = path.name == "__init__.py"
    for node in _nodes(ast.parse(path.read_text(), filename=str(path)), lazy):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            yield node.lineno, base
            for alias in node.names:  # ``from crucible_ray.mining import _inputs`` names a module too
                yield node.lineno, f"{base}.{alias.name}"


def _package_of(module: str) -> str:
    """``crucible_ray.mining._kernel`` -> ``crucible_ray.mining``; root modules belong to ``crucible_ray``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (len(parts) == 2 and not parts[1].startswith("_")) else parts[0]


MODULES = list(_modules())

# The layer of each top-level name under crucible_ray: a module imports only from lower layers (or its own
# package). The core is layers 0-7; the Ray shell is 8; the demo and the package root are 9; the CLI is 10.
LAYERS = {
    "errors": 0, "_logging": 0, "_rng": 0, "_shell": 0,
    "config": 1, "data": 1,
    "metrics": 2, "encoders": 2, "scoreboard": 2, "provenance": 2,
    "worlds": 3, "evaluation": 3,
    "mining": 4, "training": 4, "analysis": 4,
    "guardrails": 5, "sweeps": 5,
    "reporting": 6,
    "tracking": 7,
    "distributed": 8,
    "demo": 9, "cli": 10, "search_spaces": 9, "__init__": 9,
}  # fmt: skip


def test_the_source_tree_is_found() -> None:
    names = {m for m, _ in MODULES}
    assert {"crucible_ray.mining._kernel", "crucible_ray.distributed._mine", "crucible_ray.cli._main"} <= names


def test_only_the_ray_shell_imports_ray() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for module, path in MODULES
        if not module.startswith(RAY_SHELL)
        for line, name in _imports(path, module)
        if name == "ray" or name.startswith("ray.")
    ]
    assert offenders == [], "Ray is imported outside crucible_ray/distributed:\n" + "\n".join(offenders)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    assert sorted({_top(m) for m, _ in MODULES} - set(LAYERS)) == []


def test_packages_import_only_from_lower_layers() -> None:
    offenders = []
    for module, path in MODULES:
        own = _top(module)
        for line, name in _imports(path, module, lazy=False):
            if not name.startswith("crucible_ray.") or name.startswith("crucible_ray.__"):
                continue
            target = _top(name)
            if target in LAYERS and target != own and LAYERS[target] >= LAYERS[own]:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {own} (layer {LAYERS[own]}) imports {target}")
    offenders = sorted(set(offenders))
    assert offenders == [], "an import against the layers in docs/architecture.md:\n" + "\n".join(offenders)


def test_no_package_imports_another_packages_private_module() -> None:
    offenders = []
    for module, path in MODULES:
        own = _package_of(module)
        for line, name in _imports(path, module):
            parts = name.split(".")
            if parts[0] != "crucible_ray":
                continue
            private = next((i for i, p in enumerate(parts) if p.startswith("_") and i > 0), None)
            if private is None or private == 1:  # public, or a root-level private helper (crucible_ray._rng)
                continue
            target, private_module = ".".join(parts[:private]), ".".join(parts[: private + 1])
            if target != own:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: imports {private_module} (private to {target})")
    offenders = sorted(set(offenders))
    assert offenders == [], "use the package's public names instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("module", ["crucible_ray", "crucible_ray.cli", "crucible_ray.mining", "crucible_ray.training"])
def test_importing_the_package_does_not_import_ray(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]", f"import {module} pulled in Ray: {out.stdout.strip()[:300]}"


def test_a_miner_actor_loads_only_what_mining_needs() -> None:
    """A Ray worker starting a miner actor imports its module: not the analysis stack, Ray Tune or Ray Train
    (each public name of ``crucible_ray`` is imported on first use)."""
    code = (
        "import sys, crucible_ray.distributed._actors, crucible_ray as cr; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy' or m.startswith(('ray.tune', 'ray.train'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]", out.stdout[:300]


def test_every_public_name_is_found_where_it_lives() -> None:
    import crucible_ray
    import crucible_ray.distributed

    for module in (crucible_ray, crucible_ray.distributed):
        names = set(module.__all__) - {"__version__"}
        assert names == set(module._HOMES), module.__name__
        assert set(dir(module)) >= names
        with pytest.raises(AttributeError):
            module.no_such_name  # noqa: B018


def test_the_ray_entry_points_are_importable_from_their_domains() -> None:
    import crucible_ray
    from crucible_ray.mining import expand, mine
    from crucible_ray.sweeps import sweep
    from crucible_ray.training import train

    assert (mine, expand, train, sweep) == (
        crucible_ray.mine,
        crucible_ray.expand,
        crucible_ray.train,
        crucible_ray.sweep,
    )
    with pytest.raises(AttributeError):
        crucible_ray.mining.no_such_name  # noqa: B018 - the lazy lookup refuses other names


def test_the_checks_catch_what_they_guard_against(tmp_path: Path) -> None:
    """The import scanner itself: a private import across packages and a relative one are both seen."""
    src = tmp_path / "x.py"
    src.write_text("from crucible_ray.mining._inputs import skip_done\nfrom .._kernel import f\nimport ray.data\n")
    names = [n for _, n in _imports(src, "crucible_ray.distributed._mine")]
    assert "crucible_ray.mining._inputs" in names and "crucible_ray._kernel" in names and "ray.data" in names
    lazy = tmp_path / "lazy.py"
    lazy.write_text("if TYPE_CHECKING:\n    import a\ndef __getattr__(n):\n    import b\nimport c\n")
    assert [n for _, n in _imports(lazy, "crucible_ray.x")] == ["a", "b", "c"]
    assert [n for _, n in _imports(lazy, "crucible_ray.x", lazy=False)] == ["c"]
    assert _package_of("crucible_ray.mining._inputs") == "crucible_ray.mining"
    assert _package_of("crucible_ray._rng") == "crucible_ray"


def test_the_trackers_are_imported_only_when_named() -> None:
    """Without --mlflow-uri or --wandb-project nothing of MLflow or W&B is imported: not by the package,
    the tracking helpers, the Ray shell's train and sweep, nor the CLI; a sweep's MLflow callback (loaded
    only with a URI) does not pull in W&B."""
    found = "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'wandb'}))"
    code = (
        "import sys, crucible_ray, crucible_ray.tracking, crucible_ray.distributed._sweep, "
        f"crucible_ray.distributed._train, crucible_ray.cli._main; {found}; "
        f"import crucible_ray.distributed._tracking; {found}"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True, timeout=120)
    assert out.stdout.split() == ["[]", "['mlflow']"]
