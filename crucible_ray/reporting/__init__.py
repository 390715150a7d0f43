"""The self-contained HTML report of a sweep: compute the numbers, then render them (plotly, offline)."""

from __future__ import annotations

from pathlib import Path

from crucible_ray.data import atomic_write
from crucible_ray.reporting._compute import Curve, Heatmap, Margins, Mining, ReportData, compute_report
from crucible_ray.reporting._render import figures, render_html


def report(results_dir: str | Path, output: str | Path, *, n_bootstrap: int = 1000) -> Path:
    """Write the report of a sweep folder to ``output`` (atomically) and return its path.

    Raises:
        DataError: the folder has no complete results.
    """
    data = compute_report(results_dir, n_bootstrap=n_bootstrap)
    path = Path(output)
    page = render_html(data)
    with atomic_write(path) as f:
        f.write(page)
    return path


__all__ = ["Curve", "Heatmap", "Margins", "Mining", "ReportData", "compute_report", "figures", "render_html", "report"]
