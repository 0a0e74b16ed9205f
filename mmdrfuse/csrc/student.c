/* MMDRFuse student: one fused, tiled pass (reflection pad + conv1 + ReLU + pad + conv2 + tanh), see
   mmdrfuse/fast.py for how it is called and docs/performance.md for the measurements behind it.
   Built by mmdrfuse/native.py with -Wall -Wextra; the x86 AVX2+FMA variant is the same body compiled under a
   target pragma, chosen at run time by mmdr_best_isa(). */
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

/* portable build */
#define ISA generic
#define IN_REGISTER(v) ((void)0)
#include "student_body.h"
#undef ISA
#undef IN_REGISTER

#if defined(__x86_64__) || defined(__i386__)
/* AVX2 + FMA build of the same body */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ISA avx2
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#include "student_body.h"
#undef ISA
#undef IN_REGISTER
#pragma GCC pop_options
#endif

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
