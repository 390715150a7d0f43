"""The self-contained HTML report of a sweep: compute the numbers, then render them (plotly, offline)."""

from __future__ import annotations

from pathlib import Path

from crucible_ray.analysis import RESULTS_FILE
from crucible_ray.data import atomic_write, check_outputs, resolved
from crucible_ray.errors import ConfigError
from crucible_ray.reporting._compute import Curve, Heatmap, Margins, Mining, ReportData, compute_report
from crucible_ray.reporting._render import figures, render_html


def report(
    results_dir: str | Path, output: str | Path, *, n_bootstrap: int = 1000, data: str | Path | None = None
) -> Path:
    """Write the report of a sweep folder to ``output`` (atomically) and return its path.

    ``data``: the sweep's world folder (its mining funnel and examples); by default the world the
    sweep manifest names, only when it lies inside ``results_dir``.

    Raises:
        DataError: the folder has no complete results.
    """
    rdir = Path(results_dir)
    check_outputs(
        outputs={"--output": output},
        inputs={"the results table": rdir / RESULTS_FILE, "the sweep manifest": rdir / "manifest.json"},
        folders={"--results-dir": rdir, "--data": data},
    )
    for sub in ("trials", "tune"):  # the sweep's own files: never written over
        if resolved(output).is_relative_to(resolved(rdir / sub)):
            raise ConfigError(f"--output {output} is inside the sweep's {sub}/ folder; write the report elsewhere")
    content = compute_report(rdir, n_bootstrap=n_bootstrap, data=data)
    path = Path(output)
    page = render_html(content)
    with atomic_write(path) as f:
        f.write(page)
    return path


__all__ = ["Curve", "Heatmap", "Margins", "Mining", "ReportData", "compute_report", "figures", "render_html", "report"]
