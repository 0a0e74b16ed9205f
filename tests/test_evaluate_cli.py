"""``mmdrfuse evaluate`` and ``evaluate_folder``: round trip on real pairs, CSV layout, bad inputs."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrfuse import metrics as M
from mmdrfuse.cli import main
from mmdrfuse.evaluate import evaluate_folder

REFERENCE_METRICS = ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC", "EN", "SF", "AG", "MI", "PSNR", "MSE"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------------ real data round trip
@pytest.fixture(scope="module")
def real_folders(tmp_path_factory, shared_data, shared_reference):
    """Two MSRS pairs whose fused images are reference images (values known) plus one round((A+B)/2) pair."""
    root = tmp_path_factory.mktemp("real")
    fused, ir, vi = root / "fused", root / "ir", root / "vi"
    for d in (fused, ir, vi):
        d.mkdir()
    ref_rows = {}
    with open(shared_reference / "metrics" / "reference_values.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            ref_rows[row["fused"]] = row
    picks = {"00004N": "MSRS_00004N_mmdrfuse.png", "00055D": "MSRS_00055D_mean.png"}
    for stem, ref_name in picks.items():
        shutil.copy(shared_reference / "metrics" / "fused" / ref_name, fused / f"{stem}.png")
        shutil.copy(shared_data / "MSRS" / "test" / "ir" / f"{stem}.png", ir)
        shutil.copy(shared_data / "MSRS" / "test" / "vi" / f"{stem}.png", vi)
    extra = sorted(p.stem for p in (shared_data / "MSRS" / "test" / "ir").glob("*.png") if p.stem not in picks)[0]
    shutil.copy(shared_data / "MSRS" / "test" / "ir" / f"{extra}.png", ir)
    shutil.copy(shared_data / "MSRS" / "test" / "vi" / f"{extra}.png", vi)
    from mmdrfuse.metrics.reading import read_eval_gray

    a, b = read_eval_gray(ir / f"{extra}.png"), read_eval_gray(vi / f"{extra}.png")
    Image.fromarray(np.round((a + b).numpy() / 2).astype(np.uint8)).save(fused / f"{extra}.png")
    return fused, ir, vi, {stem: ref_rows[name] for stem, name in picks.items()}, extra


def test_cli_round_trip_matches_reference(real_folders, tmp_path, capsys):
    fused, ir, vi, refs, extra = real_folders
    out_csv = tmp_path / "res" / "metrics.csv"
    rc, out, err = _run(capsys, "--fused", str(fused), "--ir", str(ir), "--vis", str(vi), "--out", str(out_csv),
                        "--quiet")
    assert rc == 0, err
    rows = _read_csv(out_csv)
    assert list(rows[0]) == ["stem"] + M.DEFAULT_METRICS
    assert [r["stem"] for r in rows] == sorted(["00004N", "00055D", extra]) + ["mean"]
    by_stem = {r["stem"]: r for r in rows}
    for stem, ref in refs.items():  # the authors' evaluator's values, through reading, pairing and batching
        for m in REFERENCE_METRICS:
            assert float(by_stem[stem][m]) == pytest.approx(float(ref[m]), rel=3e-4 if m == "SSIM" else 1e-4), (stem, m)
    for m in M.DEFAULT_METRICS:
        per = [float(r[m]) for r in rows[:-1]]
        assert float(rows[-1][m]) == pytest.approx(sum(per) / len(per), rel=1e-12)
    assert "VIF" in out and "wrote" in out
    assert [p.name for p in out_csv.parent.iterdir()] == ["metrics.csv"]  # atomic write: no temp file left


def test_evaluate_folder_dataframe(real_folders):
    fused, ir, vi, refs, extra = real_folders
    df = evaluate_folder(fused, ir, vi, M.PAPER_METRICS, progress=False)
    assert list(df.columns) == ["stem"] + M.PAPER_METRICS and len(df) == 3
    assert "mean" not in set(df.stem)
    one = evaluate_folder(fused, ir, vi, M.PAPER_METRICS, batch_size=1, progress=False, read_workers=1)
    np.testing.assert_allclose(one[M.PAPER_METRICS].to_numpy(), df[M.PAPER_METRICS].to_numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------------------- synthetic folders
def _img(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 120 + 80 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0) + rng.normal(0, 10, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def folders(tmp_path):
    """Three good 48 x 64 pairs (gray sources, fused saved as RGB with equal channels for one of them)."""
    fused, ir, vi = tmp_path / "fused", tmp_path / "ir", tmp_path / "vi"
    for d in (fused, ir, vi):
        d.mkdir()
    for i, stem in enumerate(["a1", "b2", "c3"]):
        a, b = _img(48, 64, 3 * i), _img(48, 64, 3 * i + 1)
        f = ((a.astype(int) + b) // 2).astype(np.uint8)
        Image.fromarray(a).save(ir / f"{stem}.png")
        Image.fromarray(b).save(vi / f"{stem}.jpg" if stem == "b2" else vi / f"{stem}.png", quality=95)
        img = Image.fromarray(f)
        (img.convert("RGB") if stem == "c3" else img).save(fused / f"{stem}.png")
    return fused, ir, vi


def _args(folders, *extra):
    fused, ir, vi = folders
    return ["--fused", str(fused), "--ir", str(ir), "--vis", str(vi), "--quiet", *extra]


def test_metric_selection_and_colour_fused(folders, tmp_path, capsys):
    out_csv = tmp_path / "m.csv"
    rc, out, err = _run(capsys, *_args(folders, "--metrics", "paper,MI", "Nabf", "--out", str(out_csv)))
    assert rc == 0, err
    rows = _read_csv(out_csv)
    assert list(rows[0]) == ["stem"] + M.PAPER_METRICS + ["MI", "Nabf"]
    assert len(rows) == 4
    # c3's fused image is RGB with equal channels: read as the same gray values
    fused, ir, vi = folders
    Image.open(fused / "c3.png").convert("L").save(fused / "c3.png")
    rc, _, _ = _run(capsys, *_args(folders, "--metrics", "paper,MI", "Nabf", "--out", str(tmp_path / "g.csv")))
    assert rc == 0
    assert _read_csv(tmp_path / "g.csv")[2] == rows[2]
    rc, _, _ = _run(capsys, *_args(folders, "--metrics", "all", "--out", str(tmp_path / "all.csv")))
    assert rc == 0 and list(_read_csv(tmp_path / "all.csv")[0]) == ["stem"] + list(M.METRICS)


def test_list_metrics(capsys):
    rc, out, _ = _run(capsys, "--list-metrics")
    assert rc == 0
    for n in M.METRICS:
        assert n in out


def test_missing_partner(folders, tmp_path, capsys):
    fused, ir, vi = folders
    (fused / "b2.png").unlink()
    rc, _, err = _run(capsys, *_args(folders))
    assert rc == 2 and "b2" in _one_line_error(err)
    out_csv = tmp_path / "ok.csv"
    rc, _, err = _run(capsys, *_args(folders, "--skip-bad", "--metrics", "SD", "--out", str(out_csv)))
    assert rc == 0 and "skipped" in err and "b2" in err
    assert [r["stem"] for r in _read_csv(out_csv)] == ["a1", "c3", "mean"]


def test_corrupt_image(folders, tmp_path, capsys):
    fused, ir, vi = folders
    (fused / "a1.png").write_bytes(b"\x89PNG broken")
    rc, _, err = _run(capsys, *_args(folders))
    line = _one_line_error(err)
    assert rc == 2 and "a1.png" in line
    out_csv = tmp_path / "ok.csv"
    rc, _, err = _run(capsys, *_args(folders, "--skip-bad", "--out", str(out_csv)))
    assert rc == 0 and "a1.png" in err
    assert [r["stem"] for r in _read_csv(out_csv)] == ["b2", "c3", "mean"]


def test_size_mismatch(folders, tmp_path, capsys):
    fused, ir, vi = folders
    Image.fromarray(_img(50, 64, 9)).save(fused / "c3.png")
    rc, _, err = _run(capsys, *_args(folders))
    line = _one_line_error(err)
    assert rc == 2 and "c3.png" in line and "size" in line
    rc, _, err = _run(capsys, *_args(folders, "--skip-bad", "--out", str(tmp_path / "x.csv")))
    assert rc == 0 and "c3" in err


def test_image_too_small_for_vif(tmp_path, capsys):
    dirs = [tmp_path / d for d in ("f", "i", "v")]
    for d in dirs:
        d.mkdir()
        Image.fromarray(_img(32, 40, 1)).save(d / "x.png")
    args = ["--fused", str(dirs[0]), "--ir", str(dirs[1]), "--vis", str(dirs[2]), "--quiet"]
    rc, _, err = _run(capsys, *args)
    line = _one_line_error(err)
    assert rc == 2 and "too small" in line and "VIF" in line and "x.png" in line
    rc, _, err = _run(capsys, *args, "--metrics", "SD", "SSIM", "CC")
    assert rc == 0, err
    rc, _, err = _run(capsys, *args, "--skip-bad")  # every pair skipped: nothing to report
    assert rc == 2 and "no pair could be evaluated" in _one_line_error(err)


@pytest.mark.parametrize("argv, needle", [
    (["--metrics", "VFI"], "did you mean 'VIF'"),
    (["--out", "result.txt"], ".csv"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_arguments(folders, capsys, argv, needle):
    rc, _, err = _run(capsys, *_args(folders, *argv))
    assert rc == 2 and needle in _one_line_error(err)


def test_missing_folder_and_arguments(tmp_path, capsys):
    rc, _, err = _run(capsys, "--ir", "x", "--vis", "y")
    assert rc == 2 and "--fused" in _one_line_error(err)
    rc, _, err = _run(capsys, "--fused", str(tmp_path / "nope"), "--ir", str(tmp_path), "--vis", str(tmp_path))
    assert rc == 2 and "nope" in _one_line_error(err)


# ------------------------------------------------------------------------------------------- --convention
def test_list_conventions(capsys):
    rc, out, _ = _run(capsys, "--list-conventions")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert rc == 0 and len(lines) == len(M.CONVENTIONS) == 2
    assert lines[0].split()[0] == "mmdrfuse" and lines[1].split()[0] == "vifb"
    rc, out, _ = _run(capsys, "--list-metrics", "--convention", "vifb")
    assert rc == 0 and "Cross_entropy" in out and "Qcv" in out and "SCD" not in out


def test_convention_vifb_csv_columns(folders, tmp_path, capsys):
    from mmdrfuse.metrics import vifb

    fused, ir, vi = folders
    Image.fromarray(np.stack([_img(48, 64, s) for s in (7, 8, 9)], -1)).save(fused / "c3.png")  # a colour fused image
    out_csv = tmp_path / "vifb.csv"
    rc, out, err = _run(capsys, *_args(folders, "--convention", "vifb", "--out", str(out_csv)))
    assert rc == 0, err
    rows = _read_csv(out_csv)
    assert list(rows[0]) == ["stem"] + vifb.NAMES
    assert [r["stem"] for r in rows] == ["a1", "b2", "c3", "mean"]
    assert "Qcv" in out and "SSIM" not in out
    df = evaluate_folder(fused, ir, vi, ["Ssim", "Qcb"], convention="vifb", progress=False)
    assert list(df.columns) == ["stem", "Ssim", "Qcb"]
    np.testing.assert_allclose(df["Ssim"].to_numpy(), [float(r["Ssim"]) for r in rows[:3]], rtol=1e-12)
    # the default convention still reads gray and names the paper's metrics
    rc, _, err = _run(capsys, *_args(folders, "--out", str(tmp_path / "default.csv")))
    assert rc == 0 and list(_read_csv(tmp_path / "default.csv")[0]) == ["stem"] + M.DEFAULT_METRICS


@pytest.mark.parametrize("threads", [1, 2])
def test_convention_vifb_pipeline_equals_compute_all(folders, threads):
    """The one-pair-per-thread pipeline (CPU, float64, C kernels): VIFB's compute_all on each pair bit for bit at any
    thread count, torch's thread count restored, a bad pair skipped or raised; the general loop (float32) agrees."""
    from mmdrfuse.errors import BadInputError
    from mmdrfuse.metrics import _native, vifb

    if not _native.available():
        pytest.skip("no C compiler: the pipeline is not used")
    fused, ir, vi = folders
    Image.fromarray(np.stack([_img(48, 64, s) for s in (7, 8, 9)], -1)).save(fused / "c3.png")  # colour fused
    Image.fromarray(_img(40, 64, 5)).save(fused / "d4.png")  # sources of another size
    for d in (ir, vi):
        Image.fromarray(_img(48, 64, 6)).save(d / "d4.png")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        skipped: list[str] = []
        df = evaluate_folder(fused, ir, vi, convention="vifb", progress=False, skip_bad=True, skipped=skipped)
        assert torch.get_num_threads() == threads
        with pytest.raises(BadInputError, match="differs"):
            evaluate_folder(fused, ir, vi, convention="vifb", progress=False)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(old)
    assert list(df.stem) == ["a1", "b2", "c3"] and len(skipped) == 1 and "d4" in skipped[0]
    for i, stem in enumerate(df.stem):
        f, a, b = (vifb.read_vifb(next(d.glob(f"{stem}.*")))[None] for d in (fused, ir, vi))
        ref = vifb.compute_all(f, a, b)
        for n in vifb.NAMES:
            assert df[n][i] == ref[n].item(), (stem, n)
    f32 = evaluate_folder(fused, ir, vi, convention="vifb", progress=False, skip_bad=True, dtype=torch.float32)
    np.testing.assert_allclose(f32[vifb.NAMES].to_numpy(), df[vifb.NAMES].to_numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("argv, needle", [
    (["--convention", "vifbb"], "did you mean 'vifb'"),
    (["--convention", "matlab"], "available: mmdrfuse, vifb"),
    (["--convention", "vifb", "--metrics", "SSIM"], "did you mean 'Ssim'"),
    (["--convention", "vifb", "--metrics", "paper"], "VIFB's names"),
    (["--convention", "vifb", "--reading", "uint8"], "--reading"),
])
def test_bad_convention_arguments(folders, capsys, argv, needle):
    rc, _, err = _run(capsys, *_args(folders, *argv))
    assert rc == 2 and needle in _one_line_error(err)


def test_convention_vifb_reproduces_vifb_values(shared_reference, tmp_path, capsys):
    """Two of VIFB's fused images through the command (pairing by stem, colour reading): VIFB's MATLAB values."""
    root = shared_reference / "vifb"
    if not (root / "values.csv").is_file():
        pytest.skip("no ../shared/reference/vifb")
    dirs = {k: tmp_path / k for k in ("fused", "ir", "vi")}
    for d in dirs.values():
        d.mkdir()
    picks = {"manWalking": "GTF", "carLight": "ADF"}  # a 1-channel IR image and a 3-channel one
    for image, method in picks.items():
        shutil.copy(root / "fused" / f"{image}_{method}.jpg", dirs["fused"] / f"{image}.jpg")
        shutil.copy(root / "input" / "IR" / f"{image}.jpg", dirs["ir"])
        shutil.copy(root / "input" / "VI" / f"{image}.jpg", dirs["vi"])
    out_csv = tmp_path / "vifb.csv"
    rc, _, err = _run(capsys, "--fused", str(dirs["fused"]), "--ir", str(dirs["ir"]), "--vis", str(dirs["vi"]),
                      "--convention", "vifb", "--quiet", "--out", str(out_csv))
    assert rc == 0, err
    ours = {r["stem"]: r for r in _read_csv(out_csv)}
    want = {(r["image"], r["metric"]): r["value"] for r in _read_csv(root / "values.csv")
            if picks.get(r["image"]) == r["method"]}
    assert len(want) == 26
    for (image, metric), ref in want.items():  # within one unit of the 5th significant digit
        unit = 10.0 ** (math.floor(math.log10(abs(float(ref)))) - 4)
        assert abs(float(f"{float(ours[image][metric]):.5g}") - float(ref)) <= unit * (1 + 1e-9), (image, metric)
