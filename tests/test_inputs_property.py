"""Property-based checks of the readers and ``fuse_pair`` over dtypes, shapes, channels and value ranges.

The references are independent of the code under test: PIL's own decoding and ``convert("L")`` for the readers, and
the same pixels passed as a PNG file for ``fuse_pair``'s in-memory inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmdrfuse import images
from mmdrfuse.errors import BadInputError, NonFiniteError
from mmdrfuse.fusion import MMDRFuseMethod, fuse_pair
from mmdrfuse.models import Student

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
sides = st.integers(2, 23)


@pytest.fixture(scope="module")
def method():
    torch.manual_seed(3)
    return MMDRFuseMethod(Student())


def _img(seed: int, h: int, w: int, mode: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = {"L": (h, w), "RGB": (h, w, 3), "RGBA": (h, w, 4), "I;16": (h, w)}[mode]
    if mode == "I;16":
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    return rng.integers(0, 256, shape, dtype=np.uint8)


@SETTINGS
@given(seed=st.integers(0, 2**16), h=sides, w=sides, mode=st.sampled_from(["L", "RGB", "RGBA", "I;16"]),
       ext=st.sampled_from([".png", ".bmp", ".tif"]))
def test_reader_equals_pil_convert_L(tmp_path, seed, h, w, mode, ext):
    """The fast (OpenCV) and PIL paths give PIL's own convert("L") pixels for every mode and format."""
    if mode == "I;16" and ext == ".bmp":
        return  # BMP has no 16-bit gray
    arr = _img(seed, h, w, mode)
    path = tmp_path / f"x{ext}"
    Image.fromarray(arr).save(path)
    pil = Image.open(path)
    if mode == "I;16":
        expect = np.clip(np.rint(np.asarray(pil, np.float64) / 257.0), 0, 255).astype(np.uint8)
    else:
        expect = np.asarray(pil.convert("RGB").convert("L") if mode == "RGBA" else pil.convert("L"))
    assert np.array_equal(images.gray_u8(images.read_array(path)), expect)


@SETTINGS
@given(seed=st.integers(0, 2**16), h=sides, w=sides, color=st.booleans())
def test_uint8_arrays_equal_files(tmp_path, method, seed, h, w, color):
    ir, vis = _img(seed, h, w, "L"), _img(seed + 1, h, w, "RGB")
    Image.fromarray(ir).save(tmp_path / "ir.png")
    Image.fromarray(vis).save(tmp_path / "vi.png")
    from_files = fuse_pair(tmp_path / "ir.png", tmp_path / "vi.png", method=method, color=color)
    assert np.array_equal(fuse_pair(ir, vis, method=method, color=color), from_files)
    assert np.array_equal(fuse_pair(torch.from_numpy(ir), torch.from_numpy(vis), method=method, color=color),
                          from_files)


@SETTINGS
@given(seed=st.integers(0, 2**16), h=sides, w=sides, lead=st.sampled_from([(), (1,), (1, 1)]))
def test_unit_floats_equal_uint8(method, seed, h, w, lead):
    """Floats in [0, 1] (any leading singleton dims) fuse exactly like the uint8 image they came from."""
    ir, vis = _img(seed, h, w, "L"), _img(seed + 1, h, w, "L")
    ref = fuse_pair(ir, vis, method=method)
    for dt in (np.float32, np.float64):
        a = (ir.astype(dt) / 255).reshape(*lead, h, w)
        b = (vis.astype(dt) / 255).reshape(*lead, h, w)
        assert np.array_equal(fuse_pair(a, b, method=method), ref)


@SETTINGS
@given(seed=st.integers(0, 2**16), h=sides, w=sides)
def test_uint16_is_scaled_like_16bit_files(tmp_path, method, seed, h, w):
    ir16, vis = _img(seed, h, w, "I;16"), _img(seed + 1, h, w, "L")
    Image.fromarray(ir16).save(tmp_path / "ir.png")
    Image.fromarray(vis).save(tmp_path / "vi.png")
    assert np.array_equal(fuse_pair(ir16, vis, method=method), fuse_pair(tmp_path / "ir.png", tmp_path / "vi.png",
                                                                      method=method))


@SETTINGS
@given(lo=st.floats(-1e3, 1e3), hi=st.floats(-1e3, 1e3))
def test_out_of_range_floats_are_refused(method, lo, hi):
    a = np.linspace(min(lo, hi), max(lo, hi), 16, dtype=np.float32).reshape(4, 4)
    b = np.full((4, 4), 0.5, np.float32)
    if a.min() >= 0 and a.max() <= 1:
        assert fuse_pair(a, b, method=method).shape == (4, 4)
    else:
        with pytest.raises(BadInputError, match=r"must lie in \[0, 1\]"):
            fuse_pair(a, b, method=method)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint32, bool])
def test_ambiguous_dtypes_are_refused(method, dtype):
    a = np.zeros((4, 4), dtype)
    with pytest.raises(BadInputError, match="dtype"):
        fuse_pair(a, np.zeros((4, 4), np.uint8), method=method)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(method, bad):
    a = np.full((4, 4), 0.5, np.float32)
    a[1, 2] = bad
    with pytest.raises(NonFiniteError):
        fuse_pair(a, np.zeros((4, 4), np.uint8), method=method)


def test_non_finite_weights_are_refused():
    m = Student()
    with torch.no_grad():
        m.conv1[1].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        MMDRFuseMethod(m)


def test_non_finite_output_is_an_error():
    with pytest.raises(NonFiniteError):
        images.to_uint8(torch.tensor([[0.0, float("nan")], [0.1, 0.2]]))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1)])
def test_too_small_is_one_line(method, shape):
    with pytest.raises(BadInputError, match="too small"):
        fuse_pair(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), method=method)


def test_batches_and_wrong_shapes_are_refused(method):
    with pytest.raises(BadInputError, match="one gray image"):
        fuse_pair(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), method=method)
    with pytest.raises(BadInputError, match="size mismatch"):
        fuse_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8), method=method)
    with pytest.raises(BadInputError, match="must be uint8"):
        fuse_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), method=method)


def test_cuda_without_cuda_is_our_error(tmp_path):
    from mmdrfuse.checkpoints import save_checkpoint
    from mmdrfuse.errors import MMDRFuseError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = save_checkpoint(tmp_path / "s.pt", Student())
    with pytest.raises(MMDRFuseError, match="CUDA is not available"):
        fuse_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), weights=str(p), device="cuda")


def test_named_weights_are_loaded_once(tmp_path, monkeypatch):
    """fuse_pair(weights=PATH) reuses the loaded method while the file is unchanged, and reloads a changed file."""
    from mmdrfuse import fusion
    from mmdrfuse.checkpoints import save_checkpoint

    p = save_checkpoint(tmp_path / "s.pt", Student())
    calls = []
    real = fusion.MMDRFuseMethod.from_weights.__func__
    monkeypatch.setattr(fusion.MMDRFuseMethod, "from_weights",
                        classmethod(lambda cls, *a, **k: calls.append(a) or real(cls, *a, **k)))
    fusion._cached_method.cache_clear()
    x = np.zeros((8, 8), np.uint8)
    for _ in range(3):
        fuse_pair(x, x, weights=str(p))
    assert len(calls) == 1
    torch.manual_seed(9)
    save_checkpoint(p, Student())
    import os

    os.utime(p, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    fuse_pair(x, x, weights=str(p))
    assert len(calls) == 2


def test_baseline_non_finite_output_is_an_error():
    from baselines.base import uint8_round_half_even

    with pytest.raises(NonFiniteError):
        uint8_round_half_even(torch.tensor([[[[0.5, float("inf")]]]]))
