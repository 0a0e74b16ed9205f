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

import functools

import torch
from torch import Tensor

from mmdrfuse.metrics import _native
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


def shared(ctx: Batch, key: str, make) -> Tensor:
    """A map computed once per Batch, kept where functools.cached_property keeps the Batch's own shared maps."""
    cache = ctx.__dict__
    if key not in cache:
        cache[key] = make()
    return cache[key]


def distinct(ctx: Batch) -> tuple[list[Tensor], Tensor]:
    """``(images, idx)``: the distinct images of stack(F, A, B), a list of M (H, W) views of the Batch's images, and
    for each of the stack's 3 x N slots the index of its image, (3, N) int64. Slots are merged where the Batch's
    ``labels`` (3, N) give them the same label (:func:`mmdrfuse.metrics.vifb.compute_all` does so for a gray source
    serving every channel of a colour fused image); without labels all 3 N are kept, in slot order (idx = arange)."""
    def make() -> tuple[list[Tensor], Tensor]:
        n = ctx.f.shape[0]
        slots = [x[i] for x in (ctx.f, ctx.a, ctx.b) for i in range(n)]
        labels = getattr(ctx, "labels", None)
        if labels is None:
            return slots, torch.arange(3 * n).reshape(3, n)
        first: dict[int, int] = {}
        picked: list[Tensor] = []
        idx = []
        for slot, label in enumerate(labels.reshape(-1).tolist()):
            if label not in first:
                first[label] = len(picked)
                picked.append(slots[slot])
            idx.append(first[label])
        return picked, torch.tensor(idx, dtype=torch.int64).reshape(3, n)
    return shared(ctx, "_distinct", make)


def _by_slot(x: Tensor, idx: Tensor) -> Tensor:
    """Per-image maps (M, ...) of :func:`distinct`'s images as (3, N, ...) by slot (a view when nothing was merged)."""
    return x.reshape(*idx.shape, *x.shape[1:]) if x.shape[0] == idx.numel() else x[idx]


def _normalized_distinct(ctx: Batch) -> Tensor:
    """normalize1 of :func:`distinct`'s images, (M, H, W)."""
    def make() -> Tensor:
        images = distinct(ctx)[0]
        return _native.normalize1(images) if ctx.native else normalize1(torch.stack(images))  # the same bits
    return shared(ctx, "_normalize1", make)


def normalized(ctx: Batch) -> Tensor:
    """normalize1 of F, A, B: (3, N, H, W), computed once per Batch and distinct image (Qcb, Qcv and VIFB's Mutinf
    share it)."""
    return shared(ctx, "_normalize1_slots", lambda: _by_slot(_normalized_distinct(ctx), distinct(ctx)[1]))


def normalized_slots(ctx: Batch) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """:func:`normalized` as three lists of N (H, W) views (F, A, B) of the distinct maps (no gathering copy), for
    the C kernels."""
    nd, idx = _normalized_distinct(ctx), distinct(ctx)[1]
    return tuple([nd[j] for j in row] for row in idx.tolist())


def _spectrum(ctx: Batch) -> Tensor:
    """rfft2 of the normalised distinct images, (M, H, W // 2 + 1) (Qcb filters the images, Qcv their differences
    S - F: by linearity, the same spectra)."""
    return shared(ctx, "_normalize1_rfft2", lambda: torch.fft.rfft2(_normalized_distinct(ctx)))


def _irfft2(spec: Tensor, h: int, w: int) -> Tensor:
    """``torch.fft.irfft2(spec, s=(h, w))`` over the leading axes; on CPU one image at a time (MKL's batched
    inverse transform of 480 x 640 images was measured 1.2x (3 images) to 3.4x (7 images) slower per image)."""
    if spec.device.type != "cpu" or spec.requires_grad:
        return torch.fft.irfft2(spec, s=(h, w))
    out = torch.empty(spec.shape[:-2] + (h, w), dtype=spec.real.dtype)
    for x, o in zip(spec.reshape(-1, *spec.shape[-2:]), out.view(-1, h, w)):
        torch.fft.irfft2(x, s=(h, w), out=o)
    return out


def chen_blum_sensitivity(h: int, w: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Chen-Blum's contrast sensitivity filter on the rfft2 bins of an h x w image."""
    r = freq_radius(h, w, h / QCB_SCALE, w / QCB_SCALE, dtype=dtype, device=device)
    return torch.exp(-(r / QCB_F0) ** 2) - QCB_A * torch.exp(-(r / QCB_F1) ** 2)


def mannos_sakrison(h: int, w: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Mannos-Sakrison's CSF 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1) on the rfft2 bins of an h x w image."""
    r = freq_radius(h, w, h / QCV_SCALE, w / QCV_SCALE, dtype=dtype, device=device)
    return 2.6 * (0.0192 + 0.144 * r) * torch.exp(-((0.144 * r) ** 1.1))


@functools.lru_cache(maxsize=16)
def _filter(kind: str, h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The two filters above, kept per size (read only: callers never modify them)."""
    make = chen_blum_sensitivity if kind == "qcb" else mannos_sakrison
    return make(h, w, dtype=dtype, device=device)


def _qcb(ctx: Batch) -> Tensor:
    h, w = ctx.f.shape[-2:]
    spec, idx = _spectrum(ctx), distinct(ctx)[1]
    sens = _filter("qcb", h, w, ctx.dtype, spec.device)
    g1, g2 = (gaussian_factor(QCB_TAPS, s, dtype=ctx.dtype, device=spec.device) for s in QCB_SIGMAS)
    if ctx.native:  # the C kernels: both Gaussians as symmetric separable passes, contrast and Q_CB per pixel
        x = _irfft2(_native.spec_filter(spec, sens, list(range(spec.shape[0]))), h, w)
        return _native.qcb_combine(_native.qcb_contrast(x, g1, g2, QCB_Z), idx)
    x = _irfft2(spec * sens, h, w)
    c = filter2_same(x, g1).div_(filter2_same(x, g2)).sub_(1.0).abs_()
    c2 = c * c  # C' = C^p / (C^q + Z) with p = 3, q = 2
    cp = _by_slot(c2.mul(c).div_(c2.add_(QCB_Z)), idx)
    cf, cs = cp[0], cp[1:]
    # Q_SF = min/max of C'_S, C'_F; MATLAB's arithmetic masking (C1P./CfP).*mask + (CfP./C1P).*(1-mask) gives NaN
    # wherever either is exactly 0 (0/0 or Inf*0 in the unused branch), kept here
    lo = torch.minimum(cs, cf)
    q = lo.div(torch.maximum(cs, cf)).masked_fill_(lo == 0, float("nan"))
    sal = cs.mul_(cs)  # lambda_S = C'_S^2 / (C'_A^2 + C'_B^2)
    return (sal * q).sum(0).div_(sal.sum(0)).mean((-2, -1))


def _qcv(ctx: Batch) -> Tensor:
    h, w = ctx.f.shape[-2:]
    spec, idx = _spectrum(ctx), distinct(ctx)[1]
    csf = _filter("qcv", h, w, ctx.dtype, spec.device)
    n = idx.shape[1]
    if ctx.native:  # the C kernels: S - F times the CSF in one pass; Sobel strength^5 and d^2 per region in one
        d = _irfft2(_native.spec_filter(spec, csf, idx[1:].reshape(-1).tolist(), idx[0].tolist() * 2), h, w)
        _, xa, xb = normalized_slots(ctx)
        return _native.qcv(xa, xb, d[:n], d[n:], QCV_WINDOW)
    x = normalized(ctx)
    sp = _by_slot(spec, idx)
    d = _irfft2((sp[1:] - sp[0]).mul_(csf), h, w)
    gx, gy = sobel_zero(x[1:])
    g2 = gx.mul_(gx).add_(gy.mul_(gy))
    lam = block_sums(g2.sqrt().mul_(g2).mul_(g2), QCV_WINDOW)  # sum of G^5 per 16 x 16 region: (2, N, h', w')
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
