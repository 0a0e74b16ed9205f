"""Tidy CSV schema, LaTeX / Markdown generation, REPORT.md and the transcribed paper values."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from benchmarks import paper_values as pv
from benchmarks import report

HEADER = "table,dataset,method,weights,metric,value,source,n_pairs,profile"


def _small_rows():
    """A hand-made tidy table: three methods, two metrics (one higher-, one lower-is-better), ours and paper."""
    rows = []
    ours = {"Alpha_1": {"VIF": 0.90, "Time_ms": 5.0}, "Beta": {"VIF": 0.70, "Time_ms": 1.0},
            "Gamma": {"VIF": 0.80, "Time_ms": 3.0}}
    paper = {"Alpha_1": {"VIF": 0.50, "Time_ms": 2.0}, "Beta": {"VIF": 0.60, "Time_ms": 9.0},
             "Gamma": {"VIF": 0.55, "Time_ms": 4.0}}
    for src, table in (("ours", ours), ("paper", paper)):
        for method, vals in table.items():
            for metric, v in vals.items():
                rows.append({"table": "tableX", "dataset": "DS", "method": method,
                             "weights": "w1" if src == "ours" else "authors", "metric": metric, "value": v,
                             "source": src, "n_pairs": 3 if src == "ours" else 10, "profile": "quick"})
    return rows


# ------------------------------------------------------------------------------------------------- schema
def test_tidy_columns_exact_and_roundtrip(tmp_path):
    df = report.tidy_frame(_small_rows())
    assert list(df.columns) == HEADER.split(",")
    path = report.write_tidy(df, tmp_path / "t.csv")
    assert path.read_text().splitlines()[0] == HEADER
    back = report.read_tidy(path)
    pd.testing.assert_frame_equal(back, df)


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: d.rename(columns={"value": "val"}), "lack"),
    (lambda d: d.assign(source="mine"), "source"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "duplicate"),
    (lambda d: d.assign(method=""), "empty"),
])
def test_tidy_validation_rejects(mutate, msg):
    df = pd.DataFrame(_small_rows())
    with pytest.raises(ValueError, match=msg):
        report.tidy_frame(mutate(df))


def test_paper_rows_follow_schema_and_counts():
    for t in pv.TABLES:
        df = report.tidy_frame(pv.paper_rows(t))
        assert set(df["source"]) == {"paper"}
    t4 = report.tidy_frame(pv.paper_rows("table4"))
    assert len(t4) == 3 * 7 * 6  # 3 data sets x 7 methods x 6 metrics
    assert t4.loc[t4["dataset"] == "LLVIP", "n_pairs"].unique().tolist() == [250]
    mm = t4[(t4["method"] == "MMDRFuse")]
    assert set(mm["weights"]) == {"official"}


# ------------------------------------------------------------------------------------------------- LaTeX
def test_latex_booktabs_best_bold_second_underlined():
    tex = report.to_latex(pd.DataFrame(_small_rows()))
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\cmidrule"):
        assert cmd in tex
    assert r"Alpha\_1" in tex and "Alpha_1" not in tex  # escaped
    lines = {ln.split(" & ")[0]: ln.split(" & ") for ln in tex.splitlines() if " & " in ln}
    alpha, beta, gamma = lines[r"Alpha\_1"], lines["Beta"], lines["Gamma"]
    # columns: Method, Weights, VIF ours, VIF paper, Time ours, Time paper
    assert alpha[2] == r"\textbf{0.90}" and gamma[2] == r"\underline{0.80}" and beta[2] == "0.70"
    assert beta[3] == r"\textbf{0.60}" and gamma[3] == r"\underline{0.55}" and alpha[3] == "0.50"
    # time: lower is better
    assert beta[4] == r"\textbf{1.00}" and gamma[4] == r"\underline{3.00}" and alpha[4] == "5.00"
    assert alpha[5].startswith(r"\textbf{2.00}") and gamma[5].startswith(r"\underline{4.00}")


def test_latex_ties_share_the_mark():
    rows = [{"table": "t", "dataset": "D", "method": m, "weights": "w", "metric": "SD", "value": v,
             "source": "ours", "n_pairs": 1, "profile": "p"} for m, v in (("A", 1.0), ("B", 1.0), ("C", 0.5))]
    tex = report.to_latex(pd.DataFrame(rows))
    assert tex.count(r"\textbf{1.00}") == 2 and r"\underline{0.50}" in tex


# ---------------------------------------------------------------------------------------------- Markdown
def test_markdown_from_small_csv(tmp_path):
    path = report.write_tidy(pd.DataFrame(_small_rows()), tmp_path / "small.csv")
    md = report.to_markdown(report.read_tidy(path), notes=["FLAG: short data set"])
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert table[0].split("|")[1].strip() == "Method"
    assert len(table) == 2 + 3  # header, rule, three methods
    alpha = next(ln for ln in table if "Alpha_1" in ln)
    cells = [c.strip() for c in alpha.strip("|").split("|")]
    assert cells[2] == "**0.90**" and cells[3] == "0.50" and cells[4] == "5.00" and cells[5] == "**2.00**"
    assert "- FLAG: short data set" in md


def test_a_subset_block_follows_its_data_set():
    """Table 4's LLVIP-15 (the samples among the 64 LLVIP pairs) comes right after LLVIP, before RoadScene."""
    base = {"table": "table4", "method": "M", "weights": "w", "metric": "SD", "value": 1.0, "source": "ours",
            "profile": "cpu"}
    df = pd.DataFrame([{**base, "dataset": d, "n_pairs": n}
                       for d, n in (("RoadScene", 50), ("LLVIP-15", 15), ("MSRS", 361), ("LLVIP", 64))])
    heads = [ln for ln in report.to_markdown(df).splitlines() if ln.startswith("### ")]
    assert heads == ["### MSRS, 361 pairs (ours)", "### LLVIP, 64 pairs (ours)", "### LLVIP-15, 15 pairs (ours)",
                     "### RoadScene, 50 pairs (ours)"]


def test_paper_only_rows_and_join_by_method():
    rows = pv.paper_rows("table5")
    rows += [{"table": "table5", "dataset": "MRI-PET", "method": "TarDAL", "weights": "tardal.pt", "metric": "SD",
              "value": 50.0, "source": "ours", "n_pairs": 42, "profile": "quick"}]
    metrics, wide = report.wide_rows(report.tidy_frame(rows), "MRI-PET")
    assert metrics == list(pv.METRICS)
    tardal = [r for r in wide if r["method"] == "TarDAL"]
    assert len(tardal) == 1 and tardal[0]["weights"] == "tardal.pt"
    assert tardal[0][("SD", "ours")] == 50.0 and tardal[0][("SD", "paper")] == 52.99
    lrr = next(r for r in wide if r["method"] == "LRRNet")
    assert lrr.get("paper_only") and ("SD", "ours") not in lrr
    assert [r["method"] for r in wide][-1] == "MMDRFuse"  # the paper's order, MMDRFuse last


# ------------------------------------------------------------------------------------------- REPORT.md
def test_report_md_differences_for_official_rows(tmp_path):
    rows = pv.paper_rows("table5")
    ours = [dict(r, source="ours", profile="quick", n_pairs=42) for r in rows
            if r["method"] == "MMDRFuse" and r["dataset"] == "MRI-PET"]
    for r in ours:
        r["value"] = r["value"] + (0.003 if r["metric"] != "SD" else 0.25)  # SD off by 0.25, the rest equal
    prov = report.provenance("table5", profile="quick", command="python -m benchmarks.run table5",
                             flags=["LLVIP: only 15 of 250"], data={"MRI-PET": {"found_pairs": 42}})
    report.write_outputs(rows + ours, tmp_path, "table5", prov)
    (tmp_path / "speed_fuse.csv").write_text("a,b\n1,2\n")  # a non-tidy CSV is ignored
    text = report.build_report(tmp_path).read_text()
    assert "speed_fuse" not in text
    assert "5/6 cells equal" in text
    sd = next(ln for ln in text.splitlines() if ln.startswith("| MRI-PET") and "| SD " in ln)
    assert "+0.25" in sd and "| no" in sd
    assert "FLAG: LLVIP: only 15 of 250" in text
    assert "python -m benchmarks.run table5" in text
    for suffix in (".csv", ".tex", ".md", ".provenance.json"):
        assert (tmp_path / f"table5{suffix}").is_file()


def test_provenance_fields(tmp_path):
    prov = report.provenance("table4", profile="cpu", data={"MSRS": {"found_pairs": 361}}, weights={"x": "ab"})
    for key in ("command", "profile", "git_commit", "date", "machine", "data", "weights_sha256", "flags"):
        assert key in prov
    assert prov["machine"]["cpu_count"] >= 1
    json.dumps(prov)  # serialisable


def test_regenerate_from_csv_only(tmp_path):
    report.write_outputs(_small_rows(), tmp_path, "tableX", report.provenance("tableX", profile="quick"))
    (tmp_path / "tableX.md").unlink()
    (tmp_path / "tableX.tex").unlink()
    assert report.main(["--out", str(tmp_path)]) == 0
    assert "**0.90**" in (tmp_path / "tableX.md").read_text()
    assert r"\textbf{0.90}" in (tmp_path / "tableX.tex").read_text()


# ------------------------------------------------------------------------------- transcription check
def _paper_text(shared_reference):
    p = shared_reference.parent / "paper" / "MMDRFuse_ACMMM2024.txt"
    if not p.is_file():
        pytest.skip("paper text not found")
    return p.read_text(encoding="utf-8")


def _parse_block(lines, start_marker, names, n_values):
    """Rows 'Name v1 v2 ...' following the line that contains ``start_marker``."""
    i = next(k for k, ln in enumerate(lines) if start_marker in ln)
    out = {}
    for ln in lines[i + 1:]:
        for name in names:
            if ln.startswith(name + " ") and name not in out:
                nums = re.findall(r"-?\d+(?:\.\d+)?", ln[len(name):])[-n_values:]
                out[name] = tuple(float(x) for x in nums)
        if len(out) == len(names):
            break
    return out


def test_paper_values_match_the_paper_text(shared_reference):
    lines = _paper_text(shared_reference).splitlines()
    assert _parse_block(lines, "Table 1. Quantitative ablation", list(pv.TABLE1), 4) == pv.TABLE1
    assert _parse_block(lines, "Table 2. Quantitative ablation", list(pv.TABLE2), 4) == pv.TABLE2
    assert _parse_block(lines, "Table 3. Comparison", list(pv.TABLE3), 3) == pv.TABLE3
    for marker, ds in (("(a) Dataset: MSRS", "MSRS"), ("(b) Dataset: LLVIP", "LLVIP"),
                       ("(c) Dataset: RoadScene", "RoadScene")):
        assert _parse_block(lines, marker, list(pv.METHODS), 6) == pv.TABLE4[ds], ds
    for marker, ds in (("(a) Dataset: MRI-SPECT", "MRI-SPECT"), ("(b) Dataset: MRI-PET", "MRI-PET")):
        assert _parse_block(lines, marker, list(pv.METHODS), 6) == pv.TABLE5[ds], ds


def test_git_dirty_ignores_rewritten_results(tmp_path):
    """A run rewrites results/ before its provenance is written: only changed code makes the tree 'dirty'."""
    import shutil
    import subprocess

    from benchmarks.report import git_dirty

    if shutil.which("git") is None:
        pytest.skip("git not installed")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_dirty(tmp_path) is False
    (tmp_path / "results" / "t.csv").write_text("b\n")
    assert git_dirty(tmp_path) is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_dirty(tmp_path) is True


def test_std_rows_render_as_plus_minus_and_are_not_ranked():
    rows = [{"table": "table1", "dataset": "MSRS", "method": m, "weights": "trained-cpu", "metric": k, "value": v,
             "source": "ours", "n_pairs": 40, "profile": "cpu"}
            for m, vals in {"w/o x": {"SD": 40.0, "SD_std": 5.0}, "MMDRFuse": {"SD": 41.0, "SD_std": 0.5}}.items()
            for k, v in vals.items()]
    md = report.to_markdown(pd.DataFrame(rows))
    assert "40.00 ± 5.00" in md and "**41.00 ± 0.50**" in md and "SD_std" not in md
    tex = report.to_latex(pd.DataFrame(rows))
    assert r"40.00 $\pm$ 5.00" in tex and "std" not in tex.split("\\midrule", 1)[1]
