"""Fused per-pixel work of VIF, SSIM, Qabf and Nabf in C (float64, CPU): one pass instead of ~15-25 torch operations.

After the Gaussian filtering, VIF needs, per pixel and source, the local variances and covariance, the gain g, the
noise s_v with the evaluator's corrections, and two logarithms, summed over the map (see :mod:`.vif`). In torch each
of those steps is a pass over an L3-sized float64 map (~0.25 ms each at 640 x 480); this kernel reads the eight
filtered maps once. The sums of logarithms are taken as logarithms of running products of the factors (1 + t),
renormalised with ``frexp`` (every factor is >= 1; factors above 2^500 go to the log directly), one ``log`` per row
and source: per-row sums are then added in row order, so the result does not depend on the thread count. Differences
to the torch path come from log(1 + t) vs log1p(t) and the summation order: ~1e-14 relative (tested to 1e-10).

Built and cached like the student's kernel (:mod:`mmdrfuse.native`); without a compiler, with ``MMDRFUSE_FAST=0``,
or for other dtypes/devices, :func:`vif_terms` returns None and VIF takes its torch path.
"""
from __future__ import annotations

import ctypes
import threading

import torch
from torch import Tensor

from mmdrfuse import native

_SRC = r"""
#include <math.h>
#include <stddef.h>

#define EPS 1e-10
#define SIGMA_NSQ 2.0
#define BIG 0x1p500

typedef struct { double p, direct; long e; } logsum;   /* sum of log(x_i) = log(p) + e ln 2 + direct */

static inline void ls_add(logsum *a, double x)          /* x >= 1 (or NaN / inf, which propagate) */
{
    if (x > BIG) { a->direct += log(x); return; }
    a->p *= x;
    if (a->p > BIG) { int ex; a->p = frexp(a->p, &ex); a->e += ex; }
}

static inline double ls_value(const logsum *a) { return log(a->p) + (double)a->e * M_LN2 + a->direct; }

/* m: the eight filtered maps (mu_f, E[ff], mu_a, mu_b, E[aa], E[bb], E[af], E[bf]) of n images, stored (H, 8, n, W).
   rows: (H, 2, 2, n) output, per row: [0][s][i] = sum of log(1 + g^2 s_r / (s_v + sigma_n^2)), [1][s][i] = sum of
   log(1 + s_r / sigma_n^2), for source s (0 = A, 1 = B) of image i, with the corrections of vif.py's _terms. */
void mmdr_vif_rows(const double *m, long H, long n, long W, double *rows, int nthreads)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long h = 0; h < H; h++) {
        for (long i = 0; i < n; i++) {
            const double *plane[8];
            for (int c = 0; c < 8; c++) plane[c] = m + ((size_t)(h * 8 + c) * n + i) * W;
            logsum num[2] = {{1.0, 0.0, 0}, {1.0, 0.0, 0}}, den[2] = {{1.0, 0.0, 0}, {1.0, 0.0, 0}};
            for (long w = 0; w < W; w++) {
                const double mu_f = plane[0][w];
                double s_d = plane[1][w] - mu_f * mu_f;
                s_d = s_d < 0.0 ? 0.0 : s_d;                          /* NaN stays NaN, like clamp_min */
                const double d_ok = s_d >= EPS ? 1.0 : 0.0;
                for (int s = 0; s < 2; s++) {
                    const double mu_s = plane[2 + s][w];
                    double s_r = plane[4 + s][w] - mu_s * mu_s;
                    s_r = s_r < 0.0 ? 0.0 : s_r;
                    const double s_rd = plane[6 + s][w] - mu_s * mu_f;
                    double g = s_rd / (s_r + EPS);
                    double s_v = s_d - g * s_rd;
                    s_v = (s_v < EPS ? EPS : s_v) + SIGMA_NSQ;
                    g = (g < 0.0 ? 0.0 : g) * d_ok;
                    s_r = s_r * (s_r >= EPS ? 1.0 : 0.0);
                    ls_add(&num[s], 1.0 + g * g * s_r / s_v);
                    ls_add(&den[s], 1.0 + s_r * (1.0 / SIGMA_NSQ));
                }
            }
            for (int s = 0; s < 2; s++) {
                rows[((h * 2 + 0) * 2 + s) * n + i] = ls_value(&num[s]);
                rows[((h * 2 + 1) * 2 + s) * n + i] = ls_value(&den[s]);
            }
        }
    }
}

/* SSIM with a uniform window (scikit-image convention), from the window sums of the shifted maps
   m = (sum f, sum ff, sum a, sum b, sum aa, sum bb, sum af, sum bf) of n images stored (H, 8, n, W); fs (n) and
   ss (2 x n) are the shifts that were subtracted. rows (H, 2, n): per row, the sum of the SSIM map for source s of
   image i. Same arithmetic, in the same order, as ssim.py's torch path. */
void mmdr_ssim_rows(const double *m, long H, long n, long W, const double *fs, const double *ss, double win_n,
                    double c1, double c2, double *rows, int nthreads)
{
    const double norm = 1.0 / (win_n * (win_n - 1.0)), inv_n = 1.0 / win_n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long h = 0; h < H; h++) {
        for (long i = 0; i < n; i++) {
            const double *plane[8];
            for (int c = 0; c < 8; c++) plane[c] = m + ((size_t)(h * 8 + c) * n + i) * W;
            for (int s = 0; s < 2; s++) {
                const double *sf = plane[0], *sff = plane[1], *s_s = plane[2 + s], *s_ss = plane[4 + s];
                const double *s_sf = plane[6 + s], shift_f = fs[i], shift_s = ss[s * n + i];
                double acc = 0.0;
                for (long w = 0; w < W; w++) {
                    const double vf = (sff[w] * win_n - sf[w] * sf[w]) * norm;
                    const double vs = (s_ss[w] * win_n - s_s[w] * s_s[w]) * norm;
                    const double vsf = (s_sf[w] * win_n - s_s[w] * sf[w]) * norm;
                    const double uf = sf[w] * inv_n + shift_f, us = s_s[w] * inv_n + shift_s;
                    const double num = (us * uf * 2.0 + c1) * (vsf * 2.0 + c2);
                    const double den = (us * us + uf * uf + c1) * (vs + vf + c2);
                    acc += num / den;
                }
                rows[(h * 2 + s) * n + i] = acc;
            }
        }
    }
}

/* Sobel strength and orientation vector of M images x (M, H, W), for the gradient metrics (see _context.py):
   mode 0 (Qabf): zero padding, gx = v(j+1) - v(j-1), gy = h(i-1) - h(i+1) with v, h the [1 2 1] smoothings;
                  g = sqrt(gx^2 + gy^2), vx = |gx|, vy = gy sign(gx) + [gx == 0];
   mode 1 (Nabf): mirror padding (edge not repeated), gv = (v(j+1) - v(j-1)) / 8, gh = (h(i+1) - h(i-1)) / 8;
                  g = sqrt(gv^2 + gh^2), vx = |gh| + [g == 0], vy = gv (sign(gh) + [gh == 0]).
   The arithmetic and its order are those of the torch path (sobel_zero / sobel_mirror8 and the Batch properties);
   sqrt here is libm's, correctly rounded, where torch's vectorised one can differ by 1 ulp. */
static inline double at0(const double *x, long H, long W, long i, long j)
{
    return (i < 0 || i >= H || j < 0 || j >= W) ? 0.0 : x[i * W + j];
}

static inline long mirror(long i, long n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }

static inline double sgn(double v) { return v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : v); }   /* torch.sign (NaN kept) */

void mmdr_sobel(const double *x, long M, long H, long W, int mode, double *g, double *vx, double *vy, int nthreads)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long r = 0; r < M * H; r++) {
        const long m = r / H, i = r % H;
        const double *img = x + (size_t)m * H * W;
        double *go = g + (size_t)r * W, *xo = vx + (size_t)r * W, *yo = vy + (size_t)r * W;
        for (long j = 0; j < W; j++) {
            if (mode == 0) {
                const double vr = at0(img, H, W, i - 1, j + 1) + 2.0 * at0(img, H, W, i, j + 1) + at0(img, H, W, i + 1, j + 1);
                const double vl = at0(img, H, W, i - 1, j - 1) + 2.0 * at0(img, H, W, i, j - 1) + at0(img, H, W, i + 1, j - 1);
                const double hu = at0(img, H, W, i - 1, j - 1) + 2.0 * at0(img, H, W, i - 1, j) + at0(img, H, W, i - 1, j + 1);
                const double hd = at0(img, H, W, i + 1, j - 1) + 2.0 * at0(img, H, W, i + 1, j) + at0(img, H, W, i + 1, j + 1);
                const double gx = vr - vl, gy = hu - hd;
                go[j] = sqrt(gx * gx + gy * gy);
                yo[j] = gy * sgn(gx) + (gx == 0.0 ? 1.0 : 0.0);
                xo[j] = fabs(gx);
            } else {
                const long iu = mirror(i - 1, H), id = mirror(i + 1, H), jl = mirror(j - 1, W), jr = mirror(j + 1, W);
                const double vr = img[iu * W + jr] + 2.0 * img[i * W + jr] + img[id * W + jr];
                const double vl = img[iu * W + jl] + 2.0 * img[i * W + jl] + img[id * W + jl];
                const double hd = img[id * W + jl] + 2.0 * img[id * W + j] + img[id * W + jr];
                const double hu = img[iu * W + jl] + 2.0 * img[iu * W + j] + img[iu * W + jr];
                const double gv = (vr - vl) * 0.125, gh = (hd - hu) * 0.125;
                const double gg = sqrt(gv * gv + gh * gh);
                go[j] = gg;
                yo[j] = gv * (sgn(gh) + (gh == 0.0 ? 1.0 : 0.0));
                xo[j] = fabs(gh) + (gg == 0.0 ? 1.0 : 0.0);
            }
        }
    }
}

int mmdr_metrics_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
"""

_lock = threading.Lock()
_state: dict = {"lib": None, "error": None, "openmp": False}


def _load() -> ctypes.CDLL | None:
    if _state["lib"] is not None or _state["error"] is not None:
        return _state["lib"]
    with _lock:
        if _state["lib"] is not None or _state["error"] is not None:
            return _state["lib"]
        if native.disabled():
            _state["error"] = f"disabled by {native.FAST_ENV}=0"
            return None
        try:
            lib, own_runtime = native.load_library(native.build_library("mmdrfuse_metrics", _SRC))
        except (RuntimeError, OSError) as exc:
            _state["error"] = str(exc) or type(exc).__name__
            return None
        p, i, l_ = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
        lib.mmdr_vif_rows.argtypes = [p, l_, l_, l_, p, i]
        lib.mmdr_vif_rows.restype = None
        d = ctypes.c_double
        lib.mmdr_ssim_rows.argtypes = [p, l_, l_, l_, p, p, d, d, d, p, i]
        lib.mmdr_ssim_rows.restype = None
        lib.mmdr_sobel.argtypes = [p, l_, l_, l_, i, p, p, p, i]
        lib.mmdr_sobel.restype = None
        lib.mmdr_metrics_openmp.argtypes = []
        lib.mmdr_metrics_openmp.restype = i
        _state["openmp"] = bool(lib.mmdr_metrics_openmp()) and not own_runtime
        _state["lib"] = lib
    return _state["lib"]


def available() -> bool:
    """True when the metric kernel is built and loaded (compiling it on first use)."""
    return _load() is not None


def _usable(t: Tensor) -> bool:
    """float64 CPU tensors outside autograd, with the kernel loaded."""
    return (t.dtype == torch.float64 and t.device.type == "cpu" and not t.requires_grad and t.dim() >= 2
            and _load() is not None)


def _threads() -> int:
    return torch.get_num_threads() if _state["openmp"] else 1


def _rows_outer(maps: Tensor) -> Tensor | None:
    """Eight maps (8, N, H, W) as contiguous (H, 8, N, W) memory (a view when they are stored that way, as
    :func:`~mmdrfuse.metrics._primitives.filter_valid` and ``box_sum_valid`` return them), or None."""
    if not _usable(maps) or maps.dim() != 4 or maps.shape[0] != 8:
        return None
    return maps.movedim(-2, 0).contiguous()


def vif_terms(m: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(num, den)``, each (2, N): the sums over the map of VIF's two log terms for sources A, B, from the eight
    filtered maps ``m`` (8, N, H, W). None when the kernel does not apply (not float64 CPU, autograd, no kernel):
    the caller then uses its torch path."""
    base = _rows_outer(m)
    if base is None:
        return None
    h, _, n, w = base.shape
    rows = torch.empty((h, 2, 2, n), dtype=torch.float64)
    _state["lib"].mmdr_vif_rows(base.data_ptr(), h, n, w, rows.data_ptr(), _threads())
    sums = rows.sum(0)  # in row order: the same for any thread count
    return sums[0], sums[1]


def ssim_uniform(sums: Tensor, fs: Tensor, ss: Tensor, win_n: float, c1: float, c2: float) -> Tensor | None:
    """Mean SSIM map (2, N) for sources A, B from the uniform-window sums ``sums`` (8, N, H, W) and the shifts
    ``fs`` (N,), ``ss`` (2, N); None when the kernel does not apply."""
    base = _rows_outer(sums)
    if base is None:
        return None
    h, _, n, w = base.shape
    fs = fs.to(torch.float64).contiguous()
    ss = ss.to(torch.float64).contiguous()
    rows = torch.empty((h, 2, n), dtype=torch.float64)
    _state["lib"].mmdr_ssim_rows(base.data_ptr(), h, n, w, fs.data_ptr(), ss.data_ptr(), float(win_n), float(c1),
                                 float(c2), rows.data_ptr(), _threads())
    return rows.sum(0) / float(h * w)


def sobel(x: Tensor, mode: str) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(g, vx, vy)`` of the gradient metrics for images ``x`` (..., H, W): ``mode`` "qabf" (zero padding) or
    "nabf" (mirror padding, /8), as :class:`~mmdrfuse.metrics._context.Batch` defines them. None when the kernel
    does not apply (also for sides < 2 in "nabf", where mirror padding is undefined: the torch path raises)."""
    if not _usable(x) or (mode == "nabf" and min(x.shape[-2:]) < 2):
        return None
    h, w = x.shape[-2:]
    xc = x.contiguous()
    g, vx, vy = (torch.empty_like(xc) for _ in range(3))
    _state["lib"].mmdr_sobel(xc.data_ptr(), xc.numel() // max(h * w, 1), h, w, 0 if mode == "qabf" else 1,
                             g.data_ptr(), vx.data_ptr(), vy.data_ptr(), _threads())
    return g, vx, vy
