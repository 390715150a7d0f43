"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from crucible_ray.scoreboard import Scoreboard


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        padded = (c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        lines.append("  ".join(padded).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def scoreboard_table(board: Scoreboard) -> str:
    """One row per eval set and tier, then retention and generalization."""
    rows = []
    for name, res in board.eval_sets.items():
        for tier in ("1", "2", "3", "all"):
            t = res[tier]
            rows.append(
                [
                    f"{name} tier {tier}",
                    t["n"],
                    t["left_out"],
                    t["accuracy"],
                    t["mrr"],
                    t["danger_rate"],
                    t["margin"]["p50"],
                ]
            )
    head = ["eval set", "n", "left out", "accuracy", "MRR", f"danger@{board.danger_margin:g}", "margin p50"]
    out = table(head, rows)
    out += f"\n\nretention ({board.retention_set}, tier-3 accuracy): {_fmt(board.retention)}"
    out += f"\ngeneralization ({board.generalization_set}, tier-3 accuracy): {_fmt(board.generalization)}"
    return out
