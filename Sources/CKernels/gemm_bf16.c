// Products against weights held in bfloat16 (half the bytes of float32: half the memory and
// half the weight traffic of a product with few rows), accumulated in float32.
//
// Layout: panels of 16 output columns as for float32 (ck_pack), but the depth runs in pairs:
// for pair q of panel p, 32 values, column j's W[.][2q] and W[.][2q+1] side by side (one 32-bit
// lane per column: even depth in the low half, odd depth in the high half; an odd depth pads
// with 0). That is the operand layout of AVX512-BF16's VDPBF16PS, and any other level widens a
// lane to two floats with one shift and one mask.
//
// Levels (ck_level): 3, AVX512-BF16: the rows of A are rounded to bf16 (round to nearest even,
// into a per-thread buffer) and each VDPBF16PS adds two products per lane in float32; 2, AVX-512
// and 1, AVX2 + FMA: the weights are widened in registers and multiplied with float32 rows of A
// by FMA; 0, scalar, the same in C. Levels 0-2 compute exactly the float32 product with the
// weight rounded to bf16; level 3 also rounds A to bf16 (the products are exact in float32,
// the sums are not: about 3 significant digits per input, tested against float64 of the
// rounded inputs).
#include "internal.h"
#include <stdint.h>
#include <string.h>

size_t ck_packed_bf16_size(int n, int k) { return (size_t)((n + 15) / 16) * 32 * (size_t)((k + 1) / 2); }

uint16_t ck_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays a quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void ck_pack_bf16_strided(const float *w, int n, int k, int ldw, uint16_t *packed) {
    int panels = (n + 15) / 16, pairs = (k + 1) / 2;
    for (int p = 0; p < panels; p++) {
        uint16_t *dst = packed + (size_t)p * 32 * pairs;
        for (int q = 0; q < pairs; q++) {
            for (int j = 0; j < 16; j++) {
                int row = p * 16 + j;
                const float *r = w + (size_t)row * ldw;
                dst[(size_t)q * 32 + 2 * j] = row < n ? ck_bf16_round(r[2 * q]) : 0;
                dst[(size_t)q * 32 + 2 * j + 1] = row < n && 2 * q + 1 < k ? ck_bf16_round(r[2 * q + 1]) : 0;
            }
        }
    }
}

void ck_unpack_bf16(const uint16_t *packed, int n, int k, float *w) {
    int pairs = (k + 1) / 2;
    for (int row = 0; row < n; row++) {
        const uint16_t *panel = packed + (size_t)(row / 16) * 32 * pairs + 2 * (row % 16);
        for (int kk = 0; kk < k; kk++) w[(size_t)row * k + kk] = widen(panel[(size_t)(kk / 2) * 32 + (kk & 1)]);
    }
}

static void values_bf16(const void *panel, int kk, float out[16]) {
    const uint16_t *b = (const uint16_t *)panel + (size_t)(kk / 2) * 32 + (kk & 1);
    for (int j = 0; j < 16; j++) out[j] = widen(b[2 * j]);
}

#ifdef CK_X86
// AVX2: MR rows x 16 columns; per pair, two 256-bit loads (8 columns each) widened to the even
// and the odd depth's floats.
#define CK_BF16_TILE2(MR)                                                                          \
    __attribute__((target("avx2,fma"))) static void bf16_avx2_##MR(int k, const float *a, int lda, \
                                                                  const void *bv, float *out) {   \
        const uint16_t *bp = bv;                                                                   \
        __m256 lo[MR], hi[MR];                                                                     \
        for (int i = 0; i < MR; i++) { lo[i] = _mm256_setzero_ps(); hi[i] = _mm256_setzero_ps(); } \
        const __m256i odd = _mm256_set1_epi32((int)0xffff0000u);                                   \
        int full = k / 2;                                                                          \
        for (int q = 0; q < full; q++) {                                                           \
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)q * 32));              \
            __m256i r1 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)q * 32 + 16));         \
            __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(r0, 16));                            \
            __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(r1, 16));                            \
            __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(r0, odd));                            \
            __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(r1, odd));                            \
            for (int i = 0; i < MR; i++) {                                                         \
                __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + 2 * q);                      \
                lo[i] = _mm256_fmadd_ps(av, e0, lo[i]);                                            \
                hi[i] = _mm256_fmadd_ps(av, e1, hi[i]);                                            \
                av = _mm256_broadcast_ss(a + (size_t)i * lda + 2 * q + 1);                         \
                lo[i] = _mm256_fmadd_ps(av, o0, lo[i]);                                            \
                hi[i] = _mm256_fmadd_ps(av, o1, hi[i]);                                            \
            }                                                                                      \
        }                                                                                          \
        if (k & 1) {                                                                               \
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)full * 32));           \
            __m256i r1 = _mm256_loadu_si256((const __m256i *)(bp + (size_t)full * 32 + 16));      \
            __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(r0, 16));                            \
            __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(r1, 16));                            \
            for (int i = 0; i < MR; i++) {                                                         \
                __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + 2 * full);                   \
                lo[i] = _mm256_fmadd_ps(av, e0, lo[i]);                                            \
                hi[i] = _mm256_fmadd_ps(av, e1, hi[i]);                                            \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            _mm256_storeu_ps(out + i * 16, lo[i]);                                                 \
            _mm256_storeu_ps(out + i * 16 + 8, hi[i]);                                             \
        }                                                                                          \
    }

CK_BF16_TILE2(1)
CK_BF16_TILE2(2)
CK_BF16_TILE2(3)
CK_BF16_TILE2(4)

static const ck_tile1 tiles_avx2[5] = {0, bf16_avx2_1, bf16_avx2_2, bf16_avx2_3, bf16_avx2_4};

// AVX-512 without BF16: MR rows x 2 panels (32 columns); per pair, one 512-bit load per panel
// widened to the even and the odd depth's 16 floats. A missing second panel repeats the first
// and its result is not stored.
#define CK_BF16_TILE512(MR)                                                                        \
    __attribute__((target("avx512f"))) static void bf16_512_##MR(int k, const float *a, int lda,  \
                                                                const void *b0v, const void *b1v, \
                                                                float *out0, float *out1) {       \
        const uint16_t *b0p = b0v, *b1p = b1v;                                                     \
        __m512 acc0[MR], acc1[MR];                                                                 \
        for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
        const __m512i odd = _mm512_set1_epi32((int)0xffff0000u);                                   \
        int full = k / 2;                                                                          \
        for (int q = 0; q < full; q++) {                                                           \
            __m512i r0 = _mm512_loadu_si512(b0p + (size_t)q * 32);                                 \
            __m512i r1 = _mm512_loadu_si512(b1p + (size_t)q * 32);                                 \
            __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(r0, 16));                            \
            __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(r1, 16));                            \
            __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(r0, odd));                            \
            __m512 o1 = _mm512_castsi512_ps(_mm512_and_si512(r1, odd));                            \
            for (int i = 0; i < MR; i++) {                                                         \
                __m512 av = _mm512_set1_ps(a[(size_t)i * lda + 2 * q]);                            \
                acc0[i] = _mm512_fmadd_ps(av, e0, acc0[i]);                                        \
                acc1[i] = _mm512_fmadd_ps(av, e1, acc1[i]);                                        \
                av = _mm512_set1_ps(a[(size_t)i * lda + 2 * q + 1]);                               \
                acc0[i] = _mm512_fmadd_ps(av, o0, acc0[i]);                                        \
                acc1[i] = _mm512_fmadd_ps(av, o1, acc1[i]);                                        \
            }                                                                                      \
        }                                                                                          \
        if (k & 1) {                                                                               \
            __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512(b0p + (size_t)full * 32), 16)); \
            __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512(b1p + (size_t)full * 32), 16)); \
            for (int i = 0; i < MR; i++) {                                                         \
                __m512 av = _mm512_set1_ps(a[(size_t)i * lda + 2 * full]);                         \
                acc0[i] = _mm512_fmadd_ps(av, e0, acc0[i]);                                        \
                acc1[i] = _mm512_fmadd_ps(av, e1, acc1[i]);                                        \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            _mm512_storeu_ps(out0 + i * 16, acc0[i]);                                              \
            _mm512_storeu_ps(out1 + i * 16, acc1[i]);                                              \
        }                                                                                          \
    }

#define CK_BF16_TILE512_ROWS(MR, unused) CK_BF16_TILE512(MR)
CK_ROWS12(CK_BF16_TILE512_ROWS, 0)

static const ck_tile2 tiles512[13] = CK_TABLE12(bf16_512);

// AVX512-BF16: A as bf16 pairs (one 32-bit word per pair of depths, row stride `lds` words);
// MR rows x 2 panels, one VDPBF16PS per row and panel per pair of depths.
#define CK_BF16_DOT(MR)                                                                            \
    __attribute__((target("avx512f,avx512bf16"))) static void dot_##MR(int pairs, const float *av, int lds, \
                                                                      const void *b0v, const void *b1v, \
                                                                      float *out0, float *out1) { \
        const uint32_t *ab = (const uint32_t *)av;                                                 \
        const uint16_t *b0p = b0v, *b1p = b1v;                                                     \
        __m512 acc0[MR], acc1[MR];                                                                 \
        for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
        for (int q = 0; q < pairs; q++) {                                                          \
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(b0p + (size_t)q * 32);                      \
            __m512bh b1 = (__m512bh)_mm512_loadu_si512(b1p + (size_t)q * 32);                      \
            for (int i = 0; i < MR; i++) {                                                         \
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)ab[(size_t)i * lds + q]);            \
                acc0[i] = _mm512_dpbf16_ps(acc0[i], x, b0);                                        \
                acc1[i] = _mm512_dpbf16_ps(acc1[i], x, b1);                                        \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            _mm512_storeu_ps(out0 + i * 16, acc0[i]);                                              \
            _mm512_storeu_ps(out1 + i * 16, acc1[i]);                                              \
        }                                                                                          \
    }

#define CK_BF16_DOT_ROWS(MR, unused) CK_BF16_DOT(MR)
CK_ROWS12(CK_BF16_DOT_ROWS, 0)

static const ck_tile2 dots[13] = CK_TABLE12(dot);

// One row of k floats as (k + 1) / 2 bf16 pairs, rounded to nearest even (VCVTNE2PS2BF16), the
// odd tail padded with 0.
__attribute__((target("avx512f,avx512bf16"))) static void round_row(const float *x, int k, uint32_t *dst) {
    int kk = 0;
    for (; kk + 32 <= k; kk += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + kk + 16), _mm512_loadu_ps(x + kk));
        _mm512_storeu_si512(dst + kk / 2, (__m512i)v);
    }
    if (kk < k) {
        int left = k - kk;
        __mmask16 lo = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
        __mmask16 hi = (__mmask16)(left <= 16 ? 0 : (1u << (left - 16)) - 1);
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + kk + 16), _mm512_maskz_loadu_ps(lo, x + kk));
        int words = (left + 1) / 2;
        _mm512_mask_storeu_epi32(dst + kk / 2, (__mmask16)((1u << words) - 1), (__m512i)v);
    }
}

enum { DOT_ROWS = 192 };  // rows of A rounded per block: DOT_ROWS * K / 2 words stay in L2

static int gemm_dot(int m, int n, int k, const float *a, int lda, const uint16_t *packed, size_t ps,
                    const float *bias, float *c, int ldc, int accumulate) {
    int pairs = (k + 1) / 2, lds = (pairs + 15) / 16 * 16 + 16;
    int rows_max = m < DOT_ROWS ? m : DOT_ROWS;
    uint32_t *buffer = ck_thread_scratch(CK_SCRATCH_BF16, (size_t)rows_max * lds * sizeof(uint32_t));
    if (!buffer) return 0;
    for (int i0 = 0; i0 < m; i0 += DOT_ROWS) {
        int rows = m - i0 < DOT_ROWS ? m - i0 : DOT_ROWS;
        for (int i = 0; i < rows; i++) round_row(a + (size_t)(i0 + i) * lda, k, buffer + (size_t)i * lds);
        ck_drive_avx512(rows, n, pairs, (const float *)buffer, lds, packed, ps * sizeof(uint16_t), dots, NULL, bias,
                        c + (size_t)i0 * ldc, ldc, accumulate);
    }
    return 1;
}

#endif

void ck_gemm_bf16_panels(int m, int n, int k, const float *a, int lda, const uint16_t *packed, size_t panel_stride,
                         const float *bias, float *c, int ldc, int accumulate, int epilogue) {
    if (m <= 0 || n <= 0) return;
#ifdef CK_X86
    int level = ck_level();
    if (level >= 3 && gemm_dot(m, n, k, a, lda, packed, panel_stride, bias, c, ldc, accumulate)) {
        // done
    } else if (level >= 2) {
        ck_drive_avx512(m, n, k, a, lda, packed, panel_stride * sizeof(uint16_t), tiles512, NULL, bias, c, ldc, accumulate);
    } else if (level == 1) {
        ck_drive_avx2(m, n, k, a, lda, packed, panel_stride * sizeof(uint16_t), tiles_avx2, 4, bias, c, ldc, accumulate);
    } else
#endif
        ck_drive_scalar(m, n, k, a, lda, packed, panel_stride * sizeof(uint16_t), values_bf16, bias, c, ldc, accumulate);
    if (epilogue != CK_EPILOGUE_NONE) {
        for (int i = 0; i < m; i++) ck_activate(c + (size_t)i * ldc, n, epilogue);
    }
}
