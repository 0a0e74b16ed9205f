/* The metrics' C kernels (VIF, SSIM, Qabf + Nabf, global statistics, gray conversion, PNG scanline filters, and the
   VIFB convention's Qcb, Qcv and Gaussian SSIM), see mmdrfuse/metrics/_native.py for how they are called and
   docs/metrics.md for what they compute. Built by mmdrfuse/native.py with -Wall -Wextra; the AVX2 and AVX-512
   variants are the same bodies (metrics_body.h, vifb_body.h) compiled under target pragmas, chosen at run time by
   mmdr_metrics_isa(). */
#include <math.h>
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
#define QCB_MAXTAPS 63  /* the longest window of mmdr_qcb_contrast (Chen-Blum's are 31 taps) */
/* what mmdr_vifb_stats computes (flags) */
#define VS_CE 1
#define VS_EN 2
#define VS_RMSE 4
#define VS_EI 8
#define VS_SD 16
#define VS_AG 32
#define VS_MI 64
#define VS_NOUT 8

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
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VSQRT_WIDTH 2
#else
#define VSQRT_WIDTH 1
#endif
#define VW 4

/* portable build */
#define ISA generic
#include "metrics_body.h"
#include "vifb_body.h"
#undef ISA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* AVX2 + FMA build */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#undef VSQRT_WIDTH
#define VSQRT_WIDTH 4
#undef VW
#define VW 4
#define ISA avx2
#include "metrics_body.h"
#include "vifb_body.h"
#undef ISA
#pragma GCC pop_options
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* AVX-512 + FMA build (512-bit vectors where the compiler vectorises) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")
#undef VSQRT_WIDTH
#define VSQRT_WIDTH 8
#undef VW
#define VW 8
#define ISA avx512
#include "metrics_body.h"
#include "vifb_body.h"
#undef ISA
#pragma GCC pop_options
#endif

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

/* Qabf and Nabf per image: out (2 x N). kc: the constants (see _native.py). Nabf is NaN for sides < 2 and
   without want_nabf (Qabf alone, about half the work). */
int mmdr_gradients(const double *f, const double *a, const double *b, long N, long H, long W, const double *kc,
                   int want_nabf, double *out, int nthreads, int isa)
{
    (void)isa;
    const int nabf = want_nabf && H >= 2 && W >= 2;
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

/* ================================================================================================= VIFB */
static int symmetric_odd(const double *w, int n)
{
    int sym = n >= 1 && n % 2 == 1;
    for (int k = 0; k < n / 2; k++) sym &= w[k] == w[n - 1 - k];
    return sym;
}

/* normalize1 (Z. Liu's min-max scaling to 0..255, rounded) of M images xs[m] (H x W each) into out (M x H x W);
   an image whose minimum and maximum are both 0 is copied unchanged, another constant image becomes NaN (0 / 0), as
   in MATLAB */
int mmdr_normalize1(const double *const *xs, long M, long H, long W, double *out, int nthreads, int isa)
{
    (void)isa;
    const long n = H * W, chunk = 1L << 14, per = (n + chunk - 1) / chunk;
    double *mm = ws_get((size_t)(2 * M * per + 64));
    if (!mm) return -1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long q = 0; q < M * per; q++) {
        const double *p = xs[q / per] + (q % per) * chunk;
        const long len = (q % per + 1) * chunk < n ? chunk : n - (q % per) * chunk;
        double lo[NL], hi[NL];
        for (int l = 0; l < NL; l++) lo[l] = hi[l] = p[0];
        long j = 0;
        for (; j + NL <= len; j += NL)
            for (int l = 0; l < NL; l++) {
                lo[l] = p[j + l] < lo[l] ? p[j + l] : lo[l];
                hi[l] = p[j + l] > hi[l] ? p[j + l] : hi[l];
            }
        for (; j < len; j++) {
            lo[0] = p[j] < lo[0] ? p[j] : lo[0];
            hi[0] = p[j] > hi[0] ? p[j] : hi[0];
        }
        for (int l = 1; l < NL; l++) { lo[0] = lo[l] < lo[0] ? lo[l] : lo[0]; hi[0] = hi[l] > hi[0] ? hi[l] : hi[0]; }
        mm[2 * q] = lo[0];
        mm[2 * q + 1] = hi[0];
    }
    for (long im = 0; im < M; im++)
        for (long q = 1; q < per; q++) {
            double *m0 = mm + 2 * im * per, *mq = m0 + 2 * q;
            m0[0] = mq[0] < m0[0] ? mq[0] : m0[0];
            m0[1] = mq[1] > m0[1] ? mq[1] : m0[1];
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long q = 0; q < M * per; q++) {
        const long im = q / per, off = (q % per) * chunk;
        const long len = (q % per + 1) * chunk < n ? chunk : n - (q % per) * chunk;
        const double lo = mm[2 * im * per], hi = mm[2 * im * per + 1];
        if (lo == 0.0 && hi == 0.0) memcpy(out + im * n + off, xs[im] + off, sizeof(double) * (size_t)len);
        else CALL(normalize_run, xs[im] + off, len, lo, hi, out + im * n + off);
    }
    return 0;
}

/* VIFB's spatial frequency of N images x (N x C x H x W) seen as H x CW (the channels side by side, seams
   included): sqrt((sum dx^2 + sum dy^2) / (H C W)), dx along the wide rows, dy down the columns (out: N) */
int mmdr_sf_wide(const double *x, long N, long C, long H, long W, double *out, int nthreads, int isa)
{
    (void)isa;
    double *rows = ws_get((size_t)(2 * N * H + 64));
    if (!rows) return -1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long q = 0; q < N * H; q++) {
        const long im = q / H, i = q % H;
        double sx[NL] = {0.0, 0.0, 0.0, 0.0}, sy[NL] = {0.0, 0.0, 0.0, 0.0};
        for (long c = 0; c < C; c++) {
            const double *r = x + ((im * C + c) * H + i) * W, *d = r + W;
            long j = 0;
            for (; j + NL <= W - 1; j += NL)
                for (int l = 0; l < NL; l++) { const double v = r[j + l + 1] - r[j + l]; sx[l] += v * v; }
            for (int l = 0; j < W - 1; j++, l++) { const double v = r[j + 1] - r[j]; sx[l] += v * v; }
            if (c + 1 < C) { const double v = r[H * W] - r[W - 1]; sx[0] += v * v; }   /* the seam */
            if (i + 1 < H) {
                for (j = 0; j + NL <= W; j += NL)
                    for (int l = 0; l < NL; l++) { const double v = d[j + l] - r[j + l]; sy[l] += v * v; }
                for (int l = 0; j < W; j++, l++) { const double v = d[j] - r[j]; sy[l] += v * v; }
            }
        }
        rows[2 * q] = lanesum(sx);
        rows[2 * q + 1] = lanesum(sy);
    }
    for (long im = 0; im < N; im++) {
        double tx = 0.0, ty = 0.0;
        for (long i = 0; i < H; i++) { tx += rows[2 * (im * H + i)]; ty += rows[2 * (im * H + i) + 1]; }
        out[im] = sqrt((tx + ty) / (double)(H * C * W));
    }
    return 0;
}

/* MATLAB's rgb2gray of N colour images x (N x 3 x HW, planes R, G, B) into out (N x HW); weights w (3) */
void mmdr_rgb2gray(const double *x, long N, long HW, const double *w, int integer, double *out, int nthreads,
                   int isa)
{
    (void)isa;
    const long chunk = 1L << 14, per = (HW + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long q = 0; q < N * per; q++) {
        const long im = q / per, off = (q % per) * chunk, len = off + chunk < HW ? chunk : HW - off;
        const double *r = x + im * 3 * HW + off;
        CALL(rgb2gray_run, r, r + HW, r + 2 * HW, len, w[0], w[1], w[2], integer, out + im * HW + off);
    }
}

/* Filtered spectra (complex, interleaved re, im; K bins per map): out[q] = (spec[plus[q]] - spec[minus[q]]) * filt,
   or spec[plus[q]] * filt where minus[q] < 0, per bin (filt real): the torch path's complex difference and product
   with a real filter (a finite spectrum's re * s, im * s) */
void mmdr_spec_filter(const double *spec, long K, const double *filt, const long *plus, const long *minus,
                      long count, double *out, int nthreads, int isa)
{
    (void)isa;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if(nthreads > 1)
#endif
    for (long q = 0; q < count; q++) {
        const double *p = spec + 2 * K * plus[q];
        double *o = out + 2 * K * q;
        if (minus[q] < 0) {
            for (long k = 0; k < K; k++) { o[2 * k] = p[2 * k] * filt[k]; o[2 * k + 1] = p[2 * k + 1] * filt[k]; }
        } else {
            const double *m = spec + 2 * K * minus[q];
            for (long k = 0; k < K; k++) {
                o[2 * k] = (p[2 * k] - m[2 * k]) * filt[k];
                o[2 * k + 1] = (p[2 * k + 1] - m[2 * k + 1]) * filt[k];
            }
        }
    }
}

/* Chen-Blum's masked contrast C' = C^3 / (C^2 + z), C = |filter2(G1, x, 'same') / filter2(G2, x, 'same') - 1|, of
   M images x (M x H x W) into out (M x H x W); g1, g2: the separable windows' 1-D factors (n taps, odd, symmetric).
   Returns -3 for another window. */
int mmdr_qcb_contrast(const double *x, long M, long H, long W, const double *g1, const double *g2, int n, double z,
                      double *out, int nthreads, int isa)
{
    (void)isa;
    if (n > QCB_MAXTAPS || !symmetric_odd(g1, n) || !symmetric_odd(g2, n)) return -3;
    const long per = 4 * (W + n - 1) + 2 * W + 64;
    double *work = ws_get((size_t)(per * nthr(nthreads) + W + 64));
    if (!work) return -1;
    double *zero = work + per * nthr(nthreads);
    memset(zero, 0, sizeof(double) * (size_t)W);
    const long nb = nbands(H), tasks = M * nb;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
    {
        double *t = work + thread_id() * per;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < tasks; q++) {
            const long im = q / nb, r0 = (q % nb) * BAND, r1 = r0 + BAND < H ? r0 + BAND : H;
            CALL(qcb_band, x + im * H * W, H, W, g1, g2, n, z, zero, r0, r1, out + im * H * W, t);
        }
    }
    return 0;
}

/* Qcb per image (out: N) from masked contrast maps (see mmdr_qcb_contrast): image i combines maps idx[i] (F),
   idx[N + i] (A) and idx[2 N + i] (B), so that a map shared by several images is computed once */
int mmdr_qcb_combine(const double *maps, long H, long W, const long *idx, long N, double *out, int nthreads,
                     int isa)
{
    (void)isa;
    double *work = ws_get((size_t)(N * H + (W + 64) * nthr(nthreads)));
    if (!work) return -1;
    double *rows = work, *tmps = work + N * H;
    const long nb = nbands(H), tasks = N * nb;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
    {
        double *tmp = tmps + thread_id() * (W + 64);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < tasks; q++) {
            const long im = q / nb, r0 = (q % nb) * BAND, r1 = r0 + BAND < H ? r0 + BAND : H;
            CALL(qcb_rows, maps + idx[im] * H * W, maps + idx[N + im] * H * W, maps + idx[2 * N + im] * H * W, W,
                 r0, r1, tmp, rows + im * H);
        }
    }
    for (long im = 0; im < N; im++) {
        double tot = 0.0;
        for (long i = 0; i < H; i++) tot += rows[im * H + i];
        out[im] = tot / (double)(H * W);
    }
    return 0;
}

/* Qcv per image (out: N) from the normalised sources xa[i], xb[i] and the CSF-filtered differences da[i], db[i]
   (H x W each): sum over k x k blocks and sources of lambda_S D_S / sum of lambda_S, lambda_S the block sum of
   G_S^5, D_S the block mean of d_S^2 (blocks from the top-left, edge blocks zero-padded) */
int mmdr_qcv(const double *const *xa, const double *const *xb, const double *const *da, const double *const *db,
             long N, long H, long W, int k, double *out, int nthreads, int isa)
{
    (void)isa;
    if (k < 1) return -2;
    const long hb = (H + k - 1) / k, wb = (W + k - 1) / k, per = 3 * (W + 2) + 5 * W + 4 * wb + 64;
    double *work = ws_get((size_t)(2 * N * hb + per * nthr(nthreads)));
    if (!work) return -1;
    double *rows = work, *tmps = work + 2 * N * hb;
    const long tasks = N * hb;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
    {
        double *tmp = tmps + thread_id() * per;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < tasks; q++) {
            const long im = q / hb;
            CALL(qcv_blockrow, xa[im], xb[im], da[im], db[im], H, W, k, (q % hb) * k, tmp, rows + 2 * q);
        }
    }
    for (long im = 0; im < N; im++) {
        double num = 0.0, den = 0.0;
        for (long r = 0; r < hb; r++) { num += rows[2 * (im * hb + r)]; den += rows[2 * (im * hb + r) + 1]; }
        out[im] = num / den;
    }
    return 0;
}

/* cross entropy sum p_S log2(p_S / p_F) over the levels where both counts are non-zero (extras.py) */
static double cross_entropy_(const int32_t *hs, const int32_t *hf, double n)
{
    double acc = 0.0;
    for (int l = 0; l < 256; l++)
        if (hs[l] > 0 && hf[l] > 0) {
            const double ps = hs[l] / n, pf = hf[l] / n;
            acc += ps * log2(ps / pf);
        }
    return acc;
}

/* mutual information in nats of a 256 x 256 count table, clipped at 0 (statistics.py's mutual_information) */
static double mutual_info_(const int32_t *tab, double n)
{
    double ci[256], cj[256], lci[256], lcj[256];
    for (int u = 0; u < 256; u++) ci[u] = cj[u] = 0.0;
    for (int u = 0; u < 256; u++)
        for (int v = 0; v < 256; v++) { ci[u] += tab[u * 256 + v]; cj[v] += tab[u * 256 + v]; }
    for (int u = 0; u < 256; u++) {
        lci[u] = log(ci[u] > 1.0 ? ci[u] : 1.0);
        lcj[u] = log(cj[u] > 1.0 ? cj[u] : 1.0);
    }
    const double logn = log(n);
    double acc = 0.0;
    for (int u = 0; u < 256; u++)
        for (int v = 0; v < 256; v++) {
            const int32_t c = tab[u * 256 + v];
            if (c) acc += c * (((log((double)c) + logn) - lci[u]) - lcj[v]);
        }
    const double v = acc / n;
    return v > 0.0 ? v : 0.0;
}

/* The VIFB convention's global values of each image (out: N x VS_NOUT), those flagged (the others 0): CE
   (CE(A, F) + CE(B, F)) / 2 of the rounded levels; EN, the entropy of floor(F); RMSE of A and of B to F,
   sqrt(mean (S - F)^2); EI, the mean replicate-border Sobel magnitude of F; SD of F (shifted sums with sf =
   shifts[i], as mmdr_stats); AG, numpy.gradient's average gradient of F; MI, MI(A, F) + MI(B, F) of the truncated
   values with NaN as 0 (for the normalised images of VIFB's Mutinf). Image i is f[i], a[i], b[i] (H x W each). */
int mmdr_vifb_stats(const double *const *f, const double *const *a, const double *const *b, long N, long H, long W,
                    const double *shifts, int flags, double *out, int nthreads, int isa)
{
    (void)isa;
    const int nt = nthr(nthreads);
    const long tabn = 4 * 1024 + ((flags & VS_MI) ? 2 * 65536 : 0) + 3 * W;   /* per thread, int32 */
    double *work = ws_get((size_t)(N * H * 6 + nt * W + (nt * tabn + 1) / 2 + 64));
    if (!work) return -1;
    double *rows = work, *tmps = rows + N * H * 6;
    int32_t *tabs = (int32_t *)(tmps + nt * W);
    const long nb = nbands(H);
    for (long im = 0; im < N; im++) {
        const double *F = f[im], *A = a[im], *B = b[im];
        const double sf = (flags & VS_SD) ? shifts[im] : 0.0;
        const long tabk = 4 * 1024 + ((flags & VS_MI) ? 2 * 65536 : 0);
        const double n = (double)(H * W);
        double mi[2] = {0.0, 0.0};
        memset(tabs, 0, sizeof(int32_t) * (size_t)(nt * tabn));   /* every table, whatever team size runs */
        /* the histograms, their merging and the two mutual informations all in the parallel region (the integer
           counts do not depend on the order; each MI is one thread's sequential sum) */
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
        {
            int32_t *lev = tabs + thread_id() * tabn, *joint = lev + 4 * 1024,
                    *lv = joint + ((flags & VS_MI) ? 2 * 65536 : 0);
            double *tmp = tmps + thread_id() * W;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (long bb = 0; bb < nb; bb++) {
                const long r0 = bb * BAND, r1 = r0 + BAND < H ? r0 + BAND : H;
                for (long i = r0; i < r1; i++)
                    CALL(vstats_row, F, A, B, H, W, i, flags, sf, rows + (im * H + i) * 6, tmp);
                if (flags & (VS_CE | VS_EN | VS_MI)) CALL(vhist_rows, F, A, B, W, r0, r1, flags, lev, joint, lv);
            }
            if (nt > 1) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (long c = 0; c < (tabk + 4095) / 4096; c++)
                    for (int t = 1; t < nt; t++)
                        for (long k = c * 4096; k < (c + 1) * 4096 && k < tabk; k++) tabs[k] += tabs[t * tabn + k];
            }
            if (flags & VS_MI) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int q = 0; q < 2; q++) mi[q] = mutual_info_(tabs + 4096 + q * 65536, n);
            }
        }
        for (int q = 0; q < 4; q++)          /* the four copies of each level table into the first */
            for (int c = 1; c < 4; c++)
                for (int l = 0; l < 256; l++) tabs[q * 1024 + l] += tabs[q * 1024 + c * 256 + l];
        double S[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        for (long i = 0; i < H; i++)
            for (int q = 0; q < 6; q++) S[q] += rows[(im * H + i) * 6 + q];
        double *o = out + im * VS_NOUT;
        for (int q = 0; q < VS_NOUT; q++) o[q] = 0.0;
        if (flags & VS_CE)
            o[0] = (cross_entropy_(tabs + 1024, tabs, n) + cross_entropy_(tabs + 2048, tabs, n)) / 2.0;
        if (flags & VS_EN) {
            double en = 0.0;
            for (int l = 0; l < 256; l++) {
                const double p = tabs[3072 + l] / n;
                en -= p > 0.0 ? p * log2(p) : 0.0;
            }
            o[1] = en;
        }
        if (flags & VS_RMSE) { o[2] = sqrt(S[0] / n); o[3] = sqrt(S[1] / n); }
        if (flags & VS_EI) o[4] = S[4] / n;
        if (flags & VS_SD) o[5] = sqrt((S[3] - S[2] * S[2] / n) / n);
        if (flags & VS_AG) o[6] = S[5] / n;
        if (flags & VS_MI) o[7] = mi[0] + mi[1];
    }
    return 0;
}

/* Wang et al.'s SSIM(F, S) for S = A, B per image (out: 2 x N): window outer(win, win) (n <= 17 taps, odd,
   symmetric), valid windows, population covariance, constants c1, c2; shifts (3 x N) from mmdr_shifts */
int mmdr_ssim_gauss(const double *f, const double *a, const double *b, long N, long H, long W, const double *shifts,
                    const double *win, int n, double c1, double c2, double *out, int nthreads, int isa)
{
    (void)isa;
    if (n > 17 || !symmetric_odd(win, n)) return -3;
    const long ho = H - n + 1, wo = W - n + 1;
    if (ho < 1 || wo < 1) return -2;
    const long per = (long)((n + 1) * 8 + 2) * W + 17 * wo + 64;
    double *work = ws_get((size_t)(per * nthr(nthreads) + 2 * N * ho));
    if (!work) return -1;
    double *rows = work + per * nthr(nthreads);
    const long nb = nbands(ho), tasks = N * nb;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if(nthreads > 1)
#endif
    {
        double *ring = work + thread_id() * per, *t = ring + (n + 1) * 8 * W, *m = t + 2 * W, *x = m + 16 * wo;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < tasks; q++) {
            const long im = q / nb, r0 = (q % nb) * BAND, r1 = r0 + BAND < ho ? r0 + BAND : ho, o = im * H * W;
            CALL(ssimg_band, f + o, a + o, b + o, W, shifts[im], shifts[N + im], shifts[2 * N + im], win, n, c1, c2,
                 r0, r1, ring, t, m, x, rows + im * 2 * ho);
        }
    }
    for (long im = 0; im < N; im++) {
        double acc[2] = {0.0, 0.0};
        for (long r = 0; r < ho; r++) { acc[0] += rows[im * 2 * ho + 2 * r]; acc[1] += rows[im * 2 * ho + 2 * r + 1]; }
        out[im] = acc[0] / (double)(ho * wo);
        out[N + im] = acc[1] / (double)(ho * wo);
    }
    return 0;
}
