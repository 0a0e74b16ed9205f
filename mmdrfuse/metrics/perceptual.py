"""Human-perception-based fusion metrics: Chen-Blum (Qcb) and Chen-Varshney (Qcv), on gray images.

Both as in Z. Liu's MATLAB imageFusionMetrics (metricChenBlum.m, metricChen.m), the code VIFB calls
(github.com/xingchenzhang/VIFB, metrics/metricsQcb.m, metricsQcv.m). F = fused, A = IR, B = VIS, 0..255, N x 1 x H x W.
First every image is normalised with ``normalize1`` (min-max to 0..255, rounded; :mod:`mmdrfuse.metrics.matlab`).
Frequency-domain filters are even functions of r = sqrt(u^2 + v^2) on MATLAB's ``freqspace`` grid, so
``ifft2(ifftshift(fftshift(fft2(x)) .* S))`` is real and is computed as ``irfft2(rfft2(x) * S)``.

Qcb (Y. Chen & R. S. Blum, "A new automated quality assessment algorithm for image fusion", Image and Vision
Computing 27, 2009), higher is better, 0..1:

- contrast sensitivity filter S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2), f0 = 15.3870, f1 = 1.3456, a = 0.7622, with
  u scaled by W/30 and v by H/30 (``freqspace``);
- local contrast C = |(G1 * X) / (G2 * X) - 1| with G1, G2 the unnormalised 31 x 31 Gaussians
  ``exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2)``, s = 2 and 4, ``filter2(G, X, 'same')`` (zero padding);
- masked contrast C' = C^3 / (C^2 + 1e-4);
- Q_SF = C'_S / C'_F where C'_S < C'_F, else C'_F / C'_S; saliency lambda_A = C'_A^2 / (C'_A^2 + C'_B^2);
- Qcb = mean(lambda_A Q_AF + lambda_B Q_BF).

Qcv (H. Chen & P. K. Varshney, "A human perception inspired quality metric for image fusion based on regional
information", Information Fusion 8, 2007), lower is better:

- edge strength G = sqrt(gx^2 + gy^2) of each source, Sobel ``filter2(..., 'same')`` (zero padding);
- region saliency lambda_S = sum of G_S^5 over 16 x 16 blocks from the top-left (``blkproc``, edge blocks
  zero-padded);
- D_S = mean over each 16 x 16 block (256 pixels, zero-padded) of ((S - F) filtered with the Mannos-Sakrison CSF
  2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1), u scaled by W/8 and v by H/8)^2;
- Qcv = sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B).
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import sobel_zero
from mmdrfuse.metrics.matlab import block_sums, filter2_same, freq_radius, gaussian_factor, normalize1
from mmdrfuse.metrics.registry import measure, register

# Chen-Blum
QCB_F0, QCB_F1, QCB_A = 15.3870, 1.3456, 0.7622
QCB_P, QCB_Q, QCB_Z = 3.0, 2.0, 1e-4
QCB_SIGMAS = (2.0, 4.0)
QCB_TAPS = 31  # meshgrid(-15:15)
QCB_SCALE = 30.0  # u = W/30 f_u, v = H/30 f_v
# Chen-Varshney
QCV_WINDOW = 16
QCV_ALPHA = 5
QCV_SCALE = 8.0  # u = W/8 f_u, v = H/8 f_v


def _shared(ctx: Batch, key: str, make) -> Tensor:
    """A map computed once per Batch, kept where functools.cached_property keeps the Batch's own shared maps."""
    cache = ctx.__dict__
    if key not in cache:
        cache[key] = make()
    return cache[key]


def normalized(ctx: Batch) -> Tensor:
    """normalize1 of F, A, B: (3, N, H, W), computed once per Batch (Qcb, Qcv and VIFB's Mutinf share it)."""
    return _shared(ctx, "_normalize1", lambda: normalize1(torch.cat([ctx.f[None], ctx.s])))


def _spectrum(ctx: Batch) -> Tensor:
    """rfft2 of :func:`normalized` (Qcb filters the images, Qcv their differences S - F: by linearity, the same
    spectra)."""
    return _shared(ctx, "_normalize1_rfft2", lambda: torch.fft.rfft2(normalized(ctx)))


def chen_blum_sensitivity(h: int, w: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Chen-Blum's contrast sensitivity filter on the rfft2 bins of an h x w image."""
    r = freq_radius(h, w, h / QCB_SCALE, w / QCB_SCALE, dtype=dtype, device=device)
    return torch.exp(-(r / QCB_F0) ** 2) - QCB_A * torch.exp(-(r / QCB_F1) ** 2)


def mannos_sakrison(h: int, w: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Mannos-Sakrison's CSF 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1) on the rfft2 bins of an h x w image."""
    r = freq_radius(h, w, h / QCV_SCALE, w / QCV_SCALE, dtype=dtype, device=device)
    return 2.6 * (0.0192 + 0.144 * r) * torch.exp(-((0.144 * r) ** 1.1))


def _qcb(ctx: Batch) -> Tensor:
    h, w = ctx.f.shape[-2:]
    spec = _spectrum(ctx)
    x = torch.fft.irfft2(spec * chen_blum_sensitivity(h, w, dtype=ctx.dtype, device=spec.device), s=(h, w))
    g1, g2 = (gaussian_factor(QCB_TAPS, s, dtype=x.dtype, device=x.device) for s in QCB_SIGMAS)
    c = filter2_same(x, g1).div_(filter2_same(x, g2)).sub_(1.0).abs_()
    c2 = c * c  # C' = C^p / (C^q + Z) with p = 3, q = 2
    cp = c2.mul(c).div_(c2.add_(QCB_Z))
    cf, cs = cp[0], cp[1:]
    # Q_SF = min/max of C'_S, C'_F; MATLAB's arithmetic masking (C1P./CfP).*mask + (CfP./C1P).*(1-mask) gives NaN
    # wherever either is exactly 0 (0/0 or Inf*0 in the unused branch), kept here
    lo = torch.minimum(cs, cf)
    q = lo.div(torch.maximum(cs, cf)).masked_fill_(lo == 0, float("nan"))
    sal = cs.mul_(cs)  # lambda_S = C'_S^2 / (C'_A^2 + C'_B^2)
    return (sal * q).sum(0).div_(sal.sum(0)).mean((-2, -1))


def _qcv(ctx: Batch) -> Tensor:
    x = normalized(ctx)
    h, w = x.shape[-2:]
    gx, gy = sobel_zero(x[1:])
    g2 = gx.mul_(gx).add_(gy.mul_(gy))
    lam = block_sums(g2.sqrt().mul_(g2).mul_(g2), QCV_WINDOW)  # sum of G^5 per 16 x 16 region: (2, N, h', w')
    spec = _spectrum(ctx)
    d = torch.fft.irfft2((spec[1:] - spec[0]).mul_(mannos_sakrison(h, w, dtype=x.dtype, device=x.device)), s=(h, w))
    dist = block_sums(d.mul_(d), QCV_WINDOW).mul_(1.0 / (QCV_WINDOW * QCV_WINDOW))
    return (lam * dist).sum((0, -2, -1)) / lam.sum((0, -2, -1))


# ------------------------------------------------------------------------------------------------ public API
@register("Qcb", higher_is_better=True, impl=_qcb,
          description="Chen-Blum perceptual metric Q_CB (Z. Liu's metricChenBlum.m, as VIFB)")
def Qcb(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64,
        reduction: str = "none") -> Tensor:
    """Chen-Blum metric Q_CB (2009) as in Z. Liu's metricChenBlum.m / VIFB's metricsQcb.m (see the module
    docstring). 0..1, higher is better; NaN for a constant non-black image (normalize1's 0/0, as in MATLAB)."""
    return measure("Qcb", fused, a, b, dtype=dtype, reduction=reduction)


@register("Qcv", higher_is_better=False, impl=_qcv,
          description="Chen-Varshney perceptual metric Q_CV, 16x16 regions, alpha 5 (as VIFB; lower is better)")
def Qcv(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64,
        reduction: str = "none") -> Tensor:
    """Chen-Varshney metric Q_CV (2007) as in Z. Liu's metricChen.m / VIFB's metricsQcv.m (16 x 16 regions,
    alpha = 5, Mannos-Sakrison CSF; see the module docstring). >= 0, lower is better."""
    return measure("Qcv", fused, a, b, dtype=dtype, reduction=reduction)
