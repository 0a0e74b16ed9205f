"""Metrics VIFB reports beside the paper's: cross entropy (CE), edge intensity (EI) and RMSE, on gray images.

F = fused, A = IR, B = VIS, all 0..255, N x 1 x H x W like every registered metric. The definitions are VIFB's
(github.com/xingchenzhang/VIFB, metrics/metrics<Name>.m) on one gray channel; VIFB's colour handling lives in
:mod:`mmdrfuse.metrics.vifb`.

- ``CE``: ``(CE(A, F) + CE(B, F)) / 2`` with ``CE(S, F) = sum_l p_S(l) log2(p_S(l) / p_F(l))`` over the gray levels
  l where both 256-bin histograms are non-zero (metricsCross_entropy.m; Bulanon et al. 2009). Bits, lower is better.
- ``EI``: mean over the pixels of ``sqrt(gx^2 + gy^2)``, Sobel responses (``fspecial('sobel')`` and its transpose)
  with replicated borders, ``imfilter(F, w, 'replicate')`` (metricsEdge_intensity.m; Rajalingam & Priya 2018).
- ``RMSE``: ``(RMSE(A, F) + RMSE(B, F)) / 2`` with ``RMSE(S, F) = sqrt(mean((S - F)^2))``. VIFB's ``Rmse``
  (metricsRmse.m) divides the root of the *sum* of squares by H W instead: ``RMSE(S, F) / sqrt(H W)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import histogram256, sobel_zero
from mmdrfuse.metrics.registry import measure, register


# ------------------------------------------------------------------------------------------- implementations
def cross_entropy_bits(src_levels: Tensor, f_levels: Tensor, dtype: torch.dtype) -> Tensor:
    """``sum p_S log2(p_S / p_F)`` over the levels where both histograms are non-zero, per image: (..., H, W) int64
    levels (broadcast) -> (...)."""
    hs = histogram256(src_levels).to(dtype)
    hf = histogram256(f_levels).to(dtype)
    n = float(src_levels.shape[-1] * src_levels.shape[-2])
    ps, pf = hs / n, hf / n
    terms = ps * torch.log2(ps / pf)  # NaN or inf where a histogram is empty: not summed
    return torch.where((hs > 0) & (hf > 0), terms, 0.0).sum(-1)


def _ce(ctx: Batch) -> Tensor:
    return cross_entropy_bits(ctx.s_levels, ctx.f_levels[None], ctx.dtype).mean(0)


def edge_intensity_map(x: Tensor) -> Tensor:
    """``sqrt(gx^2 + gy^2)`` with ``imfilter(x, fspecial('sobel'), 'replicate')`` and its transpose, (..., H, W).
    The zero-padded Sobel of the edge-replicated image, cropped, is the replicated-border response."""
    shape = x.shape
    xp = torch.nn.functional.pad(x.reshape(-1, 1, *shape[-2:]), (1, 1, 1, 1), mode="replicate")[:, 0]
    gx, gy = sobel_zero(xp)
    gx, gy = gx[..., 1:-1, 1:-1], gy[..., 1:-1, 1:-1]
    return torch.sqrt(gx * gx + gy * gy).reshape(shape)


def _ei(ctx: Batch) -> Tensor:
    return edge_intensity_map(ctx.f).mean((-2, -1))


def rmse_per_source(ctx: Batch) -> Tensor:
    """sqrt(mean((S - F)^2)) for S = A, B: (2, N)."""
    d = ctx.s - ctx.f
    return torch.sqrt((d * d).mean((-2, -1)))


def _rmse(ctx: Batch) -> Tensor:
    return rmse_per_source(ctx).mean(0)


# ------------------------------------------------------------------------------------------------ public API
@register("CE", higher_is_better=False, impl=_ce,
          description="cross entropy (CE(A,F) + CE(B,F)) / 2, bits, 256-bin histograms (VIFB's definition)")
def CE(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Cross entropy (Bulanon et al. 2009), VIFB's metricsCross_entropy.m on gray images:
    ``(CE(A, F) + CE(B, F)) / 2``, ``CE(S, F) = sum p_S log2(p_S / p_F)`` over the levels where both 256-bin
    histograms (values rounded to 0..255) are non-zero. Bits; lower is better."""
    return measure("CE", fused, a, b, dtype=dtype, reduction=reduction)


@register("EI", higher_is_better=True, needs_sources=False, impl=_ei,
          description="edge intensity: mean Sobel magnitude of F, replicated borders (VIFB's definition)")
def EI(fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, dtype: torch.dtype = torch.float64,
       reduction: str = "none") -> Tensor:
    """Edge intensity (Rajalingam & Priya 2018), VIFB's metricsEdge_intensity.m: mean of ``sqrt(gx^2 + gy^2)``,
    Sobel responses with replicated borders. Fused image only; higher is better."""
    return measure("EI", fused, a, b, dtype=dtype, reduction=reduction)


@register("RMSE", higher_is_better=False, impl=_rmse,
          description="(RMSE(A,F) + RMSE(B,F)) / 2, RMSE = sqrt(mean (S-F)^2)")
def RMSE(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64,
         reduction: str = "none") -> Tensor:
    """Root mean squared error to the sources, ``(RMSE(A, F) + RMSE(B, F)) / 2``. Lower is better. (VIFB's ``Rmse``
    is this divided by sqrt(H W); see :mod:`mmdrfuse.metrics.vifb`.)"""
    return measure("RMSE", fused, a, b, dtype=dtype, reduction=reduction)
