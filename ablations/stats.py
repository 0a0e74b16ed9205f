"""Seed statistics of the ablation tables and the verdict on each row: does the paper's ordering (the full recipe
better than the row, per metric) hold in our runs?"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

def seed_stats(results: Sequence[dict], metrics: Sequence[str]) -> dict[str, tuple[float, float]]:
    """metric -> (mean, sample std with ddof=1; NaN for a single seed) over the seeds' mean values."""
    out = {}
    for m in metrics:
        v = np.array([r["metrics"][m] for r in results], dtype=float)
        out[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"))
    return out


def verdict(full: dict[str, tuple[float, float]], other: dict[str, tuple[float, float]],
            paper_full: dict[str, float] | None, paper_other: dict[str, float] | None, metrics: Sequence[str],
            paired: dict[str, list[float]] | None = None) -> dict:
    """Does the paper's ordering (full vs this row, per metric) hold in our run?

    Per metric: ``ours_full_better`` (mean of full > mean of the row), ``paper_full_better`` (the same on the
    paper's printed values, ties count as not better), ``agrees`` and ``clear`` (|difference| larger than the sum
    of the two seed stds, so not within seed noise; None with one seed). ``paired`` (metric -> full - row per seed;
    the same seed gives both runs the same initialisation and patches) adds ``seed_diffs`` and ``paired_full_better``
    (full > row on every seed) / ``paired_row_better`` (row > full on every seed): with few seeds whose students differ
    widely, the paired comparison separates the ablated term's effect from the seed's.
    """
    per = {}
    for m in metrics:
        (mf, sf), (mo, so) = full[m], other[m]
        ours = mf > mo
        known = paper_full is not None and paper_other is not None and m in paper_full and m in paper_other
        paper = bool(paper_full[m] > paper_other[m]) if known else None
        noise = sf + so
        per[m] = {"full": mf, "row": mo, "diff": mf - mo, "ours_full_better": bool(ours), "paper_full_better": paper,
                  "agrees": None if paper is None else bool(ours == paper),
                  "clear": None if math.isnan(noise) else bool(abs(mf - mo) > noise)}
        if paired and len(paired.get(m, [])) > 1:
            d = paired[m]
            per[m].update(seed_diffs=list(d), paired_full_better=all(x > 0 for x in d),
                          paired_row_better=all(x < 0 for x in d))
    n_ours = sum(v["ours_full_better"] for v in per.values())
    holds = "holds" if n_ours == len(metrics) else "does not hold" if n_ours == 0 else "holds partly"
    return {"metrics": per, "full_better_ours": n_ours, "n_metrics": len(metrics), "ordering": holds,
            "full_better_paper": (sum(bool(v["paper_full_better"]) for v in per.values())
                                  if any(v["paper_full_better"] is not None for v in per.values()) else None),
            "agree": (sum(bool(v["agrees"]) for v in per.values())
                      if any(v["agrees"] is not None for v in per.values()) else None)}


def verdict_line(label: str, v: dict, full_label: str) -> str:
    """One sentence for the notes under the table."""
    better = [m for m, d in v["metrics"].items() if d["ours_full_better"]]
    worse = [m for m, d in v["metrics"].items() if not d["ours_full_better"]]
    clear = [m for m, d in v["metrics"].items() if d["clear"]]
    s = (f"VERDICT {label}: {full_label} > this row on {v['full_better_ours']}/{v['n_metrics']} metrics in our run "
         f"({', '.join(better) or 'none'}; not on {', '.join(worse) or 'none'}), so '{full_label} > this row' "
         f"{v['ordering']} here")
    if v.get("full_better_paper") is not None:
        s += f"; the paper has {full_label} > this row on {v['full_better_paper']}/{v['n_metrics']}, ours agrees " \
             f"with the paper's direction on {v['agree']}/{v['n_metrics']}"
    if any(d["clear"] is not None for d in v["metrics"].values()):
        s += f"; differences beyond seed noise (|diff| > std_full + std_row): {', '.join(clear) or 'none'}"
    if any("seed_diffs" in d for d in v["metrics"].values()):
        pf = [m for m, d in v["metrics"].items() if d.get("paired_full_better")]
        pr = [m for m, d in v["metrics"].items() if d.get("paired_row_better")]
        s += (f"; paired by seed (same initialisation and patches), {full_label} is better on every seed for "
              f"{', '.join(pf) or 'no metric'} and worse on every seed for {', '.join(pr) or 'no metric'}")
    return s + "."


DEGENERATE_SD = 1.0  # mean SD (0..255 scale) below which a row's fused images count as constant (collapsed training)
