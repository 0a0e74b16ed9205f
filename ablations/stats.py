"""Seed statistics of the ablation tables and the verdict on each row: does our paired comparison confirm,
contradict or leave undecided the paper's direction (full recipe vs the row), per metric?

The comparison is *paired*: the same seed gives the full row and the ablated row the same initialisation and
training patches, and both are evaluated on the same images. For a metric, let F[s, i] and R[s, i] be the full and
the row's values on image i for seed s. Two 95% intervals for the effect ``mean(F - R)``:

- over seeds: the per-seed differences d_s = mean_i(F[s, i] - R[s, i]), mean +- t(0.975, n-1) * sd(d) / sqrt(n)
  (Student's t; needs two or more seeds): does the effect survive a new training run?
- over images: a percentile bootstrap (``N_BOOT`` resamples of the images, fixed RNG seed) of the mean of
  D_i = mean_s(F[s, i] - R[s, i]): does it survive another test set of the same kind?

A difference is *decided* only when both intervals exclude 0 on the same side. The verdict compares its sign with the
paper's printed values: ``confirms`` (same direction), ``contradicts`` (opposite), ``smaller than the paper's`` (an
interval holds 0, but both exclude the paper's own difference: whatever its sign, the effect is smaller than the
paper reports), ``undecided`` (otherwise, or fewer than two seeds), ``paper tie`` (decided here, but the paper prints
equal values), or ``collapsed`` (a run of either row output a constant image; such a row is never averaged into a
verdict).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

DEGENERATE_SD = 1.0  # mean SD (0..255 scale) below which a run's fused images count as constant (collapsed training)
N_BOOT = 2000  # bootstrap resamples of the images
BOOT_SEED = 0  # the bootstrap's RNG seed (the intervals are reproducible)
LEVEL = 0.95
SMALLER = "smaller than the paper's"  # the verdict when 0 is inside an interval but the paper's difference is not


def seed_stats(results: Sequence[dict], metrics: Sequence[str]) -> dict[str, tuple[float, float]]:
    """metric -> (mean, sample std with ddof=1; NaN for a single seed) over the seeds' mean values."""
    out = {}
    for m in metrics:
        v = np.array([r["metrics"][m] for r in results], dtype=float)
        out[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"))
    return out


def collapsed(result: dict) -> bool:
    """A run whose fused images are (nearly) constant: its mean SD is below :data:`DEGENERATE_SD`."""
    return "SD" in result["metrics"] and result["metrics"]["SD"] < DEGENERATE_SD


def seed_interval(d: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The t interval of the mean of the per-seed differences ``d`` ((nan, nan) with fewer than two)."""
    from scipy import stats

    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return float(d.mean() - half), float(d.mean() + half)


def image_interval(per_image: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT,
                   seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_image`` (one value per image) over resampled images."""
    x = np.asarray(per_image, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def paired_effect(full: np.ndarray, row: np.ndarray) -> dict:
    """The effect full - row of one metric from per-image values, arrays of shape (seeds, images) paired by seed
    and image: its mean, the per-seed differences and both 95% intervals."""
    diff = np.asarray(full, dtype=float) - np.asarray(row, dtype=float)
    per_seed = diff.mean(axis=1)
    return {"diff": float(diff.mean()), "seed_diffs": [float(v) for v in per_seed],
            "seed_ci": seed_interval(per_seed), "image_ci": image_interval(diff.mean(axis=0))}


def decide(effect: Mapping, paper_diff: float | None) -> str:
    """confirms | contradicts | smaller than the paper's | undecided | paper tie, from the two intervals and the
    paper's full - row."""
    (s_lo, s_hi), (i_lo, i_hi) = effect["seed_ci"], effect["image_ci"]
    if any(math.isnan(v) for v in (s_lo, s_hi, i_lo, i_hi)):
        return "undecided"
    if s_lo > 0 and i_lo > 0:
        sign = 1
    elif s_hi < 0 and i_hi < 0:
        sign = -1
    elif paper_diff and not (s_lo <= paper_diff <= s_hi or i_lo <= paper_diff <= i_hi):
        return SMALLER  # the sign is open, but the paper's difference lies outside both intervals
    else:
        return "undecided"
    if paper_diff is None:
        return "decided"
    if paper_diff == 0:
        return "paper tie"
    return "confirms" if sign == (1 if paper_diff > 0 else -1) else "contradicts"


def verdict(effects: Mapping[str, dict], paper_full: Mapping[str, float] | None,
            paper_row: Mapping[str, float] | None, collapsed_runs: Sequence[str] = ()) -> dict:
    """Per metric: the effect (:func:`paired_effect`), the paper's full - row and the decision; ``collapsed_runs``
    (e.g. ``["huge seed 1"]``) turns every decision into ``collapsed``."""
    per = {}
    for m, eff in effects.items():
        known = paper_full is not None and paper_row is not None and m in paper_full and m in paper_row
        p = float(paper_full[m] - paper_row[m]) if known else None
        per[m] = {**eff, "paper_diff": p, "verdict": "collapsed" if collapsed_runs else decide(eff, p)}
    count = {k: sum(v["verdict"] == k for v in per.values())
             for k in ("confirms", "contradicts", SMALLER, "undecided")}
    return {"metrics": per, **count, "n_metrics": len(per), "collapsed_runs": list(collapsed_runs)}


def _fmt(v: float, m: str) -> str:
    return f"{v:+.2f}" if m == "SD" else f"{v:+.3f}"


def verdict_line(label: str, v: dict, full_label: str) -> str:
    """One sentence for the notes under the table."""
    parts = []
    for m, d in v["metrics"].items():
        (s_lo, s_hi), (i_lo, i_hi) = d["seed_ci"], d["image_ci"]
        paper = "paper: --" if d["paper_diff"] is None else f"paper {_fmt(d['paper_diff'], m)}"
        parts.append(f"{m} {_fmt(d['diff'], m)} [seeds {_fmt(s_lo, m)}, {_fmt(s_hi, m)}; images {_fmt(i_lo, m)}, "
                     f"{_fmt(i_hi, m)}; {paper}] {d['verdict']}")
    s = f"VERDICT {label}: {full_label} - this row, paired by seed, 95% intervals: " + "; ".join(parts)
    if v["collapsed_runs"]:
        s += f". Collapsed run(s) {', '.join(v['collapsed_runs'])}: no decision"
    n_smaller = v[SMALLER]
    return s + (f". Confirms the paper on {v['confirms']}/{v['n_metrics']} metrics, contradicts it on "
                f"{v['contradicts']}, {SMALLER} on {n_smaller}, undecided on {v['undecided']}.")
