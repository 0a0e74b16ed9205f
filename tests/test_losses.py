"""Training losses: the authors' reference values, independent naive implementations, and properties."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmdrfuse import losses


def _reference_inputs():
    """The deterministic tensors of ../shared/reference/loss_values.json, drawn in the documented order."""
    g = torch.Generator().manual_seed(1)
    ir = torch.rand(4, 1, 64, 64, generator=g)
    vi = torch.rand(4, 1, 64, 64, generator=g)
    out = (0.6 * ir + 0.4 * vi + 0.05 * torch.randn(4, 1, 64, 64, generator=g)).clamp(0, 1)
    s_feat = torch.relu(torch.randn(4, 4, 64, 64, generator=g))
    t_feat = torch.relu(torch.randn(4, 4, 64, 64, generator=g))
    t_out = torch.tanh(torch.randn(4, 1, 64, 64, generator=g))
    return ir, vi, out, s_feat, t_feat, t_out


@pytest.fixture(scope="module")
def ref_values(shared_reference):
    return json.loads((shared_reference / "loss_values.json").read_text())["values"]


def test_reference_intensity(ref_values):
    ir, vi, out, *_ = _reference_inputs()
    assert losses.intensity_loss(out, ir, vi).item() == pytest.approx(ref_values["L_int_l1"], rel=1e-5)


def test_reference_gradient(ref_values):
    ir, vi, out, *_ = _reference_inputs()
    assert losses.gradient_loss(out, ir, vi).item() == pytest.approx(ref_values["L_grad_mse"], rel=1e-5)


def test_reference_distillation(ref_values):
    ir, vi, out, s_feat, t_feat, t_out = _reference_inputs()
    val = losses.distillation_loss(s_feat, t_feat, out, t_out).item()
    assert val == pytest.approx(ref_values["L_distill"], rel=1e-5)


def test_gradient_matches_scipy_convolution():
    rng = np.random.default_rng(0)
    a = rng.random((2, 1, 20, 17)).astype(np.float32)
    b = rng.random((2, 1, 20, 17)).astype(np.float32)
    o = rng.random((2, 1, 20, 17)).astype(np.float32)
    k = np.full((3, 3), 1 / 8.0)
    k[1, 1] = -1.0
    m = np.maximum(a, b)
    expect = np.mean([(ndimage.correlate(o[i, 0].astype(np.float64), k, mode="constant")
                       - ndimage.correlate(m[i, 0].astype(np.float64), k, mode="constant")) ** 2 for i in range(2)])
    got = losses.gradient_loss(*(torch.from_numpy(x) for x in (o, a, b))).item()
    assert got == pytest.approx(expect, rel=1e-5)


def test_zero_when_output_is_the_max():
    g = torch.Generator().manual_seed(3)
    ir, vi = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    m = torch.maximum(ir, vi)
    assert losses.intensity_loss(m, ir, vi).item() == 0.0
    assert losses.gradient_loss(m, ir, vi).item() == 0.0


def test_distillation_attention_is_scale_invariant_and_zero_on_equal():
    g = torch.Generator().manual_seed(4)
    s = torch.rand(3, 4, 8, 8, generator=g)
    o = torch.rand(3, 1, 8, 8, generator=g)
    assert losses.distillation_loss(s, s, o, o).item() == pytest.approx(0.0, abs=1e-12)
    # attention maps are normalised by the whole batch's norm: scaling the student changes nothing
    t, to = torch.rand(3, 4, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g)
    a = losses.distillation_loss(s, t, o, to).item()
    b = losses.distillation_loss(7.0 * s, t, 0.5 * o, to).item()
    assert a == pytest.approx(b, rel=1e-5)


def test_distillation_per_sample_split_sums_to_batch_value():
    g = torch.Generator().manual_seed(5)
    s, t = torch.rand(3, 4, 8, 8, generator=g), torch.rand(3, 4, 8, 8, generator=g)
    o, to = torch.rand(3, 1, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g)
    per = losses.distillation_loss(s, t, o, to, reduction="none")
    assert per.shape == (3,)
    assert per.sum().item() == pytest.approx(losses.distillation_loss(s, t, o, to).item(), rel=1e-6)


def test_distillation_plain_is_mean_of_two_mses():
    g = torch.Generator().manual_seed(6)
    s, t = torch.rand(2, 4, 8, 8, generator=g), torch.rand(2, 4, 8, 8, generator=g)
    o, to = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    expect = (((s - t) ** 2).mean() + ((o - to) ** 2).mean()) / 2
    assert losses.distillation_loss(s, t, o, to, mode="plain").item() == pytest.approx(expect.item(), rel=1e-6)
    with pytest.raises(ValueError, match="distillation mode"):
        losses.distillation_loss(s, t, o, to, mode="nope")


def test_perceptual_loss_naive():
    g = torch.Generator().manual_seed(7)
    shapes = [(2, 3, 8, 8), (2, 5, 4, 4)]
    fo = [torch.rand(s, generator=g) for s in shapes]
    fi = [torch.rand(s, generator=g) for s in shapes]
    fv = [torch.rand(s, generator=g) for s in shapes]
    target = losses.perceptual_target(fi, fv)
    expect = sum(((a - torch.maximum(b, c)) ** 2).mean() for a, b, c in zip(fo, fi, fv)) / len(shapes)
    assert losses.perceptual_loss(fo, target).item() == pytest.approx(expect.item(), rel=1e-6)


def test_reductions_agree():
    g = torch.Generator().manual_seed(8)
    ir, vi, o = (torch.rand(4, 1, 8, 8, generator=g) for _ in range(3))
    per = losses.intensity_loss(o, ir, vi, reduction="none")
    assert per.shape == (4,)
    assert losses.intensity_loss(o, ir, vi, reduction="sum").item() == pytest.approx(per.sum().item(), rel=1e-6)
    assert losses.intensity_loss(o, ir, vi).item() == pytest.approx(per.mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        losses.intensity_loss(o, ir, vi, reduction="max")


@pytest.mark.parametrize("bad", [torch.rand(1, 8, 8), torch.rand(2, 1, 8, 9), torch.zeros(2, 1, 8, 8, dtype=torch.int64)])
def test_validation(bad):
    ok = torch.rand(2, 1, 8, 8)
    with pytest.raises((ValueError, TypeError)):
        losses.intensity_loss(bad, ok, ok)


def test_losses_are_differentiable():
    g = torch.Generator().manual_seed(9)
    ir, vi = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    o = torch.rand(2, 1, 8, 8, generator=g, requires_grad=True)
    (losses.intensity_loss(o, ir, vi) + losses.gradient_loss(o, ir, vi)).backward()
    assert o.grad is not None and torch.isfinite(o.grad).all() and o.grad.abs().sum() > 0


def test_attention_distillation_accepts_other_student_widths():
    """Attention maps are channel sums, so Table 2's 2- and 6-channel students can follow the 4-channel teacher;
    plain MSE cannot."""
    g = torch.Generator().manual_seed(10)
    t = torch.rand(2, 4, 8, 8, generator=g)
    o, to = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    s2 = torch.rand(2, 2, 8, 8, generator=g)
    same = torch.cat([s2, torch.zeros(2, 2, 8, 8)], 1)  # zero channels do not change the channel sum
    assert losses.distillation_loss(s2, t, o, to).item() == pytest.approx(
        losses.distillation_loss(same, t, o, to).item(), rel=1e-6)
    with pytest.raises(ValueError, match="equal feature shapes"):
        losses.distillation_loss(s2, t, o, to, mode="plain")
    with pytest.raises(ValueError, match="beyond channels"):
        losses.distillation_loss(torch.rand(2, 2, 4, 4), t, o, to)


def test_squared_error_mean_channels_last_path():
    """The fused path taken for channels-last maps equals the plain ops (values and gradients), keeps the layout."""
    g = torch.Generator().manual_seed(5)
    a = torch.rand(3, 8, 6, 5, generator=g)
    b = torch.rand(3, 8, 6, 5, generator=g)
    plain_a = a.clone().requires_grad_(True)
    plain = losses.squared_error_mean(plain_a, b)
    cl = torch.channels_last
    fused_a = a.contiguous(memory_format=cl).requires_grad_(True)
    fused = losses.squared_error_mean(fused_a, b.contiguous(memory_format=cl))
    assert torch.allclose(plain, fused, rtol=1e-6, atol=0) and plain.shape == (3,)
    w = torch.tensor([1.0, -2.0, 0.5])
    (plain * w).sum().backward()
    (fused * w).sum().backward()
    assert torch.allclose(plain_a.grad, fused_a.grad, rtol=1e-6, atol=1e-9)
    assert fused_a.grad.is_contiguous(memory_format=cl)
    # both inputs differentiable: d/db = -d/da
    b2 = b.contiguous(memory_format=cl).requires_grad_(True)
    losses.squared_error_mean(a.contiguous(memory_format=cl), b2).sum().backward()
    ref_b = b.clone().requires_grad_(True)
    losses.squared_error_mean(a, ref_b).sum().backward()
    assert torch.allclose(b2.grad, ref_b.grad, rtol=1e-6, atol=1e-9)
