"""Reports: tidy CSV -> LaTeX (booktabs) and Markdown tables, provenance JSON, and results/REPORT.md.

Every result of the suite is first a *tidy* table, one value per row, with exactly the columns
``table,dataset,method,weights,metric,value,source,n_pairs,profile`` (:data:`TIDY_COLUMNS`): ``source`` is ``ours``
(measured by a command of this suite) or ``paper`` (transcribed in :mod:`benchmarks.paper_values`). The .tex and
.md files are generated from the CSV only, so ``python -m benchmarks.report`` rebuilds them (and REPORT.md) from
the CSVs at any time.

Layout of a table: one block per data set; rows are (method, weights); for every metric two columns, ours and the
paper's. Best values are bold and second-best underlined (LaTeX) / italic (Markdown), ranked separately among our
values and among the paper's, in each metric's own direction (higher is better except size, FLOPs, time, MSE).
A method the paper reports but this run has no values for keeps its paper row (ours shown as "--"), and the notes
under the table say why.

Other modules use: :func:`tidy_frame`, :func:`validate_tidy`, :func:`write_outputs` (CSV + .tex + .md + provenance
in one call), :func:`provenance`, :func:`build_report`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from mmdrfuse.atomic import write_json, write_text

TIDY_COLUMNS = ["table", "dataset", "method", "weights", "metric", "value", "source", "n_pairs", "profile"]
SOURCES = ("ours", "paper")
TARGET_ORDER = ("table1", "table2", "table3", "table4", "table5", "detection")

# Direction and display precision of the metrics; anything not listed: higher is better, 2 decimals.
LOWER_IS_BETTER = {"Size_KB", "FLOPs_G", "Time_ms", "Time_ms_gpu", "Params", "MSE", "Nabf"}
DECIMALS = {"FLOPs_G": 3, "Params": 0}
METRIC_LABELS = {"Qabf": "Q^AB/F", "Size_KB": "Size (KB)", "FLOPs_G": "FLOPs (G)", "Time_ms": "Time (ms)",
                 "Time_ms_gpu": "GPU time (ms)"}
METRIC_LATEX = {"Qabf": r"$\mathrm{Q^{AB/F}}$"}
TABLE_TITLES = {
    "table1": "Table 1: ablation of the components (MSRS)",
    "table2": "Table 2: student size (MSRS)",
    "table3": "Table 3: model efficiency and complexity",
    "table4": "Table 4: infrared-visible fusion",
    "table5": "Table 5: medical image fusion",
    "detection": "Fig. 8: pedestrian detection",
}


# --------------------------------------------------------------------------------------------------- tidy frames
STD_SUFFIX = "_std"  # tidy metric "<m>_std": the std across seeds of metric <m> (ablations)


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: the metrics registry when it knows the name, else :data:`LOWER_IS_BETTER`."""
    if metric in LOWER_IS_BETTER:
        return False
    from mmdrfuse.metrics import METRICS

    spec = METRICS.get(metric)
    return bool(getattr(spec, "higher_is_better", True)) if spec is not None else True


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


# ------------------------------------------------------------------------------------------------------ layout
def _method_order(methods: Iterable[str]) -> list[str]:
    """The paper's method order (compared methods, then MMDRFuse last); other names keep their first-seen order,
    before MMDRFuse."""
    from benchmarks.paper_values import METHODS

    ms = list(dict.fromkeys(methods))
    rank = {m: float(i) for i, m in enumerate(METHODS)}
    other = rank["MMDRFuse"] - 0.5
    return sorted(ms, key=lambda m: (rank.get(m, other), ms.index(m)))


def wide_rows(df: pd.DataFrame, dataset: str) -> tuple[list[str], list[dict]]:
    """One data set's block: ``(metrics, rows)``; each row has method, weights, and ``(metric, source) -> value``.

    Our rows are keyed by (method, weights). A paper value joins the our-row with the same (method, weights), or,
    for the compared methods (paper weights ``authors``), every our-row of that method. Paper values that join no
    our-row keep a row of their own.
    """
    block = df[df["dataset"] == dataset]
    paper_first = list(dict.fromkeys(block.loc[block["source"] == "paper", "metric"]))
    metrics = paper_first + [m for m in dict.fromkeys(block["metric"]) if m not in paper_first]
    stds = {m for m in metrics if m.endswith(STD_SUFFIX) and m[:-len(STD_SUFFIX)] in metrics}
    metrics = [m for m in metrics if m not in stds]  # "<metric>_std" is shown as "mean ± std" in its metric's cell
    ours = block[block["source"] == "ours"]
    paper = block[block["source"] == "paper"]
    keys = list(dict.fromkeys(zip(ours["method"], ours["weights"])))
    rows: dict[tuple[str, str], dict] = {}
    for m, w in keys:
        row = {"method": m, "weights": w}
        sel = ours[(ours["method"] == m) & (ours["weights"] == w)]
        for _, r in sel.iterrows():
            if r["metric"] in stds:
                row[(r["metric"][:-len(STD_SUFFIX)], "std")] = r["value"]
            else:
                row[(r["metric"], "ours")] = r["value"]
            row["n_pairs"] = r["n_pairs"]
        rows[(m, w)] = row
    for (m, w), sel in paper.groupby(["method", "weights"], sort=False):
        targets = [k for k in rows if k == (m, w)] or ([k for k in rows if k[0] == m] if w == "authors" else [])
        if not targets:
            rows[(m, w)] = {"method": m, "weights": w, "paper_only": True}
            targets = [(m, w)]
        for k in targets:
            for _, r in sel.iterrows():
                rows[k][(r["metric"], "paper")] = r["value"]
    order = _method_order(k[0] for k in rows)
    out = sorted(rows.values(), key=lambda r: (order.index(r["method"]), r.get("paper_only", False)))
    return metrics, out


def _marks(rows: list[dict], metric: str, source: str) -> dict[int, str]:
    """Row index -> 'best' / 'second' for one column (values compared at display precision; ties share a mark)."""
    d = decimals(metric)
    vals = {}
    for i, r in enumerate(rows):
        v = r.get((metric, source))
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            vals[i] = round(float(v), d)
    distinct = sorted(set(vals.values()), reverse=higher_is_better(metric))
    if len(vals) < 2:
        return {}
    best = distinct[0]
    second = distinct[1] if len(distinct) > 1 else None
    out = {}
    for i, v in vals.items():
        if v == best:
            out[i] = "best"
        elif second is not None and v == second:
            out[i] = "second"
    return out


def _fmt(v, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "--"
    return f"{float(v):.{decimals(metric)}f}"


def _cell(row: dict, metric: str, source: str, pm: str) -> str:
    """A cell's text: the value, and for our values with a std across seeds, ``value <pm> std``."""
    txt = _fmt(row.get((metric, source)), metric)
    std = row.get((metric, "std"))
    if source == "ours" and txt != "--" and std is not None and not (isinstance(std, float) and math.isnan(std)):
        txt += f"{pm}{_fmt(std, metric)}"
    return txt


def _latex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(rep.get(c, c) for c in str(s))


def _datasets(df: pd.DataFrame) -> list[str]:
    from benchmarks.paper_values import PAPER_PAIRS

    ds = list(dict.fromkeys(df["dataset"]))
    order = list(PAPER_PAIRS)
    return sorted(ds, key=lambda d: (order.index(d) if d in order else len(order), ds.index(d)))


def _block_title(df: pd.DataFrame, dataset: str) -> str:
    if re.fullmatch(r"\d+x\d+", dataset):  # Table 3: the measurement's input size
        return f"input 1 x C x {dataset}"
    ours = df[(df["dataset"] == dataset) & (df["source"] == "ours")]
    n = sorted({int(x) for x in ours["n_pairs"].dropna()})
    pairs = f", {'/'.join(map(str, n))} pairs (ours)" if n else ""
    return f"{dataset}{pairs}"


def to_latex(df: pd.DataFrame, *, caption: str | None = None, notes: Sequence[str] = ()) -> str:
    """Booktabs LaTeX of a tidy table: one tabular per data set, best bold, second underlined."""
    df = tidy_frame(df)
    tables = list(dict.fromkeys(df["table"]))
    title = caption or "; ".join(TABLE_TITLES.get(t, t) for t in tables)
    lines = [f"% generated by benchmarks.report from the tidy CSV; do not edit by hand",
             r"\begin{table*}[t]", r"\centering", r"\small", f"\\caption{{{_latex_escape(title)}. Best in bold, "
             r"second underlined, ranked separately for our values and the paper's.}", ""]
    for ds in _datasets(df):
        metrics, rows = wide_rows(df, ds)
        ncol = 2 + 2 * len(metrics)
        lines.append(f"\\begin{{tabular}}{{ll{'rr' * len(metrics)}}}")
        lines.append(r"\toprule")
        lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{_latex_escape(_block_title(df, ds))}}}}} \\\\")
        lines.append(r"\midrule")
        labels = [METRIC_LATEX.get(m, _latex_escape(METRIC_LABELS.get(m, m))) for m in metrics]
        head = ["Method", "Weights"] + [f"\\multicolumn{{2}}{{c}}{{{lab}}}" for lab in labels]
        lines.append(" & ".join(head) + r" \\")
        lines.append(" ".join(f"\\cmidrule(lr){{{3 + 2 * i}-{4 + 2 * i}}}" for i in range(len(metrics))))
        lines.append(" & ".join(["", ""] + ["ours", "paper"] * len(metrics)) + r" \\")
        lines.append(r"\midrule")
        marks = {(m, s): _marks(rows, m, s) for m in metrics for s in SOURCES}
        for i, r in enumerate(rows):
            weights = r["weights"] + (" (paper only)" if r.get("paper_only") else "")
            cells = [_latex_escape(r["method"]), _latex_escape(weights)]
            for m in metrics:
                for s in SOURCES:
                    txt = _cell(r, m, s, r" $\pm$ ")
                    mk = marks[(m, s)].get(i)
                    txt = f"\\textbf{{{txt}}}" if mk == "best" else f"\\underline{{{txt}}}" if mk == "second" else txt
                    cells.append(txt)
            lines.append(" & ".join(cells) + r" \\")
        lines.append(r"\bottomrule")
        lines.append(r"\end{tabular}")
        lines.append(r"\par\medskip")
        lines.append("")
    for n in notes:
        lines.append(f"\\par\\footnotesize {_latex_escape(n)}")
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame, *, title: str | None = None, notes: Sequence[str] = (), level: int = 2) -> str:
    """Markdown of a tidy table (pipe tables via tabulate): best **bold**, second _italic_."""
    from tabulate import tabulate

    df = tidy_frame(df)
    tables = list(dict.fromkeys(df["table"]))
    title = title or "; ".join(TABLE_TITLES.get(t, t) for t in tables)
    out = [f"{'#' * level} {title}", "",
           "Best value **bold**, second _italic_ (the paper underlines), ranked separately among our values and the "
           "paper's. `--`: no value.", ""]
    for ds in _datasets(df):
        metrics, rows = wide_rows(df, ds)
        marks = {(m, s): _marks(rows, m, s) for m in metrics for s in SOURCES}
        headers = ["Method", "Weights"] + [f"{METRIC_LABELS.get(m, m)} {s}" for m in metrics for s in SOURCES]
        body = []
        for i, r in enumerate(rows):
            cells = [r["method"], r["weights"] + (" (paper only)" if r.get("paper_only") else "")]
            for m in metrics:
                for s in SOURCES:
                    txt = _cell(r, m, s, " ± ")
                    mk = marks[(m, s)].get(i)
                    cells.append(f"**{txt}**" if mk == "best" else f"_{txt}_" if mk == "second" else txt)
            body.append(cells)
        out += [f"{'#' * (level + 1)} {_block_title(df, ds)}", "",
                tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True), ""]
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------- provenance
def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository (read-only), or None outside git / before the first commit."""
    from mmdrfuse.paths import repo_root

    try:
        r = subprocess.run(["git", "-C", str(repo or repo_root()), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def git_dirty(repo: str | os.PathLike | None = None) -> bool | None:
    """Whether tracked files outside results/ differ from the commit (the code that made a result is then not
    exactly the commit's). Results being rewritten, as every run does, do not count."""
    from mmdrfuse.paths import repo_root

    try:
        r = subprocess.run(["git", "-C", str(repo or repo_root()), "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":(exclude)results"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(r.stdout.strip()) if r.returncode == 0 else None


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    from mmdrfuse.memory import malloc_policy

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "malloc": malloc_policy()}
    return info


DEMO_FLAG = ("DEMO: computed on the built-in synthetic demo set (mmdrfuse.demo), NOT on the paper's data; the numbers "
             "only show that the pipeline runs")
_RUN: ContextVar[dict] = ContextVar("mmdrfuse_run", default={})


@contextlib.contextmanager
def run_context(*, demo: bool = False, downloads: Sequence[dict] = ()):
    """Within it, every :func:`provenance` record says whether the run is a DEMO (and is flagged so in every table
    and figure) and lists the files this run downloaded (address and sha256)."""
    token = _RUN.set({"demo": bool(demo), "downloads": list(downloads)})
    try:
        yield
    finally:
        _RUN.reset(token)


def is_demo() -> bool:
    """Whether the current run is on the synthetic demo set (see :func:`run_context`)."""
    return bool(_RUN.get().get("demo"))


def real_results_in(folder: str | os.PathLike) -> Path | None:
    """A provenance file in ``folder`` that does not come from a demo run (so the folder holds real-data results), or
    None. Demo numbers must never be written beside such files."""
    folder = Path(folder)
    for p in [*sorted(folder.glob("*.provenance.json")), folder / "figures" / "figures.json"]:
        if not p.is_file():
            continue
        try:
            demo = json.loads(p.read_text(encoding="utf-8")).get("demo") is True
        except (OSError, ValueError, AttributeError):
            demo = False
        if not demo:
            return p
    return None


def provenance(target: str, *, profile: str, command: str | None = None, data: dict | None = None,
               weights: dict | None = None, flags: Sequence[str] = (), notes: Sequence[str] = (),
               **extra) -> dict:
    """The provenance record written beside every result: how to regenerate it and what it was made from.

    In a demo run (:func:`run_context`) it has ``"demo": true`` and the DEMO flag first; files downloaded by the run
    are listed under ``downloads``."""
    run = _RUN.get()
    if run.get("demo"):
        flags = [DEMO_FLAG, *flags]
        extra = {**extra, "demo": True}
    if run.get("downloads"):
        extra = {**extra, "downloads": list(run["downloads"])}
    return {
        "target": target,
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "profile": profile,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "data": data or {},
        "weights_sha256": weights or {},
        "flags": list(flags),
        "notes": list(notes),
        **extra,
    }


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
            rows = [[r.dataset, r.method, r.metric, _fmt(r.ours, r.metric), _fmt(r.paper, r.metric),
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
