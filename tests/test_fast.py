"""The fast inference path (mmdrfuse.fast) and the speed benchmark (benchmarks/speed_fuse.py).

Expected values come from the plain ``Student.forward`` (PyTorch's own conv), from torch.tanh in float64, from
../shared/reference/official_outputs.json, and from SPEC.md (108 MAC per pixel, 12 bytes per pixel moved).
No timing is asserted.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmdrfuse import fast
from mmdrfuse.models import Student, StudentConfig, Teacher

needs_kernel = pytest.mark.skipif(not fast.kernel_available(),
                                  reason=f"fast kernel unavailable: {fast.kernel_status()}")


def _student(hidden: int = 4, seed: int = 0, scale: float = 1.0) -> Student:
    torch.manual_seed(seed)
    m = Student(StudentConfig(hidden=hidden)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    return m


def _plain(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m(x)


def _fast(m: Student, x: torch.Tensor, **kw) -> torch.Tensor:
    with torch.no_grad():
        return fast.FastStudent(m, **kw)(x)


# ------------------------------------------------------------------------------------------------------ parity
@needs_kernel
@pytest.mark.parametrize("hidden", [1, 2, 3, 4, 5, 6, 8, 9])
@pytest.mark.parametrize("shape", [(1, 2, 64, 96), (3, 2, 37, 71), (1, 2, 2, 2), (2, 2, 3, 2), (1, 2, 2, 131),
                                   (1, 2, 130, 7), (1, 2, 9, 65)])
def test_matches_plain_forward(hidden, shape):
    m = _student(hidden, seed=hidden, scale=3.0)  # larger weights: negative pre-activations and saturated tanh
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    got, ref = _fast(m, x), _plain(m, x)
    assert got.shape == ref.shape == (shape[0], 1, *shape[2:])
    assert got.dtype == torch.float32
    assert (got - ref).abs().max().item() <= 1e-6


@needs_kernel
@pytest.mark.parametrize("hidden", [1, 4, 6])
def test_portable_build_matches_too(hidden):
    """The portable (non-AVX2) build, the one used on other CPUs, is correct as well."""
    m = _student(hidden, seed=11, scale=3.0)
    x = torch.rand(2, 2, 45, 77, generator=torch.Generator().manual_seed(4))
    assert (_fast(m, x, isa=0) - _plain(m, x)).abs().max().item() <= 1e-6


@needs_kernel
def test_large_image_batch_and_threads():
    m = _student(4, seed=3)
    x = torch.rand(2, 2, 257, 1283, generator=torch.Generator().manual_seed(2))
    ref = _plain(m, x)
    outs = [_fast(m, x, threads=t, rows_per_task=r) for t, r in [(1, None), (2, None), (2, 5), (3, 1000)]]
    assert (outs[0] - ref).abs().max().item() <= 1e-6
    for o in outs[1:]:  # bit-identical whatever the tiling and thread count
        assert torch.equal(o, outs[0])
    assert torch.equal(_fast(m, x), outs[0])  # and from call to call


@needs_kernel
def test_official_reference_outputs(shared_weights, shared_reference):
    ref = json.loads((shared_reference / "official_outputs.json").read_text())["values"]
    m = Student().eval()
    m.load_state_dict(torch.load(shared_weights / "official" / "student.model", map_location="cpu"))
    g = torch.Generator().manual_seed(0)
    inputs = {"rand_seed0_1x2x64x96": torch.rand(1, 2, 64, 96, generator=g)}
    ramp = torch.empty(1, 2, 64, 96)
    ramp[0, 0] = torch.linspace(0, 1, 96).expand(64, 96)
    ramp[0, 1] = (torch.linspace(0, 1, 64) ** 2)[:, None].expand(64, 96)
    inputs["ramp_1x2x64x96"] = ramp
    for name, x in inputs.items():
        out = _fast(m, x)
        v = ref[name]
        assert out.mean().item() == pytest.approx(v["student_output_mean"], abs=2e-6)
        assert out.std().item() == pytest.approx(v["student_output_std"], abs=2e-6)
        assert out[0, 0, 0, 0].item() == pytest.approx(v["student_output_pixel_0_0"], abs=2e-6)
        assert out[0, 0, 31, 47].item() == pytest.approx(v["student_output_pixel_31_47"], abs=2e-6)


@needs_kernel
def test_real_pair_same_saved_image(shared_data, shared_weights):
    """On a real 1024 x 1280 LLVIP pair the min-max saved images differ by at most one grey level."""
    from mmdrfuse import images

    ir_dir = shared_data / "LLVIP" / "test_samples" / "ir"
    ir_path = sorted(ir_dir.iterdir())[0]
    ir, vis = images.read_pair(ir_path, ir_dir.parent / "vi" / ir_path.name)
    m = Student().eval()
    m.load_state_dict(torch.load(shared_weights / "official" / "student.model", map_location="cpu"))
    x = torch.cat([ir, vis], 1)
    got, ref = _fast(m, x), _plain(m, x)
    assert (got - ref).abs().max().item() <= 1e-6
    a, b = images.to_uint8(got).astype(int), images.to_uint8(ref).astype(int)
    assert np.abs(a - b).max() <= 1


@needs_kernel
def test_tanh_accuracy_and_special_values():
    """A 1-hidden-channel student whose output is tanh(20 * ir + b): compare with float64 tanh over [-21, 21]."""
    m = Student(StudentConfig(hidden=1)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.conv1[1].weight[0, 0, 1, 1] = 1.0
        m.conv2[1].weight[0, 0, 1, 1] = 20.0
    x = torch.zeros(1, 2, 8, 4096)
    x[0, 0] = torch.linspace(0, 1, 8 * 4096).reshape(8, 4096)
    for b in (-21.0, -10.0, -3.0, -0.5, 0.0, 0.7, 1.0):
        with torch.no_grad():
            m.conv2[1].bias.fill_(b)
        pre = (20.0 * x[:, :1].double() + b).float().double()  # the kernel's pre-activation is exact here
        expected = torch.tanh(pre).float()
        assert (_fast(m, x) - expected).abs().max().item() <= 2e-7
    # NaN and inf propagate as in torch
    x = torch.rand(1, 2, 6, 40)
    x[0, 0, 2, 5] = float("nan")
    x[0, 1, 4, 30] = float("inf")
    m = _student(4, seed=5)
    got, ref = _fast(m, x), _plain(m, x)
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    ok = ~torch.isnan(ref)
    assert (got[ok] - ref[ok]).abs().max().item() <= 1e-6


@needs_kernel
def test_input_layouts():
    m = _student(4, seed=6)
    x = torch.rand(2, 2, 40, 50, generator=torch.Generator().manual_seed(3))
    ref = _plain(m, x)
    cl = x.contiguous(memory_format=torch.channels_last)
    sliced = torch.rand(2, 2, 40, 100)[..., ::2]
    sliced[...] = x
    for variant in (cl, sliced):
        assert (_fast(m, variant) - ref).abs().max().item() <= 1e-6


# --------------------------------------------------------------------------------------------------- fallbacks
def test_fallbacks_compute_the_plain_forward():
    m = _student(4, seed=7).double()
    f = fast.FastStudent(m)
    x64 = torch.rand(1, 2, 10, 12, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(f(x64), m(x64))  # other dtypes: the plain forward (here float64)
    m.float()
    x = torch.rand(1, 2, 10, 12, requires_grad=True)
    out = f(x)  # autograd wanted: the plain forward, with a graph
    assert out.grad_fn is not None
    out.sum().backward()
    assert x.grad is not None and m.conv1[1].weight.grad is not None
    with pytest.raises(RuntimeError):  # too small for reflection padding: the same error as the plain forward
        with torch.no_grad():
            f(torch.rand(1, 2, 1, 12))


def test_kernel_unavailable_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(fast.KERNEL, "lib", None)
    monkeypatch.setattr(fast.KERNEL, "error", "no C compiler found (test)")
    monkeypatch.setattr(fast.KERNEL, "_warned", False)
    m = _student(4, seed=8)
    x = torch.rand(1, 2, 16, 20)
    with pytest.warns(RuntimeWarning, match="plain forward"):
        out = _fast(m, x)
    assert torch.equal(out, _plain(m, x))
    assert "unavailable" in fast.kernel_status()


def test_no_compiler_raises_cleanly(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc/gcc/clang here
    with pytest.raises(RuntimeError, match="no C compiler"):
        fast.build_kernel()


@needs_kernel
def test_build_kernel_into_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MMDRFUSE_KERNEL_DIR", str(tmp_path / "k"))
    lib = fast.build_kernel()
    assert lib.parent == tmp_path / "k" and lib.suffix == ".so" and lib.stat().st_size > 0
    assert fast.build_kernel() == lib  # cached: same file, no rebuild
    assert [p.name for p in (tmp_path / "k").iterdir()] == [lib.name]  # no temporary leftovers


def test_accelerate():
    t = Teacher()
    assert fast.accelerate(t) is t  # nothing faster for the teacher: the model itself
    m = _student(4, seed=9)
    f = fast.accelerate(m)
    x = torch.rand(1, 2, 30, 40)
    out = f(x)
    assert out.grad_fn is None and not out.requires_grad  # inference only
    assert (out - _plain(m, x)).abs().max().item() <= 1e-6
    with pytest.raises(TypeError):
        fast.FastStudent(t)


def test_weights_are_read_at_call_time():
    m = _student(4, seed=10)
    f = fast.FastStudent(m)
    x = torch.rand(1, 2, 12, 12)
    with torch.no_grad():
        f(x)
        m.conv2[1].bias.add_(0.25)
        assert (f(x) - m(x)).abs().max().item() <= 1e-6


# --------------------------------------------------------------------------------------------------- benchmark
def test_speed_benchmark_smoke(tmp_path):
    from benchmarks import speed_fuse as sf

    rows, roof = sf.run_benchmark(h=16, w=24, batches=(1, 2), candidates=("plain", "fast"), repeats=1, warmup=0,
                                  progress=False, copy_mib=2, mm_n=128, slices=3)
    # SPEC: 108 MAC/pixel for the paper's student; the pass reads 2 planes and writes 1 (float32)
    assert roof["flops_per_pair"] == 2 * 108 * 16 * 24
    assert roof["bytes_per_pair"] == 12 * 16 * 24
    assert roof["bound_ms"] == max(roof["memory_ms"], roof["compute_ms"]) > 0
    assert roof["bound_1thread_ms"] == max(roof["memory_1thread_ms"], roof["compute_1thread_ms"]) > 0
    measured = [r for r in rows if r["status"] == "ok"]
    assert {(r["method"], r["batch"]) for r in measured} == {(m, b) for m in ("plain", "fast") for b in (1, 2)} | {
        ("fast_1thread_slice_est", 1)}
    for r in measured:
        assert r.get("max_abs_diff", 0.0) <= 1e-6
        assert r["mpix_per_s"] == pytest.approx(16 * 24 / r["ms_per_pair_median"] / 1e3)
    paths = sf.write_results(rows, roof, tmp_path, "test", None, None, {"size": [16, 24]})
    import pandas as pd

    df = pd.read_csv(paths[0])
    assert list(df.columns) == sf.COLUMNS
    assert set(df["method"]) >= {"plain", "fast", "roofline_memory", "roofline_compute", "roofline_bound",
                                 "roofline_bound_1thread", "fast_1thread_slice_est"}
    prov = json.loads(paths[1].read_text())
    for key in ("command", "date", "git_commit", "machine", "torch", "threads", "roofline"):
        assert key in prov
    assert "plain" in sf.format_table(rows)


def test_speed_benchmark_bad_arguments(capsys):
    from benchmarks import speed_fuse as sf

    assert sf.main(["--size", "big"]) == 2
    assert sf.main(["--candidates", "plain,warp"]) == 2
    assert "unknown candidate" in capsys.readouterr().err


@needs_kernel
def test_kernel_sources_compile_without_warnings(monkeypatch, tmp_path):
    """csrc/ is built with -Wall -Wextra and kept warning-free (a warning is re-raised as a RuntimeWarning)."""
    import warnings

    monkeypatch.setenv("MMDRFUSE_KERNEL_DIR", str(tmp_path / "k"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fast.build_kernel(force=True)


class _Wider(Student):
    """A subclass that changes the forward: the kernel must not stand in for it."""

    def forward(self, x):
        return super().forward(x) * 0.5


@pytest.mark.parametrize("change", ["subclass", "stride", "dilation", "no_bias", "sigmoid", "extra_layer"])
def test_kernel_refuses_what_it_does_not_implement(change):
    from torch import nn

    m = _Wider() if change == "subclass" else _student(4, seed=1)
    if change == "stride":
        m.conv2[1].stride = (2, 2)
    elif change == "dilation":
        m.conv1[1].dilation = (2, 2)
    elif change == "no_bias":
        m.conv1[1].bias = None
    elif change == "sigmoid":
        m.conv2[2] = nn.Sigmoid()
    elif change == "extra_layer":
        m.conv1.append(nn.Identity())
    assert not fast.implements(m)
    assert fast.accelerate(m) is m
    with pytest.raises(TypeError, match="does not implement"):
        fast.FastStudent(m)
    assert fast.implements(_student(4, seed=1)) and fast.implements(_student(6, seed=1))
