"""Calibration against the authors' evaluator: ../shared/reference/metrics/reference_values.csv (12 triples x 12
metrics, computed with the authors' code), and the reading convention against OpenCV."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdrfuse import metrics as M
from mmdrfuse.metrics.reading import gray_float_path, gray_uint8_path, read_eval_gray

REFERENCE_METRICS = ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC", "EN", "SF", "AG", "MI", "PSNR", "MSE"]
TOLERANCE = {"SSIM": 3e-4}  # relative; 1e-4 for every other metric (the acceptance bounds)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _shared() -> Path | None:
    from tests.conftest import SHARED

    return SHARED


def _rows() -> list[dict]:
    shared = _shared()
    path = shared / "reference" / "metrics" / "reference_values.csv" if shared else None
    if path is None or not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


ROWS = _rows()
CASES = [pytest.param(i, m, id=f"{r['fused'].rsplit('.', 1)[0]}-{m}")
         for i, r in enumerate(ROWS) for m in REFERENCE_METRICS]
NO_REFERENCE = [pytest.param(0, "SD", marks=pytest.mark.skip(reason="no ../shared/reference"))]


@lru_cache(maxsize=None)
def _values(i: int, convention: str = "float") -> dict[str, float]:
    shared, row = _shared(), ROWS[i]
    read = lambda p: read_eval_gray(p, convention)[None, None]  # noqa: E731
    f = read(shared / "reference" / "metrics" / "fused" / row["fused"])
    a, b = read(shared / row["source_a"]), read(shared / row["source_b"])
    return {k: v.item() for k, v in M.compute_all(f, a, b, REFERENCE_METRICS).items()}


def test_reference_csv_present(shared_reference):
    assert len(ROWS) == 12, "reference_values.csv should hold 12 rows"
    assert set(REFERENCE_METRICS) <= set(ROWS[0])


@pytest.mark.parametrize("i, metric", CASES or NO_REFERENCE)
def test_matches_authors_evaluator(shared_reference, i, metric):
    want = float(ROWS[i][metric])
    got = _values(i)[metric]
    assert got == pytest.approx(want, rel=TOLERANCE.get(metric, 1e-4)), f"{ROWS[i]['fused']} {metric}"


def test_uint8_reading_also_within_tolerance(shared_reference):
    """OpenCV's uint8 fixed-point gray conversion differs on a few pixels; the metrics still calibrate (checked on
    the rows up to 640 x 480, to keep the test short)."""
    for i, row in enumerate(ROWS):
        if row["fused"].startswith("LLVIP"):
            continue
        got = _values(i, "uint8")
        for m in REFERENCE_METRICS:
            assert got[m] == pytest.approx(float(row[m]), rel=TOLERANCE.get(m, 1e-4)), f"{row['fused']} {m}"


# ---------------------------------------------------------------------------------------- reading vs OpenCV
@pytest.fixture(scope="module")
def colour_cube() -> np.ndarray:
    """Every 8-bit RGB colour once: 4096 x 4096 x 3 uint8 (RGB order)."""
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
    return np.stack([r, g, b], -1).reshape(4096, 4096, 3).astype(np.uint8)


def test_float_path_equals_opencv_on_every_colour(colour_cube):
    cv2 = pytest.importorskip("cv2")
    bgr = np.ascontiguousarray(colour_cube[..., ::-1])
    want = np.round(cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY)).astype(np.float64)
    got = gray_float_path(torch.from_numpy(colour_cube)).numpy()
    assert np.array_equal(got, want)


def test_uint8_path_equals_opencv_on_every_colour(colour_cube):
    cv2 = pytest.importorskip("cv2")
    if int(cv2.__version__.split(".")[0]) < 5:
        pytest.skip(f"OpenCV {cv2.__version__}: the uint8 path's fixed-point coefficients are OpenCV 5's")
    bgr = np.ascontiguousarray(colour_cube[..., ::-1])
    want = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64)
    got = gray_uint8_path(torch.from_numpy(colour_cube)).numpy()
    assert np.array_equal(got, want)


def test_gray_weights_without_opencv(colour_cube):
    """Independent of OpenCV: both paths are 0.299 R + 0.587 G + 0.114 B to within rounding, gray stays gray."""
    rgb = torch.from_numpy(colour_cube[::7, ::7].copy())
    exact = (rgb.double() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).sum(-1)
    for fn in (gray_float_path, gray_uint8_path):
        got = fn(rgb)
        assert (got - exact).abs().max().item() <= 0.51  # fixed point: coefficients rounded to 1/32768
        assert torch.equal(got, got.round())
    grays = torch.arange(256, dtype=torch.uint8)[:, None].expand(256, 3)
    for fn in (gray_float_path, gray_uint8_path):
        assert torch.equal(fn(grays), torch.arange(256, dtype=torch.float64))


def test_read_eval_gray_matches_opencv_imread(shared_reference):
    cv2 = pytest.importorskip("cv2")
    shared = _shared()
    files = sorted({shared / r["source_a"] for r in ROWS} | {shared / r["source_b"] for r in ROWS})
    files += sorted((shared / "reference" / "metrics" / "fused").glob("*.png"))[:4]
    for p in files:
        bgr = cv2.imread(str(p))
        want = np.round(cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY))
        got = read_eval_gray(p)
        assert got.dtype == torch.float64 and got.dim() == 2
        assert np.array_equal(got.numpy(), want), p.name


def test_read_eval_gray_errors(tmp_path):
    from mmdrfuse.errors import BadInputError

    with pytest.raises(BadInputError, match="not found"):
        read_eval_gray(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(BadInputError, match="bad.png"):
        read_eval_gray(bad)
    with pytest.raises(ValueError):
        read_eval_gray(bad, convention="pil")
