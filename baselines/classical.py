"""Training-free fusion rules: average, max, Laplacian pyramid, DWT, GFF, MGFF, TIF, CBF.

Parameters follow the authors' MATLAB code as collected in VIFB (xingchenzhang/VIFB @ 22b2ea9, methods/) and Liu,
Liu & Wang's toolbox for LP/DWT. Every function takes two gray tensors N x 1 x H x W in [0, 1] and returns the fused
image in [0, 1] (clipped). Colour is the caller's job: fuse the Y channel of the visible/PET/SPECT image, then
recombine its CbCr (``mmdrfuse.images.read_ycbcr`` / ``recombine_color``).

All rules are vectorised: box filters use integral images, windowed rules loop over window *offsets* (121 for CBF's
11 x 11), never over pixels. They compute in float64 on the input's device (DWT uses PyWavelets on the CPU).

Edge-case choices (documented deviations from the MATLAB references):
- MGFF and TIF divide saliencies S_1 / (S_1 + S_2); where both are 0 (the reference gives NaN) both weights are 0.5.
- LP and DWT use at most 4 levels and fewer when a side is too small to decompose further (each level >= 4 px).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from baselines.base import FusionMethod, check_inputs, uint8_round_half_even


# ------------------------------------------------------------------------------------------------- primitives
def pad_symmetric(x: torch.Tensor, ph: int, pw: int | None = None) -> torch.Tensor:
    """MATLAB ``padarray(..., 'symmetric')``: mirror *including* the edge sample (numpy 'symmetric')."""
    pw = ph if pw is None else pw
    h, w = x.shape[-2:]

    def idx(n, p):
        i = torch.arange(-p, n + p, device=x.device)
        i = torch.where(i < 0, -i - 1, i)
        i = torch.where(i >= n, 2 * n - 1 - i, i)
        return i.clamp(0, n - 1)

    return x.index_select(-2, idx(h, ph)).index_select(-1, idx(w, pw))


def pad(x: torch.Tensor, p: int, mode: str) -> torch.Tensor:
    """Pad the last two dims by ``p``: 'reflect' (no edge repeat), 'replicate', 'circular', 'symmetric', 'zeros'."""
    if p == 0:
        return x
    if mode == "symmetric":
        return pad_symmetric(x, p)
    if mode == "zeros":
        return F.pad(x, (p, p, p, p))
    return F.pad(x, (p, p, p, p), mode=mode)


def box_sum_valid(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Sums over every kh x kw window fully inside ``x`` (integral image)."""
    c = F.pad(x.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    return c[..., kh:, kw:] - c[..., :-kh, kw:] - c[..., kh:, :-kw] + c[..., :-kh, :-kw]


def _window_counts(h: int, w: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """Pixels of each (2r+1)^2 window cut at the image border (outer product of row and column counts)."""
    def counts(n):
        i = torch.arange(n, device=like.device)
        return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(like.dtype)

    return counts(h)[:, None] * counts(w)[None, :]


def box_mean(x: torch.Tensor, r: int, mode: str = "truncated") -> torch.Tensor:
    """Mean over (2r+1)^2 windows. ``truncated``: windows cut at the border and divided by their size (He's
    guided-filter box); other modes pad first ('replicate', 'circular', 'symmetric', 'reflect', 'zeros')."""
    k = 2 * r + 1
    if mode == "truncated":
        return box_sum_valid(F.pad(x, (r, r, r, r)), k, k) / _window_counts(x.shape[-2], x.shape[-1], r, x)
    if mode == "circular" and (r >= x.shape[-2] or r >= x.shape[-1]):
        reps = (math.ceil(r / x.shape[-2]) * 2 + 1, math.ceil(r / x.shape[-1]) * 2 + 1)
        big = x.repeat(1, 1, *reps)
        h0, w0 = (reps[0] // 2) * x.shape[-2] - r, (reps[1] // 2) * x.shape[-1] - r
        big = big[..., h0:h0 + x.shape[-2] + 2 * r, w0:w0 + x.shape[-1] + 2 * r]
        return box_sum_valid(big, k, k) / (k * k)
    return box_sum_valid(pad(x, r, mode), k, k) / (k * k)


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate each channel with a 2-D kernel (odd size), borders by ``mode`` (MATLAB imfilter semantics)."""
    kh, kw = kernel.shape
    xp = pad_symmetric(x, kh // 2, kw // 2) if mode == "symmetric" else F.pad(
        x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    c = x.shape[1]
    k = kernel.to(x).expand(c, 1, kh, kw)
    return F.conv2d(xp, k, groups=c)


def sep_filter(x: torch.Tensor, k1d: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Separable filter with the same 1-D kernel along rows and columns, borders by ``mode``."""
    n = k1d.numel()
    c = x.shape[1]
    k = k1d.to(x)
    x = F.conv2d(F.pad(x, (0, 0, n // 2, n // 2), mode=mode), k.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)
    return F.conv2d(F.pad(x, (n // 2, n // 2, 0, 0), mode=mode), k.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)


def gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """Sampled 1-D Gaussian normalised to sum 1; its outer product with itself is MATLAB's
    ``fspecial('gaussian', size, sigma)`` (which is separable), so 2-D smoothing runs as two 1-D passes."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter (gray guide), truncated box windows normalised by their pixel count."""
    mi, mp = box_mean(guide, r), box_mean(src, r)
    cov = box_mean(guide * src, r) - mi * mp
    var = box_mean(guide * guide, r) - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    return box_mean(a, r) * guide + box_mean(b, r)


def safe_ratio(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """s1 / (s1 + s2), 0.5 where both are 0."""
    tot = s1 + s2
    return torch.where(tot > 0, s1 / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.full_like(tot, 0.5))


def choose_max_consistency(c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Liu et al.'s 'choose max with consistency check': the larger 3x3 maximum of |c| wins, then a 3x3
    majority vote (strictly more than 4 of 9 neighbours) decides between c1 and c2."""
    a1 = F.max_pool2d(pad(c1.abs(), 1, "reflect"), 3, 1, 1)
    a2 = F.max_pool2d(pad(c2.abs(), 1, "reflect"), 3, 1, 1)
    votes = box_sum_valid((a1 > a2).to(c1.dtype), 3, 3)
    return torch.where(votes > 4, c1, c2)


def _levels(h: int, w: int, levels: int) -> int:
    return max(0, min(levels, int(math.floor(math.log2(max(1, min(h, w)) / 4)))))


# ---------------------------------------------------------------------------------------------------- rules
def fuse_average(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a + b) / 2


def fuse_max(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a, b)


LP_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16  # a = 0.375 (binomial)


def _lp_expand(m: torch.Tensor) -> torch.Tensor:
    up = m.new_zeros(m.shape[:-2] + (2 * m.shape[-2], 2 * m.shape[-1]))
    up[..., ::2, ::2] = m
    return sep_filter(up, 2 * LP_KERNEL, "reflect")


def fuse_laplacian(a: torch.Tensor, b: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Laplacian pyramid (Burt & Adelson), 4 levels, consistency-checked max-abs details, averaged base."""
    h, w = a.shape[-2:]
    m = torch.cat([a, b], 1)  # both sources in the channel dim: one pass
    details, sizes = [], []
    for _ in range(_levels(h, w, levels)):
        z, s = m.shape[-2:]
        sizes.append((z, s))
        if z % 2:
            m = torch.cat([m, m[..., z - 2:z - 1, :]], -2)  # one mirrored row (edge not repeated)
        if s % 2:
            m = torch.cat([m, m[..., :, s - 2:s - 1]], -1)
        g = sep_filter(m, LP_KERNEL, "reflect")
        dec = g[..., ::2, ::2]
        lap = m - _lp_expand(dec)
        details.append(choose_max_consistency(lap[:, :1], lap[:, 1:]))
        m = dec
    f = m.mean(1, keepdim=True)
    for lap, (z, s) in zip(reversed(details), reversed(sizes)):
        f = (_lp_expand(f) + lap)[..., :z, :s]
    return f


def fuse_dwt(a: torch.Tensor, b: torch.Tensor, levels: int = 4, wavelet: str = "db1") -> torch.Tensor:
    """DWT fusion (PyWavelets, periodization): averaged approximation, consistency-checked max-abs details."""
    import pywt

    h, w = a.shape[-2:]
    lev = _levels(h, w, levels)
    if lev == 0:
        return (a + b) / 2
    x = torch.cat([a, b], 1).detach().cpu().numpy()  # N x 2 x H x W
    coeffs = pywt.wavedec2(x, wavelet, mode="periodization", level=lev, axes=(-2, -1))
    fused = [coeffs[0].mean(1, keepdims=True)]
    for bands in coeffs[1:]:
        out = []
        for band in bands:
            t = torch.from_numpy(band)
            out.append(choose_max_consistency(t[:, :1], t[:, 1:]).numpy())
        fused.append(tuple(out))
    rec = pywt.waverec2(fused, wavelet, mode="periodization", axes=(-2, -1))[..., :h, :w]
    return torch.from_numpy(np.ascontiguousarray(rec)).to(a)


LAPLACIAN_3X3 = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def fuse_gff(a: torch.Tensor, b: torch.Tensor, r1: int = 45, eps1: float = 0.3, r2: int = 7,
             eps2: float = 1e-6) -> torch.Tensor:
    """Guided filtering fusion (Li, Kang & Hu, TIP 2013), gray images in [0, 1]."""
    imgs = torch.cat([a, b], 1)
    base = box_mean(imgs, 15, "replicate")  # 31 x 31 mean
    detail = imgs - base
    sal = sep_filter(filter2d(imgs, LAPLACIAN_3X3, "replicate").abs(), gaussian_1d(11, 5.0), "replicate")
    p = F.one_hot(sal.argmax(1), 2).permute(0, 3, 1, 2).to(imgs.dtype)  # winner-take-all, first source on ties
    wb = guided_filter(imgs, p, r1, eps1)
    wd = guided_filter(imgs, p, r2, eps2)
    wb = torch.floor(wb.clamp(0, 1) * 255 + 0.5) / 255  # the reference's uint8 round trip
    wd = torch.floor(wd.clamp(0, 1) * 255 + 0.5) / 255
    wb = wb / (wb.sum(1, keepdim=True) + 1e-12)
    wd = wd / (wd.sum(1, keepdim=True) + 1e-12)
    return (wb * base).sum(1, keepdim=True) + (wd * detail).sum(1, keepdim=True)


def fuse_mgff(a: torch.Tensor, b: torch.Tensor, levels: int = 4, r: int = 9, eps: float = 1e3) -> torch.Tensor:
    """Multi-scale guided filter fusion (Bavirisetti et al., CSSP 2019) on 0..255 data; each source guides the
    filtering of the other."""
    a1, a2 = a * 255.0, b * 255.0
    acc = torch.zeros_like(a1)
    for _ in range(levels):
        n1, n2 = guided_filter(a1, a2, r, eps), guided_filter(a2, a1, r, eps)
        d1, d2 = a1 - n1, a2 - n2
        w1 = safe_ratio(d1.abs(), d2.abs())
        acc = acc + w1 * d1 + (1 - w1) * d2
        a1, a2 = n1, n2
    return ((a1 + a2) / 2 + acc) / 255.0


def median3x3(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``medfilt2(x, [3 3])`` (zero padding)."""
    n, c, h, w = x.shape
    cols = F.unfold(F.pad(x, (1, 1, 1, 1)), 3).view(n, c, 9, h, w)
    return cols.median(2).values


def fuse_tif(a: torch.Tensor, b: torch.Tensor, r: int = 17) -> torch.Tensor:
    """Two-scale image fusion (Bavirisetti & Dhuli, IPT 2016): 35 x 35 circular mean, saliency
    (mean - median3x3)^2, 0..255 data."""
    i1, i2 = a * 255.0, b * 255.0
    b1, b2 = box_mean(i1, r, "circular"), box_mean(i2, r, "circular")
    s1, s2 = (b1 - median3x3(i1)) ** 2, (b2 - median3x3(i2)) ** 2
    w1 = safe_ratio(s1, s2)
    return (w1 * (i1 - b1) + (1 - w1) * (i2 - b2) + (b1 + b2) / 2) / 255.0


def cross_bilateral(x: torch.Tensor, guide: torch.Tensor, r: int = 5, sigma_s: float = 1.8,
                    sigma_r: float = 25.0) -> torch.Tensor:
    """Filter ``x`` with spatial Gaussian weights and range weights from ``guide``; symmetric borders."""
    h, w = x.shape[-2:]
    xp, gp = pad_symmetric(x, r), pad_symmetric(guide, r)
    num = torch.zeros_like(x)
    den = torch.zeros_like(x)
    inv_r = 1.0 / (2 * sigma_r ** 2)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):  # window offsets, each a whole-image operation
            log_gs = -(dy * dy + dx * dx) / (2 * sigma_s ** 2)
            xs = xp[..., r + dy:r + dy + h, r + dx:r + dx + w]
            wgt = guide - gp[..., r + dy:r + dy + h, r + dx:r + dx + w]
            wgt.square_().mul_(-inv_r).add_(log_gs).exp_()  # G_s(offset) * G_r(guide difference)
            num.addcmul_(wgt, xs)
            den.add_(wgt)
    return num / den


def _cbf_weight(d: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Sum of the eigenvalues (traces) of the horizontal and vertical covariances of each k x k window."""
    dp = pad_symmetric(d, k // 2)
    s2 = box_sum_valid(dp * dp, k, k)
    col = box_sum_valid(dp, k, 1)  # column sums (k rows), then squared and summed over k columns
    row = box_sum_valid(dp, 1, k)
    sum_col2 = box_sum_valid(col * col, 1, k)
    sum_row2 = box_sum_valid(row * row, k, 1)
    trace_h = (s2 - sum_col2 / k) / (k - 1)  # columns as variables
    trace_v = (s2 - sum_row2 / k) / (k - 1)  # rows as variables
    wgt = (trace_h + trace_v).clamp_min(0)
    return torch.where(wgt > 0, wgt, torch.full_like(wgt, torch.finfo(wgt.dtype).eps))


def fuse_cbf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross bilateral filter fusion (Shreyamsha Kumar, SIViP 2015) on 0..255 data: weighted average of the
    sources with detail-covariance weights."""
    i = torch.cat([a, b], 1) * 255.0
    w = _cbf_weight(i - cross_bilateral(i, i.flip(1)))  # A guided by B and B guided by A, in one pass
    return ((w * i).sum(1, keepdim=True) / w.sum(1, keepdim=True)) / 255.0


# ------------------------------------------------------------------------------------------------ the method
@dataclass(frozen=True)
class ClassicalRule:
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    identity: bool  # fusing an image with itself returns it (the rule implies it)


RULES: dict[str, ClassicalRule] = {
    "average": ClassicalRule(fuse_average, True),
    "max": ClassicalRule(fuse_max, True),
    "laplacian": ClassicalRule(fuse_laplacian, True),
    "dwt": ClassicalRule(fuse_dwt, True),
    "gff": ClassicalRule(fuse_gff, True),
    "mgff": ClassicalRule(fuse_mgff, True),
    "tif": ClassicalRule(fuse_tif, True),
    "cbf": ClassicalRule(fuse_cbf, True),
}


class ClassicalMethod(FusionMethod):
    """A training-free rule behind the FusionMethod interface (no parameters, no MACs)."""

    def __init__(self, spec, device, rule: str, **params):
        super().__init__(spec, device)
        self.rule = RULES[rule]
        self.params = params

    @torch.no_grad()
    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        check_inputs(ir, vis)
        a = ir.to(self.device, torch.float64)
        b = vis.to(self.device, torch.float64)
        return self.rule.fn(a, b, **self.params).clamp(0, 1).to(device=ir.device, dtype=ir.dtype)

    def to_uint8(self, fused):
        return uint8_round_half_even(fused)


def factory(rule: str):
    def build(spec, device, weights_root=None, load_weights=True, **params):
        return ClassicalMethod(spec, device, rule, **params)

    return build
