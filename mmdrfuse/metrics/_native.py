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
  :mod:`.reading`.

Determinism: rows are cut into fixed bands whatever the thread count, every band writes per-row sums, and the rows
are added in order, so results do not depend on the number of threads (or on which thread ran a band). exp and
atan2 are branch-free polynomial versions (~1 ulp), so their loops vectorise. Three builds are compiled: a portable
one and, on x86-64 with GCC, one for AVX2 + FMA and one for AVX-512 + FMA, the best the CPU has picked at run time;
they differ by rounding only (~1e-16 relative). Against the torch path (used without a compiler, with
``MMDRFUSE_FAST=0``, for float32, CUDA or autograd) the values agree to ~1e-15 relative (Nabf ~1e-13: its 1 - sqrt(Q)
cancels digits); tested to 1e-10.

Threads: OpenMP on torch's thread team (``torch.get_num_threads()``), or fewer for the calling Python thread inside
:func:`thread_limit` (``evaluate_folder`` runs one pair per worker thread, each kernel single-threaded). Built and
cached like the student's kernel (:mod:`mmdrfuse.native`); the C source is below.
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

_C_HEADER = r"""#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef uint64_t v4u __attribute__((vector_size(32)));

#if defined(__GNUC__) && !defined(__clang__)
/* selects if-converted, so the per-pixel loops vectorise; values are unchanged (it only concerns FP exceptions) */
#pragma GCC optimize ("no-trapping-math")
#endif

#define EPS 1e-10
#define SIGMA_NSQ 2.0
#define BIG 0x1p500
#define NL 4            /* lanes of the partial sums: sums are taken in NL interleaved lanes, then lane 0..NL-1 */
#define BAND 8          /* output rows per parallel task */
#define RS 192          /* row stride of VIF's product bands: VIF's column strips are at most RS - 16 wide */

static inline int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline double bits2d(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
static inline uint64_t d2bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
static inline __attribute__((always_inline)) v4d vld(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void vst(double *p, v4d v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) v4d vbc(double x) { return (v4d){x, x, x, x}; }
static inline double lanesum(const double *a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* exp(x), x clamped to [-708, 708]: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, degree-13 Taylor polynomial
   (truncation < 1e-17), 2^k from the bits. Branch-free, so loops calling it vectorise; ~1 ulp. */
static inline double exp_(double x)
{
    const double shift = 6755399441055744.0;           /* 1.5 * 2^52: adding it rounds to an integer */
    x = x < -708.0 ? -708.0 : x;
    x = x > 708.0 ? 708.0 : x;
    const double kd = x * 1.4426950408889634 + shift;
    const double k = kd - shift;
    const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    /* the degree-13 Taylor polynomial by Estrin's scheme (short dependency chains: exps of a loop overlap) */
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double q0 = 1.0 + r, q1 = 0.5 + r * (1.0 / 6.0), q2 = 1.0 / 24.0 + r * (1.0 / 120.0),
                 q3 = 1.0 / 720.0 + r * (1.0 / 5040.0), q4 = 1.0 / 40320.0 + r * (1.0 / 362880.0),
                 q5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0), q6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
    const double s0 = q0 + r2 * q1, s1 = q2 + r2 * q3, s2 = q4 + r2 * q5;
    const double p = (s0 + r4 * s1) + r8 * (s2 + r4 * q6);
    return p * bits2d((d2bits(kd) + 1023u) << 52);
}

/* |atan2(y, x)| in [0, pi] (Cephes atan's rational approximation on |z| <= 0.66, ~1 ulp); 0 for y = x = 0.
   Branch-free. */
static inline double absatan2_(double y, double x)
{
    const double ay = fabs(y), ax = fabs(x);
    const int swap = ay > ax;
    const double mx = swap ? ay : ax, mn = swap ? ax : ay;
    const int red = mn > 0.66 * mx;                       /* atan(t) = pi/4 + atan((t - 1) / (t + 1)) */
    const double num = red ? mn - mx : mn, den0 = red ? mn + mx : mx;
    const double den = den0 > 0.0 ? den0 : 1.0;
    const double z = num / den, zz = z * z;
    const double z4 = zz * zz, z8 = z4 * z4;   /* P(u), Q(u) at u = z^2 by Estrin's scheme */
    const double p = z4 * (-8.750608600031904122785e-1 * z4
                           + (-1.615753718733365076637e1 * zz - 7.500855792314704667340e1))
                     + (-1.228866684490136173410e2 * zz - 6.485021904942025371773e1);
    const double q = z8 * (zz + 2.485846490142306297962e1)
                     + z4 * (1.650270098316988542046e2 * zz + 4.328810604912902668951e2)
                     + (4.853903996359136964868e2 * zz + 1.945506571482613964425e2);
    double r = z * (zz * p / q) + z;
    r = red ? 7.85398163397448309616e-1 + (r + 3.061616997868382943065e-17) : r;
    r = swap ? (6.123233995736765886130e-17 - r) + 1.57079632679489661923 : r;
    r = x < 0.0 ? (1.2246467991473531772e-16 - r) + 3.14159265358979323846 : r;
    return r;
}

/* absatan2_ for two pairs at once, with one division for both reductions and one for both rational functions
   (the divider is the bottleneck of the gradient kernel); the same approximation, a few ulp apart */
static inline void absatan2x2_(double yA, double xA, double yB, double xB, double *ra, double *rb)
{
    const double ayA = fabs(yA), axA = fabs(xA), ayB = fabs(yB), axB = fabs(xB);
    const int swA = ayA > axA, swB = ayB > axB;
    const double mxA = swA ? ayA : axA, mnA = swA ? axA : ayA, mxB = swB ? ayB : axB, mnB = swB ? axB : ayB;
    const int rdA = mnA > 0.66 * mxA, rdB = mnB > 0.66 * mxB;
    const double nA = rdA ? mnA - mxA : mnA, d0A = rdA ? mnA + mxA : mxA, dA = d0A > 0.0 ? d0A : 1.0;
    const double nB = rdB ? mnB - mxB : mnB, d0B = rdB ? mnB + mxB : mxB, dB = d0B > 0.0 ? d0B : 1.0;
    const double inv = 1.0 / (dA * dB);
    const double zA = nA * dB * inv, zB = nB * dA * inv;
    const double zzA = zA * zA, zzB = zB * zB;
#define ATAN_PQ(zz, p, q)                                                                                         \
    const double z4##p = zz * zz, z8##p = z4##p * z4##p;                                                        \
    const double p = z4##p * (-8.750608600031904122785e-1 * z4##p                                               \
                              + (-1.615753718733365076637e1 * zz - 7.500855792314704667340e1))                  \
                     + (-1.228866684490136173410e2 * zz - 6.485021904942025371773e1);                           \
    const double q = z8##p * (zz + 2.485846490142306297962e1)                                                   \
                     + z4##p * (1.650270098316988542046e2 * zz + 4.328810604912902668951e2)                      \
                     + (4.853903996359136964868e2 * zz + 1.945506571482613964425e2);
    ATAN_PQ(zzA, pA, qA)
    ATAN_PQ(zzB, pB, qB)
#undef ATAN_PQ
    const double iq = 1.0 / (qA * qB);
    double r = zA * (zzA * pA * qB * iq) + zA, t = zB * (zzB * pB * qA * iq) + zB;
    r = rdA ? 7.85398163397448309616e-1 + (r + 3.061616997868382943065e-17) : r;
    t = rdB ? 7.85398163397448309616e-1 + (t + 3.061616997868382943065e-17) : t;
    r = swA ? (6.123233995736765886130e-17 - r) + 1.57079632679489661923 : r;
    t = swB ? (6.123233995736765886130e-17 - t) + 1.57079632679489661923 : t;
    *ra = xA < 0.0 ? (1.2246467991473531772e-16 - r) + 3.14159265358979323846 : r;
    *rb = xB < 0.0 ? (1.2246467991473531772e-16 - t) + 3.14159265358979323846 : t;
}

static inline double sgn(double v) { return v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : v); }   /* torch.sign (NaN kept) */
static inline long mirror(long i, long n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }
static inline double at0(const double *x, long H, long W, long i, long j)
{
    return (i < 0 || i >= H || j < 0 || j >= W) ? 0.0 : x[i * W + j];
}

/* running product of factors >= 1, renormalised to [1, 2) after every step: sum of log(x_i) = log(p) + e ln 2 */
static inline void lp_mul(double *p, int64_t *e, double x)
{
    const uint64_t u = d2bits(*p * x);
    *e += (int64_t)(u >> 52) - 1023;
    *p = bits2d((u & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
}
"""

_C_BODY = r"""/* ------------------------------------------------------------------------------------ building blocks */
/* VW-wide vectors of this build (4 doubles, or 8 in the AVX-512 build); per element the same operations */
typedef double vd_SUFFIX __attribute__((vector_size(8 * VW)));
static inline __attribute__((always_inline)) vd_SUFFIX ld_SUFFIX(const double *p)
{
    vd_SUFFIX v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void st_SUFFIX(double *p, vd_SUFFIX v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) vd_SUFFIX bc_SUFFIX(double x) { return (vd_SUFFIX){} + x; }

/* out[j] = sum_k w[k] * rows[k][j] (j < len), k in order: acc = w[0] r[0]; acc += w[k] r[k]. Explicit 4 x VW-wide
   accumulators (independent chains, one weight broadcast per tap); every element gets the same sequence of
   operations in the vector body and in the tail, so results do not depend on the vector width. */
static inline __attribute__((always_inline)) void wsum_SUFFIX(const double *const *rows, const double *w, int n,
                                                              double *restrict out, long len)
{
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = rows[0] + j;
        vd_SUFFIX wk = bc_SUFFIX(w[0]);
        vd_SUFFIX a0 = wk * ld_SUFFIX(r), a1 = wk * ld_SUFFIX(r + VW), a2 = wk * ld_SUFFIX(r + 2 * VW),
                  a3 = wk * ld_SUFFIX(r + 3 * VW);
#pragma GCC unroll 17
        for (int k = 1; k < n; k++) {
            r = rows[k] + j;
            wk = bc_SUFFIX(w[k]);
            a0 += wk * ld_SUFFIX(r);
            a1 += wk * ld_SUFFIX(r + VW);
            a2 += wk * ld_SUFFIX(r + 2 * VW);
            a3 += wk * ld_SUFFIX(r + 3 * VW);
        }
        st_SUFFIX(out + j, a0);
        st_SUFFIX(out + j + VW, a1);
        st_SUFFIX(out + j + 2 * VW, a2);
        st_SUFFIX(out + j + 3 * VW, a3);
    }
    for (; j < len; j++) {
        double acc = w[0] * rows[0][j];
        for (int k = 1; k < n; k++) acc += w[k] * rows[k][j];
        out[j] = acc;
    }
}

/* the same for a symmetric window (w[k] = w[n-1-k], n odd): acc = w[c] r[c]; acc += w[k] (r[k] + r[n-1-k]) for
   k < c = n/2: half the multiplications, and the additions go to other execution units than the multiply-adds */
static inline __attribute__((always_inline)) void wsym_SUFFIX(const double *const *rows, const double *w, int n,
                                                              int centre, double shift, double *restrict out, long len)
{
    const int c = n / 2;
    const vd_SUFFIX sh = bc_SUFFIX(shift);
    long j = 0;
#define LDS(ptr) (centre ? ld_SUFFIX(ptr) - sh : ld_SUFFIX(ptr))
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = rows[c] + j;
        vd_SUFFIX wk = bc_SUFFIX(w[c]);
        vd_SUFFIX a0 = wk * LDS(r), a1 = wk * LDS(r + VW), a2 = wk * LDS(r + 2 * VW), a3 = wk * LDS(r + 3 * VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            const double *p = rows[k] + j, *q = rows[n - 1 - k] + j;
            wk = bc_SUFFIX(w[k]);
            a0 += wk * (LDS(p) + LDS(q));
            a1 += wk * (LDS(p + VW) + LDS(q + VW));
            a2 += wk * (LDS(p + 2 * VW) + LDS(q + 2 * VW));
            a3 += wk * (LDS(p + 3 * VW) + LDS(q + 3 * VW));
        }
        st_SUFFIX(out + j, a0);
        st_SUFFIX(out + j + VW, a1);
        st_SUFFIX(out + j + 2 * VW, a2);
        st_SUFFIX(out + j + 3 * VW, a3);
    }
#undef LDS
#define LDS1(x) (centre ? (x) - shift : (x))
    for (; j < len; j++) {
        double acc = w[c] * LDS1(rows[c][j]);
        for (int k = 0; k < c; k++) acc += w[k] * (LDS1(rows[k][j]) + LDS1(rows[n - 1 - k][j]));
        out[j] = acc;
    }
#undef LDS1
}

/* two rows of the symmetric vertical pass at once: rows k = 0..n at p + k RS (a compile-time stride: every row
   address is one register plus a constant), out0 from rows 0..n-1, out1 from rows 1..n, each row loaded once for
   both; every element the same operations as wsym's */
static inline __attribute__((always_inline)) void vsym2_SUFFIX(const double *p, const double *w, int n,
                                                               double *restrict out0, double *restrict out1,
                                                               long len)
{
    const int c = n / 2;
    vd_SUFFIX wv[9];
    for (int k = 0; k <= c; k++) wv[k] = bc_SUFFIX(w[k]);
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        const double *q = p + j;
        vd_SUFFIX a0 = wv[c] * ld_SUFFIX(q + c * RS), a1 = wv[c] * ld_SUFFIX(q + c * RS + VW);
        vd_SUFFIX b0 = wv[c] * ld_SUFFIX(q + (c + 1) * RS), b1 = wv[c] * ld_SUFFIX(q + (c + 1) * RS + VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            a0 += wv[k] * (ld_SUFFIX(q + k * RS) + ld_SUFFIX(q + (n - 1 - k) * RS));
            a1 += wv[k] * (ld_SUFFIX(q + k * RS + VW) + ld_SUFFIX(q + (n - 1 - k) * RS + VW));
            b0 += wv[k] * (ld_SUFFIX(q + (k + 1) * RS) + ld_SUFFIX(q + (n - k) * RS));
            b1 += wv[k] * (ld_SUFFIX(q + (k + 1) * RS + VW) + ld_SUFFIX(q + (n - k) * RS + VW));
        }
        st_SUFFIX(out0 + j, a0);
        st_SUFFIX(out0 + j + VW, a1);
        st_SUFFIX(out1 + j, b0);
        st_SUFFIX(out1 + j + VW, b1);
    }
    for (; j < len; j++) {
        const double *q = p + j;
        double acc0 = w[c] * q[c * RS], acc1 = w[c] * q[(c + 1) * RS];
        for (int k = 0; k < c; k++) {
            acc0 += w[k] * (q[k * RS] + q[(n - 1 - k) * RS]);
            acc1 += w[k] * (q[(k + 1) * RS] + q[(n - k) * RS]);
        }
        out0[j] = acc0;
        out1[j] = acc1;
    }
}

/* the symmetric pass along a row: out[j] = w[c] t[j + c] + sum_{k < c} w[k] (t[j + k] + t[j + n - 1 - k]), the same
   operations as wsym with rows[k] = t + k; with the offsets explicit, the four accumulators share their loads */
static inline __attribute__((always_inline)) void hsym_SUFFIX(const double *t, const double *w, int n,
                                                              double *restrict out, long len)
{
    const int c = n / 2;
    vd_SUFFIX wv[9];
    for (int k = 0; k <= c; k++) wv[k] = bc_SUFFIX(w[k]);
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = t + j;
        vd_SUFFIX a0 = wv[c] * ld_SUFFIX(r + c), a1 = wv[c] * ld_SUFFIX(r + c + VW),
                  a2 = wv[c] * ld_SUFFIX(r + c + 2 * VW), a3 = wv[c] * ld_SUFFIX(r + c + 3 * VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            a0 += wv[k] * (ld_SUFFIX(r + k) + ld_SUFFIX(r + n - 1 - k));
            a1 += wv[k] * (ld_SUFFIX(r + k + VW) + ld_SUFFIX(r + n - 1 - k + VW));
            a2 += wv[k] * (ld_SUFFIX(r + k + 2 * VW) + ld_SUFFIX(r + n - 1 - k + 2 * VW));
            a3 += wv[k] * (ld_SUFFIX(r + k + 3 * VW) + ld_SUFFIX(r + n - 1 - k + 3 * VW));
        }
        st_SUFFIX(out + j, a0);
        st_SUFFIX(out + j + VW, a1);
        st_SUFFIX(out + j + 2 * VW, a2);
        st_SUFFIX(out + j + 3 * VW, a3);
    }
    for (; j < len; j++) {
        double acc = w[c] * t[j + c];
        for (int k = 0; k < c; k++) acc += w[k] * (t[j + k] + t[j + n - 1 - k]);
        out[j] = acc;
    }
}

static int symmetric_SUFFIX(const double *w, int n)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    return sym;
}

/* the vertical pass for two output rows (rows at p + k RS, k = 0..n) and the horizontal pass, for VIF's windows
   (symmetric, at most 17 taps) */
static void vpass2_SUFFIX(const double *p, const double *w, int n, double *restrict out0, double *restrict out1,
                          long len)
{
    switch (n) {
    case 17: vsym2_SUFFIX(p, w, 17, out0, out1, len); return;
    case 9: vsym2_SUFFIX(p, w, 9, out0, out1, len); return;
    case 5: vsym2_SUFFIX(p, w, 5, out0, out1, len); return;
    case 3: vsym2_SUFFIX(p, w, 3, out0, out1, len); return;
    default: vsym2_SUFFIX(p, w, n, out0, out1, len); return;
    }
}

static void hpass_SUFFIX(const double *t, const double *w, int n, double *restrict out, long len)
{
    switch (n) {
    case 17: hsym_SUFFIX(t, w, 17, out, len); return;
    case 9: hsym_SUFFIX(t, w, 9, out, len); return;
    case 5: hsym_SUFFIX(t, w, 5, out, len); return;
    case 3: hsym_SUFFIX(t, w, 3, out, len); return;
    default: hsym_SUFFIX(t, w, n, out, len); return;
    }
}

static void wsum_any_SUFFIX(const double *const *rows, const double *w, int n, double *restrict out, long len)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    if (sym) {
        switch (n) {
        case 17: wsym_SUFFIX(rows, w, 17, 0, 0.0, out, len); return;
        case 9: wsym_SUFFIX(rows, w, 9, 0, 0.0, out, len); return;
        case 5: wsym_SUFFIX(rows, w, 5, 0, 0.0, out, len); return;
        case 3: wsym_SUFFIX(rows, w, 3, 0, 0.0, out, len); return;
        default: wsym_SUFFIX(rows, w, n, 0, 0.0, out, len); return;
        }
    }
    switch (n) {
    case 17: wsum_SUFFIX(rows, w, 17, out, len); break;
    case 9: wsum_SUFFIX(rows, w, 9, out, len); break;
    case 5: wsum_SUFFIX(rows, w, 5, out, len); break;
    case 3: wsum_SUFFIX(rows, w, 3, out, len); break;
    default: wsum_SUFFIX(rows, w, n, out, len); break;
    }
}

/* sum_k w[k] (rows[k][j] - shift) for a symmetric window (centring on the fly), else the plain loop */
static void wsum_shift_SUFFIX(const double *const *rows, const double *w, int n, double shift, double *restrict out,
                              long len)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    if (sym) {
        switch (n) {
        case 9: wsym_SUFFIX(rows, w, 9, 1, shift, out, len); return;
        case 5: wsym_SUFFIX(rows, w, 5, 1, shift, out, len); return;
        case 3: wsym_SUFFIX(rows, w, 3, 1, shift, out, len); return;
        default: wsym_SUFFIX(rows, w, n, 1, shift, out, len); return;
        }
    }
    for (long j = 0; j < len; j++) {
        double acc = w[0] * (rows[0][j] - shift);
        for (int k = 1; k < n; k++) acc += w[k] * (rows[k][j] - shift);
        out[j] = acc;
    }
}

/* x[j] = sqrt(x[j]), j < n: IEEE square roots in vector registers (libm's sqrt cannot be vectorised by the
   compiler without -fno-math-errno); same values as sqrt() */
static void vsqrt_SUFFIX(double *restrict x, long n)
{
    long j = 0;
#if VSQRT_WIDTH == 8
    for (; j + 8 <= n; j += 8) _mm512_storeu_pd(x + j, _mm512_sqrt_pd(_mm512_loadu_pd(x + j)));
#elif VSQRT_WIDTH == 4
    for (; j + 4 <= n; j += 4) _mm256_storeu_pd(x + j, _mm256_sqrt_pd(_mm256_loadu_pd(x + j)));
#elif VSQRT_WIDTH == 2
    for (; j + 2 <= n; j += 2) _mm_storeu_pd(x + j, _mm_sqrt_pd(_mm_loadu_pd(x + j)));
#endif
    for (; j < n; j++) x[j] = sqrt(x[j]);
}

/* out[j] = sum_{k < 7} rows[k][j], added in order: the 7-tap box (exact for integer-valued data) */
static void box7_SUFFIX(const double *const *rows, double *restrict out, long len)
{
    const double *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3], *r4 = rows[4], *r5 = rows[5],
                 *r6 = rows[6];
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        vd_SUFFIX a0 = ld_SUFFIX(r0 + j) + ld_SUFFIX(r1 + j), a1 = ld_SUFFIX(r0 + j + VW) + ld_SUFFIX(r1 + j + VW);
        a0 += ld_SUFFIX(r2 + j); a1 += ld_SUFFIX(r2 + j + VW);
        a0 += ld_SUFFIX(r3 + j); a1 += ld_SUFFIX(r3 + j + VW);
        a0 += ld_SUFFIX(r4 + j); a1 += ld_SUFFIX(r4 + j + VW);
        a0 += ld_SUFFIX(r5 + j); a1 += ld_SUFFIX(r5 + j + VW);
        a0 += ld_SUFFIX(r6 + j); a1 += ld_SUFFIX(r6 + j + VW);
        st_SUFFIX(out + j, a0);
        st_SUFFIX(out + j + VW, a1);
    }
    for (; j < len; j++) out[j] = (((((r0[j] + r1[j]) + r2[j]) + r3[j]) + r4[j]) + r5[j]) + r6[j];
}

/* centred maps of one input row and their products: P = (f, f^2, a, b, a^2, b^2, a f, b f), each w long */
static void products8_SUFFIX(const double *restrict F, const double *restrict A, const double *restrict B, double sf,
                             double sa, double sb, long w, double *restrict p0, double *restrict p1,
                             double *restrict p2, double *restrict p3, double *restrict p4, double *restrict p5,
                             double *restrict p6, double *restrict p7)
{
    for (long j = 0; j < w; j++) {
        const double f = F[j] - sf, a = A[j] - sa, b = B[j] - sb;
        p0[j] = f;
        p1[j] = f * f;
        p2[j] = a;
        p3[j] = b;
        p4[j] = a * a;
        p5[j] = b * b;
        p6[j] = a * f;
        p7[j] = b * f;
    }
}

static void products_SUFFIX(const double *F, const double *A, const double *B, double sf, double sa, double sb, long w,
                            double *P)
{
    products8_SUFFIX(F, A, B, sf, sa, sb, w, P, P + w, P + 2 * w, P + 3 * w, P + 4 * w, P + 5 * w, P + 6 * w,
                     P + 7 * w);
}

static inline void lanes_add_SUFFIX(const double *restrict x, long len, double *restrict acc)
{
    long j = 0;
    for (; j + NL <= len; j += NL)
        for (int l = 0; l < NL; l++) acc[l] += x[j + l];
    for (int l = 0; j < len; j++, l++) acc[l] += x[j];
}

/* ------------------------------------------------------------------------------------------------ VIF */
/* per-pixel factors of VIF's two log terms for both sources from the eight filtered maps m (8 x wo):
   x[0..3] = 1 + g^2 s_r / (s_v + sigma_n^2) for A, B; 1 + s_r / sigma_n^2 for A, B (see vif.py's _terms) */
static void vif_factors_SUFFIX(const double *m, long wo, double *restrict x)
{
    const double *mf = m, *mff = m + wo, *ms0 = m + 2 * wo, *mss0 = m + 4 * wo, *msf0 = m + 6 * wo;
    for (int s = 0; s < 2; s++) {
        const double *ms = ms0 + s * wo, *mss = mss0 + s * wo, *msf = msf0 + s * wo;
        double *xn = x + s * wo, *xd = x + (2 + s) * wo;
        for (long j = 0; j < wo; j++) {
            const double mu_f = mf[j];
            double s_d = mff[j] - mu_f * mu_f;
            s_d = s_d < 0.0 ? 0.0 : s_d;
            const double d_ok = s_d >= EPS ? 1.0 : 0.0;
            const double mu_s = ms[j];
            double s_r = mss[j] - mu_s * mu_s;
            s_r = s_r < 0.0 ? 0.0 : s_r;
            const double s_rd = msf[j] - mu_s * mu_f;
            double g = s_rd / (s_r + EPS);
            double s_v = s_d - g * s_rd;
            s_v = (s_v < EPS ? EPS : s_v) + SIGMA_NSQ;
            g = (g < 0.0 ? 0.0 : g) * d_ok;
            s_r = s_r * (s_r >= EPS ? 1.0 : 0.0);
            xn[j] = 1.0 + g * g * s_r / s_v;
            xd[j] = 1.0 + s_r * (1.0 / SIGMA_NSQ);
        }
    }
}

/* sum of log(x[j]) over j < len for factors x >= 1: running products in 8 lanes (two vectors, j mod 8), each
   renormalised to [1, 2) after every step (exact: only the exponent moves), one log per lane at the end. Falls back
   to one log per factor when a factor is outside [1, 2^1000] (or NaN). */
static double logsum_SUFFIX(const double *restrict x, long len)
{
    const v4d one = {1.0, 1.0, 1.0, 1.0}, top = {0x1p1000, 0x1p1000, 0x1p1000, 0x1p1000};
    const v4u mant = {0x000FFFFFFFFFFFFFull, 0x000FFFFFFFFFFFFFull, 0x000FFFFFFFFFFFFFull, 0x000FFFFFFFFFFFFFull};
    const v4u onebits = {0x3FF0000000000000ull, 0x3FF0000000000000ull, 0x3FF0000000000000ull,
                         0x3FF0000000000000ull};
    v4d p0 = one, p1 = one;
    v4l e0 = {0, 0, 0, 0}, e1 = {0, 0, 0, 0}, ok = {-1, -1, -1, -1};
    long j = 0;
    for (; j + 8 <= len; j += 8) {
        const v4d v0 = vld(x + j), v1 = vld(x + j + 4);
        ok &= (v0 >= one) & (v0 <= top) & (v1 >= one) & (v1 <= top);
        const v4u u0 = (v4u)(p0 * v0), u1 = (v4u)(p1 * v1);
        e0 += (v4l)(u0 >> 52) - 1023;
        e1 += (v4l)(u1 >> 52) - 1023;
        p0 = (v4d)((u0 & mant) | onebits);
        p1 = (v4d)((u1 & mant) | onebits);
    }
    double pl[8];
    int64_t el[8];
    memcpy(pl, &p0, sizeof p0);
    memcpy(pl + 4, &p1, sizeof p1);
    memcpy(el, &e0, sizeof e0);
    memcpy(el + 4, &e1, sizeof e1);
    long bad = !(ok[0] & ok[1] & ok[2] & ok[3]);
    for (int l = 0; j < len; j++, l++) {
        const double v = x[j];
        bad |= !((v >= 1.0) & (v <= 0x1p1000));
        const uint64_t u = d2bits(pl[l] * v);
        el[l] += (int64_t)(u >> 52) - 1023;
        pl[l] = bits2d((u & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
    }
    if (bad) {
        double acc = 0.0;
        for (j = 0; j < len; j++) acc += log(x[j]);
        return acc;
    }
    double out = 0.0;
    for (int l = 0; l < 8; l++) out += log(pl[l]) + (double)el[l] * M_LN2;
    return out;
}

/* one centred product map (0..7: f, f^2, a, b, a^2, b^2, a f, b f) of one input row */
static void product_map_SUFFIX(int c, const double *restrict F, const double *restrict A, const double *restrict B,
                               double sf, double sa, double sb, long w, double *restrict p)
{
    switch (c) {
    case 0: for (long j = 0; j < w; j++) p[j] = F[j] - sf; break;
    case 1: for (long j = 0; j < w; j++) { const double f = F[j] - sf; p[j] = f * f; } break;
    case 2: for (long j = 0; j < w; j++) p[j] = A[j] - sa; break;
    case 3: for (long j = 0; j < w; j++) p[j] = B[j] - sb; break;
    case 4: for (long j = 0; j < w; j++) { const double a = A[j] - sa; p[j] = a * a; } break;
    case 5: for (long j = 0; j < w; j++) { const double b = B[j] - sb; p[j] = b * b; } break;
    case 6: for (long j = 0; j < w; j++) p[j] = (A[j] - sa) * (F[j] - sf); break;
    default: for (long j = 0; j < w; j++) p[j] = (B[j] - sb) * (F[j] - sf); break;
    }
}

/* VIF terms of output rows [r0, r1) (r1 - r0 <= VBAND) of one scale: maps F, A, B (h x w, row stride `stride`)
   minus their shifts, window win (n <= 17 taps). rows4[r] = (num A, num B, den A, den B). The output columns go in
   strips of at most sw_max <= RS - 16 and the eight product maps one at a time: a map's band of product rows
   (stride RS) is formed once, then filtered down two output rows at a time and along the rows, each element the
   same operations whichever way; a row's sum is the sum of its strips' in order. P: (VBAND + 16) x RS, t: 2 RS,
   M: VBAND x 8 x sw, x: 4 x sw. */
static void vif_band_SUFFIX(const double *F, const double *A, const double *B, long stride, long w, double sf,
                            double sa, double sb, const double *win, int n, long r0, long r1, long sw_max,
                            double *P, double *t, double *M, double *x, double *rows4)
{
    const long wo = w - n + 1;
    const int sym = symmetric_SUFFIX(win, n);
    const double *rp[17];
    for (long r = r0; r < r1; r++)
        for (int q = 0; q < 4; q++) rows4[r * 4 + q] = 0.0;
    for (long c0 = 0; c0 < wo; c0 += sw_max) {
        const long sw = wo - c0 < sw_max ? wo - c0 : sw_max, wi = sw + n - 1;
        for (int c = 0; c < 8; c++) {
            for (long y = r0; y < r1 + n - 1; y++)
                product_map_SUFFIX(c, F + y * stride + c0, A + y * stride + c0, B + y * stride + c0, sf, sa, sb, wi,
                                   P + (y - r0) * RS);
            for (long r = r0; r < r1;) {
                const int two = sym && r + 1 < r1;
                const double *p = P + (r - r0) * RS;
                if (two) {
                    vpass2_SUFFIX(p, win, n, t, t + RS, wi);
                } else {
                    for (int k = 0; k < n; k++) rp[k] = p + k * RS;
                    wsum_any_SUFFIX(rp, win, n, t, wi);
                }
                for (int q = 0; q <= two; q++) {
                    double *out = M + ((r + q - r0) * 8 + c) * sw;
                    if (sym) {
                        hpass_SUFFIX(t + q * RS, win, n, out, sw);
                    } else {
                        for (int k = 0; k < n; k++) rp[k] = t + q * RS + k;
                        wsum_any_SUFFIX(rp, win, n, out, sw);
                    }
                }
                r += 1 + two;
            }
        }
        for (long r = r0; r < r1; r++) {
            vif_factors_SUFFIX(M + (r - r0) * 8 * sw, sw, x);
            for (int q = 0; q < 4; q++) rows4[r * 4 + q] += logsum_SUFFIX(x + q * sw, sw);
        }
    }
}

/* next scale: rows [i0, i1) of filter_valid(X - shift, win)[::2, ::2] for X = F, A, B (centred on the fly, as the
   torch path filters the centred stack); out: 3 x h2 x w2. t: 2 w doubles. The column pass at every other position
   reads the even and odd columns of the row pass as two contiguous arrays. */
static void down2_band_SUFFIX(const double *const *X, long stride, long w, const double *shifts, const double *win,
                              int n, long i0, long i1, long h2, long w2, double *out, double *t)
{
    const double *rp[17];
    double *te = t + w, *to = t + w + (w + 1) / 2;
    for (int c = 0; c < 3; c++)
        for (long i = i0; i < i1; i++) {
            for (int k = 0; k < n; k++) rp[k] = X[c] + (2 * i + k) * stride;
            if (shifts[c] != 0.0) wsum_shift_SUFFIX(rp, win, n, shifts[c], t, w);
            else wsum_any_SUFFIX(rp, win, n, t, w);
            for (long j = 0; 2 * j < w; j++) te[j] = t[2 * j];
            for (long j = 0; 2 * j + 1 < w; j++) to[j] = t[2 * j + 1];
            for (int k = 0; k < n; k++) rp[k] = (k % 2 ? to : te) + k / 2;
            wsum_any_SUFFIX(rp, win, n, out + (c * h2 + i) * w2, w2);
        }
}

/* ----------------------------------------------------------------------------------------------- SSIM */
/* SSIM map sums (uniform 7 x 7 window, sample covariance) of output rows [r0, r1): rows2[r] = (A, B).
   Same per-pixel arithmetic as the torch path (ssim.py). ring: 7 x 8 x w, t: 8 x w, m: 8 x wo, x: 2 x wo. */
static void ssim_band_SUFFIX(const double *F, const double *A, const double *B, long w, double sf, double sa,
                             double sb, double c1, double c2, long r0, long r1, double *ring, double *t, double *m,
                             double *x, double *rows2)
{
    const int n = 7;
    const long wo = w - n + 1;
    const double win_n = 49.0, norm = 1.0 / (win_n * (win_n - 1.0)), inv_n = 1.0 / win_n;
    const double *rp[7];
    for (long y = r0; y < r0 + n - 1; y++)
        products_SUFFIX(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % n) * 8 * w);
    for (long r = r0; r < r1; r++) {
        const long y = r + n - 1;
        products_SUFFIX(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % n) * 8 * w);
        for (int c = 0; c < 8; c++) {
            for (int k = 0; k < n; k++) rp[k] = ring + ((r + k) % n) * 8 * w + c * w;
            box7_SUFFIX(rp, t + c * w, w);
            for (int k = 0; k < n; k++) rp[k] = t + c * w + k;
            box7_SUFFIX(rp, m + c * wo, wo);
        }
        const double *s_f = m, *s_ff = m + wo;
        for (int s = 0; s < 2; s++) {
            const double *s_s = m + (2 + s) * wo, *s_ss = m + (4 + s) * wo, *s_sf = m + (6 + s) * wo;
            const double shift_s = s ? sb : sa;
            double *xs = x + s * wo;
            for (long j = 0; j < wo; j++) {
                const double vf = (s_ff[j] * win_n - s_f[j] * s_f[j]) * norm;
                const double vs = (s_ss[j] * win_n - s_s[j] * s_s[j]) * norm;
                const double vsf = (s_sf[j] * win_n - s_s[j] * s_f[j]) * norm;
                const double uf = s_f[j] * inv_n + sf, us = s_s[j] * inv_n + shift_s;
                const double num = (us * uf * 2.0 + c1) * (vsf * 2.0 + c2);
                const double den = (us * us + uf * uf + c1) * (vs + vf + c2);
                xs[j] = num / den;
            }
            double acc[NL] = {0.0, 0.0, 0.0, 0.0};
            lanes_add_SUFFIX(xs, wo, acc);
            rows2[r * 2 + s] = lanesum(acc);
        }
    }
}

/* ------------------------------------------------------------------------------------------- gradients */
/* Qabf and Nabf contributions of the interior pixels j in [1, w-1) of row i (0 < i < h-1): out 4 x w (entries
   1..w-2 written): Q^AB/F numerator (without Tg Ta) and denominator, N^AB/F artifact loss and weight sum. Inside
   the image the Nabf responses are the Qabf ones / 8 (g exactly, orientation rotated by pi/2), so one Sobel pass,
   one strength and one angle difference per source serve both (see gradient.py). kc: the constants.
   Columns go in chunks of GCH through phases over small arrays (tmp: 13 x GCH), each a vectorised loop. */
#define GCH 128
static void grad_interior_SUFFIX(const double *const *X, long w, long i, const double *kc, double *restrict out,
                                 double *restrict tmp)
{
    const double qkg = kc[0], qka = kc[1], qoa = kc[2], nrgra = kc[3], nkg = kc[4], nka = kc[5], half_pi = kc[6],
                 inv_half_pi = kc[7];
    double *qn = out, *qd = out + w, *nl = out + 2 * w, *nw = out + 3 * w;
    double *G = tmp, *XX = tmp + 3 * GCH, *YY = tmp + 6 * GCH, *Z = tmp + 9 * GCH;
    for (long j0 = 1; j0 < w - 1; j0 += GCH) {
        const long len = w - 1 - j0 < GCH ? w - 1 - j0 : GCH;
        for (int q = 0; q < 3; q++) {
            const double *u = X[q] + (i - 1) * w + j0, *c = X[q] + i * w + j0, *d = X[q] + (i + 1) * w + j0;
            double *restrict g = G + q * GCH, *restrict xx = XX + q * GCH, *restrict yy = YY + q * GCH;
            for (long j = 0; j < len; j++) {
                const double vr = u[j + 1] + 2.0 * c[j + 1] + d[j + 1];
                const double vl = u[j - 1] + 2.0 * c[j - 1] + d[j - 1];
                const double hu = u[j - 1] + 2.0 * u[j] + u[j + 1];
                const double hd = d[j - 1] + 2.0 * d[j] + d[j + 1];
                const double gx = vr - vl, gy = hu - hd;
                g[j] = gx * gx + gy * gy;
                yy[j] = gy * sgn(gx) + (gx == 0.0 ? 1.0 : 0.0);
                xx[j] = fabs(gx);
            }
            vsqrt_SUFFIX(g, len);
        }
        {
            /* both sources together: divisions shared between them (see absatan2x2_) */
            const double *restrict gF = G, *restrict gA = G + GCH, *restrict gB = G + 2 * GCH, *restrict xf = XX,
                         *restrict yf = YY, *restrict xa = XX + GCH, *restrict ya = YY + GCH,
                         *restrict xb = XX + 2 * GCH, *restrict yb = YY + 2 * GCH;
            double *restrict zq = Z, *restrict zna = Z + 2 * GCH, *restrict znb = Z + 3 * GCH;
            for (long j = 0; j < len; j++) {
                const double ga = gA[j], gb = gB[j], gf = gF[j];
                double da, db;
                absatan2x2_(xf[j] * ya[j] - yf[j] * xa[j], xf[j] * xa[j] + yf[j] * ya[j],
                            xf[j] * yb[j] - yf[j] * xb[j], xf[j] * xb[j] + yf[j] * yb[j], &da, &db);
                const double loa = ga < gf ? ga : gf, hia0 = ga > gf ? ga : gf, hia = hia0 > 0.0 ? hia0 : 1.0;
                const double lob = gb < gf ? gb : gf, hib0 = gb > gf ? gb : gf, hib = hib0 > 0.0 ? hib0 : 1.0;
                const double ih = 1.0 / (hia * hib);
                const double ra = loa * hib * ih, rb = lob * hia * ih;          /* min / max (0 when both are 0) */
                const double rela = ga == gf ? gf : ra, relb = gb == gf ? gf : rb;                   /* Qabf */
                const double xqa = (1.0 + exp_(-((rela - 0.5) * qkg))) * (1.0 + exp_(-(da * qka + qoa)));
                const double xqb = (1.0 + exp_(-((relb - 0.5) * qkg))) * (1.0 + exp_(-(db * qka + qoa)));
                const double iqq = 1.0 / (xqa * xqb);
                zq[j] = ga * xqb * iqq + gb * xqa * iqq;
                const double anga = fabs(da - half_pi) * inv_half_pi, angb = fabs(db - half_pi) * inv_half_pi;
                const double xna = (1.0 + exp_(-((ra - 0.5) * nkg))) * (1.0 + exp_(-((anga - 0.5) * nka)));
                const double xnb = (1.0 + exp_(-((rb - 0.5) * nkg))) * (1.0 + exp_(-((angb - 0.5) * nka)));
                const double iqn = nrgra / (xna * xnb);
                zna[j] = xnb * iqn;
                znb[j] = xna * iqn;
            }
        }
        vsqrt_SUFFIX(Z + 2 * GCH, len);
        vsqrt_SUFFIX(Z + 3 * GCH, len);
        double *restrict sg = Z + 4 * GCH;
        for (int s = 1; s < 3; s++)
            for (long j = 0; j < len; j++) sg[(s - 1) * GCH + j] = G[s * GCH + j] * 0.125;
        vsqrt_SUFFIX(sg, len);
        vsqrt_SUFFIX(sg + GCH, len);
        const double *restrict gF = G, *restrict gA = G + GCH, *restrict gB = G + 2 * GCH;
        const double *restrict qab = Z, *restrict na = Z + 2 * GCH, *restrict nb = Z + 3 * GCH,
                     *restrict sa = sg, *restrict sb = sg + GCH;
        for (long j = 0; j < len; j++) {
            const double gfn = gF[j] * 0.125, gan = gA[j] * 0.125, gbn = gB[j] * 0.125;
            const double wa = gan >= 2.0 ? gan * sa[j] : 0.001, wb = gbn >= 2.0 ? gbn * sb[j] : 0.001;
            const double loss = (1.0 - na[j]) * wa + (1.0 - nb[j]) * wb;
            qn[j0 + j] = qab[j];
            qd[j0 + j] = gA[j] + gB[j];
            nl[j0 + j] = ((gfn > gan) & (gfn > gbn)) ? loss : 0.0;
            nw[j0 + j] = wa + wb;
        }
    }
}

/* Qabf (zero padding) and Nabf (mirror padding) contributions of one pixel, for the borders and tiny images:
   the torch path's definitions pixel by pixel (out: qnum, qden, nloss, nwt; Nabf only when `nabf`). */
static void grad_pixel_SUFFIX(const double *const *X, long H, long W, long i, long j, const double *kc, int nabf,
                              double *out)
{
    const double qkg = kc[0], qka = kc[1], qoa = kc[2], nrgra = kc[3], nkg = kc[4], nka = kc[5], half_pi = kc[6],
                 inv_half_pi = kc[7], tiny = kc[8];
    double g[3], vx[3], vy[3];
    for (int q = 0; q < 3; q++) {
        const double *x = X[q];
        const double vr = at0(x, H, W, i - 1, j + 1) + 2.0 * at0(x, H, W, i, j + 1) + at0(x, H, W, i + 1, j + 1);
        const double vl = at0(x, H, W, i - 1, j - 1) + 2.0 * at0(x, H, W, i, j - 1) + at0(x, H, W, i + 1, j - 1);
        const double hu = at0(x, H, W, i - 1, j - 1) + 2.0 * at0(x, H, W, i - 1, j) + at0(x, H, W, i - 1, j + 1);
        const double hd = at0(x, H, W, i + 1, j - 1) + 2.0 * at0(x, H, W, i + 1, j) + at0(x, H, W, i + 1, j + 1);
        const double gx = vr - vl, gy = hu - hd;
        g[q] = sqrt(gx * gx + gy * gy);
        vy[q] = gy * sgn(gx) + (gx == 0.0 ? 1.0 : 0.0);
        vx[q] = fabs(gx);
    }
    double qnum = 0.0, qden = 0.0;
    for (int s = 1; s < 3; s++) {
        const double gs = g[s], gf = g[0];
        const double da = absatan2_(vx[0] * vy[s] - vy[0] * vx[s], vx[0] * vx[s] + vy[0] * vy[s]);
        const double lo = gs < gf ? gs : gf, hi0 = gs > gf ? gs : gf, hi = hi0 > tiny ? hi0 : tiny;
        const double rel = gs == gf ? gf : lo / hi;
        qnum += gs / ((1.0 + exp_(-((rel - 0.5) * qkg))) * (1.0 + exp_(-(da * qka + qoa))));
        qden += gs;
    }
    out[0] = qnum;
    out[1] = qden;
    out[2] = out[3] = 0.0;
    if (!nabf) return;
    const long iu = mirror(i - 1, H), id = mirror(i + 1, H), jl = mirror(j - 1, W), jr = mirror(j + 1, W);
    for (int q = 0; q < 3; q++) {
        const double *x = X[q];
        const double vr = x[iu * W + jr] + 2.0 * x[i * W + jr] + x[id * W + jr];
        const double vl = x[iu * W + jl] + 2.0 * x[i * W + jl] + x[id * W + jl];
        const double hd = x[id * W + jl] + 2.0 * x[id * W + j] + x[id * W + jr];
        const double hu = x[iu * W + jl] + 2.0 * x[iu * W + j] + x[iu * W + jr];
        const double gv = (vr - vl) * 0.125, gh = (hd - hu) * 0.125;
        const double gg = sqrt(gv * gv + gh * gh);
        g[q] = gg;
        vy[q] = gv * (sgn(gh) + (gh == 0.0 ? 1.0 : 0.0));
        vx[q] = fabs(gh) + (gg == 0.0 ? 1.0 : 0.0);
    }
    double loss = 0.0, wsum = 0.0;
    for (int s = 1; s < 3; s++) {
        const double gs = g[s], gf = g[0];
        const double lo = gs < gf ? gs : gf, hi0 = gs > gf ? gs : gf, hi = hi0 > tiny ? hi0 : tiny;
        const double ratio = lo / hi;
        const double da = absatan2_(vx[0] * vy[s] - vy[0] * vx[s], vx[0] * vx[s] + vy[0] * vy[s]);
        const double ang = fabs(da - half_pi) * inv_half_pi;
        const double omq = 1.0 - sqrt(nrgra / ((1.0 + exp_(-((ratio - 0.5) * nkg))) *
                                               (1.0 + exp_(-((ang - 0.5) * nka)))));
        const double wt = gs >= 2.0 ? gs * sqrt(gs) : 0.001;
        wsum += wt;
        loss += omq * wt;
    }
    out[2] = (g[0] > g[1] && g[0] > g[2]) ? loss : 0.0;
    out[3] = wsum;
}

/* rows4[i] = the four gradient sums of row i of one image (X: F, A, B, h x w). tmp: 4 x w + 15 x GCH. */
static void grad_row_SUFFIX(const double *const *X, long h, long w, long i, const double *kc, int nabf, double *tmp,
                            double *rows4)
{
    double pix[4];
    if (i > 0 && i < h - 1 && w >= 3) {
        grad_interior_SUFFIX(X, w, i, kc, tmp, tmp + 4 * w);
        for (int q = 0; q < 4; q++) {
            double acc[NL] = {0.0, 0.0, 0.0, 0.0};
            lanes_add_SUFFIX(tmp + q * w + 1, w - 2, acc);
            rows4[i * 4 + q] = lanesum(acc);
        }
        grad_pixel_SUFFIX(X, h, w, i, 0, kc, nabf, pix);
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
        grad_pixel_SUFFIX(X, h, w, i, w - 1, kc, nabf, pix);
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
    } else {
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] = 0.0;
        for (long j = 0; j < w; j++) {
            grad_pixel_SUFFIX(X, h, w, i, j, kc, nabf, pix);
            for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
        }
    }
}

/* ---------------------------------------------------------------------------------------------- statistics */
/* the global sums of one row i (see mmdr_stats) into acc[NSTAT]; max of F into *mx */
static void stats_row_SUFFIX(const double *F, const double *A, const double *B, long h, long w, long i, double sf,
                             double sa, double sb, double *restrict out, double *mx,
                             double *restrict tmp)
{
    const double *f = F + i * w, *a = A + i * w, *b = B + i * w;
    double acc[14][NL];
    for (int q = 0; q < 14; q++) for (int l = 0; l < NL; l++) acc[q][l] = 0.0;
    double m[NL] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    long j = 0;
#define STAT_BODY(l, jj)                                                                                        \
    {                                                                                                       \
        const double fv = f[jj], av = a[jj], bv = b[jj];                                                    \
        const double fc = fv - sf, ac = av - sa, bc = bv - sb, dfa = fv - av, dfb = fv - bv;                \
        acc[0][l] += fc; acc[1][l] += ac; acc[2][l] += bc;                                                  \
        acc[3][l] += fc * fc; acc[4][l] += ac * ac; acc[5][l] += bc * bc;                                   \
        acc[6][l] += fc * ac; acc[7][l] += fc * bc;                                                         \
        acc[8][l] += dfa; acc[9][l] += dfb; acc[10][l] += dfa * dfa; acc[11][l] += dfb * dfb;               \
        acc[12][l] += dfb * ac; acc[13][l] += dfa * bc;                                                     \
        m[l] = fv > m[l] ? fv : m[l];                                                                       \
    }
    for (; j + NL <= w; j += NL)
        for (int l = 0; l < NL; l++) STAT_BODY(l, j + l)
    for (int l = 0; j < w; j++, l++) STAT_BODY(l, j)
#undef STAT_BODY
    for (int q = 0; q < 14; q++) out[q] = lanesum(acc[q]);
    double mm = m[0];
    for (int l = 1; l < NL; l++) mm = m[l] > mm ? m[l] : mm;
    *mx = mm;
    /* spatial frequency: squared forward differences along the row and to the next row */
    double dx[NL] = {0.0, 0.0, 0.0, 0.0}, dy[NL] = {0.0, 0.0, 0.0, 0.0}, ag[NL] = {0.0, 0.0, 0.0, 0.0};
    if (w >= 2) {
        for (j = 0; j + NL <= w - 1; j += NL)
            for (int l = 0; l < NL; l++) { const double d = f[j + l + 1] - f[j + l]; dx[l] += d * d; }
        for (int l = 0; j < w - 1; j++, l++) { const double d = f[j + 1] - f[j]; dx[l] += d * d; }
    }
    if (i + 1 < h) {
        const double *fn = f + w;
        for (j = 0; j + NL <= w; j += NL)
            for (int l = 0; l < NL; l++) { const double d = fn[j + l] - f[j + l]; dy[l] += d * d; }
        for (int l = 0; j < w; j++, l++) { const double d = fn[j] - f[j]; dy[l] += d * d; }
    }
    /* average gradient: numpy.gradient (central differences, one-sided at the borders) */
    if (h >= 2 && w >= 2) {
        const double *up = i > 0 ? f - w : f, *dn = i < h - 1 ? f + w : f;
        const double ys = (i > 0 && i < h - 1) ? 0.5 : 1.0;
        const double gx0 = f[1] - f[0], gy0 = (dn[0] - up[0]) * ys;
        const double gx1 = f[w - 1] - f[w - 2], gy1 = (dn[w - 1] - up[w - 1]) * ys;
        tmp[0] = (gx0 * gx0 + gy0 * gy0) * 0.5;
        tmp[w - 1] = (gx1 * gx1 + gy1 * gy1) * 0.5;
        for (j = 1; j < w - 1; j++) {
            const double gx = (f[j + 1] - f[j - 1]) * 0.5, gy = (dn[j] - up[j]) * ys;
            tmp[j] = (gx * gx + gy * gy) * 0.5;
        }
        vsqrt_SUFFIX(tmp, w);
        lanes_add_SUFFIX(tmp, w, ag);
        out[16] = lanesum(ag);
    } else {
        out[16] = 0.0;
    }
    out[14] = lanesum(dx);
    out[15] = lanesum(dy);
}

/* joint gray-level counts (F, A) and (F, B) of rows [r0, r1) added to tab (2 x 256 x 256) */
static void hist_rows_SUFFIX(const double *F, const double *A, const double *B, long w, long r0, long r1,
                             int32_t *tab, int32_t *lv)
{
    const double shift = 6755399441055744.0;   /* x + 1.5 * 2^52 - 1.5 * 2^52: round half to even, like torch */
    for (long i = r0; i < r1; i++) {
        for (int q = 0; q < 3; q++) {
            const double *x = (q == 0 ? F : (q == 1 ? A : B)) + i * w;
            int32_t *o = lv + q * w;
            for (long j = 0; j < w; j++) {
                double r = (x[j] + shift) - shift;
                r = r < 0.0 ? 0.0 : (r > 255.0 ? 255.0 : r);
                o[j] = (int32_t)r;
            }
        }
        const int32_t *lf = lv, *la = lv + w, *lb = lv + 2 * w;
        for (long j = 0; j < w; j++) {
            tab[lf[j] * 256 + la[j]]++;
            tab[65536 + lf[j] * 256 + lb[j]]++;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- reading */
static void gray_SUFFIX(const uint8_t *src, long npix, int bgr, int conv, uint8_t *restrict out)
{
    const int ir = bgr ? 2 : 0, ib = bgr ? 0 : 2;
    if (conv == 0) {
        const double kr = (double)0.299f, kg = (double)0.587f, kb = (double)0.114f;
        for (long p = 0; p < npix; p++) {
            const double r = src[3 * p + ir], g = src[3 * p + 1], b = src[3 * p + ib];
            double t = (double)(float)(g * kg);
            t = (double)(float)(b * kb + t);
            t = (double)(float)(r * kr + t);
            t = (t + 6755399441055744.0) - 6755399441055744.0;
            out[p] = (uint8_t)t;
        }
    } else {
        for (long p = 0; p < npix; p++) {
            const int32_t r = src[3 * p + ir], g = src[3 * p + 1], b = src[3 * p + ib];
            out[p] = (uint8_t)((r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15);
        }
    }
}
"""

_C_FOOTER = r"""
/* ================================================================================== entry points (dispatch) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86_BUILDS 1
#define CALL(fn, ...) \
    (isa == 2 ? fn##_avx512(__VA_ARGS__) : isa == 1 ? fn##_avx2(__VA_ARGS__) : fn##_generic(__VA_ARGS__))
#else
#define CALL(fn, ...) fn##_generic(__VA_ARGS__)
#endif

/* 2: AVX-512 (F, VL, DQ, BW) + FMA, 1: AVX2 + FMA, 0: the portable build */
int mmdr_metrics_isa(void)
{
#ifdef HAVE_X86_BUILDS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int mmdr_metrics_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static long nbands(long rows) { return (rows + BAND - 1) / BAND; }

#define VBAND 32        /* output rows per VIF task (each task computes n - 1 extra product rows) */
/* widest column strip of VIF (output columns of scale 1 in strips of about 160): the same for every scale */
static long vif_strip(long W)
{
    const long wo = W - 16 > 1 ? W - 16 : 1, ns = (wo + 159) / 160;      /* 160 <= RS - 16 */
    return (wo + ns - 1) / ns;
}

/* one workspace per calling thread, grown as needed and freed when the thread ends: the maps of one call are a few
   MB, which malloc would otherwise take from fresh (page-faulted, zeroed) memory every time */
typedef struct { double *p; size_t n; } wsbuf;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static void ws_free(void *v) { wsbuf *b = v; free(b->p); free(b); }
static void ws_init(void) { (void)pthread_key_create(&ws_key, ws_free); }
static double *ws_get(size_t n)
{
    (void)pthread_once(&ws_once, ws_init);
    wsbuf *b = pthread_getspecific(ws_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(ws_key, b)) { free(b); return NULL; }
    }
    if (b->n < n) {
        free(b->p);
        b->n = 0;
        b->p = malloc(sizeof(double) * n);
        if (!b->p) return NULL;
        b->n = n;
    }
    return b->p;
}

static inline int nthr(int nthreads) { return nthreads > 0 ? nthreads : 1; }

/* shifts (3 x N): round(mean) of F, A, B per image (sums in row order: exact for integer images) */
int mmdr_shifts(const double *f, const double *a, const double *b, long N, long H, long W, double *out, int nthreads)
{
    double *rows = ws_get((size_t)(3 * N * H));
    if (!rows) return -1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long r = 0; r < 3 * N * H; r++) {
        const long q = r / (N * H), rest = r % (N * H);
        const double *x = (q == 0 ? f : (q == 1 ? a : b)) + rest * W;
        double acc[NL] = {0.0, 0.0, 0.0, 0.0};
        long j = 0;
        for (; j + NL <= W; j += NL)
            for (int l = 0; l < NL; l++) acc[l] += x[j + l];
        for (int l = 0; j < W; j++, l++) acc[l] += x[j];
        rows[r] = lanesum(acc);
    }
    for (long q = 0; q < 3 * N; q++) {
        double tot = 0.0;
        for (long i = 0; i < H; i++) tot += rows[q * H + i];
        out[q] = nearbyint(tot / (double)(H * W));
    }
    return 0;
}

/* VIF(A, F) + VIF(B, F) per image (out: N), each 1 where num / den is NaN. shifts (3 x N) from mmdr_shifts; wins:
   the four windows concatenated, ns their lengths. Returns -2 when an image is too small for a scale. */
int mmdr_vif(const double *f, const double *a, const double *b, long N, long H, long W, const double *shifts,
             const double *wins, const int *ns, double *out, int nthreads, int isa)
{
    (void)isa;
    const long sw_max = vif_strip(W);
    long per = (long)(VBAND + 16 + 2) * RS + (VBAND * 8 + 4) * sw_max + 64;
    per = per > 2 * W + 64 ? per : 2 * W + 64;                  /* down2's row buffers */
    const long h2 = (H - ns[1] + 2) / 2 + 1, w2 = (W - ns[1] + 2) / 2 + 1;
    const long h3 = (h2 - ns[2] + 2) / 2 + 1, w3 = (w2 - ns[2] + 2) / 2 + 1;
    const long m2 = 3 * (h2 > 0 ? h2 : 1) * (w2 > 0 ? w2 : 1), m3 = 3 * (h3 > 0 ? h3 : 1) * (w3 > 0 ? w3 : 1);
    double *work = ws_get((size_t)(per * nthr(nthreads) + 4 * H + m2 + m3 + 64));
    if (!work) return -1;
    double *rows = work + per * nthr(nthreads), *buf[2] = {rows + 4 * H, rows + 4 * H + m2};
    for (long im = 0; im < N; im++) {
        const double *X[3] = {f + im * H * W, a + im * H * W, b + im * H * W};
        double sh[3] = {shifts[im], shifts[N + im], shifts[2 * N + im]};
        long h = H, w = W, stride = W;
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        const double *win = wins;
        for (int sc = 0; sc < 4; sc++) {
            const int n = ns[sc];
            if (sc > 0) {
                const long hn = (h - n + 2) / 2, wn = (w - n + 2) / 2;
                if (h - n + 1 < 1 || w - n + 1 < 1) return -2;
                double *next = buf[(sc - 1) % 2];
                const long nb = nbands(hn);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
                {
                    double *t = work + thread_id() * per;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                    for (long bb = 0; bb < nb; bb++) {
                        const long i0 = bb * BAND, i1 = i0 + BAND < hn ? i0 + BAND : hn;
                        CALL(down2_band, X, stride, w, sh, win, n, i0, i1, hn, wn, next, t);
                    }
                }
                X[0] = next; X[1] = next + hn * wn; X[2] = next + 2 * hn * wn;
                sh[0] = sh[1] = sh[2] = 0.0;
                h = hn; w = wn; stride = wn;
            }
            const long ho = h - n + 1, wo = w - n + 1;
            if (ho < 1 || wo < 1) return -2;
            const long nb = (ho + VBAND - 1) / VBAND;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
            {
                const long sw = wo < sw_max ? wo : sw_max;
                double *ring = work + thread_id() * per, *t = ring + (long)(VBAND + 16) * RS, *m = t + 2 * RS,
                       *x = m + VBAND * 8 * sw;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (long bb = 0; bb < nb; bb++) {
                    const long r0 = bb * VBAND, r1 = r0 + VBAND < ho ? r0 + VBAND : ho;
                    CALL(vif_band, X[0], X[1], X[2], stride, w, sh[0], sh[1], sh[2], win, n, r0, r1, sw, ring, t,
                         m, x, rows);
                }
            }
            double sc_sum[4] = {0.0, 0.0, 0.0, 0.0};
            for (long r = 0; r < ho; r++)
                for (int q = 0; q < 4; q++) sc_sum[q] += rows[r * 4 + q];
            for (int q = 0; q < 4; q++) acc[q] += sc_sum[q];
            win += n;
        }
        double va = acc[0] / acc[2], vb = acc[1] / acc[3];
        va = va != va ? 1.0 : va;                                       /* 0 / 0 (constant images) -> 1 */
        vb = vb != vb ? 1.0 : vb;
        out[im] = va + vb;
    }
    return 0;
}

/* SSIM(F, A) + SSIM(F, B) per image (out: N) with the uniform 7 x 7 window, sample covariance and constants c1, c2 */
int mmdr_ssim7(const double *f, const double *a, const double *b, long N, long H, long W, const double *shifts,
               double c1, double c2, double *out, int nthreads, int isa)
{
    (void)isa;
    const long ho = H - 6, wo = W - 6;
    if (ho < 1 || wo < 1) return -2;
    const long per = (long)(7 * 8 + 8 + 8 + 2) * W + 64;
    double *work = ws_get((size_t)(per * nthr(nthreads) + 2 * ho));
    if (!work) return -1;
    double *rows = work + per * nthr(nthreads);
    for (long im = 0; im < N; im++) {
        const double *F = f + im * H * W, *A = a + im * H * W, *B = b + im * H * W;
        const double sf = shifts[im], sa = shifts[N + im], sb = shifts[2 * N + im];
        const long nb = nbands(ho);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
        {
            double *ring = work + thread_id() * per, *t = ring + 7 * 8 * W, *m = t + 8 * W, *x = m + 8 * wo;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (long bb = 0; bb < nb; bb++) {
                const long r0 = bb * BAND, r1 = r0 + BAND < ho ? r0 + BAND : ho;
                CALL(ssim_band, F, A, B, W, sf, sa, sb, c1, c2, r0, r1, ring, t, m, x, rows);
            }
        }
        double acc[2] = {0.0, 0.0};
        for (long r = 0; r < ho; r++) { acc[0] += rows[2 * r]; acc[1] += rows[2 * r + 1]; }
        out[im] = acc[0] / (double)(ho * wo) + acc[1] / (double)(ho * wo);
    }
    return 0;
}

/* Qabf and Nabf per image: out (2 x N). kc: the constants (see _native.py). Nabf is NaN for sides < 2. */
int mmdr_gradients(const double *f, const double *a, const double *b, long N, long H, long W, const double *kc,
                   double *out, int nthreads, int isa)
{
    (void)isa;
    const int nabf = H >= 2 && W >= 2;
    const long per = 4 * W + 15 * GCH + 64;
    double *work = ws_get((size_t)(per * nthr(nthreads) + 4 * H));
    if (!work) return -1;
    double *rows = work + per * nthr(nthreads);
    for (long im = 0; im < N; im++) {
        const double *X[3] = {f + im * H * W, a + im * H * W, b + im * H * W};
        const long nb = nbands(H);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
        {
            double *tmp = work + thread_id() * per;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (long bb = 0; bb < nb; bb++) {
                const long r1 = (bb + 1) * BAND < H ? (bb + 1) * BAND : H;
                for (long i = bb * BAND; i < r1; i++) CALL(grad_row, X, H, W, i, kc, nabf, tmp, rows);
            }
        }
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        for (long i = 0; i < H; i++)
            for (int q = 0; q < 4; q++) acc[q] += rows[4 * i + q];
        out[im] = acc[0] * kc[9] / acc[1];
        out[N + im] = nabf ? acc[2] / acc[3] : NAN;
    }
    return 0;
}

#define NSTAT 17
#define NOUT 9
static double corr_(double sxy, double sx, double sy, double sxx, double syy, double n)
{
    return (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
}

/* The global statistics of each image: out (N x 9) = SD, SCD, CC, EN, SF, AG, MI, PSNR, MSE (the authors'
   evaluator's definitions, statistics.py), from sums over rows of fc, ac, bc, fc^2, ac^2, bc^2, fc ac, fc bc,
   (f - a), (f - b), (f - a)^2, (f - b)^2, (f - b) ac, (f - a) bc (xc = x - shift), the squared forward differences
   (SF), the numpy.gradient magnitudes (AG) and max F, and from the joint gray-level histograms (F, A), (F, B). */
int mmdr_stats(const double *f, const double *a, const double *b, long N, long H, long W, const double *shifts,
               double *out, int nthreads, int isa)
{
    (void)isa;
    const int nt = nthr(nthreads);
    const long tabn = 2 * 65536 + 3 * W;          /* per thread: two joint tables and three rows of levels (int32) */
    double *work = ws_get((size_t)(H * (NSTAT + 1) + nt * W + (nt * tabn + 1) / 2 + 64));
    if (!work) return -1;
    double *rows = work, *tmps = rows + H * (NSTAT + 1);
    int32_t *tabs = (int32_t *)(tmps + nt * W);
    for (long im = 0; im < N; im++) {
        const double *F = f + im * H * W, *A = a + im * H * W, *B = b + im * H * W;
        const double sf = shifts[im], sa = shifts[N + im], sb = shifts[2 * N + im];
        const long nb = nbands(H);
        memset(tabs, 0, sizeof(int32_t) * (size_t)(nt * tabn));
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
        {
            int32_t *tab = tabs + thread_id() * tabn;
            double *tmp = tmps + thread_id() * W;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (long bb = 0; bb < nb; bb++) {
                const long r0 = bb * BAND, r1 = r0 + BAND < H ? r0 + BAND : H;
                for (long i = r0; i < r1; i++)
                    CALL(stats_row, F, A, B, H, W, i, sf, sa, sb, rows + i * (NSTAT + 1),
                         rows + i * (NSTAT + 1) + NSTAT, tmp);
                CALL(hist_rows, F, A, B, W, r0, r1, tab, tab + 2 * 65536);
            }
        }
        double S[NSTAT], mx = -INFINITY;
        for (int q = 0; q < NSTAT; q++) S[q] = 0.0;
        for (long i = 0; i < H; i++) {
            for (int q = 0; q < NSTAT; q++) S[q] += rows[i * (NSTAT + 1) + q];
            const double m = rows[i * (NSTAT + 1) + NSTAT];
            mx = m > mx ? m : mx;
        }
        for (int t = 1; t < nt; t++)
            for (long k = 0; k < 2 * 65536; k++) tabs[k] += tabs[t * tabn + k];
        const double n = (double)(H * W), logn = log(n);
        double en = 0.0, mi = 0.0;
        for (int src = 0; src < 2; src++) {
            const int32_t *tab = tabs + src * 65536;
            double ci[256], cj[256], lci[256], lcj[256];
            for (int u = 0; u < 256; u++) ci[u] = cj[u] = 0.0;
            for (int u = 0; u < 256; u++)
                for (int v = 0; v < 256; v++) { ci[u] += tab[u * 256 + v]; cj[v] += tab[u * 256 + v]; }
            for (int u = 0; u < 256; u++) {
                lci[u] = log(ci[u] > 1.0 ? ci[u] : 1.0);
                lcj[u] = log(cj[u] > 1.0 ? cj[u] : 1.0);
            }
            if (src == 0)
                for (int u = 0; u < 256; u++) {
                    const double p = ci[u] / n;
                    en -= p > 0.0 ? p * log2(p) : 0.0;
                }
            double acc = 0.0;
            for (int u = 0; u < 256; u++)
                for (int v = 0; v < 256; v++) {
                    const int32_t c = tab[u * 256 + v];
                    if (c) acc += c * (((log((double)c) + logn) - lci[u]) - lcj[v]);
                }
            const double v = acc / n;
            mi += v > 0.0 ? v : 0.0;
        }
        double *o = out + im * NOUT;
        o[0] = sqrt((S[3] - S[0] * S[0] / n) / n);                                              /* SD */
        o[1] = corr_(S[12], S[9], S[1], S[11], S[4], n) + corr_(S[13], S[8], S[2], S[10], S[5], n);  /* SCD */
        o[2] = (corr_(S[6], S[1], S[0], S[4], S[3], n) + corr_(S[7], S[2], S[0], S[5], S[3], n)) / 2.0; /* CC */
        o[3] = en;
        o[4] = sqrt(S[14] / (double)(H * (W - 1)) + S[15] / (double)((H - 1) * W));             /* SF */
        o[5] = S[16] / n;                                                                       /* AG */
        o[6] = mi;
        const double mse = (S[10] / n + S[11] / n) / 2.0;
        o[7] = 10.0 * log10(mx * mx / mse);                                                     /* PSNR */
        o[8] = mse;
    }
    return 0;
}

/* PNG scanline unfiltering (filter method 0) of 8-bit images with bpp bytes per pixel: raw (H x (1 + W bpp)) ->
   out (H x W bpp). Returns 0, or -1 on an unknown filter type. */
static inline int paeth(int a, int b, int c, int s)   /* s + the Paeth predictor of (a, b, c), mod 256 */
{
    const int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    const int bc = pb <= pc ? b : c;                     /* branch-free: the choice is data dependent */
    const int take_a = (pa <= pb) & (pa <= pc);
    return (uint8_t)(s + (bc ^ ((a ^ bc) & -take_a)));
}

int mmdr_png_unfilter(const uint8_t *raw, long H, long W, int bpp, uint8_t *out)
{
    const long stride = W * bpp;
    for (long y = 0; y < H; y++) {
        const uint8_t ft = raw[y * (stride + 1)];
        const uint8_t *src = raw + y * (stride + 1) + 1;
        uint8_t *cur = out + y * stride;
        const uint8_t *up = y ? cur - stride : NULL;
        long i;
        if (bpp == 1 && ft == 4 && up && y + 1 < H && raw[(y + 1) * (stride + 1)] == 4 && stride >= 2) {
            /* two Paeth rows of a gray image as a wavefront: row y at column i, row y + 1 at column i - 1, two
               independent dependency chains (each pixel waits for its left neighbour) */
            const uint8_t *src1 = src + stride + 1;
            uint8_t *cur1 = cur + stride;
            int a0 = (uint8_t)(src[0] + up[0]);
            cur[0] = (uint8_t)a0;
            a0 = paeth(a0, up[1], up[0], src[1]);
            cur[1] = (uint8_t)a0;
            int a1 = (uint8_t)(src1[0] + cur[0]);
            cur1[0] = (uint8_t)a1;
            for (i = 2; i < stride; i++) {
                a0 = paeth(a0, up[i], up[i - 1], src[i]);
                cur[i] = (uint8_t)a0;
                a1 = paeth(a1, cur[i - 1], cur[i - 2], src1[i - 1]);
                cur1[i - 1] = (uint8_t)a1;
            }
            cur1[stride - 1] = (uint8_t)paeth(a1, cur[stride - 1], cur[stride - 2], src1[stride - 1]);
            y++;
            continue;
        }
        switch (ft) {
        case 0:
            memcpy(cur, src, (size_t)stride);
            break;
        case 1:
            for (i = 0; i < bpp && i < stride; i++) cur[i] = src[i];
            for (; i < stride; i++) cur[i] = (uint8_t)(src[i] + cur[i - bpp]);
            break;
        case 2:
            if (up) for (i = 0; i < stride; i++) cur[i] = (uint8_t)(src[i] + up[i]);
            else memcpy(cur, src, (size_t)stride);
            break;
        case 3:
            for (i = 0; i < bpp && i < stride; i++) cur[i] = (uint8_t)(src[i] + ((up ? up[i] : 0) >> 1));
            for (; i < stride; i++) cur[i] = (uint8_t)(src[i] + ((cur[i - bpp] + (up ? up[i] : 0)) >> 1));
            break;
        case 4:
            if (!up) {   /* Paeth with b = c = 0 is Sub */
                for (i = 0; i < bpp && i < stride; i++) cur[i] = src[i];
                for (; i < stride; i++) cur[i] = (uint8_t)(src[i] + cur[i - bpp]);
                break;
            }
            for (i = 0; i < bpp && i < stride; i++) cur[i] = (uint8_t)(src[i] + up[i]);   /* a = c = 0: b */
            if (bpp == 1) {   /* the left neighbour stays in a register (no store-to-load round trip) */
                int a = cur[0];
                for (; i < stride; i++) {
                    a = paeth(a, up[i], up[i - 1], src[i]);
                    cur[i] = (uint8_t)a;
                }
                break;
            }
            if (bpp == 3) {   /* three independent chains, one per channel, in registers */
                int a0 = cur[0], a1 = cur[1], a2 = cur[2];
                for (; i + 3 <= stride; i += 3) {
                    a0 = paeth(a0, up[i], up[i - 3], src[i]);
                    cur[i] = (uint8_t)a0;
                    a1 = paeth(a1, up[i + 1], up[i - 2], src[i + 1]);
                    cur[i + 1] = (uint8_t)a1;
                    a2 = paeth(a2, up[i + 2], up[i - 1], src[i + 2]);
                    cur[i + 2] = (uint8_t)a2;
                }
                break;
            }
            for (; i < stride; i++) cur[i] = (uint8_t)paeth(cur[i - bpp], up[i], up[i - bpp], src[i]);
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* 8-bit colour (npix x 3, RGB or BGR order) -> 8-bit gray as the authors' evaluator reads it (conv 0: OpenCV's float32
   BGR2GRAY, rounded; conv 1: OpenCV's uint8 fixed-point BGR2GRAY); see reading.py */
void mmdr_gray(const uint8_t *src, long npix, int bgr, int conv, uint8_t *out, int isa)
{
    (void)isa;
    CALL(gray, src, npix, bgr, conv, out);
}
"""

_C_SIMD = (
    "#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)\n#define VSQRT_WIDTH 2\n#else\n"
    "#define VSQRT_WIDTH 1\n#endif\n#define VW 4\n"
)


def _c_source() -> str:
    """The portable body, then (x86-64, GCC) the same body compiled for AVX2 + FMA and for AVX-512 + FMA (512-bit
    vectors where the compiler vectorises), then the entry points."""
    clone = ("\n#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)\n#pragma GCC push_options\n"
             "#pragma GCC target(\"{target}\")\n#undef VSQRT_WIDTH\n#define VSQRT_WIDTH {width}\n#undef VW\n"
             "#define VW {width}\n{body}"
             "#pragma GCC pop_options\n#endif\n")
    return "".join([
        _C_HEADER, _C_SIMD, _C_BODY.replace("SUFFIX", "generic"),
        clone.format(target="avx2,fma", width=4, body=_C_BODY.replace("SUFFIX", "avx2")),
        clone.format(target="avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512", width=8,
                     body=_C_BODY.replace("SUFFIX", "avx512")),
        _C_FOOTER,
    ])


_lock = threading.Lock()
_state: dict = {"lib": None, "error": None, "openmp": False, "isa": 0}
_local = threading.local()  # per Python thread: the thread limit set by thread_limit()

# kernel constants, in the torch path's arithmetic (gradient.py, vif.py, ssim.py)
_VIF_TAPS = (17, 9, 5, 3)
_GRAD_CONSTS: list[float] | None = None
_VIF_WINDOWS: Tensor | None = None


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
            lib, own_runtime = native.load_library(native.build_library("mmdrfuse_metrics", _c_source()))
        except (RuntimeError, OSError) as exc:
            _state["error"] = str(exc) or type(exc).__name__
            return None
        p, i, l_, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
        lib.mmdr_shifts.argtypes = [p, p, p, l_, l_, l_, p, i]
        lib.mmdr_vif.argtypes = [p, p, p, l_, l_, l_, p, p, p, p, i, i]
        lib.mmdr_ssim7.argtypes = [p, p, p, l_, l_, l_, p, d, d, p, i, i]
        lib.mmdr_gradients.argtypes = [p, p, p, l_, l_, l_, p, p, i, i]
        lib.mmdr_stats.argtypes = [p, p, p, l_, l_, l_, p, p, i, i]
        lib.mmdr_gray.argtypes = [p, l_, i, i, p, i]
        lib.mmdr_gray.restype = None
        lib.mmdr_png_unfilter.argtypes = [p, l_, l_, i, p]
        lib.mmdr_png_unfilter.restype = i
        for name in ("mmdr_shifts", "mmdr_vif", "mmdr_ssim7", "mmdr_gradients", "mmdr_stats"):
            getattr(lib, name).restype = i
        lib.mmdr_metrics_openmp.argtypes = []
        lib.mmdr_metrics_openmp.restype = i
        lib.mmdr_metrics_isa.argtypes = []
        lib.mmdr_metrics_isa.restype = i
        _state["openmp"] = bool(lib.mmdr_metrics_openmp()) and not own_runtime
        _state["isa"] = int(lib.mmdr_metrics_isa())
        _state["lib"] = lib
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


def gradients(f: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """(2, N): Qabf and Nabf (gradient.py's definitions; Nabf NaN for sides < 2)."""
    f, a, b, n, h, w = _images(f, a, b)
    kc = _grad_consts()
    out = torch.empty(2, n, dtype=torch.float64)
    _check(_state["lib"].mmdr_gradients(f.data_ptr(), a.data_ptr(), b.data_ptr(), n, h, w, kc.data_ptr(),
                                        out.data_ptr(), _threads(), _state["isa"]), "gradients")
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
