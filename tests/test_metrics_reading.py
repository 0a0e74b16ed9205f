"""Reading for the metrics (OpenCV PNG fast path, C colour conversion) and ``evaluate_folder``'s pipeline: the same
pixels and the same values as the plain PIL + torch path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrfuse import metrics as M
from mmdrfuse.evaluate import evaluate_folder
from mmdrfuse.images import read_pil
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


@pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")
def test_own_png_decoder_taken_only_for_plain_8_bit_png(image_files):
    fast = {p.name for p in image_files if reading._decode_png(p) is not None}
    assert fast == {"gray.png", "rgb.png", "trns.png"}


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _handmade_png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit PNG (gray or RGB) whose rows use the given filter types (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth),
    split over two IDAT chunks."""
    import struct
    import zlib

    h, w = pixels.shape[:2]
    bpp = 1 if pixels.ndim == 2 else 3
    x = pixels.reshape(h, w * bpp).astype(np.int32)
    rows = []
    for y in range(h):
        cur, up = x[y], (x[y - 1] if y else np.zeros_like(x[y]))
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        ft = filters[y % len(filters)]
        if ft == 0:
            pred = np.zeros_like(cur)
        elif ft == 1:
            pred = left
        elif ft == 2:
            pred = up
        elif ft == 3:
            pred = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        rows.append(bytes([ft]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
    z = zlib.compress(b"".join(rows), 6)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if bpp == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"gAMA", struct.pack(">I", 45455))
            + _png_chunk(b"IDAT", z[:len(z) // 2]) + _png_chunk(b"IDAT", z[len(z) // 2:]) + _png_chunk(b"IEND", b""))


@pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("inflater", ["libdeflate", "zlib"])
def test_own_png_decoder_every_filter_type(tmp_path, monkeypatch, channels, inflater):
    if inflater == "zlib":
        monkeypatch.setattr(reading._Inflater, "lib", False)
    elif not reading._libdeflate():
        pytest.skip("no libdeflate on this system")
    rng = np.random.default_rng(channels)
    shape = (23, 31) if channels == 1 else (23, 31, 3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels[5:9] = 250  # flat runs: ties in Paeth's predictor
    for filters in ([0], [1], [2], [3], [4], [4, 3, 2, 1, 0]):
        path = tmp_path / f"f{channels}_{''.join(map(str, filters))}.png"
        path.write_bytes(_handmade_png(pixels, filters))
        got = reading._decode_png(path)
        assert got is not None and got[1] == (channels == 3)
        assert np.array_equal(got[0], np.asarray(Image.open(path))), filters
        assert np.array_equal(got[0], pixels), filters
        assert torch.equal(read_eval_gray(path), _plain_read(path)), filters


@pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")
def test_own_png_decoder_declines_broken_files(tmp_path):
    from mmdrfuse.errors import BadInputError

    good = _handmade_png(np.arange(64, dtype=np.uint8).reshape(8, 8), [4])
    cases = {"truncated.png": good[:-30], "bad_ihdr_crc.png": good[:29] + bytes([good[29] ^ 1]) + good[30:],
             "not_png.png": b"GIF89a" + good[6:]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert reading._decode_png(tmp_path / name) is None, name
        with pytest.raises(BadInputError):
            read_eval_gray_u8(tmp_path / name)


def test_reading_without_kernels(image_files, monkeypatch):
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


def test_read_ahead_keeps_order_and_cancels_what_has_not_started():
    """The evaluators' one pool: results in input order whatever finishes first, at most ``depth`` submitted ahead,
    and a consumer that stops early (an error) leaves no queued job to run afterwards."""
    import threading
    import time

    from mmdrfuse.images import read_ahead

    started: list[int] = []
    lock = threading.Lock()

    def job(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.02 if i % 2 == 0 else 0.0)  # even items finish last
        return i * i

    assert [fut.result() for _, fut in read_ahead(range(8), job, 2, depth=4)] == [i * i for i in range(8)]
    started.clear()
    gen = read_ahead(range(100), job, 1, depth=4)
    item, fut = next(gen)
    assert item == 0 and fut.result() == 0
    gen.close()  # the consumer stops: the queued jobs are cancelled, not run
    time.sleep(0.1)
    assert len(started) <= 3, started  # item 0, and at most the one or two a worker had already taken
