"""The sweep results table: one row per (trial, milestone step), as ``results.parquet`` holds it.

Columns (docs/sweeps.md, "The output folder"): ``trial_id``, ``ratio`` (canonical string such as
``75_15_10``), ``seed``, ``step``, one ``param_<name>`` column per swept training parameter,
``retention``, ``generalization``, per-tier accuracies ``<set>_tier<k>_accuracy``, ``checkpoint``
(path), ``status`` (``complete`` or ``failed``) and ``error``. A config is everything but the seed:
``ratio``, ``step`` and the params.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crucible_ray.errors import DataError

RESULTS_FILE = "results.parquet"
PARAM_PREFIX = "param_"
REQUIRED = ("ratio", "seed", "step", "retention", "generalization")
OBJECTIVES = ("retention", "generalization")


def config_columns(table: pd.DataFrame) -> list[str]:
    """The columns that identify a config: ``ratio``, ``step`` and every ``param_*`` column."""
    return ["ratio", "step", *sorted(c for c in table.columns if c.startswith(PARAM_PREFIX))]


def config_label(row: pd.Series | dict[str, object], columns: list[str]) -> str:
    """A short readable name such as ``75_15_10@2000`` or ``75_15_10@2000 lr=0.001``."""
    label = f"{row['ratio']}@{int(row['step'])}"  # type: ignore[arg-type]
    extra = [f"{c[len(PARAM_PREFIX) :]}={row[c]}" for c in columns if c.startswith(PARAM_PREFIX)]
    return " ".join([label, *extra])


def load_results(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a results table from a DataFrame, a ``results.parquet`` file or a sweep output dir.

    Raises:
        DataError: no results file, or a table without the required columns or any complete row.
    """
    if isinstance(source, pd.DataFrame):
        table, name = source.copy(), "results table"
    else:
        path = Path(source)
        if path.is_dir():
            path = path / RESULTS_FILE
        name = str(path)
        if not path.is_file():
            raise DataError(f"{path}: no results file; run `crucible-ray sweep` with this --output-dir first")
        try:
            table = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: not a readable Parquet results table ({e})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(f"{name}: field '{missing[0]}': missing column (a results table needs {list(REQUIRED)})")
    _check_types(table, name)
    if "status" in table.columns:
        table = table[table["status"] == "complete"]
    table = table.dropna(subset=list(OBJECTIVES))
    if table.empty:
        raise DataError(f"{name}: no complete trial with retention and generalization to analyse")
    table["ratio"] = table["ratio"].astype(str)
    table["step"] = table["step"].astype(int)
    table["seed"] = table["seed"].astype(int)
    return table.reset_index(drop=True)


def _check_types(table: pd.DataFrame, name: str) -> None:
    """Every metric a number, seeds and steps whole numbers, every ratio a ratio: else the first bad row, named."""
    metrics = [c for c in table.columns if c in OBJECTIVES or c.endswith("_accuracy")]
    for col in [*metrics, "seed", "step"]:
        values = table[col]
        numbers = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        ok = pd.Series(numbers, index=values.index)
        if not numbers:
            ok = values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        elif col in ("seed", "step"):
            ok = values.notna() & (values == values.round()) & (values >= 0)
        if not ok.all():
            bad = int((~ok).to_numpy().argmax())
            what = "a whole number >= 0" if col in ("seed", "step") else "a number"
            raise DataError(f"{name}:row {bad}: field '{col}': must be {what}, but got {values.iloc[bad]!r:.60}")
    for i, value in enumerate(table["ratio"]):
        parts = str(value).split("_") if isinstance(value, str) else []
        if not parts or not all(p.isdigit() for p in parts) or sum(int(p) for p in parts) != 100:
            raise DataError(
                f"{name}:row {i}: field 'ratio': must be percentages summing to 100 such as 75_15_10, "
                f"but got {value!r:.60}"
            )
