"""MATLAB-compatible building blocks for metrics written in MATLAB (VIFB, Z. Liu's imageFusionMetrics).

Each function states which MATLAB call it reproduces and how; all work on batched tensors (..., H, W) on the input's
device. Filtering reuses :mod:`mmdrfuse.metrics._primitives` (banded GEMMs, the normalised Gaussian window).

- :func:`round_half_away`: MATLAB ``round`` and the rounding of ``int16``/``uint8`` casts (half away from zero);
  :func:`round_half_away_nonneg_` the same, cheaper, for values >= 0.
- :func:`rgb2gray`: ``rgb2gray`` on uint8 (rounded, saturated) or double input (unrounded).
- :func:`normalize1`: Z. Liu's ``normalize1`` (min-max to 0..255, rounded).
- :func:`freq_radius`: ``r = sqrt(u.^2 + v.^2)`` on ``freqspace([H, W], 'meshgrid')`` scaled by (W/k, H/k), in the
  DFT's own bin order (so ``ifft2(ifftshift(fftshift(fft2(x)) .* S))`` becomes ``irfft2(rfft2(x) * S)``).
- :func:`gaussian_factor`: the 1-D factor of an unnormalised ``exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2)`` window.
- :func:`filter2_same`: ``filter2(outer(w, w), x, 'same')`` (zero padding) for a separable window.
- :func:`block_sums`: ``blkproc(x, [k k], [0 0], @(b) sum(b(:)))`` (partial edge blocks zero-padded).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mmdrfuse.metrics._primitives import filter_valid, gaussian_window

# MATLAB rgb2gray's weights: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]) (the NTSC YIQ
# matrix), i.e. 0.298936021293775, 0.587043074451121, 0.114020904255103.
RGB2GRAY = tuple(float(c) for c in np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647],
                                                            [1.0, -1.106, 1.703]]))[0])


def round_half_away(x: Tensor) -> Tensor:
    """MATLAB ``round``: to the nearest integer, ties away from zero (torch.round rounds ties to even)."""
    r = torch.round(x)
    t = torch.trunc(x)
    tie = (x - t).abs() == 0.5
    return torch.where(tie, t + torch.sign(x), r)


def round_half_away_nonneg_(y: Tensor) -> Tensor:
    """:func:`round_half_away` of values >= 0 (or NaN), in place and cheaper: ``floor(y + 0.5)`` for y >= 0.5 and 0
    below. (For y >= 1, y + 0.5 is exact unless it reaches the next binade, i.e. a power of two, which it then
    exceeds anyway; for 0.5 <= y < 1 it lands in [1, 1.5]. Only just below 0.5 could the sum round up to 1.)"""
    big = y >= 0.5
    return y.add_(0.5).floor_().mul_(big)


def rgb2gray(x: Tensor, *, integer: bool) -> Tensor:
    """MATLAB ``rgb2gray`` of (..., 3, H, W) RGB -> (..., H, W): ``0.2989 R + 0.5870 G + 0.1140 B`` with the exact
    weights :data:`RGB2GRAY`. ``integer=True`` is the uint8 input's path (rounded half away, saturated to 0..255),
    ``False`` the double input's (no rounding)."""
    r, g, b = x.unbind(-3)
    y = r * RGB2GRAY[0] + g * RGB2GRAY[1] + b * RGB2GRAY[2]
    return round_half_away(y).clamp_(0, 255) if integer else y


def normalize1(x: Tensor) -> Tensor:
    """Z. Liu's ``normalize1`` per image over the last two axes: ``round((x - min) / (max - min) * 255)`` (MATLAB
    round, that operation order); an all-zero image is returned unchanged; another constant image gives NaN (0/0),
    as in MATLAB."""
    lo = x.amin((-2, -1), keepdim=True)
    hi = x.amax((-2, -1), keepdim=True)
    out = round_half_away_nonneg_((x - lo).div_(hi - lo).mul_(255.0))  # NaN stays NaN (NaN * 0)
    zero = (hi == 0) & (lo == 0)
    return torch.where(zero, x, out) if bool(zero.any()) else out


def freqspace_axis(n: int, scale: float, *, half: bool = False, dtype=torch.float64, device=None) -> Tensor:
    """``scale * f`` with MATLAB ``freqspace(n)``'s frequencies f = (j - floor(n/2)) * 2/n, in DFT bin order: bin k
    holds j = (k + floor(n/2)) mod n, i.e. f = 2k/n for k < ceil(n/2) and 2(k - n)/n above (``fftshift``'s pairing).
    ``half``: only the n//2 + 1 bins of ``rfft`` (k = 0..n//2; |f| is what the symmetric filters use)."""
    k = torch.arange(n // 2 + 1 if half else n, dtype=torch.float64)
    j = torch.remainder(k + n // 2, n) - n // 2
    return (j * (2.0 / n) * scale).to(dtype=dtype, device=device)


def freq_radius(h: int, w: int, scale_h: float, scale_w: float, *, dtype=torch.float64, device=None) -> Tensor:
    """``r = sqrt(u.^2 + v.^2)`` with ``[u, v] = freqspace([h, w], 'meshgrid')``, ``u = scale_w * u``,
    ``v = scale_h * v``, on the (h, w // 2 + 1) bins of ``torch.fft.rfft2``. A filter S(r) is even in u and v, so
    ``ifft2(ifftshift(fftshift(fft2(x)) .* S))`` is real and equals ``irfft2(rfft2(x) * S(r), (h, w))``."""
    v = freqspace_axis(h, scale_h, dtype=dtype, device=device)
    u = freqspace_axis(w, scale_w, half=True, dtype=dtype, device=device)
    return torch.sqrt(u[None, :] * u[None, :] + v[:, None] * v[:, None])


def gaussian_factor(size: int, sigma: float, *, dtype=torch.float64, device=None) -> Tensor:
    """1-D factor g of the *unnormalised* 2-D Gaussian ``exp(-(x^2 + y^2) / (2 sigma^2)) / (2 pi sigma^2)`` on a
    size x size grid: G = outer(g, g), g(t) = exp(-t^2 / (2 sigma^2)) / sqrt(2 pi sigma^2). Built from
    :func:`gaussian_window` (normalised) times the truncated sum."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    total = float(np.exp(-(t * t) / (2.0 * sigma * sigma)).sum() / math.sqrt(2.0 * math.pi * sigma * sigma))
    return gaussian_window(size, sigma, dtype=dtype, device=device) * total


def filter2_same(x: Tensor, w: Tensor) -> Tensor:
    """``filter2(outer(w, w), x, 'same')`` (correlation, zero padding) on (..., H, W), w of odd length."""
    p = (w.numel() - 1) // 2
    shape = x.shape
    xp = torch.nn.functional.pad(x.reshape(-1, *shape[-2:]), (p, p, p, p))
    return filter_valid(xp, w.to(x.dtype)).reshape(shape)


def block_sums(x: Tensor, k: int) -> Tensor:
    """``blkproc(x, [k k], [0 0], @(b) sum(b(:)))``: sums over k x k blocks from the top-left corner; blocks at
    the right and bottom edges are zero-padded (blkproc pads with zeros): (..., ceil(H/k), ceil(W/k))."""
    h, w = x.shape[-2:]
    ph, pw = -h % k, -w % k
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    hb, wb = (h + ph) // k, (w + pw) // k
    return x.reshape(*x.shape[:-2], hb, k, wb, k).sum((-3, -1))
