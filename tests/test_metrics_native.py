"""The C kernels of the metrics (mmdrfuse.metrics._native) against the torch paths they replace."""
import pytest
import torch

from mmdrfuse.metrics import SSIM, VIF, Nabf, Qabf, SSIM_dr255, compute_all
from mmdrfuse.metrics import _native

needs_kernel = pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")


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


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 1, 41, 41), (3, 1, 67, 93), (2, 1, 128, 160)])
@pytest.mark.parametrize("fn", [VIF, SSIM, SSIM_dr255, Qabf, Nabf], ids=["VIF", "SSIM", "SSIM_dr255", "Qabf", "Nabf"])
def test_kernel_equals_torch_path(monkeypatch, fn, shape):
    f, a, b = _images(1, shape)
    ours = fn(f, a, b)
    ref = _torch_path(monkeypatch, fn, f, a, b)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=0), (ours, ref)


@needs_kernel
def test_kernel_flat_source_and_identical_images(monkeypatch):
    f, a, b = _images(2, (2, 1, 64, 64), const=True)
    for fn in (VIF, SSIM, Qabf, Nabf):
        ours, ref = fn(f, a, b), _torch_path(monkeypatch, fn, f, a, b)
        assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12, equal_nan=True)
    same = VIF(a, a, a)  # VIF(A, A) = 1 per source
    assert torch.allclose(same, torch.full_like(same, 2.0), rtol=1e-12)


@needs_kernel
def test_kernel_result_independent_of_thread_count():
    f, a, b = _images(3, (2, 1, 96, 120))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compute_all(f, a, b, ["VIF", "SSIM", "Qabf", "Nabf"])
        torch.set_num_threads(2)
        two = compute_all(f, a, b, ["VIF", "SSIM", "Qabf", "Nabf"])
    finally:
        torch.set_num_threads(old)
    for k in one:
        assert torch.equal(one[k], two[k]), k


def test_kernel_declines_other_dtypes_and_layouts():
    m = torch.zeros(8, 1, 10, 10, dtype=torch.float32)
    assert _native.vif_terms(m) is None
    assert _native.ssim_uniform(m, torch.zeros(1), torch.zeros(2, 1), 49, 1.0, 1.0) is None
    assert _native.vif_terms(torch.zeros(7, 1, 10, 10, dtype=torch.float64)) is None


@needs_kernel
def test_kernel_copies_other_layouts(monkeypatch):
    """A plain contiguous (8, N, H, W) stack (not the filter's rows-outermost view) gives the same sums."""
    g = torch.Generator().manual_seed(4)
    m = torch.rand(8, 2, 12, 15, generator=g, dtype=torch.float64) * 100
    m[1], m[4:6] = m[0] ** 2 + 5, m[2:4] ** 2 + 7  # valid second moments
    num, den = _native.vif_terms(m)
    num2, den2 = _native.vif_terms(m.movedim(-2, 0).contiguous().movedim(0, -2))
    assert torch.allclose(num, num2, rtol=1e-13) and torch.allclose(den, den2, rtol=1e-13)


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 1, 3, 7), (1, 1, 9, 2)])
def test_sobel_kernel_equals_torch_on_tiny_images(monkeypatch, shape):
    """The gradient maps themselves where padding touches every pixel: orientation vectors bit for bit, strengths to
    1 ulp (libm's sqrt is correctly rounded; torch's vectorised sqrt can be 1 ulp off)."""
    from mmdrfuse.metrics._context import Batch

    f, a, b = _images(5, shape)
    ours = [Batch(f, a, b).qabf_gradients, Batch(f, a, b).nabf_gradients]
    ref = _torch_path(monkeypatch, lambda: [Batch(f, a, b).qabf_gradients, Batch(f, a, b).nabf_gradients])
    for got, want in zip(ours, ref):
        assert torch.allclose(got[0], want[0], rtol=4e-16, atol=0)
        for x, y in zip(got[1:], want[1:]):
            assert torch.equal(x, y)


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
