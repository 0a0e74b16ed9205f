"""Structural similarity (Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 2004) in the conventions found in fusion papers.

    SSIM(x, y) = mean over windows of ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
    C1 = (K1 R)^2, C2 = (K2 R)^2, K1 = 0.01, K2 = 0.03, R the data range.

- ``SSIM`` (the paper's, via the authors' evaluator): ``SSIM(F, A) + SSIM(F, B)`` (a sum, up to 2) with
  scikit-image ``structural_similarity`` defaults: 7 x 7 uniform window, sample covariance (N/(N-1), N = 49), mean of
  the map over the valid windows, and data_range R = 2 on the 0..255 images (what the old scikit-image inferred from
  the float64 dtype). The tiny C1, C2 make flat regions count fully; R = 255 gives much lower values.
- ``SSIM_dr255``: the same with R = 255 (scikit-image defaults given the correct data range), summed.
- ``SSIM_gauss255``: Wang et al.'s reference implementation: 11 x 11 Gaussian window (sigma 1.5), population
  covariance, valid windows, R = 255, averaged over the two sources: ``(SSIM(F, A) + SSIM(F, B)) / 2``.

Window sums are computed with separable filters on the stacked products F, F^2, S, S^2, S*F (S = A, B), with integer
shifts subtracted first: the 7 x 7 box sums of integer images are then exact. On float64 CPU tensors every variant
runs as one C kernel (:mod:`._native`, the same per-pixel arithmetic).
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import box_sum_valid, filter_valid, gaussian_window
from mmdrfuse.metrics.registry import measure, register

K1, K2 = 0.01, 0.03
UNIFORM_WINDOW = 7  # scikit-image's default window side (SSIM, SSIM_dr255; the C kernel's too)
GAUSS_WINDOW = 11  # Wang et al.'s Gaussian window side (SSIM_gauss255)


def _ssim_map(uf: Tensor, us: Tensor, vf: Tensor, vs: Tensor, vsf: Tensor, data_range: float) -> Tensor:
    """The SSIM map from means and (co)variances; F's maps (N, ...) broadcast against the sources' (2, N, ...).
    ``us``, ``vs`` and ``vsf`` are overwritten."""
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    num = (us * uf).mul_(2.0).add_(c1).mul_(vsf.mul_(2.0).add_(c2))
    den = us.mul_(us).add_(uf * uf).add_(c1).mul_(vs.add_(vf).add_(c2))
    return num.div_(den)


def _uniform_per_source(ctx: Batch, data_range: float, win: int = UNIFORM_WINDOW) -> Tensor:
    """skimage-convention SSIM(F, S) for both sources: (2, N)."""
    n = float(win * win)
    sums = box_sum_valid(ctx.products, win)  # (8, N, h, w) window sums of the shifted maps
    fs, ss = ctx.shifts
    sf, sff, s_s, s_ss, s_sf = sums[0], sums[1], sums[2:4], sums[4:6], sums[6:8]
    norm = 1.0 / (n * (n - 1.0))  # sample covariance: (n sum xy - sum x sum y) / (n (n - 1))
    vf = sff.mul(n).sub_(sf * sf).mul_(norm)
    vs = s_ss.mul(n).sub_(s_s * s_s).mul_(norm)
    vsf = s_sf.mul(n).sub_(s_s * sf).mul_(norm)
    uf = sf.mul(1.0 / n).add_(fs[:, None, None])
    us = s_s.mul(1.0 / n).add_(ss[..., None, None])
    return _ssim_map(uf, us, vf, vs, vsf, data_range).mean((-2, -1))


def _gauss_per_source(ctx: Batch, data_range: float = 255.0, win: int = GAUSS_WINDOW,
                      sigma: float = 1.5) -> Tensor:
    """Wang et al.'s Gaussian SSIM(F, S) for both sources: (2, N)."""
    w = gaussian_window(win, sigma, dtype=ctx.dtype, device=ctx.f.device)
    m = filter_valid(ctx.products, w)  # weighted means of the shifted maps
    fs, ss = ctx.shifts
    mf, mff, ms, mss, msf = m[0], m[1], m[2:4], m[4:6], m[6:8]
    vf = mff - mf * mf
    vs = mss - ms * ms
    vsf = msf - ms * mf
    return _ssim_map(mf + fs[:, None, None], ms + ss[..., None, None], vf, vs, vsf, data_range).mean((-2, -1))


def _uniform_sum(ctx: Batch, data_range: float) -> Tensor:
    """SSIM(F, A) + SSIM(F, B) with the 7 x 7 uniform window: the C kernel on float64 CPU, else the torch path."""
    if ctx.native:
        return ctx.native_ssim7((K1 * data_range) ** 2, (K2 * data_range) ** 2)
    return _uniform_per_source(ctx, data_range).sum(0)


def _ssim(ctx: Batch) -> Tensor:
    return _uniform_sum(ctx, 2.0)


def _ssim_dr255(ctx: Batch) -> Tensor:
    return _uniform_sum(ctx, 255.0)


def _ssim_gauss255(ctx: Batch) -> Tensor:
    if ctx.native:  # the C kernel: the same arithmetic per pixel, the window as symmetric separable passes
        w = gaussian_window(GAUSS_WINDOW, 1.5)
        return ctx.native_ssim_gauss(w, (K1 * 255.0) ** 2, (K2 * 255.0) ** 2).mean(0)
    return _gauss_per_source(ctx).mean(0)


@register("SSIM", higher_is_better=True, paper=True, min_size=UNIFORM_WINDOW, impl=_ssim,
          description="SSIM(F,A) + SSIM(F,B), skimage defaults (7x7 uniform), data_range 2")
def SSIM(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """The paper's SSIM: ``SSIM(F, A) + SSIM(F, B)``, scikit-image defaults (7 x 7 uniform window, sample
    covariance, K1 = 0.01, K2 = 0.03) with data_range = 2 (see the module docstring). Range up to 2."""
    return measure("SSIM", fused, a, b, dtype=dtype, reduction=reduction)


@register("SSIM_dr255", higher_is_better=True, min_size=UNIFORM_WINDOW, impl=_ssim_dr255,
          description="SSIM(F,A) + SSIM(F,B), skimage defaults with data_range 255")
def SSIM_dr255(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64,
               reduction: str = "none") -> Tensor:
    """``SSIM(F, A) + SSIM(F, B)`` with scikit-image defaults and data_range = 255. Range up to 2."""
    return measure("SSIM_dr255", fused, a, b, dtype=dtype, reduction=reduction)


@register("SSIM_gauss255", higher_is_better=True, min_size=GAUSS_WINDOW, impl=_ssim_gauss255,
          description="(SSIM(F,A) + SSIM(F,B)) / 2, 11x11 Gaussian (sigma 1.5), L = 255 (Wang et al.)")
def SSIM_gauss255(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64,
                  reduction: str = "none") -> Tensor:
    """``(SSIM(F, A) + SSIM(F, B)) / 2`` with Wang et al.'s 11 x 11 Gaussian window (sigma 1.5), population
    covariance, valid windows and L = 255. Range up to 1."""
    return measure("SSIM_gauss255", fused, a, b, dtype=dtype, reduction=reduction)
