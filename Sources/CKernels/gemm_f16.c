// Products against weights held in IEEE half precision (f16: half the memory and half the weight
// traffic of float32, with 11 significant bits where bf16 has 8; a package whose weights are
// stored f16 loses nothing), accumulated in float32. The layout is ck_pack's (panels of 16 output
// columns, 16 values per depth), each value an f16; the kernels widen a panel's 16 values per
// depth in registers (F16C / AVX-512 VCVTPH2PS) and multiply with float32 rows of A by FMA, so
// every level computes exactly the float32 product with the f16-rounded weight.
#include "internal.h"
#include <stdint.h>
#include <string.h>

uint16_t ck_f16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, exponent = (u >> 23) & 0xffu, mantissa = u & 0x7fffffu;
    if (exponent == 0xff) return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u : 0));  // inf, NaN (quiet)
    int e = (int)exponent - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);  // overflow: infinity
    if (e <= 0) {                                    // subnormal half (or zero)
        if (e < -10) return (uint16_t)sign;
        mantissa |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = mantissa >> shift, rest = mantissa & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mantissa >> 13), rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1))) half++;  // may carry into the exponent: correct
    return (uint16_t)half;
}

float ck_f16_widen(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, u;
    if (exponent == 0x1f) u = sign | 0x7f800000u | (mantissa << 13);
    else if (exponent != 0) u = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
    else if (mantissa == 0) u = sign;
    else {  // subnormal half: normalise
        int e = -1;
        do { e++; mantissa <<= 1; } while (!(mantissa & 0x400u));
        u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void ck_pack_f16_strided(const float *w, int n, int k, int ldw, uint16_t *packed) {
    int panels = (n + 15) / 16;
    for (int p = 0; p < panels; p++) {
        uint16_t *dst = packed + (size_t)p * 16 * k;
        for (int kk = 0; kk < k; kk++) {
            for (int j = 0; j < 16; j++) {
                int row = p * 16 + j;
                dst[(size_t)kk * 16 + j] = row < n ? ck_f16_round(w[(size_t)row * ldw + kk]) : 0;
            }
        }
    }
}

void ck_unpack_f16(const uint16_t *packed, int n, int k, float *w) {
    for (int row = 0; row < n; row++) {
        const uint16_t *panel = packed + (size_t)(row / 16) * 16 * k + row % 16;
        for (int kk = 0; kk < k; kk++) w[(size_t)row * k + kk] = ck_f16_widen(panel[(size_t)kk * 16]);
    }
}

static void values_f16(const void *panel, int kk, float out[16]) {
    const uint16_t *b = (const uint16_t *)panel + (size_t)kk * 16;
    for (int j = 0; j < 16; j++) out[j] = ck_f16_widen(b[j]);
}

#ifdef CK_X86
#define CK_LOAD8_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define CK_LOAD16_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

CK_ROWS6(CK_FLOAT_TILE_AVX2, f16_avx2, "avx2,fma,f16c", uint16_t, CK_LOAD8_F16)
static const ck_tile1 tiles_avx2[7] = CK_TABLE6(f16_avx2);

// AVX-512: MR rows x 2 panels; a missing second panel repeats the first and is not stored.
CK_ROWS12(CK_FLOAT_TILE512X2, f16_512, uint16_t, CK_LOAD16_F16)
static const ck_tile2 tiles512[13] = CK_TABLE12(f16_512);
#endif

void ck_gemm_f16_panels(int m, int n, int k, const float *a, int lda, const uint16_t *packed, size_t panel_stride,
                        const float *bias, float *c, int ldc, int accumulate, int epilogue) {
    if (m <= 0 || n <= 0) return;
#ifdef CK_X86
    int level = ck_level();
    size_t bytes = panel_stride * sizeof(uint16_t);
    if (level >= 2) ck_drive_avx512(m, n, k, a, lda, packed, bytes, tiles512, NULL, bias, c, ldc, accumulate);
    else if (level == 1) ck_drive_avx2(m, n, k, a, lda, packed, bytes, tiles_avx2, 6, bias, c, ldc, accumulate);
    else
#endif
        ck_drive_scalar(m, n, k, a, lda, packed, panel_stride * sizeof(uint16_t), values_f16, bias, c, ldc, accumulate);
    if (epilogue != CK_EPILOGUE_NONE) {
        for (int i = 0; i < m; i++) ck_activate(c + (size_t)i * ldc, n, epilogue);
    }
}
