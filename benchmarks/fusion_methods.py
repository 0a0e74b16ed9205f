"""The fusion methods a target covers and how fast they fuse: shared by the detection target and the figures.

- :func:`method_entries`: the rows to run (one per method and weights) from the harness's method list, and why the
  others have no row;
- :func:`fusion_times_ms`: each method's fusion time from ``table3.csv`` (the x axis of Fig. 8).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from benchmarks.run import Context


@dataclass(frozen=True)
class MethodEntry:
    """One row: its key (file names, logs), the tidy method / weights, and the harness run."""

    key: str
    method: str
    weights: str
    run: Any = None


def method_entries(ctx: Context, profile: str = "", fusion_methods: str = "all"
                   ) -> tuple[list[MethodEntry], dict[str, str]]:
    """The fusion methods to run, from the harness's ``ctx.method_runs()``, and {label: why not}.
    ``fusion_methods="mmdrfuse"`` keeps only MMDRFuse's weights unless ``--methods`` names others (``profile``: the
    profile's name, for the reason given)."""
    runs, unavailable = ctx.method_runs()
    unavailable = dict(unavailable)
    if ctx.methods is None and fusion_methods == "mmdrfuse":
        for r in runs:
            if r.kind != "mmdrfuse":
                unavailable[r.label] = f"not run in the {profile} profile (fusion_methods: mmdrfuse)"
        runs = [r for r in runs if r.kind == "mmdrfuse"]
    return [MethodEntry(r.label, r.method, r.weights, r) for r in runs], unavailable


def fusion_times_ms(results_dir: Path) -> dict[str, float]:
    """Per-method fusion time (ms per pair) from ``results_dir/table3.csv`` (our rows), or {} when absent."""
    csv = Path(results_dir) / "table3.csv"
    if not csv.is_file():
        return {}
    df = pd.read_csv(csv)
    df = df[df["source"] == "ours"]
    metric = df["metric"].astype(str)
    mask = metric == "Time_ms"
    if not mask.any():
        mask = metric.str.lower().str.contains("time") & ~metric.str.lower().str.contains("cuda|gpu")
    times = df[mask].groupby("method")["value"].first()
    return {str(k): float(v) for k, v in times.items()}
