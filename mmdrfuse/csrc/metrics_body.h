/* The metric kernels' building blocks and row passes, written once and included once per instruction set by
   metrics.c. Before including: define ISA (a name suffix: generic, avx2, avx512), VW (doubles per vector) and
   VSQRT_WIDTH. FN(name) gives each function and type its per-ISA name. No include guard: included three times. */
#define FN_CAT2(a, b) a##_##b
#define FN_CAT(a, b) FN_CAT2(a, b)
#define FN(name) FN_CAT(name, ISA)
/* ------------------------------------------------------------------------------------ building blocks */
/* VW-wide vectors of this build (4 doubles, or 8 in the AVX-512 build); per element the same operations */
typedef double FN(vd) __attribute__((vector_size(8 * VW)));
static inline __attribute__((always_inline)) FN(vd) FN(ld)(const double *p)
{
    FN(vd) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void FN(st)(double *p, FN(vd) v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) FN(vd) FN(bc)(double x) { return (FN(vd)){} + x; }

/* out[j] = sum_k w[k] * rows[k][j] (j < len), k in order: acc = w[0] r[0]; acc += w[k] r[k]. Explicit 4 x VW-wide
   accumulators (independent chains, one weight broadcast per tap); every element gets the same sequence of
   operations in the vector body and in the tail, so results do not depend on the vector width. */
static inline __attribute__((always_inline)) void FN(wsum)(const double *const *rows, const double *w, int n,
                                                              double *restrict out, long len)
{
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = rows[0] + j;
        FN(vd) wk = FN(bc)(w[0]);
        FN(vd) a0 = wk * FN(ld)(r), a1 = wk * FN(ld)(r + VW), a2 = wk * FN(ld)(r + 2 * VW),
                  a3 = wk * FN(ld)(r + 3 * VW);
#pragma GCC unroll 17
        for (int k = 1; k < n; k++) {
            r = rows[k] + j;
            wk = FN(bc)(w[k]);
            a0 += wk * FN(ld)(r);
            a1 += wk * FN(ld)(r + VW);
            a2 += wk * FN(ld)(r + 2 * VW);
            a3 += wk * FN(ld)(r + 3 * VW);
        }
        FN(st)(out + j, a0);
        FN(st)(out + j + VW, a1);
        FN(st)(out + j + 2 * VW, a2);
        FN(st)(out + j + 3 * VW, a3);
    }
    for (; j < len; j++) {
        double acc = w[0] * rows[0][j];
        for (int k = 1; k < n; k++) acc += w[k] * rows[k][j];
        out[j] = acc;
    }
}

/* the same for a symmetric window (w[k] = w[n-1-k], n odd): acc = w[c] r[c]; acc += w[k] (r[k] + r[n-1-k]) for
   k < c = n/2: half the multiplications, and the additions go to other execution units than the multiply-adds */
static inline __attribute__((always_inline)) void FN(wsym)(const double *const *rows, const double *w, int n,
                                                              int centre, double shift, double *restrict out, long len)
{
    const int c = n / 2;
    const FN(vd) sh = FN(bc)(shift);
    long j = 0;
#define LDS(ptr) (centre ? FN(ld)(ptr) - sh : FN(ld)(ptr))
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = rows[c] + j;
        FN(vd) wk = FN(bc)(w[c]);
        FN(vd) a0 = wk * LDS(r), a1 = wk * LDS(r + VW), a2 = wk * LDS(r + 2 * VW), a3 = wk * LDS(r + 3 * VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            const double *p = rows[k] + j, *q = rows[n - 1 - k] + j;
            wk = FN(bc)(w[k]);
            a0 += wk * (LDS(p) + LDS(q));
            a1 += wk * (LDS(p + VW) + LDS(q + VW));
            a2 += wk * (LDS(p + 2 * VW) + LDS(q + 2 * VW));
            a3 += wk * (LDS(p + 3 * VW) + LDS(q + 3 * VW));
        }
        FN(st)(out + j, a0);
        FN(st)(out + j + VW, a1);
        FN(st)(out + j + 2 * VW, a2);
        FN(st)(out + j + 3 * VW, a3);
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
static inline __attribute__((always_inline)) void FN(vsym2)(const double *p, const double *w, int n,
                                                               double *restrict out0, double *restrict out1,
                                                               long len)
{
    const int c = n / 2;
    FN(vd) wv[9];
    for (int k = 0; k <= c; k++) wv[k] = FN(bc)(w[k]);
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        const double *q = p + j;
        FN(vd) a0 = wv[c] * FN(ld)(q + c * RS), a1 = wv[c] * FN(ld)(q + c * RS + VW);
        FN(vd) b0 = wv[c] * FN(ld)(q + (c + 1) * RS), b1 = wv[c] * FN(ld)(q + (c + 1) * RS + VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            a0 += wv[k] * (FN(ld)(q + k * RS) + FN(ld)(q + (n - 1 - k) * RS));
            a1 += wv[k] * (FN(ld)(q + k * RS + VW) + FN(ld)(q + (n - 1 - k) * RS + VW));
            b0 += wv[k] * (FN(ld)(q + (k + 1) * RS) + FN(ld)(q + (n - k) * RS));
            b1 += wv[k] * (FN(ld)(q + (k + 1) * RS + VW) + FN(ld)(q + (n - k) * RS + VW));
        }
        FN(st)(out0 + j, a0);
        FN(st)(out0 + j + VW, a1);
        FN(st)(out1 + j, b0);
        FN(st)(out1 + j + VW, b1);
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
static inline __attribute__((always_inline)) void FN(hsym)(const double *t, const double *w, int n,
                                                              double *restrict out, long len)
{
    const int c = n / 2;
    FN(vd) wv[9];
    for (int k = 0; k <= c; k++) wv[k] = FN(bc)(w[k]);
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        const double *r = t + j;
        FN(vd) a0 = wv[c] * FN(ld)(r + c), a1 = wv[c] * FN(ld)(r + c + VW),
                  a2 = wv[c] * FN(ld)(r + c + 2 * VW), a3 = wv[c] * FN(ld)(r + c + 3 * VW);
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            a0 += wv[k] * (FN(ld)(r + k) + FN(ld)(r + n - 1 - k));
            a1 += wv[k] * (FN(ld)(r + k + VW) + FN(ld)(r + n - 1 - k + VW));
            a2 += wv[k] * (FN(ld)(r + k + 2 * VW) + FN(ld)(r + n - 1 - k + 2 * VW));
            a3 += wv[k] * (FN(ld)(r + k + 3 * VW) + FN(ld)(r + n - 1 - k + 3 * VW));
        }
        FN(st)(out + j, a0);
        FN(st)(out + j + VW, a1);
        FN(st)(out + j + 2 * VW, a2);
        FN(st)(out + j + 3 * VW, a3);
    }
    for (; j < len; j++) {
        double acc = w[c] * t[j + c];
        for (int k = 0; k < c; k++) acc += w[k] * (t[j + k] + t[j + n - 1 - k]);
        out[j] = acc;
    }
}

static int FN(symmetric)(const double *w, int n)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    return sym;
}

/* the vertical pass for two output rows (rows at p + k RS, k = 0..n) and the horizontal pass, for VIF's windows
   (symmetric, at most 17 taps) */
static void FN(vpass2)(const double *p, const double *w, int n, double *restrict out0, double *restrict out1,
                          long len)
{
    switch (n) {
    case 17: FN(vsym2)(p, w, 17, out0, out1, len); return;
    case 9: FN(vsym2)(p, w, 9, out0, out1, len); return;
    case 5: FN(vsym2)(p, w, 5, out0, out1, len); return;
    case 3: FN(vsym2)(p, w, 3, out0, out1, len); return;
    default: FN(vsym2)(p, w, n, out0, out1, len); return;
    }
}

static void FN(hpass)(const double *t, const double *w, int n, double *restrict out, long len)
{
    switch (n) {
    case 17: FN(hsym)(t, w, 17, out, len); return;
    case 9: FN(hsym)(t, w, 9, out, len); return;
    case 5: FN(hsym)(t, w, 5, out, len); return;
    case 3: FN(hsym)(t, w, 3, out, len); return;
    default: FN(hsym)(t, w, n, out, len); return;
    }
}

static void FN(wsum_any)(const double *const *rows, const double *w, int n, double *restrict out, long len)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    if (sym) {
        switch (n) {
        case 17: FN(wsym)(rows, w, 17, 0, 0.0, out, len); return;
        case 9: FN(wsym)(rows, w, 9, 0, 0.0, out, len); return;
        case 5: FN(wsym)(rows, w, 5, 0, 0.0, out, len); return;
        case 3: FN(wsym)(rows, w, 3, 0, 0.0, out, len); return;
        default: FN(wsym)(rows, w, n, 0, 0.0, out, len); return;
        }
    }
    switch (n) {
    case 17: FN(wsum)(rows, w, 17, out, len); break;
    case 9: FN(wsum)(rows, w, 9, out, len); break;
    case 5: FN(wsum)(rows, w, 5, out, len); break;
    case 3: FN(wsum)(rows, w, 3, out, len); break;
    default: FN(wsum)(rows, w, n, out, len); break;
    }
}

/* sum_k w[k] (rows[k][j] - shift) for a symmetric window (centring on the fly), else the plain loop */
static void FN(wsum_shift)(const double *const *rows, const double *w, int n, double shift, double *restrict out,
                              long len)
{
    int sym = n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    if (sym) {
        switch (n) {
        case 9: FN(wsym)(rows, w, 9, 1, shift, out, len); return;
        case 5: FN(wsym)(rows, w, 5, 1, shift, out, len); return;
        case 3: FN(wsym)(rows, w, 3, 1, shift, out, len); return;
        default: FN(wsym)(rows, w, n, 1, shift, out, len); return;
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
static void FN(vsqrt)(double *restrict x, long n)
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
static void FN(box7)(const double *const *rows, double *restrict out, long len)
{
    const double *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3], *r4 = rows[4], *r5 = rows[5],
                 *r6 = rows[6];
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        FN(vd) a0 = FN(ld)(r0 + j) + FN(ld)(r1 + j), a1 = FN(ld)(r0 + j + VW) + FN(ld)(r1 + j + VW);
        a0 += FN(ld)(r2 + j); a1 += FN(ld)(r2 + j + VW);
        a0 += FN(ld)(r3 + j); a1 += FN(ld)(r3 + j + VW);
        a0 += FN(ld)(r4 + j); a1 += FN(ld)(r4 + j + VW);
        a0 += FN(ld)(r5 + j); a1 += FN(ld)(r5 + j + VW);
        a0 += FN(ld)(r6 + j); a1 += FN(ld)(r6 + j + VW);
        FN(st)(out + j, a0);
        FN(st)(out + j + VW, a1);
    }
    for (; j < len; j++) out[j] = (((((r0[j] + r1[j]) + r2[j]) + r3[j]) + r4[j]) + r5[j]) + r6[j];
}

/* centred maps of one input row and their products: P = (f, f^2, a, b, a^2, b^2, a f, b f), each w long */
static void FN(products8)(const double *restrict F, const double *restrict A, const double *restrict B, double sf,
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

static void FN(products)(const double *F, const double *A, const double *B, double sf, double sa, double sb, long w,
                            double *P)
{
    FN(products8)(F, A, B, sf, sa, sb, w, P, P + w, P + 2 * w, P + 3 * w, P + 4 * w, P + 5 * w, P + 6 * w,
                     P + 7 * w);
}

static inline void FN(lanes_add)(const double *restrict x, long len, double *restrict acc)
{
    long j = 0;
    for (; j + NL <= len; j += NL)
        for (int l = 0; l < NL; l++) acc[l] += x[j + l];
    for (int l = 0; j < len; j++, l++) acc[l] += x[j];
}

/* ------------------------------------------------------------------------------------------------ VIF */
/* per-pixel factors of VIF's two log terms for both sources from the eight filtered maps m (8 x wo):
   x[0..3] = 1 + g^2 s_r / (s_v + sigma_n^2) for A, B; 1 + s_r / sigma_n^2 for A, B (see vif.py's _terms) */
static void FN(vif_factors)(const double *m, long wo, double *restrict x)
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
static double FN(logsum)(const double *restrict x, long len)
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
static void FN(product_map)(int c, const double *restrict F, const double *restrict A, const double *restrict B,
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
static void FN(vif_band)(const double *F, const double *A, const double *B, long stride, long w, double sf,
                            double sa, double sb, const double *win, int n, long r0, long r1, long sw_max,
                            double *P, double *t, double *M, double *x, double *rows4)
{
    const long wo = w - n + 1;
    const int sym = FN(symmetric)(win, n);
    const double *rp[17];
    for (long r = r0; r < r1; r++)
        for (int q = 0; q < 4; q++) rows4[r * 4 + q] = 0.0;
    for (long c0 = 0; c0 < wo; c0 += sw_max) {
        const long sw = wo - c0 < sw_max ? wo - c0 : sw_max, wi = sw + n - 1;
        for (int c = 0; c < 8; c++) {
            for (long y = r0; y < r1 + n - 1; y++)
                FN(product_map)(c, F + y * stride + c0, A + y * stride + c0, B + y * stride + c0, sf, sa, sb, wi,
                                   P + (y - r0) * RS);
            for (long r = r0; r < r1;) {
                const int two = sym && r + 1 < r1;
                const double *p = P + (r - r0) * RS;
                if (two) {
                    FN(vpass2)(p, win, n, t, t + RS, wi);
                } else {
                    for (int k = 0; k < n; k++) rp[k] = p + k * RS;
                    FN(wsum_any)(rp, win, n, t, wi);
                }
                for (int q = 0; q <= two; q++) {
                    double *out = M + ((r + q - r0) * 8 + c) * sw;
                    if (sym) {
                        FN(hpass)(t + q * RS, win, n, out, sw);
                    } else {
                        for (int k = 0; k < n; k++) rp[k] = t + q * RS + k;
                        FN(wsum_any)(rp, win, n, out, sw);
                    }
                }
                r += 1 + two;
            }
        }
        for (long r = r0; r < r1; r++) {
            FN(vif_factors)(M + (r - r0) * 8 * sw, sw, x);
            for (int q = 0; q < 4; q++) rows4[r * 4 + q] += FN(logsum)(x + q * sw, sw);
        }
    }
}

/* next scale: rows [i0, i1) of filter_valid(X - shift, win)[::2, ::2] for X = F, A, B (centred on the fly, as the
   torch path filters the centred stack); out: 3 x h2 x w2. t: 2 w doubles. The column pass at every other position
   reads the even and odd columns of the row pass as two contiguous arrays. */
static void FN(down2_band)(const double *const *X, long stride, long w, const double *shifts, const double *win,
                              int n, long i0, long i1, long h2, long w2, double *out, double *t)
{
    const double *rp[17];
    double *te = t + w, *to = t + w + (w + 1) / 2;
    for (int c = 0; c < 3; c++)
        for (long i = i0; i < i1; i++) {
            for (int k = 0; k < n; k++) rp[k] = X[c] + (2 * i + k) * stride;
            if (shifts[c] != 0.0) FN(wsum_shift)(rp, win, n, shifts[c], t, w);
            else FN(wsum_any)(rp, win, n, t, w);
            for (long j = 0; 2 * j < w; j++) te[j] = t[2 * j];
            for (long j = 0; 2 * j + 1 < w; j++) to[j] = t[2 * j + 1];
            for (int k = 0; k < n; k++) rp[k] = (k % 2 ? to : te) + k / 2;
            FN(wsum_any)(rp, win, n, out + (c * h2 + i) * w2, w2);
        }
}

/* ----------------------------------------------------------------------------------------------- SSIM */
/* SSIM map sums (uniform 7 x 7 window, sample covariance) of output rows [r0, r1): rows2[r] = (A, B).
   Same per-pixel arithmetic as the torch path (ssim.py). ring: 7 x 8 x w, t: 8 x w, m: 8 x wo, x: 2 x wo. */
static void FN(ssim_band)(const double *F, const double *A, const double *B, long w, double sf, double sa,
                             double sb, double c1, double c2, long r0, long r1, double *ring, double *t, double *m,
                             double *x, double *rows2)
{
    const int n = 7;
    const long wo = w - n + 1;
    const double win_n = 49.0, norm = 1.0 / (win_n * (win_n - 1.0)), inv_n = 1.0 / win_n;
    const double *rp[7];
    for (long y = r0; y < r0 + n - 1; y++)
        FN(products)(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % n) * 8 * w);
    for (long r = r0; r < r1; r++) {
        const long y = r + n - 1;
        FN(products)(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % n) * 8 * w);
        for (int c = 0; c < 8; c++) {
            for (int k = 0; k < n; k++) rp[k] = ring + ((r + k) % n) * 8 * w + c * w;
            FN(box7)(rp, t + c * w, w);
            for (int k = 0; k < n; k++) rp[k] = t + c * w + k;
            FN(box7)(rp, m + c * wo, wo);
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
            FN(lanes_add)(xs, wo, acc);
            rows2[r * 2 + s] = lanesum(acc);
        }
    }
}

/* ------------------------------------------------------------------------------------------- gradients */
/* Qabf and Nabf contributions of the interior pixels j in [1, w-1) of row i (0 < i < h-1): out 4 x w (entries
   1..w-2 written): Q^AB/F numerator (without Tg Ta) and denominator, N^AB/F artifact loss and weight sum. Inside
   the image the Nabf responses are the Qabf ones / 8 (g exactly, orientation rotated by pi/2), so one Sobel pass,
   one strength and one angle difference per source serve both (see gradient.py). kc: the constants.
   Columns go in chunks of GCH through phases over small arrays (tmp: 13 x GCH), each a vectorised loop. Without
   `nabf` only Qabf's terms are computed (the N^AB/F entries are 0), each the same operations. */
#define GCH 128
static void FN(grad_interior)(const double *const *X, long w, long i, const double *kc, int nabf,
                                 double *restrict out, double *restrict tmp)
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
            FN(vsqrt)(g, len);
        }
        if (!nabf) {   /* Qabf alone: the first half of the loop below */
            const double *restrict gF = G, *restrict gA = G + GCH, *restrict gB = G + 2 * GCH, *restrict xf = XX,
                         *restrict yf = YY, *restrict xa = XX + GCH, *restrict ya = YY + GCH,
                         *restrict xb = XX + 2 * GCH, *restrict yb = YY + 2 * GCH;
            for (long j = 0; j < len; j++) {
                const double ga = gA[j], gb = gB[j], gf = gF[j];
                double da, db;
                absatan2x2_(xf[j] * ya[j] - yf[j] * xa[j], xf[j] * xa[j] + yf[j] * ya[j],
                            xf[j] * yb[j] - yf[j] * xb[j], xf[j] * xb[j] + yf[j] * yb[j], &da, &db);
                const double loa = ga < gf ? ga : gf, hia0 = ga > gf ? ga : gf, hia = hia0 > 0.0 ? hia0 : 1.0;
                const double lob = gb < gf ? gb : gf, hib0 = gb > gf ? gb : gf, hib = hib0 > 0.0 ? hib0 : 1.0;
                const double ih = 1.0 / (hia * hib);
                const double ra = loa * hib * ih, rb = lob * hia * ih;
                const double rela = ga == gf ? gf : ra, relb = gb == gf ? gf : rb;
                const double xqa = (1.0 + exp_(-((rela - 0.5) * qkg))) * (1.0 + exp_(-(da * qka + qoa)));
                const double xqb = (1.0 + exp_(-((relb - 0.5) * qkg))) * (1.0 + exp_(-(db * qka + qoa)));
                const double iqq = 1.0 / (xqa * xqb);
                qn[j0 + j] = ga * xqb * iqq + gb * xqa * iqq;
                qd[j0 + j] = ga + gb;
                nl[j0 + j] = nw[j0 + j] = 0.0;
            }
            continue;
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
        FN(vsqrt)(Z + 2 * GCH, len);
        FN(vsqrt)(Z + 3 * GCH, len);
        double *restrict sg = Z + 4 * GCH;
        for (int s = 1; s < 3; s++)
            for (long j = 0; j < len; j++) sg[(s - 1) * GCH + j] = G[s * GCH + j] * 0.125;
        FN(vsqrt)(sg, len);
        FN(vsqrt)(sg + GCH, len);
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
static void FN(grad_pixel)(const double *const *X, long H, long W, long i, long j, const double *kc, int nabf,
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
static void FN(grad_row)(const double *const *X, long h, long w, long i, const double *kc, int nabf, double *tmp,
                            double *rows4)
{
    double pix[4];
    if (i > 0 && i < h - 1 && w >= 3) {
        FN(grad_interior)(X, w, i, kc, nabf, tmp, tmp + 4 * w);
        for (int q = 0; q < 4; q++) {
            double acc[NL] = {0.0, 0.0, 0.0, 0.0};
            FN(lanes_add)(tmp + q * w + 1, w - 2, acc);
            rows4[i * 4 + q] = lanesum(acc);
        }
        FN(grad_pixel)(X, h, w, i, 0, kc, nabf, pix);
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
        FN(grad_pixel)(X, h, w, i, w - 1, kc, nabf, pix);
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
    } else {
        for (int q = 0; q < 4; q++) rows4[i * 4 + q] = 0.0;
        for (long j = 0; j < w; j++) {
            FN(grad_pixel)(X, h, w, i, j, kc, nabf, pix);
            for (int q = 0; q < 4; q++) rows4[i * 4 + q] += pix[q];
        }
    }
}

/* ---------------------------------------------------------------------------------------------- statistics */
/* the global sums of one row i (see mmdr_stats) into acc[NSTAT]; max of F into *mx */
static void FN(stats_row)(const double *F, const double *A, const double *B, long h, long w, long i, double sf,
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
        FN(vsqrt)(tmp, w);
        FN(lanes_add)(tmp, w, ag);
        out[16] = lanesum(ag);
    } else {
        out[16] = 0.0;
    }
    out[14] = lanesum(dx);
    out[15] = lanesum(dy);
}

/* joint gray-level counts (F, A) and (F, B) of rows [r0, r1) added to tab (2 x 256 x 256) */
static void FN(hist_rows)(const double *F, const double *A, const double *B, long w, long r0, long r1,
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
static void FN(gray)(const uint8_t *src, long npix, int bgr, int conv, uint8_t *restrict out)
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

#undef FN
#undef FN_CAT
#undef FN_CAT2
