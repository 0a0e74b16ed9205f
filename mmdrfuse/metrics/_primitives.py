"""Shared kernels of the fusion metrics: input validation, reduction, windows, separable filtering, Sobel, histograms.

Everything works on batched tensors whose last two dimensions are H x W and runs on the input's device.

Filtering is done as *banded matrix products*: a valid 1-D correlation with a k-tap kernel along the last axis of an
(M, W) matrix equals ``X[:, j:j+b+k-1] @ T`` for each block of b output columns, where T is the (b+k-1) x b band
matrix holding the kernel on its diagonals. Small blocks turn the k multiply-adds per output into dense GEMMs, which
BLAS runs several times faster (float64, CPU) than k shifted passes over memory or ``conv2d`` (no fast float64 path
on CPU). Rows are filtered the same way with ``T^T @ X[rows]`` in a rows-outermost layout (H, ..., W), where every
block is one contiguous GEMM.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor


# Qabf / Nabf constants (shared by metrics/gradient.py and the C kernel's arguments in metrics/_native.py)
HALF_PI = math.pi / 2
# Xydeas-Petrovic constants of the authors' evaluator
QABF_TG, QABF_KG, QABF_DG = 0.9994, -15.0, 0.5
QABF_TA, QABF_KA, QABF_DA = 0.9879, -22.0, 0.8
# Shreyamsha Kumar's constants
NABF_TD, NABF_WT_MIN, NABF_LG = 2.0, 0.001, 1.5
NABF_NRG, NABF_KG, NABF_SIGMAG = 0.9999, 19.0, 0.5
NABF_NRA, NABF_KA, NABF_SIGMAA = 0.9995, 22.0, 0.5

DTYPES = (torch.float64, torch.float32)
REDUCTIONS = ("none", "mean")
# Output rows / columns per GEMM block (measured on the 2-core AVX2 CPU with MKL, k = 9..17, float64: the row pass
# (b x (b+k-1)) @ ((b+k-1) x R) is fastest with b = 16; the column pass (M x (b+k-1)) @ ((b+k-1) x b) with b = 24,
# 2-3x faster than b = 16 or 32 there).
ROWS_BLOCK = 16
COLS_BLOCK = 24


# ---------------------------------------------------------------------------------------------- validation
def check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    return dtype


def check_images(*images: Tensor | None, dtype: torch.dtype = torch.float64, min_size: int = 1,
                 names: Sequence[str] = ("fused", "a", "b")) -> list[Tensor | None]:
    """Validate N x 1 x H x W image batches holding 0..255 values; return them as N x H x W tensors of ``dtype``.

    ``None`` entries are passed through (fused-only metrics ignore the sources). All given tensors must share the
    shape and the device. Raises ``TypeError`` for non-tensors / bool / complex tensors and ``ValueError`` for bad
    shapes, sizes below ``min_size``, non-finite values or values outside [0, 255].
    """
    check_dtype(dtype)
    out: list[Tensor | None] = []
    ref_shape = ref_device = None
    for name, x in zip(names, images):
        if x is None:
            out.append(None)
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name}: expected a real-valued tensor, got dtype {x.dtype}")
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"{name}: expected shape N x 1 x H x W, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: empty batch")
        if ref_shape is None:
            ref_shape, ref_device = x.shape, x.device
        elif x.shape != ref_shape:
            raise ValueError(f"{name}: shape {tuple(x.shape)} differs from {names[0]} {tuple(ref_shape)}")
        elif x.device != ref_device:
            raise ValueError(f"{name}: device {x.device} differs from {ref_device}")
        if min(x.shape[-2:]) < min_size:
            raise ValueError(f"{name}: images of {x.shape[-2]} x {x.shape[-1]} are too small "
                             f"(need >= {min_size} x {min_size})")
        y = x[:, 0].to(dtype)
        if x.dtype != torch.uint8:  # (uint8 images hold 0..255 by construction)
            lo, hi = torch.aminmax(y)
            if not (torch.isfinite(lo) and torch.isfinite(hi)):
                raise ValueError(f"{name}: contains NaN or infinite values")
            if lo < 0 or hi > 255:
                raise ValueError(f"{name}: values must lie in 0..255 (got {lo.item():.4g}..{hi.item():.4g}); "
                                 "scale [0, 1] images by 255")
        out.append(y)
    return out


def reduce(x: Tensor, reduction: str) -> Tensor:
    """``none``: one value per image; ``mean``: the mean over the batch."""
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


# ------------------------------------------------------------------------------------------------- windows
def gaussian_window(size: int, sigma: float, *, dtype=torch.float64, device=None) -> Tensor:
    """1-D factor of the normalised 2-D Gaussian ``exp(-(x^2+y^2)/(2 sigma^2))`` on a size x size grid.

    The 2-D window is the outer product of this vector with itself (the Gaussian is separable). MATLAB's
    ``fspecial('gaussian')`` also zeroes entries below eps * max; for the windows used here (size <= 5 sigma) the
    smallest entry is >= exp(-12.5) * max, so nothing is zeroed and the factorisation is exact.
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def band_matrix(w: Tensor, block: int) -> Tensor:
    """(block + k - 1) x block matrix T with ``T[j + i, j] = w[i]``: ``x[j:j+block+k-1] @ T`` correlates x with w."""
    k = w.numel()
    dev = w.device
    t = torch.zeros(block + k - 1, block, dtype=w.dtype, device=dev)
    rows = torch.arange(k, device=dev)[:, None] + torch.arange(block, device=dev)[None, :]
    cols = torch.arange(block, device=dev).expand(k, block)
    t[rows, cols] = w[:, None].expand(k, block)
    return t


def correlate_last(x: Tensor, w: Tensor) -> Tensor:
    """Valid 1-D correlation of every row of ``x`` (..., W) with ``w`` (k,): output (..., W - k + 1).

    All full blocks of b output columns go through ONE batched GEMM on an overlapping strided view
    (nb, M, b+k-1) @ T, written straight into the strided output (no copies); the remainder is one more GEMM.
    Few large BLAS calls matter: each call is a parallel region, and on a busy machine every region can wait a
    scheduler time slice for its second thread (measured: 29 small calls 40x slower than one batched call).
    """
    k = w.numel()
    shape = x.shape
    width = shape[-1]
    wo = width - k + 1
    if wo < 1:
        raise ValueError(f"cannot filter width {width} with a {k}-tap kernel")
    x2 = x.reshape(-1, width)
    if x2.stride(-1) != 1 or x2.stride(0) != width:
        x2 = x2.contiguous()
    m = x2.shape[0]
    b = min(COLS_BLOCK, wo)
    nb, rem = divmod(wo, b)
    t = band_matrix(w.to(x.dtype), b)
    out = torch.empty(m, wo, dtype=x.dtype, device=x.device)
    if nb:
        blocks = x2.as_strided((nb, m, b + k - 1), (b, width, 1), x2.storage_offset())
        torch.matmul(blocks, t, out=out[:, :nb * b].view(m, nb, b).permute(1, 0, 2))  # strided output, no copy
    if rem:
        torch.mm(x2[:, nb * b:], t[:rem + k - 1, :rem], out=out[:, nb * b:])
    return out.reshape(*shape[:-1], wo)


def _correlate_first(x2: Tensor, w: Tensor) -> Tensor:
    """Valid correlation of a 2-D (L, R) tensor along its first axis: (L - k + 1, R). The full blocks of b output
    rows are ONE batched GEMM ``T^T @ X[i:i+b+k-1]`` over an overlapping strided view, written in place (see
    :func:`correlate_last` for why few calls)."""
    k = w.numel()
    length, r = x2.shape
    lo = length - k + 1
    if lo < 1:
        raise ValueError(f"cannot filter length {length} with a {k}-tap kernel")
    if x2.stride(-1) != 1 or x2.stride(0) != r:
        x2 = x2.contiguous()
    b = min(ROWS_BLOCK, lo)
    nb, rem = divmod(lo, b)
    tt = band_matrix(w.to(x2.dtype), b).t().contiguous()  # b x (b + k - 1)
    out = torch.empty(lo, r, dtype=x2.dtype, device=x2.device)
    if nb:
        blocks = x2.as_strided((nb, b + k - 1, r), (b * r, r, 1), x2.storage_offset())
        torch.matmul(tt, blocks, out=out[:nb * b].view(nb, b, r))
    if rem:
        torch.mm(tt[:rem, :rem + k - 1], x2[nb * b:], out=out[nb * b:])
    return out


def correlate_rows(x: Tensor, w: Tensor) -> Tensor:
    """Valid 1-D correlation along the second-to-last axis of ``x`` (..., H, W): output (..., H - k + 1, W).

    Computed in the rows-outermost layout (H, ..., W) and returned as a view of it; inputs already stored that way
    (see :func:`rows_outer_empty`) are not copied.
    """
    xh = x.movedim(-2, 0).contiguous()  # (H, ..., W)
    out = _correlate_first(xh.reshape(xh.shape[0], -1), w)
    return out.reshape((out.shape[0],) + tuple(xh.shape[1:])).movedim(0, -2)


def rows_outer_empty(shape: Sequence[int], *, dtype, device) -> Tensor:
    """An uninitialised (..., H, W) tensor stored rows-outermost (memory order H, ..., W): the layout in which
    :func:`correlate_rows` and :func:`filter_valid` need no initial copy."""
    shape = tuple(shape)
    return torch.empty((shape[-2],) + shape[:-2] + (shape[-1],), dtype=dtype, device=device).movedim(0, -2)


def filter_valid(x: Tensor, w: Tensor) -> Tensor:
    """Valid 2-D correlation of (..., H, W) with the separable window ``outer(w, w)``: (..., H-k+1, W-k+1),
    returned as a view of rows-outermost (H', ..., W') memory (elementwise work and sums on it run at full speed)."""
    y = correlate_rows(x, w).movedim(-2, 0)  # (H', ..., W), contiguous
    return correlate_last(y, w).movedim(0, -2)


def filter_valid_down2(x: Tensor, w: Tensor) -> Tensor:
    """``filter_valid(x, w)[..., ::2, ::2]`` (filter, then keep every other row and column) with the column pass run
    on the kept rows only."""
    y = correlate_rows(x, w).movedim(-2, 0)[::2]  # (H'/2, ..., W)
    return correlate_last(y, w)[..., ::2].movedim(0, -2)


def box_sum_valid(x: Tensor, size: int) -> Tensor:
    """Sums over every size x size window (valid positions), (..., H, W) -> (..., H-size+1, W-size+1).

    Rows: the separable filter with a kernel of ones (batched GEMM). Columns, in float64: differences of running
    sums along each row (``cumsum``, measured 2.4 ms faster per 8 maps of 640 x 480 than the GEMM here; along rows
    the GEMM stays faster); in float32, the GEMM. Exact for integer-valued inputs while the row-wise running sums
    stay below 2^53 (float64; 255^2 x size x W here is ~3e8) or the window sums below 2^24 (float32): every partial
    sum is then an exact integer, whatever the order BLAS uses.
    """
    ones = torch.ones(size, dtype=x.dtype, device=x.device)
    if x.dtype != torch.float64:
        return filter_valid(x, ones)
    y = correlate_rows(x, ones).movedim(-2, 0)  # (H', ..., W), contiguous
    if y.shape[-1] < size:
        raise ValueError(f"cannot filter width {y.shape[-1]} with a {size}-tap kernel")
    c = y.cumsum(-1)
    out = torch.empty_like(c[..., size - 1:])
    out[..., 0] = c[..., size - 1]
    torch.sub(c[..., size:], c[..., :-size], out=out[..., 1:])
    return out.movedim(0, -2)


# --------------------------------------------------------------------------------------------------- sobel
def sobel_zero(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel responses with zero padding, same size (scipy ``convolve2d(x, h, 'same')`` with h = [[-1,0,1],[-2,0,2],
    [-1,0,1]] for gx and [[1,2,1],[0,0,0],[-1,-2,-1]] for gy). Returned with both signs flipped (correlation instead
    of convolution), which leaves magnitudes and the ratio gy/gx unchanged."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    v = p[..., :-2, :] + 2.0 * p[..., 1:-1, :] + p[..., 2:, :]  # vertical smoothing (H, W + 2)
    gx = v[..., 2:] - v[..., :-2]
    h = p[..., :-2] + 2.0 * p[..., 1:-1] + p[..., 2:]  # horizontal smoothing (H + 2, W)
    gy = h[..., :-2, :] - h[..., 2:, :]
    return gx, gy


def sobel_mirror8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel/8 responses with mirror extension (edge not repeated), same size: the ``sobel_fn`` of Shreyamsha Kumar's
    objective_fusion_perform_fn. Returns ``(gv, gh)``: gv correlates with [[-1,0,1],[-2,0,2],[-1,0,1]]/8 (horizontal
    derivative), gh with [[-1,-2,-1],[0,0,0],[1,2,1]]/8 (vertical derivative)."""
    shape = x.shape
    p = torch.nn.functional.pad(x.reshape(-1, 1, *shape[-2:]), (1, 1, 1, 1), mode="reflect").reshape(
        *shape[:-2], shape[-2] + 2, shape[-1] + 2)
    v = p[..., :-2, :] + 2.0 * p[..., 1:-1, :] + p[..., 2:, :]
    gv = (v[..., 2:] - v[..., :-2]) * 0.125
    h = p[..., :-2] + 2.0 * p[..., 1:-1] + p[..., 2:]
    gh = (h[..., 2:, :] - h[..., :-2, :]) * 0.125
    return gv, gh


# ---------------------------------------------------------------------------------------------- statistics
def flat(x: Tensor) -> Tensor:
    """(..., H, W) -> (..., H*W)."""
    return x.reshape(*x.shape[:-2], -1)


def corr(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation over the last two axes: sum(dx dy) / sqrt(sum(dx^2) sum(dy^2))."""
    dx = flat(x) - flat(x).mean(-1, keepdim=True)
    dy = flat(y) - flat(y).mean(-1, keepdim=True)
    return (dx * dy).sum(-1) / torch.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))


def to_levels(x: Tensor) -> Tensor:
    """Round 0..255 values to int64 gray levels (half to even, like numpy), clamped to 0..255."""
    return torch.round(x).clamp_(0, 255).to(torch.int64)


def histogram256(levels: Tensor) -> Tensor:
    """Counts of the 256 gray levels per image: (..., H, W) int64 -> (..., 256) int64."""
    lead = levels.shape[:-2]
    n = math.prod(lead)
    idx = flat(levels).reshape(n, -1) + 256 * torch.arange(n, device=levels.device)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=256 * n).reshape(*lead, 256)


def joint_histogram256(a: Tensor, b: Tensor) -> Tensor:
    """Joint counts of gray levels: (..., H, W) int64 pairs (broadcast) -> (..., 256, 256) int64, rows = a."""
    a, b = torch.broadcast_tensors(a, b)
    lead = a.shape[:-2]
    n = math.prod(lead)
    idx = (flat(a) * 256 + flat(b)).reshape(n, -1) + 65536 * torch.arange(n, device=a.device)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=65536 * n).reshape(*lead, 256, 256)
