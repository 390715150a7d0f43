"""The sweep results table: one row per (trial, milestone step), as ``results.parquet`` holds it.

Columns (docs/sweeps.md, "The output folder"): ``trial_id``, ``ratio`` (canonical string such as
``75_15_10``), ``pools`` (the ratio's pool names, such as ``legacy,expansion,organic``), ``seed``,
``step``, one ``param_<name>`` column per swept training parameter, ``retention``, ``generalization``,
per-tier accuracies ``<set>_tier<k>_accuracy``, ``checkpoint`` (path), ``status`` (``complete`` or
``failed``) and ``error``. A config is everything but the seed:
``ratio``, ``step`` and the params. Ratios are read through :class:`~crucible_ray.config.Ratio` with
the table's pool names (a table written before the ``pools`` column: the sweep manifest's ``pools``,
else the default pools).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from crucible_ray.analysis._result import ResultsSource
from crucible_ray.config import DEFAULT_POOLS, Ratio
from crucible_ray.data import read_json_object
from crucible_ray.errors import ConfigError, DataError

RESULTS_FILE = "results.parquet"
PARAM_PREFIX = "param_"
POOLS_COLUMN = "pools"
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


def manifest_pools(manifest: Mapping[str, Any]) -> tuple[str, ...]:
    """The pools a sweep manifest names (``pools``), else the default pools."""
    pools = manifest.get("pools")
    if isinstance(pools, list) and pools and all(isinstance(p, str) for p in pools):
        return tuple(pools)
    return DEFAULT_POOLS


def table_ratios(table: pd.DataFrame) -> dict[str, Ratio]:
    """Each ``ratio`` value of a :func:`load_results` table as a :class:`Ratio` with its pool names.

    Example:
        >>> t = pd.DataFrame({"ratio": ["85_10_5"], "pools": ["legacy,expansion,organic"]})
        >>> table_ratios(t)["85_10_5"].share("legacy")
        0.85
    """
    pairs = table[["ratio", POOLS_COLUMN]].drop_duplicates()
    return {str(r): Ratio.parse(str(r), str(p).split(",")) for r, p in pairs.itertuples(index=False)}


def load_results(source: ResultsSource) -> pd.DataFrame:
    """Read a results table from a DataFrame, a ``results.parquet`` file, a sweep output dir or what
    :func:`crucible_ray.sweep` returned (a :class:`~crucible_ray.sweeps.SweepResult`).

    A table without the ``pools`` column (written before it) gets one: the sweep manifest's pools
    when read from a sweep folder, else the default pools.

    Raises:
        DataError: no results file, or a table without the required columns or any complete row.
    """
    pools = DEFAULT_POOLS
    if isinstance(source, pd.DataFrame):
        table, name = source.copy(), "results table"
    elif not isinstance(source, (str, Path)):
        table, name = source.table.copy(), "results table"
        pools = manifest_pools(source.manifest)
    else:
        path = Path(source)
        if path.is_dir():
            path = path / RESULTS_FILE
        pools = manifest_pools(read_json_object(path.parent / "manifest.json"))
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
    if POOLS_COLUMN not in table.columns:
        table.insert(list(table.columns).index("ratio") + 1, POOLS_COLUMN, ",".join(pools))
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
    for i, (value, pools) in enumerate(zip(table["ratio"], table[POOLS_COLUMN], strict=True)):
        try:
            if not isinstance(value, str) or not isinstance(pools, str):
                raise ConfigError("not a string")
            Ratio.parse(value, pools.split(","))
        except ConfigError:
            raise DataError(
                f"{name}:row {i}: field 'ratio': must be percentages summing to 100, one per pool of {pools!r:.60}, "
                f"such as 75_15_10, but got {value!r:.60}"
            ) from None
