"""Tidy table -> LaTeX (booktabs) and Markdown: one block per data set; rows are (method, weights); for every metric
two columns, ours and the paper's. Best values are bold and second-best underlined (LaTeX) / italic (Markdown),
ranked separately among our values and among the paper's, in each metric's own direction. A method the paper
reports but this run has no values for keeps its paper row (ours shown as "--")."""
from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import pandas as pd

from benchmarks.tidy import SOURCES, STD_SUFFIX, decimals, higher_is_better, tidy_frame

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
    "detection_pretrained": "Fig. 8: pedestrian detection, detector fine-tuned from COCO weights",
}


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


def fmt_value(v, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "--"
    return f"{float(v):.{decimals(metric)}f}"


def _cell(row: dict, metric: str, source: str, pm: str) -> str:
    """A cell's text: the value, and for our values with a std across seeds, ``value <pm> std``."""
    txt = fmt_value(row.get((metric, source)), metric)
    std = row.get((metric, "std"))
    if source == "ours" and txt != "--" and std is not None and not (isinstance(std, float) and math.isnan(std)):
        txt += f"{pm}{fmt_value(std, metric)}"
    return txt


def _latex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(rep.get(c, c) for c in str(s))


def _datasets(df: pd.DataFrame) -> list[str]:
    from benchmarks.paper_values import PAPER_PAIRS

    ds = list(dict.fromkeys(df["dataset"]))
    order = list(PAPER_PAIRS)

    def key(d: str) -> tuple:
        sub = re.fullmatch(r"(.+)-\d+", d)  # a subset of a paper data set (LLVIP-15) right after it
        base = sub.group(1) if sub and sub.group(1) in order else d
        return (order.index(base) if base in order else len(order), base != d, ds.index(d))

    return sorted(ds, key=key)


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

