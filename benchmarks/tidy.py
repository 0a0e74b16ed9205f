"""Tidy tables: every result of the suite is first a table of one value per row, with exactly the columns
``table,dataset,method,weights,metric,value,source,n_pairs,profile`` (:data:`TIDY_COLUMNS`). ``source`` is ``ours``
(measured by a command of this suite) or ``paper`` (transcribed in :mod:`benchmarks.paper_values`); a metric
``<m>_std`` holds the std across seeds of metric ``<m>``. Also each metric's direction and display precision."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from mmdrfuse.atomic import write_text

TIDY_COLUMNS = ["table", "dataset", "method", "weights", "metric", "value", "source", "n_pairs", "profile"]
SOURCES = ("ours", "paper")

# Direction and display precision of the metrics; anything not listed: higher is better, 2 decimals.
# Table 3's efficiency columns (not metrics of the registry); every image metric's direction comes from the registry
LOWER_IS_BETTER = {"Size_KB", "FLOPs_G", "Time_ms", "Time_ms_gpu", "Params"}
DECIMALS = {"FLOPs_G": 3, "Params": 0}
STD_SUFFIX = "_std"  # tidy metric "<m>_std": the std across seeds of metric <m> (ablations)


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: the metrics registry's for image metrics, lower for Table 3's efficiency columns
    (:data:`LOWER_IS_BETTER`), higher otherwise (e.g. detection mAP)."""
    if metric in LOWER_IS_BETTER:
        return False
    from mmdrfuse.metrics import METRICS

    spec = METRICS.get(metric)
    return spec.higher_is_better if spec is not None else True


def decimals(metric: str) -> int:
    return DECIMALS.get(metric, 2)


def tidy_frame(rows: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows (dicts with the tidy keys) -> a validated DataFrame with exactly :data:`TIDY_COLUMNS`."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=TIDY_COLUMNS)
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"tidy rows lack the column(s) {missing}")
    df = df[TIDY_COLUMNS].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df["n_pairs"] = pd.to_numeric(df["n_pairs"], errors="coerce").astype("Int64")
    for c in ("table", "dataset", "method", "weights", "metric", "source", "profile"):
        df[c] = df[c].astype(str)
    validate_tidy(df)
    return df.reset_index(drop=True)


def validate_tidy(df: pd.DataFrame) -> None:
    """Raise ValueError unless ``df`` follows the tidy schema (columns in order, sources, no duplicates)."""
    if list(df.columns) != TIDY_COLUMNS:
        raise ValueError(f"tidy columns must be exactly {','.join(TIDY_COLUMNS)}; got {','.join(map(str, df.columns))}")
    bad = sorted(set(df["source"]) - set(SOURCES))
    if bad:
        raise ValueError(f"source must be one of {SOURCES}; got {bad}")
    for c in ("table", "dataset", "method", "weights", "metric"):
        if (df[c].astype(str).str.strip() == "").any() or df[c].isna().any():
            raise ValueError(f"column {c!r} has empty values")
    key = ["table", "dataset", "method", "weights", "metric", "source"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        raise ValueError(f"duplicate tidy rows for {df.loc[dup, key].drop_duplicates().to_dict('records')[:3]}")


def read_tidy(path: str | os.PathLike) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"table": str, "dataset": str, "method": str, "weights": str, "metric": str,
                                  "source": str, "profile": str}, keep_default_na=False, na_values={"value": [""],
                                                                                                   "n_pairs": [""]})
    return tidy_frame(df)


def write_tidy(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    df = tidy_frame(df)
    text = df.to_csv(index=False, float_format=lambda v: repr(float(v)), lineterminator="\n")
    write_text(path, text)
    return Path(path)

