"""Reading for the metrics (OpenCV PNG fast path, C colour conversion) and ``evaluate_folder``'s pipeline: the same
pixels and the same values as the plain PIL + torch path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrfuse import metrics as M
from mmdrfuse.evaluate import evaluate_folder
from mmdrfuse.io import read_pil
from mmdrfuse.metrics import _native, reading
from mmdrfuse.metrics.reading import gray_float_path, gray_uint8_path, read_eval_gray, read_eval_gray_u8


def _plain_read(path, convention="float") -> torch.Tensor:
    """The reading before the fast path: PIL, then the torch conversion."""
    img = read_pil(path)
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    if img.mode == "L":
        return arr.to(torch.float64)
    return gray_float_path(arr) if convention == "float" else gray_uint8_path(arr)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> list:
    """One file of each kind: 8-bit gray/RGB PNG (the fast path), palette, RGBA, LA, 16-bit, 1-bit, tRNS PNGs,
    gray/RGB JPEG, BMP, TIFF (PIL)."""
    root = tmp_path_factory.mktemp("kinds")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    files = []

    def save(img, name, **kw):
        img.save(root / name, **kw)
        files.append(root / name)

    save(Image.fromarray(gray), "gray.png")
    save(Image.fromarray(rgb), "rgb.png")
    save(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE), "palette.png")
    save(Image.fromarray(np.dstack([rgb, gray])), "rgba.png")
    save(Image.fromarray(np.dstack([gray, gray])).convert("LA"), "la.png")
    save(Image.fromarray(gray.astype(np.uint16) * 257 + 3), "gray16.png")
    save(Image.fromarray(gray > 127), "bilevel.png")
    save(Image.fromarray(rgb), "trns.png", transparency=(1, 2, 3))
    save(Image.fromarray(gray), "gray.jpg", quality=90)
    save(Image.fromarray(rgb), "rgb.jpg", quality=90)
    save(Image.fromarray(rgb), "rgb.bmp")
    save(Image.fromarray(rgb), "rgb.tif")
    return files


@pytest.mark.parametrize("convention", ["float", "uint8"])
def test_fast_reading_gives_the_same_pixels(image_files, convention):
    for p in image_files:
        got = read_eval_gray_u8(p, convention)
        want = _plain_read(p, convention)
        assert got.dtype == np.uint8 and torch.equal(torch.from_numpy(got.astype(np.float64)), want), p.name
        assert torch.equal(read_eval_gray(p, convention), want), p.name


def test_fast_path_taken_only_for_plain_8_bit_png(image_files):
    pytest.importorskip("cv2")
    fast = {p.name for p in image_files if reading._decode_png_cv2(p) is not None}
    assert fast == {"gray.png", "rgb.png"}


def test_reading_without_opencv_or_kernels(image_files, monkeypatch):
    monkeypatch.setattr(reading, "_CV2", None)
    monkeypatch.setitem(_native._state, "lib", None)
    monkeypatch.setitem(_native._state, "error", "off for this test")
    for p in image_files:
        assert torch.equal(torch.from_numpy(read_eval_gray_u8(p).astype(np.float64)), _plain_read(p)), p.name


def test_reading_errors(tmp_path):
    from mmdrfuse.errors import BadInputError

    with pytest.raises(BadInputError, match="not found"):
        read_eval_gray_u8(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(BadInputError, match="bad.png"):
        read_eval_gray_u8(bad)


@pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")
def test_gray_kernel_on_every_colour():
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
    cube = np.stack([r, g, b], -1).reshape(4096, 4096, 3).astype(np.uint8)
    t = torch.from_numpy(cube)
    for conv, fn in (("float", gray_float_path), ("uint8", gray_uint8_path)):
        assert np.array_equal(_native.gray(cube, False, conv), fn(t).numpy().astype(np.uint8)), conv


# ------------------------------------------------------------------------------------------------ the pipeline
@pytest.fixture(scope="module")
def pair_folders(tmp_path_factory):
    """Seven 50 x 70 pairs (RGB visible images, one fused image brighter than both sources) and a mismatched one."""
    root = tmp_path_factory.mktemp("pairs")
    dirs = [root / d for d in ("fused", "ir", "vi")]
    for d in dirs:
        d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(7):
        y, x = np.mgrid[0:50, 0:70]
        a = np.clip(100 + 60 * np.sin(x / (3 + i)) + rng.normal(0, 12, (50, 70)), 0, 255).astype(np.uint8)
        vis = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
        b = _plain_read_array(vis)
        f = np.clip((a.astype(float) + b) / 2 * (1.4 if i == 3 else 1.0), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(dirs[1] / f"p{i}.png")
        Image.fromarray(vis).save(dirs[2] / f"p{i}.png")
        Image.fromarray(f).save(dirs[0] / f"p{i}.png")
    Image.fromarray(np.zeros((50, 70), np.uint8)).save(dirs[0] / "z9.png")
    Image.fromarray(np.zeros((50, 71), np.uint8)).save(dirs[1] / "z9.png")
    Image.fromarray(np.zeros((50, 70), np.uint8)).save(dirs[2] / "z9.png")
    return dirs


def _plain_read_array(rgb: np.ndarray) -> np.ndarray:
    return gray_float_path(torch.from_numpy(rgb)).numpy()


@pytest.mark.parametrize("threads", [1, 2])
def test_pipeline_equals_compute_all_and_the_torch_path(pair_folders, threads, monkeypatch):
    fused, ir, vi = pair_folders
    names = M.DEFAULT_METRICS + ["SSIM_dr255", "SSIM_gauss255"]
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        skipped: list[str] = []
        df = evaluate_folder(fused, ir, vi, names, progress=False, skip_bad=True, skipped=skipped)
        assert torch.get_num_threads() == threads  # restored
    finally:
        torch.set_num_threads(old)
    assert list(df.stem) == [f"p{i}" for i in range(7)]
    assert len(skipped) == 1 and "z9" in skipped[0]
    for i, stem in enumerate(df.stem):
        f, a, b = (_plain_read(d / f"{stem}.png")[None, None] for d in (fused, ir, vi))
        ref = M.compute_all(f, a, b, names)
        for n in names:
            assert df[n][i] == ref[n].item(), (stem, n)  # bit for bit: the same kernels, any thread count
    # the general loop (batches, torch's threads) and the plain torch path agree
    batched = evaluate_folder(fused, ir, vi, names, progress=False, skip_bad=True, batch_size=3)
    assert np.allclose(batched[names].to_numpy(), df[names].to_numpy(), rtol=1e-12, atol=0)
    monkeypatch.setitem(_native._state, "lib", None)
    monkeypatch.setitem(_native._state, "error", "off for this test")
    plain = evaluate_folder(fused, ir, vi, names, progress=False, skip_bad=True)
    assert np.allclose(plain[names].to_numpy(), df[names].to_numpy(), rtol=1e-10, atol=0)


def test_pipeline_raises_on_bad_pairs(pair_folders):
    from mmdrfuse.errors import BadInputError

    fused, ir, vi = pair_folders
    with pytest.raises(BadInputError, match="differs"):
        evaluate_folder(fused, ir, vi, ["SD", "VIF"], progress=False)
