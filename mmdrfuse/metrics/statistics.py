"""Global-statistics metrics: SD, EN, SF, AG (fused image only) and CC, SCD, MSE, PSNR, MI (fused vs sources).

Conventions of the authors' evaluator (their evaluation code; see docs/metrics.md); F = fused, A = IR/MRI,
B = VIS/PET/SPECT, all 0..255. Each public function takes N x 1 x H x W tensors and returns one value per image
(``reduction="none"``) or their mean (``"mean"``); the fused-only metrics accept and ignore ``a`` and ``b``. On
float64 CPU tensors all nine come from one C kernel pass (:mod:`._native`: exact sums for integer images, the same
formulas); the torch code below is the reference and the path for float32, CUDA and autograd.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import corr, flat, histogram256, joint_histogram256
from mmdrfuse.metrics.registry import measure, register


# ------------------------------------------------------------------------------------------- implementations
def _sd(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["SD"]
    f = flat(ctx.f)
    d = f - f.mean(-1, keepdim=True)
    return torch.sqrt((d * d).mean(-1))


def _en(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["EN"]
    h = histogram256(ctx.f_levels).to(ctx.dtype)
    p = h / h.sum(-1, keepdim=True)
    return -torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum(-1)


def _sf(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["SF"]
    f = ctx.f
    dx = f[..., :, 1:] - f[..., :, :-1]
    dy = f[..., 1:, :] - f[..., :-1, :]
    return torch.sqrt((dx * dx).mean((-2, -1)) + (dy * dy).mean((-2, -1)))


def _ag(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["AG"]
    gy, gx = torch.gradient(ctx.f, dim=(-2, -1))  # central differences, one-sided at the borders
    return torch.sqrt((gx * gx + gy * gy) * 0.5).mean((-2, -1))


def _cc(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["CC"]
    return corr(ctx.s, ctx.f).mean(0)


def _scd(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["SCD"]
    f, s = ctx.f, ctx.s
    return corr(f - s[1], s[0]) + corr(f - s[0], s[1])


def _mse_per_source(ctx: Batch) -> Tensor:
    d = ctx.s - ctx.f
    return (d * d).mean((-2, -1))  # (2, N)


def _mse(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["MSE"]
    return _mse_per_source(ctx).mean(0)


def _psnr(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["PSNR"]
    peak = flat(ctx.f).amax(-1)
    return 10.0 * torch.log10(peak * peak / _mse(ctx))


def mutual_information(joint: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Mutual information in nats of joint count tables (..., K, L): sum p_ij log(p_ij / (p_i p_j)), clipped at 0
    (the formula of sklearn.metrics.mutual_info_score on the contingency table)."""
    c = joint.to(dtype)
    n = c.sum((-2, -1), keepdim=True)
    ci = c.sum(-1, keepdim=True)
    cj = c.sum(-2, keepdim=True)
    nz = c > 0
    t = torch.where(nz, c * (torch.log(torch.where(nz, c, 1.0)) + torch.log(n) - torch.log(ci.clamp_min(1))
                             - torch.log(cj.clamp_min(1))), torch.zeros_like(c))
    return (t.sum((-2, -1)) / n[..., 0, 0]).clamp_min(0.0)


def _mi(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_stats["MI"]
    joint = joint_histogram256(ctx.f_levels, ctx.s_levels)  # (2, N, 256, 256), rows = F levels
    return mutual_information(joint, ctx.dtype).sum(0)


# ------------------------------------------------------------------------------------------------ public API
@register("SD", higher_is_better=True, paper=True, needs_sources=False, impl=_sd,
          description="standard deviation of F (population)")
def SD(fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, dtype: torch.dtype = torch.float64,
       reduction: str = "none") -> Tensor:
    """Standard deviation (Rao 1997; the paper cites Aslantas & Bendes 2015): population std of F,
    ``sqrt(mean((F - mean F)^2))``. No reference image; higher means more contrast."""
    return measure("SD", fused, a, b, dtype=dtype, reduction=reduction)


@register("SCD", higher_is_better=True, paper=True, impl=_scd,
          description="sum of correlations of differences corr(F-B,A) + corr(F-A,B)")
def SCD(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Sum of the correlations of differences (Aslantas & Bendes 2015): ``corr(F - B, A) + corr(F - A, B)``."""
    return measure("SCD", fused, a, b, dtype=dtype, reduction=reduction)


@register("CC", higher_is_better=True, paper=True, impl=_cc, description="(corr(A,F) + corr(B,F)) / 2")
def CC(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Correlation coefficient (Ma et al. 2019): ``(corr(A, F) + corr(B, F)) / 2``, Pearson correlation over all
    pixels. The paper's convention is the mean of the two (some codebases sum)."""
    return measure("CC", fused, a, b, dtype=dtype, reduction=reduction)


@register("EN", higher_is_better=True, needs_sources=False, impl=_en,
          description="Shannon entropy of F's 256-bin histogram, bits")
def EN(fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, dtype: torch.dtype = torch.float64,
       reduction: str = "none") -> Tensor:
    """Shannon entropy in bits of F's 256-bin gray-level histogram (Roberts et al. 2008):
    ``-sum_l p_l log2 p_l`` with values rounded to integers 0..255."""
    return measure("EN", fused, a, b, dtype=dtype, reduction=reduction)


@register("SF", higher_is_better=True, needs_sources=False, min_size=2, impl=_sf,
          description="spatial frequency sqrt(mean dx^2 + mean dy^2)")
def SF(fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, dtype: torch.dtype = torch.float64,
       reduction: str = "none") -> Tensor:
    """Spatial frequency (Eskicioglu & Fisher 1995): ``sqrt(mean(dx^2) + mean(dy^2))`` with forward differences
    dx = F[:, j+1] - F[:, j] and dy = F[i+1, :] - F[i, :] (each mean over its own valid area)."""
    return measure("SF", fused, a, b, dtype=dtype, reduction=reduction)


@register("AG", higher_is_better=True, needs_sources=False, min_size=2, impl=_ag,
          description="average gradient mean sqrt((Gx^2 + Gy^2) / 2), numpy.gradient")
def AG(fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, dtype: torch.dtype = torch.float64,
       reduction: str = "none") -> Tensor:
    """Average gradient (Cui et al. 2015): ``mean(sqrt((Gx^2 + Gy^2) / 2))`` with ``numpy.gradient`` derivatives
    (central differences inside, one-sided at the borders), mean over all H x W pixels."""
    return measure("AG", fused, a, b, dtype=dtype, reduction=reduction)


@register("MI", higher_is_better=True, impl=_mi,
          description="mutual information MI(F,A) + MI(F,B) in nats, 256-level joint histogram")
def MI(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Mutual information (Qu et al. 2002) in nats, summed over the sources: ``MI(F, A) + MI(F, B)`` with
    ``MI(X, Y) = sum p(x,y) ln(p(x,y) / (p(x) p(y)))`` over the joint histogram of the integer gray levels
    (values rounded to 0..255), as ``sklearn.metrics.mutual_info_score`` on the flattened images."""
    return measure("MI", fused, a, b, dtype=dtype, reduction=reduction)


@register("PSNR", higher_is_better=True, impl=_psnr, description="10 log10(max(F)^2 / MSE), dB")
def PSNR(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Peak signal-to-noise ratio in dB: ``10 log10(max(F)^2 / MSE)`` with MSE as in :func:`MSE` (the evaluator's
    peak is the fused image's maximum, not 255). Infinite when F equals both sources."""
    return measure("PSNR", fused, a, b, dtype=dtype, reduction=reduction)


@register("MSE", higher_is_better=False, impl=_mse, description="(mean (F-A)^2 + mean (F-B)^2) / 2")
def MSE(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Mean squared error to the sources: ``(mean((F - A)^2) + mean((F - B)^2)) / 2``. Lower is better."""
    return measure("MSE", fused, a, b, dtype=dtype, reduction=reduction)
