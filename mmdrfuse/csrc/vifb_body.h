/* Row passes of the VIFB metrics' kernels (Qcb, Qcv, the Gaussian SSIM), written once and included once per
   instruction set by metrics.c after metrics_body.h (same conventions: ISA, VW, FN). See _native.py. */
#define FN_CAT2(a, b) a##_##b
#define FN_CAT(a, b) FN_CAT2(a, b)
#define FN(name) FN_CAT(name, ISA)

/* ------------------------------------------------------------------------------------------- normalize1 */
/* Z. Liu's normalize1 of n values (matlab.py's arithmetic, bit for bit): y = ((x - lo) / (hi - lo)) 255, then
   MATLAB's round of y >= 0 as floor(y + 0.5) (0 below 0.5; NaN stays NaN). No multiply-add contraction here:
   fma(q, 255, 0.5) would round once where the torch path rounds twice, and move ties. */
__attribute__((optimize("fp-contract=off")))
static void FN(normalize_run)(const double *restrict x, long n, double lo, double hi, double *restrict out)
{
    const double d = hi - lo;
    for (long j = 0; j < n; j++) {
        const double y = ((x[j] - lo) / d) * 255.0;
        out[j] = floor(y + 0.5) * (y >= 0.5 ? 1.0 : 0.0);
    }
}

/* MATLAB's rgb2gray of n pixels (matlab.py's arithmetic, bit for bit): y = (r w0 + g w1) + b w2, each product and
   sum rounded (no contraction); with `integer` rounded half away from zero (round, trunc, |y - t| == 0.5: the
   torch path's round_half_away) and clamped to 0..255 */
__attribute__((optimize("fp-contract=off")))
static void FN(rgb2gray_run)(const double *restrict r, const double *restrict g, const double *restrict b, long n,
                                double w0, double w1, double w2, int integer, double *restrict out)
{
    if (!integer) {
        for (long j = 0; j < n; j++) out[j] = (r[j] * w0 + g[j] * w1) + b[j] * w2;
        return;
    }
    for (long j = 0; j < n; j++) {
        const double y = (r[j] * w0 + g[j] * w1) + b[j] * w2;
        const double t = trunc(y), rn = nearbyint(y);
        double v = fabs(y - t) == 0.5 ? t + sgn(y) : rn;
        v = v < 0.0 ? 0.0 : v;
        out[j] = v > 255.0 ? 255.0 : v;
    }
}

/* ------------------------------------------------------------------------------------------------- Qcb */
/* Two symmetric windows w1, w2 (n odd, centre c = n/2) down the same rows: o1[j] = w1[c] r[c][j] +
   sum_{k<c} w1[k] (r[k][j] + r[n-1-k][j]), o2 likewise with w2; the pair sums are formed once for both windows.
   Four vectors per window (eight independent multiply-add chains); the tails do the same operations per element. */
static inline __attribute__((always_inline)) void FN(vpair)(const double *const *r, const double *w1,
                                                               const double *w2, int n, double *restrict o1,
                                                               double *restrict o2, long len)
{
    const int c = n / 2;
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        FN(vd) a[4], b[4];
        for (int v = 0; v < 4; v++) {
            const FN(vd) x = FN(ld)(r[c] + j + v * VW);
            a[v] = FN(bc)(w1[c]) * x;
            b[v] = FN(bc)(w2[c]) * x;
        }
#pragma GCC unroll 16
        for (int k = 0; k < c; k++) {
            const double *p = r[k] + j, *q = r[n - 1 - k] + j;
            const FN(vd) u = FN(bc)(w1[k]), t = FN(bc)(w2[k]);
            for (int v = 0; v < 4; v++) {
                const FN(vd) s = FN(ld)(p + v * VW) + FN(ld)(q + v * VW);
                a[v] += u * s;
                b[v] += t * s;
            }
        }
        for (int v = 0; v < 4; v++) {
            FN(st)(o1 + j + v * VW, a[v]);
            FN(st)(o2 + j + v * VW, b[v]);
        }
    }
    for (; j < len; j++) {
        const double x = r[c][j];
        double a = w1[c] * x, b = w2[c] * x;
        for (int k = 0; k < c; k++) {
            const double s = r[k][j] + r[n - 1 - k][j];
            a += w1[k] * s;
            b += w2[k] * s;
        }
        o1[j] = a;
        o2[j] = b;
    }
}

/* vpair for two output rows at once: rows r[0..n] (n + 1), row 0's outputs from r[0..n-1] into o1, o2, row 1's
   from r[1..n] into p1, p2; every input row is loaded once for both, each element the same operations as vpair */
static inline __attribute__((always_inline)) void FN(vpair2)(const double *const *r, const double *w1,
                                                                const double *w2, int n, double *restrict o1,
                                                                double *restrict o2, double *restrict p1,
                                                                double *restrict p2, long len)
{
    const int c = n / 2;
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        FN(vd) a[2], b[2], d[2], e[2];
        for (int v = 0; v < 2; v++) {
            const FN(vd) x = FN(ld)(r[c] + j + v * VW), y = FN(ld)(r[c + 1] + j + v * VW);
            a[v] = FN(bc)(w1[c]) * x;
            b[v] = FN(bc)(w2[c]) * x;
            d[v] = FN(bc)(w1[c]) * y;
            e[v] = FN(bc)(w2[c]) * y;
        }
#pragma GCC unroll 16
        for (int k = 0; k < c; k++) {
            const FN(vd) u = FN(bc)(w1[k]), t = FN(bc)(w2[k]);
            for (int v = 0; v < 2; v++) {
                const long o = j + v * VW;
                const FN(vd) s0 = FN(ld)(r[k] + o) + FN(ld)(r[n - 1 - k] + o);
                const FN(vd) s1 = FN(ld)(r[k + 1] + o) + FN(ld)(r[n - k] + o);
                a[v] += u * s0;
                b[v] += t * s0;
                d[v] += u * s1;
                e[v] += t * s1;
            }
        }
        for (int v = 0; v < 2; v++) {
            FN(st)(o1 + j + v * VW, a[v]);
            FN(st)(o2 + j + v * VW, b[v]);
            FN(st)(p1 + j + v * VW, d[v]);
            FN(st)(p2 + j + v * VW, e[v]);
        }
    }
    for (; j < len; j++) {
        const double x = r[c][j], y = r[c + 1][j];
        double a = w1[c] * x, b = w2[c] * x, d = w1[c] * y, e = w2[c] * y;
        for (int k = 0; k < c; k++) {
            const double s0 = r[k][j] + r[n - 1 - k][j], s1 = r[k + 1][j] + r[n - k][j];
            a += w1[k] * s0;
            b += w2[k] * s0;
            d += w1[k] * s1;
            e += w2[k] * s1;
        }
        o1[j] = a;
        o2[j] = b;
        p1[j] = d;
        p2[j] = e;
    }
}

/* the horizontal passes of both windows: o1[j] = w1[c] t1[j+c] + sum_{k<c} w1[k] (t1[j+k] + t1[j+n-1-k]) and o2
   from t2 with w2 (t1, t2 zero-padded by c on each side); four vectors of each per sweep (eight chains) */
static inline __attribute__((always_inline)) void FN(hpair)(const double *t1, const double *t2, const double *w1,
                                                               const double *w2, int n, double *restrict o1,
                                                               double *restrict o2, long len)
{
    const int c = n / 2;
    long j = 0;
    for (; j + 4 * VW <= len; j += 4 * VW) {
        FN(vd) a[4], b[4];
        for (int v = 0; v < 4; v++) {
            a[v] = FN(bc)(w1[c]) * FN(ld)(t1 + j + v * VW + c);
            b[v] = FN(bc)(w2[c]) * FN(ld)(t2 + j + v * VW + c);
        }
#pragma GCC unroll 16
        for (int k = 0; k < c; k++) {
            const FN(vd) u = FN(bc)(w1[k]), t = FN(bc)(w2[k]);
            for (int v = 0; v < 4; v++) {
                const long o = j + v * VW;
                a[v] += u * (FN(ld)(t1 + o + k) + FN(ld)(t1 + o + n - 1 - k));
                b[v] += t * (FN(ld)(t2 + o + k) + FN(ld)(t2 + o + n - 1 - k));
            }
        }
        for (int v = 0; v < 4; v++) {
            FN(st)(o1 + j + v * VW, a[v]);
            FN(st)(o2 + j + v * VW, b[v]);
        }
    }
    for (; j < len; j++) {
        double a = w1[c] * t1[j + c], b = w2[c] * t2[j + c];
        for (int k = 0; k < c; k++) {
            a += w1[k] * (t1[j + k] + t1[j + n - 1 - k]);
            b += w2[k] * (t2[j + k] + t2[j + n - 1 - k]);
        }
        o1[j] = a;
        o2[j] = b;
    }
}

/* Chen-Blum's masked contrast of output rows [r0, r1) of one image x (h x w): C = |(G1 * x) / (G2 * x) - 1| with
   filter2(outer(g, g), x, 'same') (zero padding), C' = C^3 / (C^2 + z), into out (h x w). zero: a row of w zeros;
   t: 4 (w + n - 1) + 2 w doubles. The vertical pass first (the torch path's order), both windows and two output
   rows at once. */
static void FN(qcb_band)(const double *x, long h, long w, const double *g1, const double *g2, int n, double z,
                            const double *zero, long r0, long r1, double *restrict out, double *t)
{
    const int c = n / 2;
    const long wp = w + n - 1;
    double *t1 = t, *t2 = t + wp, *u1 = t + 2 * wp, *u2 = t + 3 * wp, *o1 = t + 4 * wp, *o2 = o1 + w;
    const double *rp[QCB_MAXTAPS + 1];
    for (int k = 0; k < c; k++)
        t1[k] = t2[k] = u1[k] = u2[k] = t1[c + w + k] = t2[c + w + k] = u1[c + w + k] = u2[c + w + k] = 0.0;
    for (long i = r0; i < r1; i += 2) {
        const int two = i + 1 < r1;
        for (int k = 0; k <= n; k++) {
            const long y = i - c + k;
            rp[k] = (y < 0 || y >= h) ? zero : x + y * w;
        }
        if (two && n == 31) FN(vpair2)(rp, g1, g2, 31, t1 + c, t2 + c, u1 + c, u2 + c, w);
        else if (two) FN(vpair2)(rp, g1, g2, n, t1 + c, t2 + c, u1 + c, u2 + c, w);
        else if (n == 31) FN(vpair)(rp, g1, g2, 31, t1 + c, t2 + c, w);
        else FN(vpair)(rp, g1, g2, n, t1 + c, t2 + c, w);
        for (int q = 0; q <= two; q++) {
            if (n == 31) FN(hpair)(q ? u1 : t1, q ? u2 : t2, g1, g2, 31, o1, o2, w);
            else FN(hpair)(q ? u1 : t1, q ? u2 : t2, g1, g2, n, o1, o2, w);
            double *restrict o = out + (i + q) * w;
            for (long j = 0; j < w; j++) {
                const double cc = fabs(o1[j] / o2[j] - 1.0), c2 = cc * cc;
                o[j] = (c2 * cc) / (c2 + z);
            }
        }
    }
}

/* the per-pixel Qcb of rows [r0, r1) from the masked contrast maps of F, A, B: Q_SF = min / max of C'_S, C'_F (NaN
   where the min is 0, as MATLAB's masking gives), lambda_S = C'_S^2, value (lA QAF + lB QBF) / (lA + lB); sums of
   each row into rows[r]. tmp: w doubles. */
static void FN(qcb_rows)(const double *cf, const double *ca, const double *cb, long w, long r0, long r1,
                            double *restrict tmp, double *rows)
{
    for (long i = r0; i < r1; i++) {
        const double *f = cf + i * w, *a = ca + i * w, *b = cb + i * w;
        for (long j = 0; j < w; j++) {
            const double vf = f[j], va = a[j], vb = b[j];
            const double loa = va < vf ? va : vf, hia = va > vf ? va : vf;
            const double lob = vb < vf ? vb : vf, hib = vb > vf ? vb : vf;
            const double qa = loa == 0.0 ? NAN : loa / hia, qb = lob == 0.0 ? NAN : lob / hib;
            const double sa = va * va, sb = vb * vb;
            tmp[j] = (sa * qa + sb * qb) / (sa + sb);
        }
        double acc[NL] = {0.0, 0.0, 0.0, 0.0};
        FN(lanes_add)(tmp, w, acc);
        rows[i] = lanesum(acc);
    }
}

/* ------------------------------------------------------------------------------------------------- Qcv */
/* G^5 = (sqrt(G^2) G^2) G^2 (G the zero-padded Sobel magnitude, sobel_zero's sums) of one row from its padded
   neighbours u, m, d (w + 2 each, zeros at both ends) into g5 (w); sq: w doubles */
static void FN(sobel5_row)(const double *u, const double *m, const double *d, long w, double *restrict g5,
                              double *restrict sq)
{
    for (long j = 0; j < w; j++) {
        const double vr = (u[j + 2] + 2.0 * m[j + 2]) + d[j + 2], vl = (u[j] + 2.0 * m[j]) + d[j];
        const double hu = (u[j] + 2.0 * u[j + 1]) + u[j + 2], hd = (d[j] + 2.0 * d[j + 1]) + d[j + 2];
        const double gx = vr - vl, gy = hu - hd;
        g5[j] = sq[j] = gx * gx + gy * gy;
    }
    FN(vsqrt)(sq, w);
    for (long j = 0; j < w; j++) g5[j] = (sq[j] * g5[j]) * g5[j];
}

/* one row of blocks (rows [i0, i0 + k) of the image, those >= h count as zero) of Qcv for both sources: block
   sums of G_S^5 (lambda) and of D_S^2 (column sums over the block's rows, then each block's columns), then the sum
   over the blocks of lambda (D / k^2) and of lambda, into rows2. tmp: 3 (w + 2) + 5 w + 4 ceil(w / k) doubles. */
static void FN(qcv_blockrow)(const double *xa, const double *xb, const double *da, const double *db, long h,
                                long w, int k, long i0, double *tmp, double *rows2)
{
    const long wb = (w + k - 1) / k, i1 = i0 + k < h ? i0 + k : h;
    double *ring = tmp, *g = ring + 3 * (w + 2), *sq = g + w, *cg = sq + w, *ce = cg + w, *lam = ce + w,
           *dst = lam + 2 * wb;
    for (int s = 0; s < 2; s++) {
        const double *x = s ? xb : xa, *d = s ? db : da;
        double *pr[3] = {ring, ring + (w + 2), ring + 2 * (w + 2)};
        for (long j = 0; j < w; j++) cg[j] = ce[j] = 0.0;
        for (int q = 0; q < 3; q++) {   /* rows i0 - 1, i0, i0 + 1, zero-padded */
            const long y = i0 - 1 + q;
            pr[q][0] = pr[q][w + 1] = 0.0;
            if (y < 0 || y >= h) memset(pr[q] + 1, 0, sizeof(double) * (size_t)w);
            else memcpy(pr[q] + 1, x + y * w, sizeof(double) * (size_t)w);
        }
        for (long i = i0; i < i1; i++) {
            if (i > i0) {   /* rotate: the row below i + 1 enters */
                double *t = pr[0];
                pr[0] = pr[1];
                pr[1] = pr[2];
                pr[2] = t;
                t[0] = t[w + 1] = 0.0;
                if (i + 1 >= h) memset(t + 1, 0, sizeof(double) * (size_t)w);
                else memcpy(t + 1, x + (i + 1) * w, sizeof(double) * (size_t)w);
            }
            FN(sobel5_row)(pr[0], pr[1], pr[2], w, g, sq);
            const double *dr = d + i * w;
            for (long j = 0; j < w; j++) {
                cg[j] += g[j];
                ce[j] += dr[j] * dr[j];
            }
        }
        for (long jb = 0; jb < wb; jb++) {
            const long j0 = jb * k, j1 = j0 + k < w ? j0 + k : w;
            double sg = 0.0, se = 0.0;
            for (long j = j0; j < j1; j++) { sg += cg[j]; se += ce[j]; }
            lam[s * wb + jb] = sg;
            dst[s * wb + jb] = se;
        }
    }
    const double inv = 1.0 / (double)(k * k);
    double num = 0.0, den = 0.0;
    for (int s = 0; s < 2; s++)
        for (long jb = 0; jb < wb; jb++) {
            num += lam[s * wb + jb] * (dst[s * wb + jb] * inv);
            den += lam[s * wb + jb];
        }
    rows2[0] = num;
    rows2[1] = den;
}

/* ----------------------------------------------------------------------------------------- global sums */
/* VIFB's per-row sums of one row i of (F, A, B) (h x w), as flagged (VS_* in metrics.c): out[0], out[1] = sum of
   (A - F)^2, (B - F)^2; out[2], out[3] = sum of F - sf, (F - sf)^2; out[4] = sum of the replicate-border Sobel
   magnitudes of F (extras.py's edge intensity); out[5] = sum of numpy.gradient's sqrt((gx^2 + gy^2) / 2) (the
   same code as stats_row's AG). tmp: w doubles. */
static void FN(vstats_row)(const double *F, const double *A, const double *B, long h, long w, long i, int flags,
                              double sf, double *restrict out, double *restrict tmp)
{
    const double *f = F + i * w, *a = A + i * w, *b = B + i * w;
    for (int q = 0; q < 6; q++) out[q] = 0.0;
    if (flags & VS_RMSE) {
        double sa[NL] = {0.0, 0.0, 0.0, 0.0}, sb[NL] = {0.0, 0.0, 0.0, 0.0};
        long j = 0;
        for (; j + NL <= w; j += NL)
            for (int l = 0; l < NL; l++) {
                const double da = a[j + l] - f[j + l], db = b[j + l] - f[j + l];
                sa[l] += da * da;
                sb[l] += db * db;
            }
        for (int l = 0; j < w; j++, l++) {
            const double da = a[j] - f[j], db = b[j] - f[j];
            sa[l] += da * da;
            sb[l] += db * db;
        }
        out[0] = lanesum(sa);
        out[1] = lanesum(sb);
    }
    if (flags & VS_SD) {
        double s0[NL] = {0.0, 0.0, 0.0, 0.0}, s1[NL] = {0.0, 0.0, 0.0, 0.0};
        long j = 0;
        for (; j + NL <= w; j += NL)
            for (int l = 0; l < NL; l++) {
                const double fc = f[j + l] - sf;
                s0[l] += fc;
                s1[l] += fc * fc;
            }
        for (int l = 0; j < w; j++, l++) {
            const double fc = f[j] - sf;
            s0[l] += fc;
            s1[l] += fc * fc;
        }
        out[2] = lanesum(s0);
        out[3] = lanesum(s1);
    }
    if (flags & VS_EI) {
        const double *up = i > 0 ? f - w : f, *dn = i < h - 1 ? f + w : f;
        for (long j = 0; j < w; j++) {
            const long jl = j > 0 ? j - 1 : 0, jr = j < w - 1 ? j + 1 : w - 1;
            const double vr = (up[jr] + 2.0 * f[jr]) + dn[jr], vl = (up[jl] + 2.0 * f[jl]) + dn[jl];
            const double hu = (up[jl] + 2.0 * up[j]) + up[jr], hd = (dn[jl] + 2.0 * dn[j]) + dn[jr];
            const double gx = vr - vl, gy = hu - hd;
            tmp[j] = gx * gx + gy * gy;
        }
        FN(vsqrt)(tmp, w);
        double acc[NL] = {0.0, 0.0, 0.0, 0.0};
        FN(lanes_add)(tmp, w, acc);
        out[4] = lanesum(acc);
    }
    if ((flags & VS_AG) && h >= 2 && w >= 2) {
        const double *up = i > 0 ? f - w : f, *dn = i < h - 1 ? f + w : f;
        const double ys = (i > 0 && i < h - 1) ? 0.5 : 1.0;
        const double gx0 = f[1] - f[0], gy0 = (dn[0] - up[0]) * ys;
        const double gx1 = f[w - 1] - f[w - 2], gy1 = (dn[w - 1] - up[w - 1]) * ys;
        tmp[0] = (gx0 * gx0 + gy0 * gy0) * 0.5;
        tmp[w - 1] = (gx1 * gx1 + gy1 * gy1) * 0.5;
        for (long j = 1; j < w - 1; j++) {
            const double gx = (f[j + 1] - f[j - 1]) * 0.5, gy = (dn[j] - up[j]) * ys;
            tmp[j] = (gx * gx + gy * gy) * 0.5;
        }
        FN(vsqrt)(tmp, w);
        double acc[NL] = {0.0, 0.0, 0.0, 0.0};
        FN(lanes_add)(tmp, w, acc);
        out[5] = lanesum(acc);
    }
}

/* hq (4 interleaved copies x 256) += the levels v[0..w): pixel j counted in copy j mod 4 (the tail in copy 0) */
static inline __attribute__((always_inline)) void FN(count4)(int32_t *restrict hq, const int32_t *v, long w)
{
    long j = 0;
    for (; j + 4 <= w; j += 4) {
        hq[v[j]]++;
        hq[256 + v[j + 1]]++;
        hq[512 + v[j + 2]]++;
        hq[768 + v[j + 3]]++;
    }
    for (; j < w; j++) hq[v[j]]++;
}

/* gray-level counts of rows [r0, r1), as flagged: lev (4 tables x 4 interleaved copies x 256, pixel j counted in
   copy j mod 4, so that runs of one level do not wait on each other's increments) += round(F), round(A),
   round(B) (half to even, clamped: to_levels) with VS_CE, floor(F) clamped with VS_EN; joint (2 x 256 x 256,
   rows = source) += the pairs (A, F), (B, F) of the truncated values with NaN as 0 (the normalised images' int64
   cast) with VS_MI. lv: 3 w int32. */
static void FN(vhist_rows)(const double *F, const double *A, const double *B, long w, long r0, long r1, int flags,
                              int32_t *restrict lev, int32_t *restrict joint, int32_t *restrict lv)
{
    const double shift = 6755399441055744.0;
    for (long i = r0; i < r1; i++) {
        if (flags & VS_CE)
            for (int q = 0; q < 3; q++) {
                const double *x = (q == 0 ? F : (q == 1 ? A : B)) + i * w;
                int32_t *o = lv + q * w;
                for (long j = 0; j < w; j++) {
                    double r = (x[j] + shift) - shift;
                    r = r < 0.0 ? 0.0 : (r > 255.0 ? 255.0 : r);
                    o[j] = (int32_t)r;
                }
                FN(count4)(lev + q * 1024, o, w);
            }
        if (flags & VS_EN) {
            const double *x = F + i * w;
            for (long j = 0; j < w; j++) {
                double r = floor(x[j]);
                r = r < 0.0 ? 0.0 : (r > 255.0 ? 255.0 : r);
                lv[j] = (int32_t)r;
            }
            FN(count4)(lev + 3 * 1024, lv, w);
        }
        if (flags & VS_MI) {
            for (int q = 0; q < 3; q++) {
                const double *x = (q == 0 ? F : (q == 1 ? A : B)) + i * w;
                int32_t *o = lv + q * w;
                for (long j = 0; j < w; j++) {
                    double r = x[j] != x[j] ? 0.0 : x[j];
                    r = r < 0.0 ? 0.0 : (r > 255.0 ? 255.0 : r);
                    o[j] = (int32_t)r;
                }
            }
            const int32_t *lf = lv, *la = lv + w, *lb = lv + 2 * w;
            for (long j = 0; j < w; j++) {
                joint[la[j] * 256 + lf[j]]++;
                joint[65536 + lb[j] * 256 + lf[j]]++;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------- Gaussian SSIM */
/* the symmetric vertical pass (wsym's operations) for two output rows: rows r[0..n], out0 from r[0..n-1], out1 from
   r[1..n], each row loaded once for both */
static inline __attribute__((always_inline)) void FN(wsym2)(const double *const *r, const double *w, int n,
                                                               double *restrict out0, double *restrict out1,
                                                               long len)
{
    const int c = n / 2;
    long j = 0;
    for (; j + 2 * VW <= len; j += 2 * VW) {
        FN(vd) a[2], b[2];
        for (int v = 0; v < 2; v++) {
            a[v] = FN(bc)(w[c]) * FN(ld)(r[c] + j + v * VW);
            b[v] = FN(bc)(w[c]) * FN(ld)(r[c + 1] + j + v * VW);
        }
#pragma GCC unroll 8
        for (int k = 0; k < c; k++) {
            const FN(vd) wk = FN(bc)(w[k]);
            for (int v = 0; v < 2; v++) {
                const long o = j + v * VW;
                a[v] += wk * (FN(ld)(r[k] + o) + FN(ld)(r[n - 1 - k] + o));
                b[v] += wk * (FN(ld)(r[k + 1] + o) + FN(ld)(r[n - k] + o));
            }
        }
        for (int v = 0; v < 2; v++) {
            FN(st)(out0 + j + v * VW, a[v]);
            FN(st)(out1 + j + v * VW, b[v]);
        }
    }
    for (; j < len; j++) {
        double acc0 = w[c] * r[c][j], acc1 = w[c] * r[c + 1][j];
        for (int k = 0; k < c; k++) {
            acc0 += w[k] * (r[k][j] + r[n - 1 - k][j]);
            acc1 += w[k] * (r[k + 1][j] + r[n - k][j]);
        }
        out0[j] = acc0;
        out1[j] = acc1;
    }
}

/* the SSIM map of one output row r from its eight filtered maps m (8 x wo): rows2[r] = (sum for A, sum for B) */
static void FN(ssimg_row)(const double *m, long wo, double sf, double sa, double sb, double c1, double c2,
                             double *restrict x, double *rows2)
{
    const double *mf = m, *mff = m + wo;
    for (int s = 0; s < 2; s++) {
        const double *ms = m + (2 + s) * wo, *mss = m + (4 + s) * wo, *msf = m + (6 + s) * wo;
        const double shift_s = s ? sb : sa;
        for (long j = 0; j < wo; j++) {
            const double vf = mff[j] - mf[j] * mf[j];
            const double vs = mss[j] - ms[j] * ms[j];
            const double vsf = msf[j] - ms[j] * mf[j];
            const double uf = mf[j] + sf, us = ms[j] + shift_s;
            const double num = (us * uf * 2.0 + c1) * (vsf * 2.0 + c2);
            const double den = (us * us + uf * uf + c1) * (vs + vf + c2);
            x[j] = num / den;
        }
        double acc[NL] = {0.0, 0.0, 0.0, 0.0};
        FN(lanes_add)(x, wo, acc);
        rows2[s] = lanesum(acc);
    }
}

/* SSIM map sums (symmetric window win of n <= 17 taps, valid windows, population covariance; Wang et al.'s SSIM as
   ssim.py's _gauss_per_source) of output rows [r0, r1): rows2[r] = (A, B). Output rows go in pairs (one vertical
   sweep per map for both). ring: (n + 1) x 8 x w, t: 2 w, m: 2 x 8 x wo, x: wo. */
static void FN(ssimg_band)(const double *F, const double *A, const double *B, long w, double sf, double sa,
                              double sb, const double *win, int n, double c1, double c2, long r0, long r1,
                              double *ring, double *t, double *m, double *x, double *rows2)
{
    const long wo = w - n + 1, slots = n + 1;
    const double *rp[18];
    for (long y = r0; y < r0 + n - 1; y++)
        FN(products)(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % slots) * 8 * w);
    for (long r = r0; r < r1; r += 2) {
        const int two = r + 1 < r1;
        for (long y = r + n - 1; y <= r + n - 1 + two; y++)
            FN(products)(F + y * w, A + y * w, B + y * w, sf, sa, sb, w, ring + (y % slots) * 8 * w);
        for (int c = 0; c < 8; c++) {
            for (int k = 0; k <= n - 1 + two; k++) rp[k] = ring + ((r + k) % slots) * 8 * w + c * w;
            if (two && n == 11) FN(wsym2)(rp, win, 11, t, t + w, w);
            else if (two) FN(wsym2)(rp, win, n, t, t + w, w);
            else if (n == 11) FN(wsym)(rp, win, 11, 0, 0.0, t, w);
            else FN(wsym)(rp, win, n, 0, 0.0, t, w);
            for (int q = 0; q <= two; q++) {
                if (n == 11) FN(hsym)(t + q * w, win, 11, m + (q * 8 + c) * wo, wo);
                else FN(hsym)(t + q * w, win, n, m + (q * 8 + c) * wo, wo);
            }
        }
        for (int q = 0; q <= two; q++) FN(ssimg_row)(m + q * 8 * wo, wo, sf, sa, sb, c1, c2, x, rows2 + (r + q) * 2);
    }
}

#undef FN
#undef FN_CAT
#undef FN_CAT2
