"""IVT_250 (the paper's LLVIP test set, probably): its registry entry, marked unverified, and the check command
``python -m benchmarks.check_ivt250`` on a tiny fake IVT_250 folder (the real one is ~600 MB and not here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import check_ivt250 as chk
from benchmarks import paper_values as pv
from mmdrfuse import cli, data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fake_ivt250(root: Path, n: int = 3) -> Path:
    """``root/IVT_250/{ir,vis}/1.png ...``: gray IR, colour visible, 120 x 160 (upstream: files named 1..250)."""
    rng = np.random.default_rng(0)
    for sub in ("ir", "vis"):
        (root / "IVT_250" / sub).mkdir(parents=True)
    for i in range(1, n + 1):
        base = rng.integers(0, 200, (120, 160)).astype(np.uint8)
        Image.fromarray(base).save(root / "IVT_250/ir" / f"{i}.png")
        vis = np.stack([np.roll(base, k, axis=1) // (k + 1) for k in range(3)], axis=-1).astype(np.uint8)
        Image.fromarray(vis).save(root / "IVT_250/vis" / f"{i}.png")
    return root


def test_registry_entry_is_unverified():
    spec = data.get("IVT-250")
    assert spec is data.get("IVT_250") is data.get("ivt250")
    assert spec.paper_pairs == 250 and spec.layouts == (("IVT_250/ir", "IVT_250/vis"),)
    assert spec.source.url == "https://github.com/AWCXV/FusionBooster/archive/35de693.zip"
    assert spec.source.members == {"dataset/IVT_250/ir": "IVT_250/ir", "dataset/IVT_250/vis": "IVT_250/vis"}
    assert spec.source.sha256 is None and "no sha256" in spec.unverified and "check_ivt250" in spec.unverified
    assert "IVT_250" not in data.PAPER_DATASETS  # not fetched by 'download all' nor used by the tables


def test_listing_says_unverified(tmp_path, capsys):
    assert cli.main(["data", "list", "--data-root", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out.splitlines()
    i = next(k for k, ln in enumerate(out) if ln.startswith("IVT_250 "))
    assert "missing" in out[i] and "unverified" in out[i + 1] and "no sha256" in out[i + 1]
    _fake_ivt250(tmp_path / "d")
    found = data.locate("IVT_250", tmp_path / "d")
    assert found.n_pairs == 3 and "unverified" in found.flag and "3 of the paper's 250" in found.flag


def test_verdicts():
    paper = chk.paper_row()
    assert list(paper) == list(pv.METRICS) and paper["SD"] == pv.TABLE4["LLVIP"]["MMDRFuse"][0]
    assert chk.Comparison("SD", paper["SD"] + 0.004, paper["SD"]).verdict == "matches"
    assert chk.Comparison("VIF", paper["VIF"] - 0.012, paper["VIF"]).verdict == "near"
    assert chk.Comparison("CC", paper["CC"] + 0.05, paper["CC"]).verdict == "differs"
    rows = tuple(chk.Comparison(m, v + 0.001, v) for m, v in paper.items())
    ok = chk.CheckResult(250, 250, Path("IVT_250"), "ab" * 32, rows, None)
    assert ok.confirmed and "6/6 metrics match" in ok.summary() and "consistent with" in ok.summary()
    short = chk.CheckResult(249, 250, Path("IVT_250"), "ab" * 32, rows, None)
    assert not short.confirmed and "249 pairs found" in short.summary()


def test_check_command_on_a_fake_folder(shared_weights, tmp_path, capsys):
    root = _fake_ivt250(tmp_path / "d")
    argv = ["--data-root", str(root), "--weights-root", str(shared_weights), "--cache", str(tmp_path / "cache"),
            "--quiet"]
    assert chk.main(argv) == 0
    out = capsys.readouterr().out
    assert "IVT_250: 3 pairs" in out and "official-student" in out and "unverified" in out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in pv.METRICS}
    assert list(lines) == list(pv.METRICS)
    for m, paper in chk.paper_row().items():
        cols = lines[m]
        assert float(cols[2]) == pytest.approx(paper) and cols[4] in ("matches", "near", "differs")
        assert np.isfinite(float(cols[1]))
    assert "verdict: 3 pairs found, the paper's LLVIP test set has 250" in out and "NOT confirmed" in out
    fused = list((tmp_path / "cache").rglob("IVT_250/*.png"))
    assert len(fused) == 3  # fused through the tables' cache: a rerun reuses them
    assert chk.main(argv) == 0 and capsys.readouterr().out == out


def test_check_without_the_data_says_how_to_get_it(tmp_path, capsys):
    assert chk.main(["--data-root", str(tmp_path / "empty"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "mmdrfuse data download IVT_250" in err
