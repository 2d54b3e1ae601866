// Declarations shared by the kernel files (not exported to Swift).
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H
#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

/// Slots of ck_thread_scratch: one buffer each per thread.
enum { CK_SCRATCH_PACK = 0, CK_SCRATCH_BLOCK = 1, CK_SCRATCH_BF16 = 2, CK_SCRATCH_SLOTS = 3 };

/// The calling thread's buffer for `slot`, at least `bytes` long and 64-byte aligned (grown on
/// demand, kept across calls, freed at thread exit); NULL when memory runs out.
void *ck_thread_scratch(int slot, size_t bytes);

/// Stores an mr x 16 register tile (row stride 16) into the first `ncols` columns of C:
/// + bias (if any), + C (if accumulate). Shared by the f32 and bf16 kernels; ck_store_tile uses
/// AVX2 for full tiles (vector levels only), ck_store_tile_scalar plain C.
void ck_store_tile(int mr, int ncols, const float *tile, const float *bias, float *c, int ldc, int accumulate);
void ck_store_tile_scalar(int mr, int ncols, const float *tile, const float *bias, float *c, int ldc, int accumulate);

/// Register tiles: an mr x 32 tile over two panels (b1 may repeat b0) and an mr x 16 one, each
/// writing its sums (row stride 16) to `out`; A's rows `lda` 4-byte elements apart (floats, or
/// bf16 pairs), `k` depths (or pairs) per panel.
typedef void (*ck_tile2)(int k, const float *a, int lda, const void *b0, const void *b1, float *out0, float *out1);
typedef void (*ck_tile1)(int k, const float *a, int lda, const void *b, float *out);
/// The 16 float32 values of depth `kk` of a packed panel (scalar level).
typedef void (*ck_values)(const void *panel, int kk, float out[16]);

/// The drivers (gemm_drivers.c): panels `panel_bytes` apart, tiles indexed by their row count.
/// AVX-512: pairs of panels, tiles of up to 12 rows split evenly (`singles` for a last lone panel,
/// or NULL to run the pair tile on it); AVX2: one panel, tiles of up to `mr_max` (<= 6) rows;
/// scalar: one row at a time. Each stores C = sums + bias (+ C).
void ck_drive_avx512(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                     const ck_tile2 *pairs, const ck_tile1 *singles, const float *bias, float *c, int ldc,
                     int accumulate);
void ck_drive_avx2(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                   const ck_tile1 *tiles, int mr_max, const float *bias, float *c, int ldc, int accumulate);
void ck_drive_scalar(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                     ck_values values, const float *bias, float *c, int ldc, int accumulate);

#ifdef CK_X86
/// Tiles and tables for each row count: CK_ROWS6 / CK_ROWS12 expand X(MR, ...) for MR = 1 ... 6
/// or 12; CK_TABLE6 / CK_TABLE12 are the tables (indexed by MR, entry 0 unused) of NAME_MR.
#define CK_ROWS6(X, ...) X(1, __VA_ARGS__) X(2, __VA_ARGS__) X(3, __VA_ARGS__) X(4, __VA_ARGS__) \
    X(5, __VA_ARGS__) X(6, __VA_ARGS__)
#define CK_ROWS12(X, ...) CK_ROWS6(X, __VA_ARGS__) X(7, __VA_ARGS__) X(8, __VA_ARGS__) X(9, __VA_ARGS__) \
    X(10, __VA_ARGS__) X(11, __VA_ARGS__) X(12, __VA_ARGS__)
#define CK_TABLE6(NAME) {0, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6}
#define CK_TABLE12(NAME) {0, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6, \
                          NAME##_7, NAME##_8, NAME##_9, NAME##_10, NAME##_11, NAME##_12}

/// The register tiles of panels whose 16 values per depth load as floats: LOAD8(p) / LOAD16(p)
/// give 8 / 16 floats from the panel's values at p (float32 as they are, f16 widened), so one
/// definition serves every such format. AVX2: MR rows x 16 columns (ck_tile1); AVX-512: MR rows x
/// 2 panels (ck_tile2): two panel loads and MR broadcasts per depth feed 2 x MR FMAs.
#define CK_FLOAT_TILE_AVX2(MR, NAME, TARGET, TYPE, LOAD8)                                          \
    __attribute__((target(TARGET))) static void NAME##_##MR(int k, const float *a, int lda,        \
                                                           const void *bv, float *out) {           \
        const TYPE *bp = bv;                                                                       \
        __m256 lo[MR], hi[MR];                                                                     \
        for (int i = 0; i < MR; i++) { lo[i] = _mm256_setzero_ps(); hi[i] = _mm256_setzero_ps(); } \
        for (int kk = 0; kk < k; kk++) {                                                           \
            __m256 b0 = LOAD8(bp + (size_t)kk * 16);                                               \
            __m256 b1 = LOAD8(bp + (size_t)kk * 16 + 8);                                           \
            for (int i = 0; i < MR; i++) {                                                         \
                __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + kk);                         \
                lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);                                            \
                hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);                                            \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            _mm256_storeu_ps(out + i * 16, lo[i]);                                                 \
            _mm256_storeu_ps(out + i * 16 + 8, hi[i]);                                             \
        }                                                                                          \
    }

#define CK_FLOAT_TILE512X2(MR, NAME, TYPE, LOAD16)                                                 \
    __attribute__((target("avx512f"))) static void NAME##_##MR(int k, const float *a, int lda,     \
                                                              const void *b0v, const void *b1v,    \
                                                              float *out0, float *out1) {          \
        const TYPE *b0p = b0v, *b1p = b1v;                                                         \
        __m512 acc0[MR], acc1[MR];                                                                 \
        for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
        for (int kk = 0; kk < k; kk++) {                                                           \
            __m512 b0 = LOAD16(b0p + (size_t)kk * 16);                                             \
            __m512 b1 = LOAD16(b1p + (size_t)kk * 16);                                             \
            for (int i = 0; i < MR; i++) {                                                         \
                __m512 av = _mm512_set1_ps(a[(size_t)i * lda + kk]);                               \
                acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                                        \
                acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                                        \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            _mm512_storeu_ps(out0 + i * 16, acc0[i]);                                              \
            _mm512_storeu_ps(out1 + i * 16, acc1[i]);                                              \
        }                                                                                          \
    }
#endif

/// Rows from which ck_gemm_packed_panels takes the cache-blocked path (AVX-512 level only),
/// and columns above which (more than one 32-column tile: the rows are reused across tiles).
#define CK_BLOCKED_MIN_ROWS 48
#define CK_BLOCKED_MIN_COLUMNS 33

/// Whether rows `lda` floats apart map every row of a register tile to one L1 set (4 KiB a way):
/// a multiple of 4 KiB (K = 1024, 2048). 2 KiB (K = 512) puts 6 of 12 rows in a set, which its 8
/// ways hold (as do the AVX2 kernels' 6-row tiles). The cache-blocked path is taken for these
/// strides only.
static inline int ck_rows_alias(int lda) { return lda % 1024 == 0; }

/// The cache-blocked AVX-512 product (gemm_blocked.c), same contract as ck_gemm_packed_panels;
/// returns 0 (and computes nothing) when it cannot run (not x86, or no memory for its buffer).
int ck_gemm_blocked(int m, int n, int k, const float *a, int lda, const float *packed, size_t panel_stride,
                    const float *bias, float *c, int ldc, int accumulate, int epilogue);

// GELU, x/2 (1 + erf(x / sqrt 2)), erf as a rational minimax approximation on the argument
// clamped to [-4, 4] (odd degree-13 numerator over even degree-8 denominator, Eigen's
// generic_fast_erf_float; absolute error of erf below 4.3e-7, as SwinVectorMath.gelu): no exp,
// one division. The same formula in scalar, AVX2 and AVX-512 form.
#define CK_ERF_P {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f, -5.69250639462346e-05f, \
                  -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f}
#define CK_ERF_Q {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f, -7.37332916720468e-03f, \
                  -1.42647390514189e-02f}

static inline float ck_gelu1(float x) {
    static const float P[7] = CK_ERF_P, Q[5] = CK_ERF_Q;
    float v = x * 0.70710678118654752440f;
    v = v < 4 ? v : 4;
    v = v > -4 ? v : -4;
    float v2 = v * v, p = P[0], q = Q[0];
    for (int i = 1; i < 7; i++) p = p * v2 + P[i];
    for (int i = 1; i < 5; i++) q = q * v2 + Q[i];
    return x * 0.5f * (1 + v * p / q);
}

#ifdef CK_X86
__attribute__((target("avx2,fma"))) static inline __m256 ck_gelu8(__m256 x) {
    static const float P[7] = CK_ERF_P, Q[5] = CK_ERF_Q;
    __m256 v = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752440f));
    v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(4)), _mm256_set1_ps(-4));
    __m256 v2 = _mm256_mul_ps(v, v), p = _mm256_set1_ps(P[0]), q = _mm256_set1_ps(Q[0]);
    for (int i = 1; i < 7; i++) p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(P[i]));
    for (int i = 1; i < 5; i++) q = _mm256_fmadd_ps(q, v2, _mm256_set1_ps(Q[i]));
    __m256 erf = _mm256_div_ps(_mm256_mul_ps(v, p), q);
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(erf, _mm256_set1_ps(1)));
}

__attribute__((target("avx512f"))) static inline __m512 ck_gelu16(__m512 x) {
    static const float P[7] = CK_ERF_P, Q[5] = CK_ERF_Q;
    __m512 v = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
    v = _mm512_max_ps(_mm512_min_ps(v, _mm512_set1_ps(4)), _mm512_set1_ps(-4));
    __m512 v2 = _mm512_mul_ps(v, v), p = _mm512_set1_ps(P[0]), q = _mm512_set1_ps(Q[0]);
    for (int i = 1; i < 7; i++) p = _mm512_fmadd_ps(p, v2, _mm512_set1_ps(P[i]));
    for (int i = 1; i < 5; i++) q = _mm512_fmadd_ps(q, v2, _mm512_set1_ps(Q[i]));
    __m512 erf = _mm512_div_ps(_mm512_mul_ps(v, p), q);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf, _mm512_set1_ps(1)));
}
#endif

#endif
