// Products with many rows whose row stride would alias in L1 (K = 1024, 2048: the Whisper
// encoder's second feed-forward product per core) against weights packed in 16-column panels
// (ck_pack), cache-blocked.
//
// The small-row kernels stream the whole depth K of a panel for every tile of rows, reading the
// tile's rows of A in place. When the row stride is a multiple of 4 KiB every row of a tile maps
// to one L1 set (8 ways for 12 rows) and they run at 60-80 % of their speed. Here, as in BLIS:
//   for each block of KC depths:                  (the partial sums go through C)
//     for each block of up to MC rows:            A[rows, depths] copied, row stride KC + 16: in L2
//       for each pair of panels (32 columns):     its KC x 32 slice of the packed weight
//         for each tile of rows:                  MR x 32 accumulators in registers
// The packed weight is used as it is (no per-call repacking of B); the copy buffer is per thread
// and kept across calls. AVX-512 only: register tiles of up to 12 rows x 32 columns (24 zmm
// accumulators), the rows of a block split evenly over the tiles. The AVX2 kernels' 6-row tiles
// fit an 8-way set, and a 6 x 16 blocked AVX2 kernel measured no faster than they are; with other
// strides this path measured 1-4 % slower than the small-row kernels (which already reach about
// 100 GFLOP/s a core at 150-500 rows on Zen 4). So ck_gemm_packed_panels takes it only at the
// AVX-512 level, for aliasing strides.
//
// Each output's sum runs over k in order, through C between depth blocks (bit-identical to one
// pass); bias and the epilogue follow the last depth block. Accumulating into C, one depth block
// adds C after the sum (the small-row kernels' order: sum, + bias, + C), several start from C.
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#ifdef CK_X86

enum {
    KC = 512,  // depths per block (more were not faster: the weight slice streams from L2 well)
    MC = 192,  // rows per block: a block of A (MC x KC floats, 400 KiB) stays in L2
};

typedef struct {
    int load;           // start from C (a later depth block, or accumulating over several)
    int add_c;          // add C after the sum (accumulating in one depth block)
    const float *bias;  // the tile's first bias value, or NULL (last depth block only)
    int epilogue;       // CK_EPILOGUE_* (last depth block only)
    int ncols;          // columns of the tile inside the matrix (1 ... tile width)
} tile_io;

typedef void (*block_fn)(int kc, const float *ap, int lds, const float *b0, const float *b1, float *c, int ldc,
                         const tile_io *io);

// AVX-512: MR rows x 2 panels; a missing second panel (b1 = b0) is computed and masked off.
// Full tiles load and store C unmasked (masked stores are slow on some CPUs, e.g. Zen 4).
__attribute__((target("avx512f"))) static inline __m512 load16(const float *p, int full, __mmask16 mask) {
    return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

__attribute__((target("avx512f"))) static inline void store16(float *p, int full, __mmask16 mask, __m512 v) {
    if (full) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, mask, v);
}

#define CK_BLOCK512(MR)                                                                            \
    __attribute__((target("avx512f"))) static void block512_##MR(int kc, const float *ap, int lds, const float *b0, \
                                                                const float *b1, float *c, int ldc, \
                                                                const tile_io *io) {               \
        int full = io->ncols >= 32;                                                                \
        __mmask16 m0 = io->ncols >= 16 ? 0xFFFF : (__mmask16)((1u << io->ncols) - 1);              \
        __mmask16 m1 = io->ncols >= 32 ? 0xFFFF : io->ncols <= 16 ? 0 : (__mmask16)((1u << (io->ncols - 16)) - 1); \
        __m512 x[MR], y[MR];                                                                       \
        for (int i = 0; i < MR; i++) {                                                             \
            x[i] = io->load ? load16(c + (size_t)i * ldc, full, m0) : _mm512_setzero_ps();         \
            y[i] = io->load ? load16(c + (size_t)i * ldc + 16, full, m1) : _mm512_setzero_ps();    \
        }                                                                                          \
        for (int kk = 0; kk < kc; kk++) {                                                          \
            __m512 p = _mm512_loadu_ps(b0 + (size_t)kk * 16), q = _mm512_loadu_ps(b1 + (size_t)kk * 16); \
            for (int i = 0; i < MR; i++) {                                                         \
                __m512 av = _mm512_set1_ps(ap[i * lds + kk]);                                      \
                x[i] = _mm512_fmadd_ps(av, p, x[i]);                                               \
                y[i] = _mm512_fmadd_ps(av, q, y[i]);                                               \
            }                                                                                      \
        }                                                                                          \
        __m512 zero = _mm512_setzero_ps();                                                         \
        __m512 bx = io->bias ? load16(io->bias, full, m0) : zero;                                  \
        __m512 by = io->bias ? load16(io->bias + 16, full, m1) : zero;                             \
        for (int i = 0; i < MR; i++) {                                                             \
            float *row = c + (size_t)i * ldc;                                                      \
            __m512 u = _mm512_add_ps(x[i], bx), w = _mm512_add_ps(y[i], by);                       \
            if (io->add_c) {                                                                       \
                u = _mm512_add_ps(u, load16(row, full, m0));                                       \
                w = _mm512_add_ps(w, load16(row + 16, full, m1));                                  \
            }                                                                                      \
            if (io->epilogue == CK_EPILOGUE_GELU) { u = ck_gelu16(u); w = ck_gelu16(w); }          \
            else if (io->epilogue == CK_EPILOGUE_RELU) { u = _mm512_max_ps(zero, u); w = _mm512_max_ps(zero, w); } \
            store16(row, full, m0, u);                                                             \
            store16(row + 16, full, m1, w);                                                        \
        }                                                                                          \
    }

CK_BLOCK512(1)
CK_BLOCK512(2)
CK_BLOCK512(3)
CK_BLOCK512(4)
CK_BLOCK512(5)
CK_BLOCK512(6)
CK_BLOCK512(7)
CK_BLOCK512(8)
CK_BLOCK512(9)
CK_BLOCK512(10)
CK_BLOCK512(11)
CK_BLOCK512(12)

static const block_fn blocks512[13] = {0, block512_1, block512_2, block512_3, block512_4, block512_5, block512_6,
                                       block512_7, block512_8, block512_9, block512_10, block512_11, block512_12};

// Rows of tile t of `tiles` over `rows` rows from row r0: the rows split evenly.
static inline int tile_rows(int rows, int r0, int tiles, int t) { return (rows - r0) / (tiles - t); }

// Row stride of a copied block: kc rounded to a cache line, plus one, so that the rows of a tile
// spread over the L1 sets.
static inline int packed_stride(int kc) { return (kc + 15) / 16 * 16 + 16; }

static int blocked(int m, int n, int k, const float *a, int lda, const float *packed, size_t ps,
                   const float *bias, float *c, int ldc, int accumulate, int epilogue) {
    enum { mr_max = 12, width = 32 };
    float *buffer = ck_thread_scratch(CK_SCRATCH_BLOCK, (size_t)MC * packed_stride(KC) * sizeof(float));
    if (!buffer) return 0;
    int panels = (n + 15) / 16;
    int depth_blocks = k > KC ? (k + KC - 1) / KC : 1;
    int row_blocks = (m + MC - 1) / MC;
    for (int kb = 0; kb < depth_blocks; kb++) {
        int k0 = (int)((long)kb * k / depth_blocks), kc = (int)((long)(kb + 1) * k / depth_blocks) - k0;
        int last = kb == depth_blocks - 1, lds = packed_stride(kc);
        tile_io io = {.load = kb > 0 || (accumulate && depth_blocks > 1),
                      .add_c = accumulate && depth_blocks == 1,
                      .epilogue = last ? epilogue : CK_EPILOGUE_NONE};
        for (int mb = 0; mb < row_blocks; mb++) {
            int i0 = (int)((long)mb * m / row_blocks), rows = (int)((long)(mb + 1) * m / row_blocks) - i0;
            int tiles = (rows + mr_max - 1) / mr_max;
            for (int i = 0; i < rows; i++)
                memcpy(buffer + (size_t)i * lds, a + (size_t)(i0 + i) * lda + k0, (size_t)kc * sizeof(float));
            for (int p = 0; p < panels; p += 2) {
                const float *b0 = packed + (size_t)p * ps + (size_t)k0 * 16;
                const float *b1 = p + 1 < panels ? b0 + ps : b0;
                io.ncols = n - p * 16 < width ? n - p * 16 : width;
                io.bias = last && bias ? bias + p * 16 : NULL;
                for (int t = 0, r0 = 0; t < tiles; t++) {
                    int mr = tile_rows(rows, r0, tiles, t);
                    blocks512[mr](kc, buffer + (size_t)r0 * lds, lds, b0, b1, c + (size_t)(i0 + r0) * ldc + p * 16,
                                ldc, &io);
                    r0 += mr;
                }
            }
        }
    }
    return 1;
}
#endif

int ck_gemm_blocked(int m, int n, int k, const float *a, int lda, const float *packed, size_t panel_stride,
                    const float *bias, float *c, int ldc, int accumulate, int epilogue) {
#ifdef CK_X86
    return blocked(m, n, k, a, lda, packed, panel_stride, bias, c, ldc, accumulate, epilogue);
#else
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)packed, (void)panel_stride, (void)bias, (void)c, (void)ldc;
    (void)accumulate, (void)epilogue;
    return 0;
#endif
}
