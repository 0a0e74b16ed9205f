"""Visual information fidelity for fusion, pixel-domain multi-scale form.

Sheikh & Bovik, "Image information and visual quality", IEEE TIP 2006 (pixel-domain VIFp, ``vifvec``/``vifp_mscale``);
used for fusion as VIF(A, F) + VIF(B, F) (Han, Cai, Cao & Xu, Information Fusion 2013, the paper's citation).

For a reference R (a source) and a distorted image D (the fused image), at scales s = 1..4:

- window: Gaussian of N = 2^(5-s) + 1 taps (17, 9, 5, 3), sd = N / 5, normalised; all filtering is *valid*;
- for s > 1, R and D are first filtered with that scale's window and subsampled ``[::2, ::2]``;
- mu = G*R, G*D; s_r = G*R^2 - mu_r^2, s_d = G*D^2 - mu_d^2 (negatives -> 0), s_rd = G*(RD) - mu_r mu_d;
- g = s_rd / (s_r + eps), s_v = s_d - g s_rd, with the classic corrections (eps = 1e-10): where s_r < eps:
  g = 0, s_v = s_d, s_r = 0; where s_d < eps: g = 0, s_v = 0; where g < 0: s_v = s_d, g = 0; s_v <= eps -> eps;
- num += sum log(1 + g^2 s_r / (s_v + sigma_n^2)), den += sum log(1 + s_r / sigma_n^2), sigma_n^2 = 2.

VIF(R, D) = num / den (1 when that is NaN, e.g. constant images); the metric sums over both sources. The base of
the logarithm cancels in the ratio. Because only (co)variances enter, each image is shifted by its rounded mean
first (exactly equivalent, better conditioned). The Gaussian is separable, so each 2-D filter is two 1-D passes;
the maps of F (mu_F, G*F^2) are filtered once for both sources and all maps of a batch go through one filter call.
On float64 CPU tensors the whole computation is one C kernel (:mod:`._native`); this module's torch code is the
reference it is tested against and the path for float32, CUDA and autograd.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch, stack_products
from mmdrfuse.metrics._primitives import filter_valid, filter_valid_down2, gaussian_window
from mmdrfuse.metrics.registry import measure, register

SCALES = 4
SIGMA_NSQ = 2.0
EPS = 1e-10


def _window(scale: int, dtype, device) -> Tensor:
    n = 2 ** (SCALES - scale + 1) + 1
    return gaussian_window(n, n / 5.0, dtype=dtype, device=device)


def min_size() -> int:
    """Smallest image side for which every scale has at least one valid window (41)."""
    side = 1
    while True:
        h, ok = side, True
        for scale in range(1, SCALES + 1):
            n = 2 ** (SCALES - scale + 1) + 1
            if scale > 1:
                h = (h - n + 1 + 1) // 2 if h >= n else 0
            if h < n:
                ok = False
                break
        if ok:
            return side
        side += 1



def _terms(s_r: Tensor, s_d: Tensor, s_rd: Tensor) -> tuple[Tensor, Tensor]:
    """Sums over the map of ln(1 + g^2 s_r / (s_v + sigma_n^2)) and ln(1 + s_r / sigma_n^2) with the classic
    corrections, written without masks-and-assignments: where s_r < eps the evaluator sets s_r = 0 (both terms
    vanish, whatever g and s_v); where s_d < eps or g < 0 it sets g = 0 (the first term vanishes); elsewhere s_v is
    untouched but for the floor at eps. So g_eff = max(g, 0) [s_d >= eps], s_r' = s_r [s_r >= eps] give the same
    sums. (s_r, s_d, s_rd may be overwritten.)"""
    g = s_rd / (s_r + EPS)
    s_v = torch.sub(s_d, g * s_rd).clamp_min_(EPS).add_(SIGMA_NSQ)
    g.clamp_min_(0.0).mul_(s_d >= EPS)
    s_r.mul_(s_r >= EPS)
    num = torch.log1p_(g.mul_(g).mul_(s_r).div_(s_v)).sum((-2, -1))
    den = torch.log1p_(s_r.mul_(1.0 / SIGMA_NSQ)).sum((-2, -1))
    return num, den


def _per_source(ctx: Batch) -> Tensor:
    """VIF(A, F) and VIF(B, F) for the batch: (2, N)."""
    dtype, dev = ctx.dtype, ctx.f.device
    x = ctx.centred  # stack(F, A, B) minus their shifts, shared with the products
    num = torch.zeros(ctx.s.shape[:2], dtype=dtype, device=dev)
    den = torch.zeros_like(num)
    for scale in range(1, SCALES + 1):
        w = _window(scale, dtype, dev)
        if scale == 1:
            prods = ctx.products
        else:
            x = filter_valid_down2(x, w)
            prods = stack_products(x[0], x[1:])
        m = filter_valid(prods, w)
        mu_f, e_ff, mu_s, e_ss, e_sf = m[0], m[1], m[2:4], m[4:6], m[6:8]
        s_d = e_ff.sub_(mu_f * mu_f).clamp_min_(0.0)  # fused (distorted): shared by both sources
        s_r = e_ss.sub_(mu_s * mu_s).clamp_min_(0.0)  # sources (reference)
        s_rd = e_sf.sub_(mu_s * mu_f)
        n_term, d_term = _terms(s_r, s_d, s_rd)
        num += n_term
        den += d_term
    vif = num / den
    return torch.nan_to_num(vif, nan=1.0, posinf=float("inf"), neginf=float("-inf"))


def _vif(ctx: Batch) -> Tensor:
    if ctx.native:  # the C kernel: same definition, separable passes (see _native.py)
        return ctx.native_vif
    return _per_source(ctx).sum(0)


@register("VIF", higher_is_better=True, paper=True, min_size=min_size(), impl=_vif,
          description="4-scale pixel VIF(A,F) + VIF(B,F), sigma_n^2 = 2")
def VIF(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Visual information fidelity, ``VIFp(A, F) + VIFp(B, F)``: 4-scale pixel-domain VIF (Sheikh & Bovik 2006;
    for fusion Han et al. 2013), Gaussian windows N = 2^(5-s)+1, sd = N/5, valid filtering, sigma_n^2 = 2,
    eps = 1e-10 (see the module docstring). Images must be at least 41 x 41."""
    return measure("VIF", fused, a, b, dtype=dtype, reduction=reduction)
