"""Fast CPU inference for the MMDRFuse student: one fused, tiled C kernel (conv1 + ReLU + conv2 + tanh).

The straightforward ``Student.forward`` runs four full-image passes (reflection pad, conv, pad, conv) and, at
1024 x 1280, takes ~120 ms on a 2-core CPU although the work is only 0.28 GFLOP. This module computes exactly
the same function in a single pass that stays in cache:

* each hidden row ``relu(conv1)`` is computed once from three reflection-padded input rows held in a 4-slot ring,
  and each output row ``tanh(conv2)`` from three hidden rows held in another 4-slot ring, so only the input is read
  and only the output is written to memory;
* 8-wide SIMD through GCC vector extensions (an AVX2+FMA build selected at run time on x86-64, a portable build
  otherwise), with every column processed by the same vector code (row buffers are padded to a multiple of 64), so
  the result does not depend on the tiling or the thread count (deterministic);
* rows are cut into tiles and spread over ``torch.get_num_threads()`` Python threads (ctypes releases the GIL).

The C source below is compiled once with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``; ~2 s) into
the user cache (``<cache>/kernels`` or ``$MMDRFUSE_KERNEL_DIR``, keyed by a hash of source, flags and compiler) and
loaded with ctypes: no torch headers, pybind or ninja, so the first call is fast. Without a compiler (or with
``MMDRFUSE_FAST=0``) everything falls back to the plain forward, with one warning. See docs/performance.md for
the measurements behind the choice.

Use :func:`accelerate` (what ``mmdrfuse fuse`` calls): for a :class:`~mmdrfuse.models.Student` it returns a
no-grad callable ``x -> out`` that takes the fast path on float32 CPU input and the plain forward otherwise; any
other model is returned unchanged. Outputs match ``Student.forward`` to ~2e-7 (tested to 1e-6).
"""
from __future__ import annotations

import ctypes
import subprocess
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mmdrfuse import native
from mmdrfuse.models import Student
from mmdrfuse.native import FAST_ENV

_MIN_PIXELS_PER_THREAD = 1 << 17  # ~0.5 ms of kernel work; below that one thread runs the whole call

# ---------------------------------------------------------------------------------------------------------------
# The kernel. SUFFIX is replaced to build two copies: a portable one and (on x86) one compiled for AVX2 + FMA.
# ---------------------------------------------------------------------------------------------------------------
_C_HEADER = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define VL 8            /* floats per vector */
#define BLK 64          /* rows are padded to a multiple of BLK columns (the widest step is 8 vectors) */
#define OBLK 32         /* columns per output step (4 vectors) */
#define NSLOT 4         /* ring slots for input rows and for hidden rows (3 are needed at a time) */

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));

static inline int refl(int i, int n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }
"""

_C_BODY = r"""
static inline vf ldu_SUFFIX(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void stu_SUFFIX(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf splat_SUFFIX(float a) { vf v = {a, a, a, a, a, a, a, a}; return v; }

/* tanh(x) = sign(x) * (1 - e) / (1 + e), e = exp(-2|x|) (|x| clamped to 9, where tanh rounds to 1 in float).
   exp by Cody-Waite reduction + the Cephes degree-6 polynomial; absolute error < 2e-7 over the whole range. */
static inline vf vtanh_SUFFIX(vf x)
{
    const vi absmask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                        0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    vi bits = (vi)x;
    vi sign = bits & ~absmask;
    vf a = (vf)(bits & absmask);
    vf nine = splat_SUFFIX(9.0f);
    vi big = a >= nine;
    a = (vf)(((vi)a & ~big) | ((vi)nine & big));                  /* min(a, 9) */
    vf y = a * splat_SUFFIX(-2.0f);                                  /* y in [-18, 0] */
    const vf magic = splat_SUFFIX(12582912.0f);                      /* 1.5 * 2^23: round to nearest */
    vf t = y * splat_SUFFIX(1.44269504088896341f) + magic;
    vf n = t - magic;
    vi ni = (vi)t - (vi)magic;
    vf r = y - n * splat_SUFFIX(0.693359375f);
    r = r - n * splat_SUFFIX(-2.12194440e-4f);
    vf p = splat_SUFFIX(1.9875691500e-4f);
    p = p * r + splat_SUFFIX(1.3981999507e-3f);
    p = p * r + splat_SUFFIX(8.3334519073e-3f);
    p = p * r + splat_SUFFIX(4.1665795894e-2f);
    p = p * r + splat_SUFFIX(1.6666665459e-1f);
    p = p * r + splat_SUFFIX(5.0000001201e-1f);
    p = p * (r * r) + r + splat_SUFFIX(1.0f);
    vf e = (vf)((vi)p + (ni << 23));                                 /* p * 2^n, n in [-26, 0] */
    vf one = splat_SUFFIX(1.0f);
    vf th = (one - e) / (one + e);
    vi nan = x != x;                                                  /* NaN in -> NaN out, like torch.tanh */
    return (vf)((((vi)th | sign) & ~nan) | ((vi)x & nan));
}

/* Fill ring slot `dst` (cin rows of stride S) with reflection-padded input row q: dst[1..W] = row, dst[0] = row[1],
   dst[W+1] = row[W-2]. Positions beyond W+1 stay zero (set once), so the padded lanes are finite. */
static void fill_input_SUFFIX(float *dst, const float *x, int cin, int H, int W, int S, int q)
{
    for (int ci = 0; ci < cin; ci++) {
        const float *row = x + ((size_t)ci * H + q) * W;
        float *d = dst + (size_t)ci * S;
        memcpy(d + 1, row, sizeof(float) * W);
        d[0] = row[1];
        d[W + 1] = row[W - 2];
    }
}

/* G (1..4) hidden channels g0 .. g0+G-1 of one hidden row, U column vectors per step (G * U = 8 independent FMA
   chains, enough to hide the FMA latency): dst[g*S + j + 1] = relu(b + sum w * in). */
static inline __attribute__((always_inline)) void hidden_group_SUFFIX(
    float *dst, const float *const ip[3], int cin, int S, int W, const int G, const int U, int g0,
    const vf *w1v, const vf *b1v)
{
    for (int j = 0; j < W; j += U * VL) {           /* columns >= W are scratch (finite, never stored) */
        vf acc[4][8];
        for (int g = 0; g < G; g++)
            for (int u = 0; u < U; u++) acc[g][u] = b1v[g0 + g];
        for (int ci = 0; ci < cin; ci++) {
            for (int dy = 0; dy < 3; dy++) {
                const float *src = ip[dy] + (size_t)ci * S + j;
                for (int dx = 0; dx < 3; dx++) {
                    vf w[4];
                    for (int g = 0; g < G; g++) {
                        w[g] = w1v[(((size_t)(g0 + g) * cin + ci) * 3 + dy) * 3 + dx];
                        IN_REGISTER(w[g]);          /* one load per weight, not one per FMA */
                    }
                    for (int u = 0; u < U; u++) {
                        vf v = ldu_SUFFIX(src + dx + u * VL);
                        for (int g = 0; g < G; g++) acc[g][u] += w[g] * v;
                    }
                }
            }
        }
        for (int g = 0; g < G; g++) {
            for (int u = 0; u < U; u++) {
                vf a = acc[g][u];
                a = (vf)((vi)a & ~(a <= 0.0f));     /* relu; NaN propagates like torch.relu */
                stu_SUFFIX(dst + (size_t)(g0 + g) * S + j + 1 + u * VL, a);
            }
        }
    }
}

/* The whole pass for output rows [r0, r1) of one image. */
static int student_rows_SUFFIX(const float *x, float *out, int cin, int H, int W, int C,
                               const float *w1, const float *b1, const float *w2, float b2, int r0, int r1)
{
    const int Wv = (W + BLK - 1) / BLK * BLK;
    const int S = Wv + 2 * VL;                      /* row stride: readable positions 0 .. Wv + 1, plus slack */
    const size_t nin = (size_t)NSLOT * cin * S, nhid = (size_t)NSLOT * C * S;
    const size_t nw = (size_t)C * cin * 9 + C + (size_t)C * 9 + 1;
    void *mem = NULL;
    size_t bytes = (nw * VL + nin + nhid + BLK) * sizeof(float);
    if (posix_memalign(&mem, 64, bytes) != 0) return -1;
    memset(mem, 0, bytes);
    vf *w1v = (vf *)mem, *b1v = w1v + (size_t)C * cin * 9, *w2v = b1v + C, *b2v = w2v + (size_t)C * 9;
    float *ins = (float *)(b2v + 1), *hid = ins + nin, *tmp = hid + nhid;
    for (size_t i = 0; i < (size_t)C * cin * 9; i++) w1v[i] = splat_SUFFIX(w1[i]);
    for (int i = 0; i < C; i++) b1v[i] = splat_SUFFIX(b1[i]);
    for (size_t i = 0; i < (size_t)C * 9; i++) w2v[i] = splat_SUFFIX(w2[i]);
    b2v[0] = splat_SUFFIX(b2);
    int in_tag[NSLOT], hid_tag[NSLOT];
    for (int s = 0; s < NSLOT; s++) { in_tag[s] = -1; hid_tag[s] = -1; }

    for (int r = r0; r < r1; r++) {
        const int hneed[3] = {refl(r - 1, H), r, refl(r + 1, H)};
        const float *hp[3];
        for (int k = 0; k < 3; k++) {
            int q = hneed[k], slot = -1;
            for (int s = 0; s < NSLOT; s++) if (hid_tag[s] == q) slot = s;
            if (slot < 0) {                                   /* compute hidden row q into a slot not needed now */
                for (int s = 0; s < NSLOT && slot < 0; s++)
                    if (hid_tag[s] != hneed[0] && hid_tag[s] != hneed[1] && hid_tag[s] != hneed[2]) slot = s;
                const int ineed[3] = {refl(q - 1, H), q, refl(q + 1, H)};
                const float *ip[3];
                for (int m = 0; m < 3; m++) {
                    int iq = ineed[m], is = -1;
                    for (int s = 0; s < NSLOT; s++) if (in_tag[s] == iq) is = s;
                    if (is < 0) {
                        for (int s = 0; s < NSLOT && is < 0; s++)
                            if (in_tag[s] != ineed[0] && in_tag[s] != ineed[1] && in_tag[s] != ineed[2]) is = s;
                        fill_input_SUFFIX(ins + (size_t)is * cin * S, x, cin, H, W, S, iq);
                        in_tag[is] = iq;
                    }
                    ip[m] = ins + (size_t)is * cin * S;
                }
                float *dst = hid + (size_t)slot * C * S;
                int g0 = 0;
                for (; g0 + 4 <= C; g0 += 4) hidden_group_SUFFIX(dst, ip, cin, S, W, 4, 2, g0, w1v, b1v);
                switch (C - g0) {
                    case 3: hidden_group_SUFFIX(dst, ip, cin, S, W, 3, 2, g0, w1v, b1v); break;
                    case 2: hidden_group_SUFFIX(dst, ip, cin, S, W, 2, 4, g0, w1v, b1v); break;
                    case 1: hidden_group_SUFFIX(dst, ip, cin, S, W, 1, 8, g0, w1v, b1v); break;
                    default: break;
                }
                for (int c = 0; c < C; c++) {                 /* reflection padding of the hidden row */
                    float *h = dst + (size_t)c * S;
                    h[0] = h[2];
                    h[W + 1] = h[W - 1];
                }
                hid_tag[slot] = q;
            }
            hp[k] = hid + (size_t)slot * C * S;
        }
        float *orow = out + (size_t)r * W;
        for (int j = 0; j < W; j += OBLK) {
            vf a0 = b2v[0], a1 = b2v[0], a2 = b2v[0], a3 = b2v[0];
            vf c0 = splat_SUFFIX(0.0f), c1 = c0, c2 = c0, c3 = c0;
            for (int c = 0; c < C; c++) {
                for (int dy = 0; dy < 3; dy++) {
                    const float *src = hp[dy] + (size_t)c * S + j;
                    for (int dx = 0; dx < 3; dx++) {
                        vf w = w2v[(c * 3 + dy) * 3 + dx];
                        IN_REGISTER(w);
                        if (((dy * 3 + dx) & 1) == 0) {   /* two sets of accumulators: 8 FMA chains */
                            a0 += w * ldu_SUFFIX(src + dx);
                            a1 += w * ldu_SUFFIX(src + dx + VL);
                            a2 += w * ldu_SUFFIX(src + dx + 2 * VL);
                            a3 += w * ldu_SUFFIX(src + dx + 3 * VL);
                        } else {
                            c0 += w * ldu_SUFFIX(src + dx);
                            c1 += w * ldu_SUFFIX(src + dx + VL);
                            c2 += w * ldu_SUFFIX(src + dx + 2 * VL);
                            c3 += w * ldu_SUFFIX(src + dx + 3 * VL);
                        }
                    }
                }
            }
            vf o0 = vtanh_SUFFIX(a0 + c0), o1 = vtanh_SUFFIX(a1 + c1);
            vf o2 = vtanh_SUFFIX(a2 + c2), o3 = vtanh_SUFFIX(a3 + c3);
            if (j + OBLK <= W) {
                stu_SUFFIX(orow + j, o0); stu_SUFFIX(orow + j + VL, o1);
                stu_SUFFIX(orow + j + 2 * VL, o2); stu_SUFFIX(orow + j + 3 * VL, o3);
            } else {
                stu_SUFFIX(tmp, o0); stu_SUFFIX(tmp + VL, o1);
                stu_SUFFIX(tmp + 2 * VL, o2); stu_SUFFIX(tmp + 3 * VL, o3);
                memcpy(orow + j, tmp, sizeof(float) * (size_t)(W - j));
            }
        }
    }
    free(mem);
    return 0;
}
"""

_C_FOOTER = r"""
#if defined(__x86_64__) || defined(__i386__)
#define HAVE_AVX2_BUILD 1
#endif

int mmdr_best_isa(void)
{
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/* One image (x: cin x H x W, out: H x W), output rows [r0, r1). Returns 0, or -1 when out of memory. */
int mmdr_student_rows(const float *x, float *out, int cin, int H, int W, int C, const float *w1, const float *b1,
                      const float *w2, float b2, int r0, int r1, int isa)
{
#ifdef HAVE_AVX2_BUILD
    if (isa == 1) return student_rows_avx2(x, out, cin, H, W, C, w1, b1, w2, b2, r0, r1);
#endif
    return student_rows_generic(x, out, cin, H, W, C, w1, b1, w2, b2, r0, r1);
}

/* 1 when built with OpenMP: mmdr_student_batch then runs on the OpenMP runtime torch already loaded (same soname,
   so the same thread team), whose threads are awake right after any torch op instead of competing with ours. */
int mmdr_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* A batch (x: n x cin x H x W, out: n x H x W) cut into tiles of `rows` output rows, spread over `nthreads`
   threads (dynamic schedule: a thread slowed by another process does not hold the others up). */
int mmdr_student_batch(const float *x, float *out, int n, int cin, int H, int W, int C, const float *w1,
                       const float *b1, const float *w2, float b2, int rows, int nthreads, int isa)
{
    const int tiles = (H + rows - 1) / rows;
    const long total = (long)n * tiles;
    int err = 0;
#ifdef MADV_HUGEPAGE
    {   /* a large output is usually fresh memory: ask for 2 MB pages, 512x fewer page faults while writing it */
        const uintptr_t lo = ((uintptr_t)out + (1u << 21) - 1) & ~(uintptr_t)((1u << 21) - 1);
        const uintptr_t hi = ((uintptr_t)(out + (size_t)n * H * W)) & ~(uintptr_t)((1u << 21) - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);   /* advice only: errors are harmless */
    }
#endif
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) reduction(|:err) if(nthreads > 1 && total > 1)
#endif
    for (long t = 0; t < total; t++) {
        const int i = (int)(t / tiles), r0 = (int)(t % tiles) * rows;
        const int r1 = r0 + rows < H ? r0 + rows : H;
        err |= mmdr_student_rows(x + (size_t)i * cin * H * W, out + (size_t)i * H * W, cin, H, W, C,
                                 w1, b1, w2, b2, r0, r1, isa);
    }
    return err;
}
"""


def _c_source() -> str:
    avx2 = _C_BODY.replace("SUFFIX", "avx2")
    generic = _C_BODY.replace("SUFFIX", "generic")
    return "".join([
        _C_HEADER,
        "#define IN_REGISTER(v) ((void)0)\n",
        generic,
        "\n#if defined(__x86_64__) || defined(__i386__)\n#pragma GCC push_options\n#pragma GCC target(\"avx2,fma\")\n",
        "#undef IN_REGISTER\n#define IN_REGISTER(v) __asm__(\"\" : \"+x\"(v))\n",
        avx2,
        "#pragma GCC pop_options\n#endif\n",
        _C_FOOTER,
    ])


# ---------------------------------------------------------------------------------------------------------------
# Building and loading the kernel
# ---------------------------------------------------------------------------------------------------------------
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_lib_openmp = False  # the kernel runs its threads on torch's OpenMP runtime (see native.load_library)
_warned = False
kernel_dir = native.kernel_dir


def build_kernel(force: bool = False, openmp: bool = True) -> Path:
    """Compile the kernel into the cache (atomically) and return the shared library's path (see
    :func:`mmdrfuse.native.build_library`: with OpenMP when possible, else without and the tiles go to Python
    threads). Raises ``RuntimeError`` when no C compiler is found or compilation fails."""
    return native.build_library("mmdrfuse_student", _c_source(), force=force, openmp=openmp)


def _load() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (reason in ``_lib_error``) when it is disabled or cannot be built."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    with _lock:
        if _lib is not None or _lib_error is not None:
            return _lib
        if native.disabled():
            _lib_error = f"disabled by {FAST_ENV}=0"
            return None
        try:
            try:
                lib, own_runtime = native.load_library(build_kernel())
            except OSError:  # a damaged cached library: rebuild once
                lib, own_runtime = native.load_library(build_kernel(force=True))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _lib_error = str(exc) or type(exc).__name__
            return None
        p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        lib.mmdr_student_rows.argtypes = [p, p, i, i, i, i, p, p, p, f, i, i, i]
        lib.mmdr_student_rows.restype = i
        lib.mmdr_best_isa.argtypes = []
        lib.mmdr_best_isa.restype = i
        lib.mmdr_openmp.argtypes = []
        lib.mmdr_openmp.restype = i
        lib.mmdr_student_batch.argtypes = [p, p, i, i, i, i, i, p, p, p, f, i, i, i]
        lib.mmdr_student_batch.restype = i
        _lib = lib
        global _lib_openmp
        _lib_openmp = bool(lib.mmdr_openmp()) and not own_runtime
    return _lib


def kernel_available() -> bool:
    """True when the C kernel is built and loaded (compiling it on first use)."""
    return _load() is not None


def kernel_status() -> str:
    """One line for logs and benchmarks: which path the student will take and why."""
    lib = _load()
    if lib is None:
        return f"plain forward (fast kernel unavailable: {_lib_error.splitlines()[0]})"
    return ("fused C kernel (" + ("avx2+fma" if lib.mmdr_best_isa() == 1 else "portable")
            + (", OpenMP threads" if _lib_openmp else ", Python threads") + ")")


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"mmdrfuse.fast: using the plain forward: {_lib_error.splitlines()[0]}", RuntimeWarning,
                      stacklevel=3)


# ---------------------------------------------------------------------------------------------------------------
# The fast student
# ---------------------------------------------------------------------------------------------------------------
class FastStudent:
    """Callable computing ``student(x)`` with the fused kernel (float32, CPU, inference only).

    Weights are read from ``student`` at every call, so later changes to the model are seen. Anything the kernel
    does not cover (other dtypes or devices, autograd, H or W < 2, a kernel that failed to build) goes to
    ``student.forward``, so the result is always the student's output.

    Args:
        student: a :class:`~mmdrfuse.models.Student` (any hidden width).
        threads: worker threads (default: ``torch.get_num_threads()`` at call time).
        rows_per_task: rows per work item (default: one per image on one thread, else ~4 tiles per thread and
            image, at least 16 rows; inputs under 2^17 pixels per thread use fewer threads).
        isa: force the kernel build, 0 = portable, 1 = AVX2+FMA (default: the best this CPU runs).
    """

    def __init__(self, student: Student, threads: int | None = None, rows_per_task: int | None = None,
                 isa: int | None = None):
        if not isinstance(student, Student):
            raise TypeError(f"FastStudent needs a Student, got {type(student).__name__}")
        self.student = student
        self.threads = threads
        self.rows_per_task = rows_per_task
        self.isa = isa
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    # -- applicability -------------------------------------------------------------------------------------
    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.student
        return s.conv1[1].weight, s.conv1[1].bias, s.conv2[1].weight, s.conv2[1].bias

    def supports(self, x: torch.Tensor) -> bool:
        """Whether ``x`` takes the fast path (else the call falls back to the plain forward)."""
        params = self._params()
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.dtype == torch.float32 and x.device.type == "cpu"):
            return False
        if x.shape[1] != self.student.config.in_channels or x.shape[-2] < 2 or x.shape[-1] < 2 or x.numel() == 0:
            return False
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params):
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return False
        if x.is_sparse or x.is_quantized:
            return False
        return _load() is not None

    # -- call --------------------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.supports(x):
            if _lib_error is not None and isinstance(x, torch.Tensor) and x.dtype == torch.float32:
                _warn_once()
            return self.student(x)
        return self._run(x)

    def _executor(self, n: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_size != n:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="mmdrfuse-fast")
            self._pool_size = n
        return self._pool

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        lib = _load()
        isa = lib.mmdr_best_isa() if self.isa is None else min(int(self.isa), lib.mmdr_best_isa())
        w1, b1, w2, b2 = (p.detach().contiguous() for p in self._params())
        x = x.detach().contiguous()
        n, cin, h, w = x.shape
        c = w1.shape[0]
        out = torch.empty((n, 1, h, w), dtype=torch.float32)
        threads = max(1, self.threads or torch.get_num_threads())
        if self.threads is None:  # small inputs: thread hand-off costs more than it saves
            threads = max(1, min(threads, n * h * w // _MIN_PIXELS_PER_THREAD))
        xp, op, isz = x.data_ptr(), out.data_ptr(), cin * h * w * 4
        args = (w1.data_ptr(), b1.data_ptr(), w2.data_ptr(), ctypes.c_float(float(b2.item())))
        if _lib_openmp:  # one call; tiles handed out dynamically by torch's OpenMP threads
            tiles = 1 if threads == 1 else -(-2 * threads // n)  # ~2 tiles per thread when the batch is small
            rows = self.rows_per_task or max(16, -(-h // tiles))
            if lib.mmdr_student_batch(xp, op, n, cin, h, w, c, *args, rows, threads, isa):
                raise MemoryError("mmdrfuse.fast: the kernel could not allocate its row buffers")
            return out
        rows = self.rows_per_task or (h if threads == 1 else max(16, -(-h // (4 * threads))))
        tasks = [(i, r0, min(h, r0 + rows)) for i in range(n) for r0 in range(0, h, rows)]

        def job(task: tuple[int, int, int]) -> int:
            i, r0, r1 = task
            return lib.mmdr_student_rows(xp + i * isz, op + i * h * w * 4, cin, h, w, c, *args, r0, r1, isa)

        if threads == 1 or len(tasks) == 1:
            codes = [job(t) for t in tasks]
        else:
            codes = list(self._executor(min(threads, len(tasks))).map(job, tasks))
        if any(codes):
            raise MemoryError("mmdrfuse.fast: the kernel could not allocate its row buffers")
        return out

    def close(self) -> None:
        """Stop the worker threads (they are also stopped at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def accelerate(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fastest inference callable for ``model`` (put in eval mode): ``f(x) == model(x)``.

    A :class:`~mmdrfuse.models.Student` gets the fused kernel (:class:`FastStudent`, run under ``torch.no_grad()``)
    for float32 CPU input and its plain forward otherwise. Any other model (e.g. the teacher) is returned as is,
    so ``accelerate(m) is m`` tells that no fast path applies.
    """
    model.eval()
    if not isinstance(model, Student):
        return model
    fast = FastStudent(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fast(x)

    run.fast = fast  # type: ignore[attr-defined]
    return run
