// Small-M matrix products against pre-packed weights (larger M: gemm_blocked.c).
//
// A turn of the classifier multiplies 16 rows by each weight matrix. General BLAS routines
// repack the weights on every call, which costs as much as the product at this size; packing
// once at load and streaming each 16-column panel through a 6x16 register tile (AVX2 + FMA,
// chosen at run time) reads every weight once per call and keeps the panel in L1/L2.
#include "internal.h"
#include <stdlib.h>
#include <string.h>

size_t ck_packed_size(int n, int k) { return (size_t)((n + 15) / 16) * 16 * (size_t)k; }

void ck_pack(const float *w, int n, int k, float *packed) { ck_pack_strided(w, n, k, k, packed); }

void ck_pack_strided(const float *w, int n, int k, int ldw, float *packed) {
    int panels = (n + 15) / 16;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * 16 * k;
        for (int kk = 0; kk < k; kk++) {
            for (int j = 0; j < 16; j++) {
                int row = p * 16 + j;
                dst[(size_t)kk * 16 + j] = row < n ? w[(size_t)row * ldw + kk] : 0.0f;
            }
        }
    }
}

void ck_pack_columns(const float *w, int n, int k, int ldw, float *packed) {
    int panels = (n + 15) / 16;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * 16 * k;
        int ncols = n - p * 16 < 16 ? n - p * 16 : 16;
        for (int kk = 0; kk < k; kk++) {
            const float *src = w + (size_t)kk * ldw + p * 16;
            for (int j = 0; j < 16; j++) dst[(size_t)kk * 16 + j] = j < ncols ? src[j] : 0.0f;
        }
    }
}

void ck_store_tile_scalar(int mr, int ncols, const float *tile, const float *bias, float *c, int ldc, int accumulate) {
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < ncols; j++) {
            float v = tile[i * 16 + j];
            if (bias) v += bias[j];
            row[j] = accumulate ? row[j] + v : v;
        }
    }
}

static void values_f32(const void *panel, int kk, float out[16]) {
    const float *b = (const float *)panel + (size_t)kk * 16;
    for (int j = 0; j < 16; j++) out[j] = b[j];
}

#ifdef CK_X86
// One MR x 16 tile: accumulators in registers, k streamed.
CK_ROWS6(CK_FLOAT_TILE_AVX2, tile, "avx2,fma", float, _mm256_loadu_ps)

static const ck_tile1 tiles[7] = CK_TABLE6(tile);

__attribute__((target("avx2,fma"))) static void epilogue16(int mr, const float *tile, const float *bias,
                                                          float *c, int ldc, int accumulate) {
    __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    __m256 b1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(tile + i * 16), b0);
        __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(tile + i * 16 + 8), b1);
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, v0);
        _mm256_storeu_ps(row + 8, v1);
    }
}

// AVX-512: one 512-bit accumulator per row of a tile of up to 12 rows, the rows of a product
// split evenly over the tiles (16 rows: two tiles of 8), so one panel load feeds more FMAs.
#define CK_TILE512(MR)                                                                            \
    __attribute__((target("avx512f"))) static void tile512_##MR(int k, const float *a, int lda,  \
                                                               const void *bv, float *out) {     \
        const float *bp = bv;                                                                     \
        __m512 acc[MR];                                                                           \
        for (int i = 0; i < MR; i++) acc[i] = _mm512_setzero_ps();                                \
        for (int kk = 0; kk < k; kk++) {                                                          \
            __m512 b = _mm512_loadu_ps(bp + (size_t)kk * 16);                                     \
            for (int i = 0; i < MR; i++)                                                          \
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * lda + kk]), b, acc[i]);     \
        }                                                                                         \
        for (int i = 0; i < MR; i++) _mm512_storeu_ps(out + i * 16, acc[i]);                      \
    }

#define CK_TILE512_ROWS(MR, unused) CK_TILE512(MR)
CK_ROWS12(CK_TILE512_ROWS, 0)

static const ck_tile1 tiles512[13] = CK_TABLE12(tile512);

// Two panels (32 columns) at once: MR rows x 2 accumulators, two panel loads and MR broadcasts
// per k feed 2 x MR FMAs (one panel: 1 + MR loads for MR FMAs), so larger products run at the
// FMA rate instead of the load rate. Each output's sum runs over k in the same order as the
// one-panel tile: the results are identical.
CK_ROWS12(CK_FLOAT_TILE512X2, tile512x2, float, _mm512_loadu_ps)

static const ck_tile2 tiles512x2[13] = CK_TABLE12(tile512x2);

void ck_store_tile(int mr, int ncols, const float *tile, const float *bias, float *c, int ldc, int accumulate) {
    if (ncols == 16) epilogue16(mr, tile, bias, c, ldc, accumulate);
    else ck_store_tile_scalar(mr, ncols, tile, bias, c, ldc, accumulate);
}

// The best level the CPU's feature bits allow, capped by EMOTION_KERNELS (scalar, avx2, avx512,
// avx512_bf16) for the whole process, so that tests and benchmarks run every path on any machine
// and an operator can pin one. Read once. Level 3 adds AVX512-BF16 dot products to level 2 (the
// f32 kernels are the same at both).
static int cpu_level(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        // F16C comes with every AVX2 CPU; the f16 weights' kernels need it at level 1.
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        int best = 0;
        if (avx2) best = 1;
        if (best == 1 && __builtin_cpu_supports("avx512f")) best = 2;
        if (best == 2 && __builtin_cpu_supports("avx512bf16")) best = 3;
        const char *cap = getenv("EMOTION_KERNELS");
        int limit = 3;
        if (cap && strcmp(cap, "scalar") == 0) limit = 0;
        else if (cap && strcmp(cap, "avx2") == 0) limit = 1;
        else if (cap && strcmp(cap, "avx512") == 0) limit = 2;
        cached = best < limit ? best : limit;
    }
    return cached;
}
#endif

/* Per thread: a test capping the level on its thread must not change the kernels other threads
   (other tests running at the same time) use. */
static _Thread_local int forced_level = -1;

int ck_level(void) {
#ifdef CK_X86
    int best = cpu_level();
    return forced_level >= 0 && forced_level < best ? forced_level : best;
#else
    return 0;
#endif
}

int ck_force_level(int level) {
    forced_level = level;
    return ck_level();
}


int ck_vectorized(void) { return ck_level() >= 1; }

void ck_gemm_packed(int m, int n, int k, const float *a, int lda, const float *packed,
                    const float *bias, float *c, int ldc, int accumulate) {
    ck_gemm_packed_panels(m, n, k, a, lda, packed, (size_t)16 * k, bias, c, ldc, accumulate, CK_EPILOGUE_NONE);
}

void ck_gemm_packed_panels(int m, int n, int k, const float *a, int lda, const float *packed,
                           size_t panel_stride, const float *bias, float *c, int ldc, int accumulate,
                           int epilogue) {
    if (m <= 0 || n <= 0) return;
#ifdef CK_X86
    int level = ck_level();
    if (level >= 2 && m >= CK_BLOCKED_MIN_ROWS && n >= CK_BLOCKED_MIN_COLUMNS && ck_rows_alias(lda) &&
        ck_gemm_blocked(m, n, k, a, lda, packed, panel_stride, bias, c, ldc, accumulate, epilogue)) {
        return;
    }
    size_t bytes = panel_stride * sizeof(float);
    if (level >= 2) ck_drive_avx512(m, n, k, a, lda, packed, bytes, tiles512x2, tiles512, bias, c, ldc, accumulate);
    else if (level == 1) ck_drive_avx2(m, n, k, a, lda, packed, bytes, tiles, 6, bias, c, ldc, accumulate);
    else
#endif
        ck_drive_scalar(m, n, k, a, lda, packed, panel_stride * sizeof(float), values_f32, bias, c, ldc, accumulate);
    if (epilogue != CK_EPILOGUE_NONE) {
        for (int i = 0; i < m; i++) ck_activate(c + (size_t)i * ldc, n, epilogue);
    }
}
