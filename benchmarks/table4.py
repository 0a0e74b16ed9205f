"""Table 4: infrared-visible fusion quality on MSRS, LLVIP and RoadScene (``python -m benchmarks.run table4``).

Rows per data set: MMDRFuse with the authors' checkpoint (weights ``official``), MMDRFuse with the project's trained
weights (``mmdrfuse-cpu``, when present), every compared method whose weights are here; columns the paper's six
metrics (SD, SCD, VIF, Qabf, SSIM, CC), ours beside the paper's. Values are means over the test pairs of per-image
metrics computed with the paper's evaluation conventions (:mod:`mmdrfuse.metrics`) on the cached fused images.
A method without weights keeps its paper row and the notes say why it has none of ours.

:func:`quality_table` is shared with Table 5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import paper_values as pv
from benchmarks.report import provenance, write_outputs
from mmdrfuse import data
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.metrics import PAPER_METRICS

TABLE = "table4"
DATASETS = ("MSRS", "LLVIP", "RoadScene")


def paper_metrics() -> list[str]:
    """The six metrics in the paper's column order (the metrics registry's)."""
    return list(PAPER_METRICS)


def main_stems(loc) -> set[str]:
    """Stems of a located data set's own layout, without its supplements (LLVIP: the 15 public samples)."""
    from mmdrfuse.images import match_stems
    return {p.stem for p in match_stems(loc.ir_dir, loc.vis_dir, skip_bad=True, skipped=[])}


def _mean_rows(table: str, dataset: str, run, per, metrics, profile: str, notes: list[str]) -> list[dict]:
    """One tidy row per metric: the mean of ``per``'s per-image values (a NaN is noted, and the mean is NaN)."""
    rows = []
    for m in metrics:
        vals = per[m].to_numpy(dtype=float)
        if np.isnan(vals).any():
            notes.append(f"{run.label} on {dataset}: {m} is undefined (NaN) on {int(np.isnan(vals).sum())} "
                         "image(s); the mean is NaN")
        rows.append({"table": table, "dataset": dataset, "method": run.method, "weights": run.weights, "metric": m,
                     "value": float(np.mean(vals)), "source": "ours", "n_pairs": len(per), "profile": profile})
    return rows


def quality_table(ctx, table: str, dataset_names, extra_notes=()) -> list[Path]:
    """Fuse (cached), evaluate and report one quality table; returns the files written."""
    metrics = paper_metrics()
    located, missing_data = ctx.datasets_for(list(dataset_names))
    runs, unavailable = ctx.method_runs()
    rows: list[dict] = []
    flags: list[str] = []
    notes: list[str] = []
    data_info: dict = {}
    weights_info: dict = {}
    subsets: dict[str, set[int]] = {}
    for loc in located:
        if loc.flag:
            flags.append(loc.flag)
            ctx.say(f"FLAG: {loc.flag}")
        all_pairs = ctx.cache.select(loc)
        own = main_stems(loc) if loc.more else set()  # LLVIP: the 15 samples among the 64 pairs
        if own:
            notes.append(f"{loc.name}-{len(own)}: the same methods on the {len(own)} pairs of "
                         f"{loc.ir_dir.relative_to(loc.root).parent} alone (the set of earlier runs and of the "
                         f"authors'-evaluator reference values); {loc.name} itself is all {loc.n_pairs} pairs found")
        data_info[loc.name] = {"found_pairs": loc.n_pairs, "paper_pairs": loc.spec.paper_pairs,
                               "ir_dir": str(loc.ir_dir), "vis_dir": str(loc.vis_dir), "used_pairs": {},
                               "more_dirs": [[str(a), str(b)] for a, b in loc.more]}
        record = data.download_record(loc.name, loc.root)  # address and sha256 of the archive, when downloaded
        if record:
            data_info[loc.name]["download"] = record
        for run in runs:
            mp = ctx.max_pairs(run)
            pairs = ctx.cache.select(loc, mp) if mp else all_pairs
            try:
                ctx.cache.ensure(run, loc, pairs)
                per = ctx.cache.metrics(run, loc, pairs, metrics, ctx.evaluator)
            except MMDRFuseError as exc:
                notes.append(f"{run.label} on {loc.name}: no values of ours ({exc})")
                ctx.say(f"warning: {run.label} on {loc.name}: {exc}")
                continue
            rows += _mean_rows(table, loc.name, run, per, metrics, ctx.profile, notes)
            own_per = per[per["stem"].astype(str).isin(own)]
            if len(own_per):  # the layout's own pairs alone too (LLVIP-15: the set of earlier runs and references)
                rows += _mean_rows(table, f"{loc.name}-{len(own)}", run, own_per, metrics, ctx.profile, notes)
            data_info[loc.name]["used_pairs"][run.label] = len(per)
            weights_info[run.label] = run.sha256
            if len(per) < len(all_pairs):
                subsets.setdefault(loc.name, set()).add(len(per))
    rows += [r for r in pv.paper_rows(table)]
    for name, sizes in subsets.items():
        notes.append(f"{name}: some methods were evaluated on {'/'.join(map(str, sorted(sizes)))} evenly spaced pairs "
                     f"only (profile {ctx.profile}; see n_pairs in the CSV); their values are not comparable with "
                     "full-set values")
    notes += list(extra_notes)
    for name, reason in unavailable.items():
        notes.append(f"{name}: paper values only, none of ours: {reason}")
    for name, reason in missing_data.items():
        notes.append(f"{name}: paper values only, none of ours: {reason}")
    if ctx.synthetic:
        notes.insert(0, "SYNTHETIC DATA: no evaluation data was found, so 'ours' rows are computed on the built-in "
                        "demo set (data set DEMO), NOT on the paper's data")
    prov = provenance(table, profile=ctx.profile, command=ctx.command, data=data_info, weights=weights_info,
                      flags=flags, notes=notes, synthetic=ctx.synthetic, metrics=metrics,
                      cache=str(ctx.cache.root), evaluation="mean over pairs of per-image metrics; fused images "
                      "saved by each method's own convention (MMDRFuse: per-image min-max), read back as 8-bit gray "
                      "with OpenCV BGR2GRAY weights (mmdrfuse.metrics.reading)")
    return write_outputs(rows, ctx.out_dir, table, prov)


def run(ctx) -> list[Path]:
    return quality_table(ctx, TABLE, DATASETS)
