"""Part 3 of the recipe diagnosis: the suite's own student against the issue's target.

Fuses MSRS (361) and MRI-PET (42) with the student and with the authors' student exactly as ``mmdrfuse fuse`` does,
scores both with ``mmdrfuse evaluate``'s paper metrics, and checks the target: VIF, Qabf and SSIM each at least 97% of
the authors' student's, SD and CC within 3% of it.

Writes ``eval_<weights>_<dataset>.csv`` (per image + a ``mean`` row) with provenance, and ``<weights>_target.csv``
(one row per dataset and metric: both means, the ratio, the rule, pass/fail) with ``.md`` written from it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.evaluate import evaluate_folder, with_mean_row
from mmdrfuse.folders import fuse_folder
from mmdrfuse.metrics import PAPER_METRICS

from benchmarks.provenance import provenance
from benchmarks.recipe_fidelity.runs import DATASETS, REFERENCE

RULES = {"VIF": ("at least", 0.97), "Qabf": ("at least", 0.97), "SSIM": ("at least", 0.97),
         "SD": ("within", 0.03), "CC": ("within", 0.03)}  # the issue's target, relative to the authors' student


def passes(rule: str, bound: float, ratio: float) -> bool:
    return ratio >= bound if rule == "at least" else abs(ratio - 1.0) <= bound


def evaluate_weights(weights: str, data_root: Path, weights_root, fused_root: Path, out: Path) -> dict[str, dict]:
    """Fuse (anew) and score both test sets with named weights; write their per-image CSVs; return the means."""
    means = {}
    for ds, (ir, vis) in DATASETS.items():
        target = fused_root / weights / ds
        fuse_folder(data_root / ir, data_root / vis, target, weights=weights, weights_root=weights_root,
                    overwrite=True, progress=False)
        df = evaluate_folder(target, data_root / ir, data_root / vis, PAPER_METRICS, progress=False)
        path = out / f"eval_{weights}_{ds}.csv"
        write_text(path, with_mean_row(df).to_csv(index=False))
        write_json(path.with_suffix(".provenance.json"), provenance(
            f"eval_{weights}_{ds}", profile="cpu", data={"ir": str(ir), "vis": str(vis), "pairs": len(df)},
            notes=[f"fused with named weights {weights} (save: minmax), scored with the paper's six metrics"]))
        means[ds] = {m: float(df[m].mean()) for m in PAPER_METRICS}
    return means


def target_rows(ours: dict, ref: dict, weights: str) -> list[dict]:
    rows = []
    for ds in ours:
        for m, (rule, bound) in RULES.items():
            ratio = ours[ds][m] / ref[ds][m]
            rows.append({"dataset": ds, "metric": m, weights: ours[ds][m], REFERENCE: ref[ds][m],
                         "ratio": ratio, "rule": f"{rule} {bound:.0%}" if rule == "at least" else f"within {bound:.0%}",
                         "pass": passes(rule, bound, ratio)})
    return rows


def write_target(rows: list[dict], out: Path, weights: str) -> None:
    df = pd.DataFrame(rows)
    path = out / f"{weights}_target.csv"
    write_text(path, df.to_csv(index=False, float_format="%.6g"))
    write_json(path.with_suffix(".provenance.json"), provenance(
        f"{weights}_target", profile="cpu", data={k: [str(x) for x in v] for k, v in DATASETS.items()},
        notes=["target of the training-fidelity issue: VIF, Qabf, SSIM >= 97% of the authors' student's; SD and CC "
               "within 3%; means over all pairs"]))
    lines = [f"# {weights} against the authors' student", "",
             f"Written by `python -m benchmarks.recipe_fidelity target --weights {weights}` from `{path.name}`.", "",
             f"| dataset | metric | {weights} | {REFERENCE} | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['metric']} | {r[weights]:.4f} | {r[REFERENCE]:.4f} | {r['ratio']:.3f} | "
                     f"{r['rule']} | {'yes' if r['pass'] else 'no'} |")
    met = sum(r["pass"] for r in rows)
    lines += ["", f"{met} of {len(rows)} met."]
    write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
