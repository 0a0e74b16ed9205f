"""Reports: write a target's tidy CSV, .tex, .md and provenance in one call (:func:`write_outputs`), rebuild them
from the CSVs, and gather every table into results/REPORT.md (``python -m benchmarks.report``).

The .tex and .md files are generated from the CSV only, so ``python -m benchmarks.report`` rebuilds them (and
REPORT.md) from the CSVs at any time. The parts: :mod:`benchmarks.tidy` (the tidy table, metric directions and
precision), :mod:`benchmarks.render` (LaTeX and Markdown layout), :mod:`benchmarks.provenance` (the provenance record,
the DEMO state); their public names are importable from here too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from benchmarks.provenance import (DEMO_FLAG, git_commit, git_dirty, is_demo, machine, provenance, real_results_in,
                                   run_context)
from benchmarks.render import METRIC_LABELS, METRIC_LATEX, TABLE_TITLES, fmt_value, to_latex, to_markdown, wide_rows
from benchmarks.tidy import (DECIMALS, LOWER_IS_BETTER, SOURCES, STD_SUFFIX, TIDY_COLUMNS, decimals,
                             higher_is_better, read_tidy, tidy_frame, validate_tidy, write_tidy)
from mmdrfuse.atomic import write_json, write_text

__all__ = ["DECIMALS", "DEMO_FLAG", "LOWER_IS_BETTER", "METRIC_LABELS", "METRIC_LATEX", "SOURCES", "STD_SUFFIX",
           "TABLE_TITLES", "TARGET_ORDER", "TIDY_COLUMNS", "build_report", "decimals", "git_commit", "git_dirty",
           "higher_is_better", "is_demo", "machine", "official_differences", "provenance", "read_tidy",
           "real_results_in", "regenerate", "run_context", "tidy_frame", "to_latex", "to_markdown", "validate_tidy",
           "wide_rows", "write_outputs", "write_tidy"]

TARGET_ORDER = ("table1", "table2", "table3", "table4", "table5", "detection", "detection_pretrained")


def write_outputs(df: pd.DataFrame | Iterable[dict], out_dir: str | os.PathLike, target: str, prov: dict) -> list[Path]:
    """Write ``<target>.csv`` (tidy), ``.tex``, ``.md`` and ``.provenance.json`` into ``out_dir`` (atomically).

    The flags and notes of ``prov`` are printed under the tables.
    """
    out = Path(out_dir)
    df = tidy_frame(df)
    notes = [f"FLAG: {f}" for f in prov.get("flags", [])] + list(prov.get("notes", []))
    paths = [write_tidy(df, out / f"{target}.csv")]
    write_text(out / f"{target}.tex", to_latex(df, notes=notes))
    write_text(out / f"{target}.md", to_markdown(df, notes=notes))
    write_json(out / f"{target}.provenance.json", prov)
    paths += [out / f"{target}.tex", out / f"{target}.md", out / f"{target}.provenance.json"]
    return paths


def regenerate(out_dir: str | os.PathLike, target: str) -> list[Path]:
    """Rebuild ``<target>.tex`` and ``.md`` from ``<target>.csv`` (and the notes in its provenance)."""
    out = Path(out_dir)
    df = read_tidy(out / f"{target}.csv")
    prov = _read_prov(out, target)
    notes = [f"FLAG: {f}" for f in prov.get("flags", [])] + list(prov.get("notes", []))
    write_text(out / f"{target}.tex", to_latex(df, notes=notes))
    write_text(out / f"{target}.md", to_markdown(df, notes=notes))
    return [out / f"{target}.tex", out / f"{target}.md"]


def _is_tidy_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() == ",".join(TIDY_COLUMNS)
    except OSError:
        return False


def _read_prov(out: Path, target: str) -> dict:
    p = out / f"{target}.provenance.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# -------------------------------------------------------------------------------------------------- REPORT.md
def official_differences(df: pd.DataFrame) -> pd.DataFrame:
    """For rows with weights ``official`` present in ours and the paper: ours, paper, ours - paper, equal at display
    precision."""
    df = tidy_frame(df)
    off = df[df["weights"] == "official"]
    key = ["table", "dataset", "method", "metric"]
    ours = off[off["source"] == "ours"].set_index(key)["value"]
    paper = off[off["source"] == "paper"].set_index(key)["value"]
    both = pd.concat({"ours": ours, "paper": paper}, axis=1, join="inner").reset_index()
    if both.empty:
        return pd.DataFrame(columns=key + ["ours", "paper", "diff", "equal"])
    both["diff"] = both["ours"] - both["paper"]
    both["equal"] = [round(o, decimals(m)) == round(p, decimals(m))
                     for o, p, m in zip(both["ours"], both["paper"], both["metric"])]
    return both


def build_report(out_dir: str | os.PathLike, targets: Sequence[str] | None = None) -> Path:
    """Write ``out_dir/REPORT.md``: every tidy table found there (in the paper's order) with its flags, notes and
    regeneration command, and for the official-weights rows the difference ours - paper per cell."""
    from tabulate import tabulate

    out = Path(out_dir)
    found = [p.name[: -len(".csv")] for p in sorted(out.glob("*.csv")) if _is_tidy_csv(p)]
    names = list(targets) if targets is not None else (
        [t for t in TARGET_ORDER if t in found] + [t for t in found if t not in TARGET_ORDER])
    parts = ["# MMDRFuse reproduction: results", "",
             "Generated by `python -m benchmarks.report` from the tidy CSVs in this folder. Rows with source `paper` "
             "are the paper's printed values; every `ours` value was produced by the command named under its table.",
             ""]
    if any(_read_prov(out, t).get("demo") is True for t in names):
        parts[1:1] = ["", f"**{DEMO_FLAG}.**"]
    for t in names:
        try:
            df = read_tidy(out / f"{t}.csv")
        except (OSError, ValueError) as exc:
            parts += [f"## {t}", "", f"(not a tidy table: {exc})", ""]
            continue
        prov = _read_prov(out, t)
        notes = [f"FLAG: {f}" for f in prov.get("flags", [])] + list(prov.get("notes", []))
        parts.append(to_markdown(df, notes=notes, level=2))
        meta = []
        if prov:
            meta.append(f"Command: `{prov.get('command', '?')}` (profile `{prov.get('profile', '?')}`, "
                        f"commit `{prov.get('git_commit') or 'uncommitted'}`, {prov.get('date', '?')}).")
        parts += meta + [""]
        diff = official_differences(df)
        if not diff.empty:
            rows = [[r.dataset, r.method, r.metric, fmt_value(r.ours, r.metric), fmt_value(r.paper, r.metric),
                     f"{r.diff:+.{decimals(r.metric) + 2}f}", "yes" if r.equal else "no"]
                    for r in diff.itertuples()]
            n_eq = int(diff["equal"].sum())
            parts += [f"Official weights, ours - paper ({n_eq}/{len(diff)} cells equal at the paper's precision):", "",
                      tabulate(rows, headers=["Dataset", "Method", "Metric", "Ours", "Paper", "Ours - paper", "Equal"],
                               tablefmt="pipe", disable_numparse=True), ""]
    path = out / "REPORT.md"
    write_text(path, "\n".join(parts).rstrip() + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                 description="rebuild .tex/.md and REPORT.md from the tidy CSVs")
    ap.add_argument("--out", default=None, help="results folder (default: ./results)")
    ap.add_argument("targets", nargs="*", help="targets to rebuild (default: every CSV with a provenance file)")
    args = ap.parse_args(argv)
    from mmdrfuse.paths import results_dir

    out = results_dir(args.out)
    targets = args.targets or [p.stem for p in sorted(out.glob("*.csv")) if _is_tidy_csv(p)]
    for t in targets:
        try:
            for p in regenerate(out, t):
                print(p)
        except ValueError as exc:
            print(f"{t}: skipped ({exc})", file=sys.stderr)
    print(build_report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
