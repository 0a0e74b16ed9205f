"""The C kernels of the metrics (mmdrfuse.metrics._native) against the torch paths they replace."""
import numpy as np
import pytest
import torch

from mmdrfuse.metrics import DEFAULT_METRICS, METRICS, compute_all
from mmdrfuse.metrics import _native
from mmdrfuse.metrics._context import Batch

needs_kernel = pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")
KERNEL_METRICS = DEFAULT_METRICS + ["SSIM_dr255"]


def _torch_path(monkeypatch, fn, *args):
    """fn(*args) with the kernels switched off (the torch path), then switched back on."""
    monkeypatch.setitem(_native._state, "lib", None)
    monkeypatch.setitem(_native._state, "error", "off for this test")
    try:
        return fn(*args)
    finally:
        monkeypatch.undo()


def _images(seed, shape, const=False):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, shape, generator=g).double()
    b = torch.randint(0, 256, shape, generator=g).double()
    if const:
        a[0] = 17.0  # a flat source: zero variances everywhere in the first image
    f = torch.round(0.6 * a + 0.4 * b)
    return f, a, b


def _assert_close(ours, ref, rtol=1e-10):
    for k in ref:
        assert torch.allclose(ours[k], ref[k], rtol=rtol, atol=0, equal_nan=True), (k, ours[k], ref[k])


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 1, 41, 41), (3, 1, 67, 93), (2, 1, 128, 160)])
def test_kernel_equals_torch_path(monkeypatch, shape):
    f, a, b = _images(1, shape)
    ours = compute_all(f, a, b, KERNEL_METRICS)
    assert Batch(f, a, b).native
    _assert_close(ours, _torch_path(monkeypatch, compute_all, f, a, b, KERNEL_METRICS))


@needs_kernel
def test_kernel_equals_torch_path_on_artifacts(monkeypatch):
    """A fused image brighter than both sources in places (Nabf's artifact term is not zero) and a random one."""
    f, a, b = _images(6, (2, 1, 96, 131))
    g = torch.Generator().manual_seed(7)
    f = torch.stack([torch.clamp(f[0] * 1.3, 0, 255).round(), torch.randint(0, 256, f.shape[1:], generator=g)])
    ours = compute_all(f, a, b, KERNEL_METRICS)
    assert (ours["Nabf"] > 0).all()
    _assert_close(ours, _torch_path(monkeypatch, compute_all, f, a, b, KERNEL_METRICS))


@needs_kernel
def test_kernel_equals_torch_path_on_non_integer_images(monkeypatch):
    f, a, b = _images(8, (1, 1, 64, 77))
    f, a = f * 0.997 + 0.25, a * 0.5 + 0.3
    _assert_close(compute_all(f, a, b, KERNEL_METRICS), _torch_path(monkeypatch, compute_all, f, a, b,
                                                                     KERNEL_METRICS))


@needs_kernel
def test_kernel_equals_torch_path_on_real_images(monkeypatch, shared_data):
    from mmdrfuse.metrics.reading import read_eval_gray

    for stem in ("00004N", "00055D"):
        a = read_eval_gray(shared_data / "MSRS" / "test" / "ir" / f"{stem}.png")[None, None]
        b = read_eval_gray(shared_data / "MSRS" / "test" / "vi" / f"{stem}.png")[None, None]
        f = torch.round(0.7 * torch.maximum(a, b) + 0.3 * b)
        _assert_close(compute_all(f, a, b, KERNEL_METRICS), _torch_path(monkeypatch, compute_all, f, a, b,
                                                                         KERNEL_METRICS))


@needs_kernel
def test_kernel_flat_source_and_identical_images(monkeypatch):
    f, a, b = _images(2, (2, 1, 64, 64), const=True)
    _assert_close(compute_all(f, a, b, KERNEL_METRICS), _torch_path(monkeypatch, compute_all, f, a, b,
                                                                     KERNEL_METRICS))
    same = compute_all(a, a, a, ["VIF", "SSIM"])  # VIF(A, A) = 1 and SSIM(A, A) = 1 per source
    assert torch.allclose(same["VIF"], torch.full_like(same["VIF"], 2.0), rtol=1e-12)
    assert torch.allclose(same["SSIM"], torch.full_like(same["SSIM"], 2.0), rtol=1e-12)
    flat = torch.full((1, 1, 48, 48), 9.0, dtype=torch.float64)
    ours = compute_all(flat, flat, flat, KERNEL_METRICS)
    _assert_close(ours, _torch_path(monkeypatch, compute_all, flat, flat, flat, KERNEL_METRICS))
    assert ours["VIF"].item() == 2.0 and torch.isnan(ours["CC"]).all()


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 1, 3, 7), (1, 1, 9, 2), (1, 1, 3, 3)])
def test_kernel_equals_torch_path_on_tiny_images(monkeypatch, shape):
    """Sides where padding touches every pixel (the gradient metrics' border code) and the histogram/sum kernel."""
    f, a, b = _images(5, shape)
    names = [n for n in METRICS if METRICS[n].min_size <= min(shape[-2:])]
    _assert_close(compute_all(f, a, b, names), _torch_path(monkeypatch, compute_all, f, a, b, names))


@needs_kernel
def test_kernel_fused_only_metrics(monkeypatch):
    f, _, _ = _images(9, (2, 1, 30, 41))
    names = ["SD", "EN", "SF", "AG"]
    _assert_close(compute_all(f, None, None, names), _torch_path(monkeypatch, compute_all, f, None, None, names))


@needs_kernel
def test_kernel_result_independent_of_thread_count():
    f, a, b = _images(3, (2, 1, 96, 120))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compute_all(f, a, b, KERNEL_METRICS)
        torch.set_num_threads(2)
        two = compute_all(f, a, b, KERNEL_METRICS)
        with _native.thread_limit(1):
            limited = compute_all(f, a, b, KERNEL_METRICS)
    finally:
        torch.set_num_threads(old)
    for k in one:
        assert torch.equal(one[k], two[k]) and torch.equal(one[k], limited[k]), k


@needs_kernel
def test_kernel_builds_agree(monkeypatch):
    """The portable, AVX2 and AVX-512 builds (those this CPU runs) give the same values up to rounding."""
    f, a, b = _images(12, (1, 1, 70, 90))
    f[0, 0, 20:40] = torch.clamp(f[0, 0, 20:40] * 1.5, 0, 255).round()  # some artifacts for Nabf
    values = {}
    for isa in range(_native._state["isa"] + 1):
        monkeypatch.setitem(_native._state, "isa", isa)
        values[isa] = compute_all(f, a, b, KERNEL_METRICS)
    for isa, v in values.items():
        _assert_close(v, values[0], rtol=1e-12)


@needs_kernel
def test_kernel_batch_equals_one_by_one():
    f, a, b = _images(10, (3, 1, 50, 61))
    batch = compute_all(f, a, b, KERNEL_METRICS)
    for i in range(3):
        single = compute_all(f[i:i + 1], a[i:i + 1], b[i:i + 1], KERNEL_METRICS)
        for k in batch:
            assert torch.equal(batch[k][i:i + 1], single[k]), k


def test_kernel_declines_other_dtypes_devices_and_autograd():
    f, a, b = _images(4, (1, 1, 16, 16))
    assert not Batch(f.float(), a.float(), b.float(), dtype=torch.float32).native
    assert not Batch(f.requires_grad_(), a, b).native
    assert not _native.usable(torch.zeros(4, 4, dtype=torch.float32))


@needs_kernel
def test_gray_kernel_equals_the_torch_conversion():
    from mmdrfuse.metrics.reading import gray_float_path, gray_uint8_path

    g = torch.Generator().manual_seed(11)
    rgb = torch.randint(0, 256, (97, 131, 3), generator=g, dtype=torch.uint8)
    rgb[0, :, :] = torch.arange(131, dtype=torch.uint8)[:, None]  # some gray pixels
    arr = rgb.numpy()
    for conv, fn in (("float", gray_float_path), ("uint8", gray_uint8_path)):
        want = fn(rgb).numpy().astype(np.uint8)
        assert np.array_equal(_native.gray(arr, False, conv), want), conv
        assert np.array_equal(_native.gray(np.ascontiguousarray(arr[..., ::-1]), True, conv), want), conv


@needs_kernel
def test_kernels_use_torchs_openmp_even_beside_a_vendored_runtime():
    """scikit-learn maps its own libgomp under another soname; the kernels must still bind to torch's runtime and
    run threaded (a check on 'any second runtime in the process' once made them single-threaded)."""
    import subprocess
    import sys

    from mmdrfuse import native

    if not native.torch_uses_openmp() or native.openmp_runtimes() is None:
        pytest.skip("torch without OpenMP, or no /proc/self/maps")
    code = ("import torch, sklearn.metrics\n"
            "from mmdrfuse.metrics import _native\nfrom mmdrfuse import fast\n"
            "assert _native.available() and fast.kernel_available()\n"
            "print(_native._state['openmp'], fast.KERNEL.openmp)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"], out.stdout
