"""The fusion metrics as C kernels (float64, CPU): Gaussian and box filters as separable small-kernel passes, and every
per-pixel term fused into the pass that produces its inputs.

:class:`~mmdrfuse.metrics._context.Batch` calls these for float64 CPU tensors outside autograd; each returns the
final value per image of one group of metrics, from the three images F, A, B (N x H x W, contiguous):

- :func:`shifts`: the rounded means subtracted before the (co)variance sums (exact box sums of integer images);
- :func:`vif`: VIF(A, F) + VIF(B, F). Each scale's eight product maps (F, F^2, A, B, A^2, B^2, AF, BF, centred)
  are filtered map by map with the separable Gaussian (a ring of n product rows per map and column strip, so that
  the passes run from L1), n multiply-adds per output and pass instead of the O(H W H) banded matrix products; the
  per-pixel gain / noise terms and their logarithms follow in the same pass (sums of logarithms as logarithms of
  renormalised running products, one log per lane and row);
- :func:`ssim7`: SSIM(F, A) + SSIM(F, B) with the 7 x 7 uniform window (exact integer box sums, the torch path's
  per-pixel arithmetic);
- :func:`gradients`: Qabf and Nabf from one Sobel pass: inside the image Nabf's mirror-padded Sobel/8 responses are
  Qabf's / 8 and its orientation is Qabf's turned by pi/2, so the strengths, orientation differences (one atan2
  per source) and both logistic terms come from the same values; the one-pixel border is done pixel by pixel with
  each metric's own padding;
- :func:`stats`: SD, SCD, CC, EN, SF, AG, MI, PSNR, MSE from one pass of sums (exact for integer images) and the
  joint gray-level histograms;
- :func:`gray`: the evaluator's colour -> gray conversion, and :func:`png_unfilter`, PNG's scanline filters, for
  :mod:`.reading`;
- the VIFB convention's heavy parts (:mod:`.perceptual`, :mod:`.ssim`): :func:`qcb_contrast` (Chen-Blum's 31 x 31
  Gaussians as separable symmetric passes, both windows from one vertical pass, and the masked contrast in the same
  sweep), :func:`qcb_combine` (Q_CB from the three contrast maps of each image, by index, so a map shared by several
  images is computed once), :func:`qcv` (Sobel strength^5 and squared CSF-filtered differences summed per 16 x 16
  block, in one pass), :func:`ssim_gauss` (Wang et al.'s 11 x 11 Gaussian SSIM, like :func:`ssim7` with the
  Gaussian's symmetric passes). The FFTs around them stay in torch.

Determinism: rows are cut into fixed bands whatever the thread count, every band writes per-row sums, and the rows
are added in order, so results do not depend on the number of threads (or on which thread ran a band). exp and
atan2 are branch-free polynomial versions (~1 ulp), so their loops vectorise. Three builds are compiled: a portable
one and, on x86-64 with GCC, one for AVX2 + FMA and one for AVX-512 + FMA, the best the CPU has picked at run time;
they differ by rounding only (~1e-16 relative). Against the torch path (used without a compiler, with
``MMDRFUSE_FAST=0``, for float32, CUDA or autograd) the values agree to ~1e-15 relative (Nabf ~1e-13: its 1 - sqrt(Q)
cancels digits); tested to 1e-10.

Threads: OpenMP on torch's thread team (``torch.get_num_threads()``), or fewer for the calling Python thread inside
:func:`thread_limit` (``evaluate_folder``, both conventions, runs one pair per worker thread inside
:func:`one_thread_each`, each kernel single-threaded). Built and
cached like the student's kernel (:mod:`mmdrfuse.native`); the C source is ``mmdrfuse/csrc/metrics.c``
(+ ``metrics_body.h``).
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import threading
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from mmdrfuse import native

_p, _i, _l, _d = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
KERNEL = native.Kernel("mmdrfuse_metrics", "metrics.c", {  # C source: mmdrfuse/csrc/metrics.c + metrics_body.h
    "mmdr_shifts": ([_p, _p, _p, _l, _l, _l, _p, _i], _i),
    "mmdr_vif": ([_p, _p, _p, _l, _l, _l, _p, _p, _p, _p, _i, _i], _i),
    "mmdr_ssim7": ([_p, _p, _p, _l, _l, _l, _p, _d, _d, _p, _i, _i], _i),
    "mmdr_gradients": ([_p, _p, _p, _l, _l, _l, _p, _i, _p, _i, _i], _i),
    "mmdr_stats": ([_p, _p, _p, _l, _l, _l, _p, _p, _i, _i], _i),
    "mmdr_gray": ([_p, _l, _i, _i, _p, _i], None),
    "mmdr_vifb_stats": ([_p, _p, _p, _l, _l, _l, _p, _i, _p, _i, _i], _i),  # per-image pointer arrays
    "mmdr_normalize1": ([_p, _l, _l, _l, _p, _i, _i], _i),
    "mmdr_sf_wide": ([_p, _l, _l, _l, _l, _p, _i, _i], _i),
    "mmdr_rgb2gray": ([_p, _l, _l, _p, _i, _p, _i, _i], None),
    "mmdr_spec_filter": ([_p, _l, _p, _p, _p, _l, _p, _i, _i], None),
    "mmdr_qcb_contrast": ([_p, _l, _l, _l, _p, _p, _i, _d, _p, _i, _i], _i),
    "mmdr_qcb_combine": ([_p, _l, _l, _p, _l, _p, _i, _i], _i),
    "mmdr_qcv": ([_p, _p, _p, _p, _l, _l, _l, _i, _p, _i, _i], _i),
    "mmdr_ssim_gauss": ([_p, _p, _p, _l, _l, _l, _p, _p, _i, _d, _d, _p, _i, _i], _i),
    "mmdr_png_unfilter": ([_p, _l, _l, _i, _p], _i),
    "mmdr_metrics_openmp": ([], _i),
    "mmdr_metrics_isa": ([], _i),
}, openmp_symbol="mmdr_metrics_openmp")


_lock = threading.Lock()
_state: dict = {"lib": None, "error": None, "openmp": False, "isa": 0}
_local = threading.local()  # per Python thread: the thread limit set by thread_limit()

# kernel constants, in the torch path's arithmetic (gradient.py, vif.py, ssim.py)
_VIF_TAPS = (17, 9, 5, 3)
_GRAD_CONSTS: list[float] | None = None
_VIF_WINDOWS: Tensor | None = None


def _load() -> ctypes.CDLL | None:
    """The loaded kernel library (built on first use by :data:`KERNEL`), or None with the reason in ``_state``."""
    if _state["lib"] is not None or _state["error"] is not None:
        return _state["lib"]
    with _lock:
        if _state["lib"] is None and _state["error"] is None:
            lib = KERNEL.load()
            if lib is None:
                _state["error"] = KERNEL.error
            else:
                _state.update(openmp=KERNEL.openmp, isa=int(lib.mmdr_metrics_isa()), lib=lib)
    return _state["lib"]


def available() -> bool:
    """True when the metric kernels are built and loaded (compiling them on first use)."""
    return _load() is not None


def isa() -> str:
    """The build the kernels run: "avx512+fma", "avx2+fma" or "portable" (or "unavailable")."""
    if _load() is None:
        return "unavailable"
    return {2: "avx512+fma", 1: "avx2+fma"}.get(_state["isa"], "portable")


def usable(t: Tensor) -> bool:
    """float64 CPU tensors outside autograd, with the kernels loaded."""
    return (t.dtype == torch.float64 and t.device.type == "cpu" and not t.requires_grad and t.dim() >= 2
            and _load() is not None)


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run the kernels called from this Python thread on at most ``n`` threads (1: no parallel region)."""
    old = getattr(_local, "limit", None)
    _local.limit = max(1, int(n))
    try:
        yield
    finally:
        _local.limit = old


@contextlib.contextmanager
def one_thread_each() -> Iterator[int]:
    """The pipeline's threads: yields ``torch.get_num_threads()`` (the number of pair workers to run) with torch's
    intra-op threads set to 1 meanwhile (for torch operations inside the workers, e.g. FFTs), then restored."""
    workers = max(1, torch.get_num_threads())
    torch.set_num_threads(1)
    try:
        yield workers
    finally:
        torch.set_num_threads(workers)


def _threads() -> int:
    if not _state["openmp"]:
        return 1
    n = torch.get_num_threads()
    limit = getattr(_local, "limit", None)
    return n if limit is None else min(n, limit)


def _check(rc: int, what: str) -> None:
    if rc == -1:
        raise MemoryError(f"metric kernel {what}: out of memory")
    if rc != 0:
        raise ValueError(f"metric kernel {what}: images too small")


def _images(f: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, int, int, int]:
    f, a, b = f.contiguous(), a.contiguous(), b.contiguous()
    n, h, w = f.reshape(-1, *f.shape[-2:]).shape
    return f, a, b, n, h, w


def shifts(f: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """(3, N): round(mean) of F, A, B per image (the torch path's ``Batch.shifts``)."""
    f, a, b, n, h, w = _images(f, a, b)
    out = torch.empty(3, n, dtype=torch.float64)
    _check(_state["lib"].mmdr_shifts(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, out.data_ptr(),
                                     _threads()), "shifts")
    return out


def _vif_windows() -> Tensor:
    global _VIF_WINDOWS
    if _VIF_WINDOWS is None:
        from mmdrfuse.metrics._primitives import gaussian_window

        _VIF_WINDOWS = torch.cat([gaussian_window(n, n / 5.0) for n in _VIF_TAPS]).contiguous()
    return _VIF_WINDOWS


def vif(f: Tensor, a: Tensor, b: Tensor, sh: Tensor) -> Tensor:
    """(N,): VIF(A, F) + VIF(B, F) (vif.py's definition, 1 per source where 0 / 0); ``sh`` from :func:`shifts`."""
    f, a, b, n, h, w = _images(f, a, b)
    wins = _vif_windows()
    taps = (ctypes.c_int * 4)(*_VIF_TAPS)
    out = torch.empty(n, dtype=torch.float64)
    sh = sh.to(torch.float64).contiguous()
    _check(_state["lib"].mmdr_vif(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, sh.data_ptr(), wins.data_ptr(),
                                  taps, out.data_ptr(), _threads(), _state["isa"]), "VIF")
    return out


def ssim7(f: Tensor, a: Tensor, b: Tensor, sh: Tensor, c1: float, c2: float) -> Tensor:
    """(N,): SSIM(F, A) + SSIM(F, B) with the 7 x 7 uniform window (ssim.py's scikit-image convention)."""
    f, a, b, n, h, w = _images(f, a, b)
    out = torch.empty(n, dtype=torch.float64)
    sh = sh.to(torch.float64).contiguous()
    _check(_state["lib"].mmdr_ssim7(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, sh.data_ptr(), float(c1),
                                    float(c2), out.data_ptr(), _threads(), _state["isa"]), "SSIM")
    return out


def _grad_consts() -> Tensor:
    global _GRAD_CONSTS
    if _GRAD_CONSTS is None:
        from mmdrfuse.metrics import _primitives as g

        if g.QABF_DG != 0.5 or g.NABF_SIGMAG != 0.5 or g.NABF_SIGMAA != 0.5:
            raise RuntimeError("the gradient kernel assumes the logistic centres 0.5")
        _GRAD_CONSTS = [-g.QABF_KG, g.QABF_KA / g.HALF_PI, -g.QABF_KA * (1.0 - g.QABF_DA), g.NABF_NRG * g.NABF_NRA,
                        g.NABF_KG, g.NABF_KA, g.HALF_PI, 1.0 / g.HALF_PI, torch.finfo(torch.float64).tiny,
                        g.QABF_TG * g.QABF_TA]
    return torch.tensor(_GRAD_CONSTS, dtype=torch.float64)


def gradients(f: Tensor, a: Tensor, b: Tensor, nabf: bool = True) -> Tensor:
    """(2, N): Qabf and Nabf (gradient.py's definitions; Nabf NaN for sides < 2, and without ``nabf``: Qabf
    alone, the same values, about half the work)."""
    f, a, b, n, h, w = _images(f, a, b)
    kc = _grad_consts()
    out = torch.empty(2, n, dtype=torch.float64)
    _check(_state["lib"].mmdr_gradients(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, kc.data_ptr(),
                                        int(bool(nabf)), out.data_ptr(), _threads(), _state["isa"]), "gradients")
    return out


STATS = ("SD", "SCD", "CC", "EN", "SF", "AG", "MI", "PSNR", "MSE")


def stats(f: Tensor, a: Tensor, b: Tensor, sh: Tensor) -> dict[str, Tensor]:
    """name -> (N,) for the metrics in :data:`STATS` (statistics.py's definitions)."""
    f, a, b, n, h, w = _images(f, a, b)
    out = torch.empty(n, len(STATS), dtype=torch.float64)
    sh = sh.to(torch.float64).contiguous()
    _check(_state["lib"].mmdr_stats(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, sh.data_ptr(),
                                    out.data_ptr(), _threads(), _state["isa"]), "statistics")
    return {k: out[:, i] for i, k in enumerate(STATS)}


VIFB_STATS = ("CE", "EN", "RMSE_A", "RMSE_B", "EI", "SD", "AG", "MI")
_VIFB_FLAGS = {"CE": 1, "EN": 2, "RMSE": 4, "EI": 8, "SD": 16, "AG": 32, "MI": 64}


def _pointers(*stacks: Tensor | list[Tensor]) -> tuple[list, int, int, int]:
    """Per-image pointer arrays of (N, H, W) tensors or lists of N (H, W) tensors (float64, one size): (arrays and
    the tensors they point into, N, H, W)."""
    lists = [[t.contiguous() for t in (x if isinstance(x, (list, tuple)) else x.reshape(-1, *x.shape[-2:]).unbind(0))]
             for x in stacks]
    n, (h, w) = len(lists[0]), lists[0][0].shape[-2:]
    if any(len(xs) != n or any(t.shape != (h, w) or t.dtype != torch.float64 for t in xs) for xs in lists):
        raise ValueError("metric kernel: images of one size, float64, as many of each")
    return [((ctypes.c_void_p * n)(*(t.data_ptr() for t in xs)), xs) for xs in lists], n, h, w


def vifb_stats(f: Tensor | list[Tensor], a: Tensor | list[Tensor], b: Tensor | list[Tensor], sh: Tensor | None,
               which: set[str]) -> dict[str, Tensor]:
    """name -> (N,) for the requested groups of :data:`VIFB_STATS` ("RMSE": both RMSE_A and RMSE_B), from one
    pass: CE (extras.py), EN of floor(F) (vifb.py), RMSE per source (extras.py's rmse_per_source), EI (extras.py),
    SD and AG (statistics.py; SD needs the shifts ``sh`` of :func:`shifts`), MI (A, F) + (B, F) of the truncated
    values with NaN as 0 (VIFB's Mutinf on the normalised images). Images: (N, H, W) tensors or lists of (H, W)
    ones (read in place)."""
    ptrs, n, h, w = _pointers(f, a, b)
    flags = 0
    for k in which:
        flags |= _VIFB_FLAGS[k]
    if flags & _VIFB_FLAGS["SD"] and sh is None:
        raise ValueError("vifb_stats: SD needs the shifts")
    sh = torch.zeros(3, n, dtype=torch.float64) if sh is None else sh.to(torch.float64).contiguous()
    out = torch.empty(n, len(VIFB_STATS), dtype=torch.float64)
    _check(_state["lib"].mmdr_vifb_stats(*(p for p, _ in ptrs), n, h, w, sh.data_ptr(), flags, out.data_ptr(),
                                         _threads(), _state["isa"]), "VIFB statistics")
    return {k: out[:, i] for i, k in enumerate(VIFB_STATS)}


def normalize1(images: Tensor | list[Tensor]) -> Tensor:
    """(M, H, W), or M images (H, W) -> (M, H, W): Z. Liu's normalize1 per image, matlab.py's arithmetic bit for bit
    (finite input). A list is read in place (no stacking copy)."""
    xs = [t.contiguous() for t in (images if isinstance(images, (list, tuple)) else images.reshape(
        -1, *images.shape[-2:]).unbind(0))]
    h, w = xs[0].shape[-2:]
    if any(t.shape != (h, w) or t.dtype != torch.float64 for t in xs):
        raise ValueError("normalize1: images of one size, float64")
    ptrs = (ctypes.c_void_p * len(xs))(*(t.data_ptr() for t in xs))
    out = torch.empty(len(xs), h, w, dtype=torch.float64)
    _check(_state["lib"].mmdr_normalize1(ptrs, len(xs), h, w, out.data_ptr(), _threads(), _state["isa"]),
           "normalize1")
    return out


def spatial_frequency_wide(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N,): VIFB's spatial frequency of each image seen as one H x CW image, the channels side by
    side (vifb.py's definition; exact sums for integer images)."""
    x = x.to(torch.float64).contiguous()
    n, c, h, w = x.shape
    out = torch.empty(n, dtype=torch.float64)
    _check(_state["lib"].mmdr_sf_wide(x.data_ptr(), n, c, h, w, out.data_ptr(), _threads(), _state["isa"]),
           "spatial frequency")
    return out


def rgb2gray(x: Tensor, integer: bool) -> Tensor:
    """(N, 3, H, W) float64 -> (N, H, W): MATLAB's rgb2gray as matlab.py computes it, bit for bit (``integer``:
    rounded half away from zero and clamped, the uint8 input's path)."""
    from mmdrfuse.metrics.matlab import RGB2GRAY

    x = x.contiguous()
    n, _, h, w = x.shape
    wt = torch.tensor(RGB2GRAY, dtype=torch.float64)
    out = torch.empty(n, h, w, dtype=torch.float64)
    _state["lib"].mmdr_rgb2gray(x.data_ptr(), n, h * w, wt.data_ptr(), int(bool(integer)), out.data_ptr(),
                                _threads(), _state["isa"])
    return out


def spec_filter(spec: Tensor, filt: Tensor, plus: list[int], minus: list[int] | None = None) -> Tensor:
    """(M, H, K) complex128 spectra and a real (H, K) filter -> (len(plus), H, K):
    ``(spec[plus[q]] - spec[minus[q]]) * filt`` (``spec[plus[q]] * filt`` where minus[q] < 0 or without ``minus``),
    the torch path's values for finite spectra."""
    spec = spec.contiguous()
    filt = filt.to(torch.float64).contiguous()
    if spec.dtype != torch.complex128 or filt.shape != spec.shape[1:]:
        raise ValueError("spec_filter: complex128 spectra (M, H, K) and a real (H, K) filter")
    m = spec.shape[0]
    minus = [-1] * len(plus) if minus is None else minus
    if len(minus) != len(plus) or any(not 0 <= p < m for p in plus) or any(q >= m for q in minus):
        raise IndexError("spec_filter: map index out of range")
    pl = torch.tensor(plus, dtype=torch.int64)
    mi = torch.tensor(minus, dtype=torch.int64)
    out = torch.empty((len(plus),) + tuple(spec.shape[1:]), dtype=spec.dtype)
    _state["lib"].mmdr_spec_filter(spec.data_ptr(), filt.numel(), filt.data_ptr(), pl.data_ptr(), mi.data_ptr(),
                                   len(plus), out.data_ptr(), _threads(), _state["isa"])
    return out


def qcb_contrast(x: Tensor, g1: Tensor, g2: Tensor, z: float) -> Tensor:
    """(M, H, W) -> (M, H, W): Chen-Blum's masked contrast C^3 / (C^2 + z), C = |G1 * x / G2 * x - 1|, the windows
    outer(g1, g1) and outer(g2, g2) applied as ``filter2(..., 'same')`` (zero padding); perceptual.py's arithmetic."""
    x = x.contiguous()
    m, h, w = x.reshape(-1, *x.shape[-2:]).shape
    g1, g2 = (g.to(torch.float64).contiguous() for g in (g1, g2))
    out = torch.empty(m, h, w, dtype=torch.float64)
    rc = _state["lib"].mmdr_qcb_contrast(x.data_ptr(), m, h, w, g1.data_ptr(), g2.data_ptr(), g1.numel(), float(z),
                                         out.data_ptr(), _threads(), _state["isa"])
    if rc == -3:
        raise ValueError("metric kernel Qcb: the windows must be symmetric with an odd length <= 63")
    _check(rc, "Qcb")
    return out


def qcb_combine(maps: Tensor, idx: Tensor) -> Tensor:
    """(N,): Qcb of each image from masked contrast maps (M, H, W) (:func:`qcb_contrast`); ``idx`` (3, N) int64
    names the maps of F, A and B of each image."""
    maps = maps.contiguous()
    idx = idx.to(torch.int64).contiguous()
    n = idx.shape[1]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= maps.shape[0]):
        raise IndexError("metric kernel Qcb: map index out of range")
    out = torch.empty(n, dtype=torch.float64)
    _check(_state["lib"].mmdr_qcb_combine(maps.data_ptr(), maps.shape[-2], maps.shape[-1], idx.data_ptr(), n,
                                          out.data_ptr(), _threads(), _state["isa"]), "Qcb")
    return out


def qcv(xa: Tensor | list[Tensor], xb: Tensor | list[Tensor], da: Tensor | list[Tensor], db: Tensor | list[Tensor],
        block: int) -> Tensor:
    """(N,): Qcv from the normalised sources and their CSF-filtered differences to F ((N, H, W) tensors or lists of
    (H, W) ones): sum(lambda D) / sum(lambda) over block x block regions and both sources (perceptual.py's
    definition)."""
    ptrs, n, h, w = _pointers(xa, xb, da, db)
    out = torch.empty(n, dtype=torch.float64)
    _check(_state["lib"].mmdr_qcv(*(p for p, _ in ptrs), n, h, w, int(block), out.data_ptr(), _threads(),
                                  _state["isa"]), "Qcv")
    return out


def ssim_gauss(f: Tensor, a: Tensor, b: Tensor, sh: Tensor, win: Tensor, c1: float, c2: float) -> Tensor:
    """(2, N): SSIM(F, A) and SSIM(F, B) with the separable window outer(win, win), valid windows, population
    covariance (ssim.py's Gaussian convention); ``sh`` from :func:`shifts`."""
    f, a, b, n, h, w = _images(f, a, b)
    win = win.to(torch.float64).contiguous()
    out = torch.empty(2, n, dtype=torch.float64)
    sh = sh.to(torch.float64).contiguous()
    rc = _state["lib"].mmdr_ssim_gauss(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, sh.data_ptr(),
                                       win.data_ptr(), win.numel(), float(c1), float(c2), out.data_ptr(), _threads(),
                                       _state["isa"])
    if rc == -3:
        raise ValueError("metric kernel SSIM: the window must be symmetric with an odd length <= 17")
    _check(rc, "SSIM")
    return out


def png_unfilter(raw: bytes | np.ndarray, height: int, width: int, channels: int) -> np.ndarray | None:
    """The pixels (H x W, or H x W x 3) of an 8-bit, non-interlaced PNG from its inflated scanlines (filter byte +
    W * channels bytes per row), or None when the kernels are unavailable or a filter type is invalid."""
    lib = _load()
    buf = np.frombuffer(raw, dtype=np.uint8)
    if lib is None or buf.size != height * (1 + width * channels):
        return None
    out = np.empty((height, width, channels) if channels > 1 else (height, width), dtype=np.uint8)
    if lib.mmdr_png_unfilter(buf.ctypes.data, height, width, channels, out.ctypes.data) != 0:
        return None
    return out


def gray(rgb: np.ndarray, bgr: bool, convention: str) -> np.ndarray | None:
    """uint8 (H, W, 3) colour (RGB, or BGR with ``bgr``) -> uint8 (H, W) gray with reading.py's ``convention``
    ("float" or "uint8"), or None when the kernels are unavailable."""
    lib = _load()
    if lib is None:
        return None
    src = np.ascontiguousarray(rgb, dtype=np.uint8)
    out = np.empty(src.shape[:-1], dtype=np.uint8)
    lib.mmdr_gray(src.ctypes.data, math.prod(src.shape[:-1]), int(bgr), 0 if convention == "float" else 1,
                  out.ctypes.data, _state["isa"])
    return out
