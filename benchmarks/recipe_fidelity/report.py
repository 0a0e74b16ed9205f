"""The recipe diagnosis's files: CSV first, then the Markdown page written from the CSVs found.

- ``recipe_diagnosis.csv``: one row per (student, patch setting): loss terms, gradient norms, cosines, the
  non-negative stationarity fit;
- ``recipe_factors.csv``: one row per controlled run (and the authors' student as ``reference``): distances to the
  authors' student and the paper's six metrics on MSRS and MRI-PET;
- ``recipe_fidelity.md``: both tables; each CSV has a ``.provenance.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.metrics import PAPER_METRICS

from benchmarks.provenance import provenance

DIAG_CSV, FACTORS_CSV, CURVE_CSV, PAGE = ("recipe_diagnosis.csv", "recipe_factors.csv", "recipe_curve.csv",
                                         "recipe_fidelity.md")


def _write_csv(df: pd.DataFrame, path: Path, prov: dict) -> None:
    write_text(path, df.to_csv(index=False, float_format="%.6g"))
    write_json(path.with_suffix(".provenance.json"), prov)


def write_diagnosis(rows: list[dict], out: Path) -> None:
    df = pd.DataFrame(rows)
    _write_csv(df, out / DIAG_CSV, provenance(
        "recipe_diagnosis", profile="cpu", data={"patches": "LLVIP/train_samples grid patches (seed 1)"},
        notes=["refresh off (a fixed student has no banks); gradients are means over the patches at the recipe's "
               "batch size; fit_w_*: non-negative weights of L_int, L_grad, L_per that best cancel w_dis * g_dis; "
               "fit_residual = |w_dis g_dis + G w| / |w_dis g_dis|; recipe_residual = |total gradient| / |w_dis g_dis|"]))
    render(out)


def factor_rows(results: list[dict], ref_scores: dict) -> list[dict]:
    rows = [{"factor": "reference", "what": "the authors' student (official-student)", **_scores(ref_scores)}]
    for r in results:
        row = {"factor": r["factor"], "what": r["what"], "steps": r["steps"], "train_seconds": r["train_seconds"],
               "param_distance": r["param_distance"], "patch_distance": r["patch_distance"]}
        row.update({k: v for k, v in r.items() if k.startswith("image_distance_")})
        row.update(_scores({ds: r[ds] for ds in ref_scores}))
        row.update({f"loss_{k}": v for k, v in r["last_epoch"].items()})
        rows.append(row)
    return rows


def _scores(by_ds: dict) -> dict:
    return {f"{ds}_{m}": v for ds, scores in by_ds.items() for m, v in scores.items()}


def write_factors(results: list[dict], ref_scores: dict, out: Path, *, base: str, budget: dict) -> None:
    df = pd.DataFrame(factor_rows(results, ref_scores))
    _write_csv(df, out / FACTORS_CSV, provenance(
        "recipe_factors", profile=str(base), data={"train": "LLVIP/train_samples", "test": ["MSRS/test (361)",
                                                                                           "MRI_PET (42)"]},
        notes=[f"base recipe {base} with {json.dumps(budget)}; each run changes one factor from the same seed",
               "distances are to the authors' student: param_distance = L2 over the 113 parameters (minimised over "
               "hidden-channel orderings), patch_distance = mean |O - O_ref| x 255 on the training patches, "
               "image_distance_* = mean |difference| of the fused test images in grey levels"]))
    render(out)


def write_curve(rows: list[dict], out: Path, *, base: str, budget: dict) -> None:
    """Add one run's curve to ``recipe_curve.csv`` (a ``run`` column names it; the run's earlier rows are replaced)."""
    label = f"{base} " + " ".join(f"{k}={v}" for k, v in budget.items())
    new = pd.DataFrame([{"run": label, **r} for r in rows])
    path = out / CURVE_CSV
    if path.is_file():
        old = pd.read_csv(path)
        new = pd.concat([old[old["run"] != label], new], ignore_index=True)
    runs_in = list(dict.fromkeys(new["run"]))
    _write_csv(new, path, provenance(
        "recipe_curve", profile=str(base), data={"train": "LLVIP/train_samples", "test": "MSRS/test (361)"},
        notes=["each run (column run: the base recipe and its overrides) trained once and measured after its "
               "epochs (distances as in recipe_factors)", *runs_in]))
    render(out)


def _md_table(df: pd.DataFrame, cols: list[str], digits: int = 3) -> str:
    cols = [c for c in cols if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append("" if pd.isna(v) else (f"{v:.{digits}f}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(out: Path) -> None:
    """``recipe_fidelity.md`` from whichever of the two CSVs exist."""
    parts = ["# Recipe fidelity: the suite's training recipe against the authors' student",
             "Written by `python -m benchmarks.recipe_fidelity` from the CSVs beside it (see their provenance)."]
    if (out / DIAG_CSV).is_file():
        d = pd.read_csv(out / DIAG_CSV)
        parts += ["## Loss terms and gradients at fixed students (refresh off)",
                  _md_table(d, ["student", "patch_size", "patches", "total", "L_int", "L_grad", "L_per", "L_dis"], 4),
                  _md_table(d, ["student", "patch_size", "|g_int|", "|g_grad|", "|g_per|", "|g_dis|",
                                "cos(g_int,g_dis)", "cos(g_grad,g_dis)", "cos(g_per,g_dis)"]),
                  _md_table(d, ["student", "patch_size", "fit_w_int", "fit_w_grad", "fit_w_per", "fit_residual",
                                "recipe_residual"]),
                  "fit_w_*: the non-negative weights of L_int, L_grad, L_per that best cancel the weighted distillation "
                  "gradient; fit_residual: what is left of it (1 = nothing cancelled); recipe_residual: the total "
                  "gradient at the recipe's own weights, relative to the distillation gradient."]
    if (out / FACTORS_CSV).is_file():
        f = pd.read_csv(out / FACTORS_CSV)
        metric_cols = [f"{ds}_{m}" for ds in ("MSRS", "MRI_PET") for m in PAPER_METRICS]
        parts += ["## Controlled runs (one factor changed from the same initialisation)",
                  _md_table(f, ["factor", "what", "steps", "train_seconds"], 1),
                  _md_table(f, ["factor", "param_distance", "patch_distance", "image_distance_MSRS",
                                "image_distance_MRI_PET"], 2),
                  _md_table(f, ["factor", *metric_cols[:6]]),
                  _md_table(f, ["factor", *metric_cols[6:]])]
    if (out / CURVE_CSV).is_file():
        c = pd.read_csv(out / CURVE_CSV)
        parts += ["## Learning curve (one run, measured after every epoch)", _md_table(c, list(c.columns))]
    write_text(out / PAGE, "\n\n".join(parts) + "\n")
