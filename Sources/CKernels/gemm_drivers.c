// The loops around the register tiles, one per level, shared by every weight format (float32,
// f16 and bf16 packed panels; A as float32 or as bf16 pairs): the formats differ only in their
// tiles (gemm_packed.c, gemm_f16.c, gemm_bf16.c).
#include "internal.h"

#ifdef CK_X86
void ck_drive_avx512(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                     const ck_tile2 *pairs, const ck_tile1 *singles, const float *bias, float *c, int ldc,
                     int accumulate) {
    int panels = (n + 15) / 16;
    float tile0[12 * 16] __attribute__((aligned(64)));
    float tile1[12 * 16] __attribute__((aligned(64)));
    int count = (m + 11) / 12;  // tiles of up to 12 rows, the rows split evenly over them
    const char *base = packed;
    for (int p = 0; p < panels; p += 2) {
        const void *b0 = base + (size_t)p * panel_bytes;
        int second = p + 1 < panels;
        int ncols0 = n - p * 16 < 16 ? n - p * 16 : 16;
        int ncols1 = second ? (n - (p + 1) * 16 < 16 ? n - (p + 1) * 16 : 16) : 0;
        const float *pb = bias ? bias + p * 16 : NULL;
        for (int t = 0, m0 = 0; t < count; t++) {
            int mr = (m - m0) / (count - t);
            const float *ar = a + (size_t)m0 * lda;
            float *cp = c + (size_t)m0 * ldc + p * 16;
            if (second || !singles) {
                // A missing second panel repeats the first; its result is not stored.
                pairs[mr](k, ar, lda, b0, second ? (const char *)b0 + panel_bytes : b0, tile0, tile1);
            } else {
                singles[mr](k, ar, lda, b0, tile0);
            }
            ck_store_tile(mr, ncols0, tile0, pb, cp, ldc, accumulate);
            if (ncols1) ck_store_tile(mr, ncols1, tile1, pb ? pb + 16 : NULL, cp + 16, ldc, accumulate);
            m0 += mr;
        }
    }
}

void ck_drive_avx2(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                   const ck_tile1 *tiles, int mr_max, const float *bias, float *c, int ldc, int accumulate) {
    int panels = (n + 15) / 16;
    float tile[6 * 16] __attribute__((aligned(32)));
    const char *base = packed;
    for (int p = 0; p < panels; p++) {
        int ncols = n - p * 16 < 16 ? n - p * 16 : 16;
        const float *pb = bias ? bias + p * 16 : NULL;
        for (int m0 = 0; m0 < m; m0 += mr_max) {
            int mr = m - m0 < mr_max ? m - m0 : mr_max;
            tiles[mr](k, a + (size_t)m0 * lda, lda, base + (size_t)p * panel_bytes, tile);
            ck_store_tile(mr, ncols, tile, pb, c + (size_t)m0 * ldc + p * 16, ldc, accumulate);
        }
    }
}
#endif

void ck_drive_scalar(int m, int n, int k, const float *a, int lda, const void *packed, size_t panel_bytes,
                     ck_values values, const float *bias, float *c, int ldc, int accumulate) {
    int panels = (n + 15) / 16;
    float tile[16], b[16];
    const char *base = packed;
    for (int p = 0; p < panels; p++) {
        const void *panel = base + (size_t)p * panel_bytes;
        int ncols = n - p * 16 < 16 ? n - p * 16 : 16;
        for (int i = 0; i < m; i++) {
            const float *ai = a + (size_t)i * lda;
            for (int j = 0; j < 16; j++) tile[j] = 0;
            for (int kk = 0; kk < k; kk++) {
                values(panel, kk, b);
                for (int j = 0; j < 16; j++) tile[j] += ai[kk] * b[j];
            }
            ck_store_tile_scalar(1, ncols, tile, bias ? bias + p * 16 : NULL, c + (size_t)i * ldc + p * 16, ldc,
                                 accumulate);
        }
    }
}
