"""Calibration against the authors' evaluator, and the reading convention against OpenCV.

Two reference sets, each (fused, A, B) triples x 12 metrics computed with the authors' evaluator code:
- tests/data/metrics_synthetic/ (4 small synthetic triples made for this purpose, copied from
  ../shared/reference/metrics_synthetic; see its README): checked in every clone;
- ../shared/reference/metrics/reference_values.csv (12 triples of real data and fused images): checked where
  ../shared is present, skipped with the reason otherwise.
"""
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


SYNTHETIC = Path(__file__).resolve().parent / "data" / "metrics_synthetic"


def _read_rows(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _shared_csv() -> Path | None:
    shared = _shared()
    return shared / "reference" / "metrics" / "reference_values.csv" if shared else None


ROWS = _read_rows(_shared_csv())  # ../shared/reference/metrics
SYN_ROWS = _read_rows(SYNTHETIC / "reference_values.csv")  # tests/data/metrics_synthetic (every clone)


def _cases(rows: list[dict]) -> list:
    return [pytest.param(i, m, id=f"{r['fused'].rsplit('.', 1)[0]}-{m}") for i, r in enumerate(rows)
            for m in REFERENCE_METRICS]


CASES, SYN_CASES = _cases(ROWS), _cases(SYN_ROWS)
NO_REFERENCE = [pytest.param(0, "SD", marks=pytest.mark.skip(
    reason="../shared/reference not found (set MMDRFUSE_DATA or place shared/ beside the repo); the synthetic "
           "triples in tests/data/metrics_synthetic are checked instead"))]


def _triple(kind: str, i: int) -> tuple[Path, Path, Path]:
    """(fused, A, B) files of row ``i`` of the ``shared`` or ``synthetic`` reference set."""
    if kind == "synthetic":
        row = SYN_ROWS[i]
        return SYNTHETIC / row["fused"], SYNTHETIC / row["source_a"], SYNTHETIC / row["source_b"]
    shared, row = _shared(), ROWS[i]
    return shared / "reference" / "metrics" / "fused" / row["fused"], shared / row["source_a"], shared / row["source_b"]


@lru_cache(maxsize=None)
def _values(i: int, convention: str = "float", kind: str = "shared") -> dict[str, float]:
    read = lambda p: read_eval_gray(p, convention)[None, None]  # noqa: E731
    f, a, b = (read(p) for p in _triple(kind, i))
    return {k: v.item() for k, v in M.compute_all(f, a, b, REFERENCE_METRICS).items()}


def _check(row: dict, got: float, metric: str) -> None:
    """The acceptance bound: 1e-4 relative (SSIM 3e-4)."""
    assert got == pytest.approx(float(row[metric]), rel=TOLERANCE.get(metric, 1e-4)), f"{row['fused']} {metric}"


def test_reference_csv_present(shared_reference):
    assert len(ROWS) == 12, "reference_values.csv should hold 12 rows"
    assert set(REFERENCE_METRICS) <= set(ROWS[0])


@pytest.mark.parametrize("i, metric", CASES or NO_REFERENCE)
def test_matches_authors_evaluator(shared_reference, i, metric):
    _check(ROWS[i], _values(i)[metric], metric)


def test_synthetic_reference_present():
    """The copy committed with the tests: 4 triples, the 12 metrics, every image there."""
    assert len(SYN_ROWS) == 4 and set(REFERENCE_METRICS) <= set(SYN_ROWS[0])
    assert all(p.is_file() for i in range(len(SYN_ROWS)) for p in _triple("synthetic", i))


@pytest.mark.parametrize("i, metric", SYN_CASES)
def test_synthetic_triples_match_authors_evaluator(i, metric):
    """Runs in every clone (no ../shared needed)."""
    _check(SYN_ROWS[i], _values(i, "float", "synthetic")[metric], metric)


def test_uint8_reading_also_within_tolerance(shared_reference):
    """OpenCV's uint8 fixed-point gray conversion differs on a few pixels; the metrics still calibrate (checked on
    the rows up to 640 x 480, to keep the test short)."""
    for i, row in enumerate(ROWS):
        if row["fused"].startswith("LLVIP"):
            continue
        got = _values(i, "uint8")
        for m in REFERENCE_METRICS:
            _check(row, got[m], m)


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
