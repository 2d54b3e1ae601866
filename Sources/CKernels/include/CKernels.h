#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Floats needed to hold an `n x k` weight matrix packed in panels of 16 output columns.
size_t ck_packed_size(int n, int k);

/// Packs a row-major `n x k` weight (PyTorch `nn.Linear` layout `[out, in]`) into panels of 16
/// output columns: panel p holds, for every k, the 16 values W[16p .. 16p+15][k] (zero-padded).
void ck_pack(const float *w, int n, int k, float *packed);

/// ck_pack of an `n x k` weight whose rows are `ldw` floats apart (a column slice of a wider one).
void ck_pack_strided(const float *w, int n, int k, int ldw, float *packed);

/// ck_pack of the `n x k` weight W^T for W stored `k x n` (row i holds input i's n outputs; rows
/// `ldw` floats apart): e.g. attention's values, V^T as the weight of P V.
void ck_pack_columns(const float *w, int n, int k, int ldw, float *packed);

/// Activations a product can apply to its output (`epilogue` arguments).
enum { CK_EPILOGUE_NONE = 0, CK_EPILOGUE_GELU = 1, CK_EPILOGUE_RELU = 2 };

/// C[m x n] = A[m x k] * W^T (+ C if accumulate) (+ bias), W given packed by ck_pack.
/// Row strides lda and ldc; bias may be NULL.
void ck_gemm_packed(int m, int n, int k, const float *a, int lda, const float *packed,
                    const float *bias, float *c, int ldc, int accumulate);

/// ck_gemm_packed on a sub-block of a packed matrix: `packed` points at the first k value of the
/// first panel used, panel p starts `panel_stride` floats further (16 * K for a packed K-wide
/// weight). Columns k0..k0+k of panels p0.. of a packed [N, K] weight W: packed = base +
/// p0 * 16 * K + k0 * 16, panel_stride = 16 * K. Then `epilogue` (CK_EPILOGUE_*) is applied to
/// every output: C = epilogue(A W^T + bias (+ C)).
///
/// Each panel streams through register tiles of up to 12 x 32 (AVX-512) or 6 x 16 (AVX2) that
/// read the rows of A in place; at the AVX-512 level, from 48 rows and 33 columns, when the row
/// stride of A is a multiple of 4 KiB (which would put a 12-row tile in one L1 set), the product
/// runs cache-blocked instead, on copied blocks of A (gemm_blocked.c).
void ck_gemm_packed_panels(int m, int n, int k, const float *a, int lda, const float *packed,
                           size_t panel_stride, const float *bias, float *c, int ldc, int accumulate,
                           int epilogue);

/// uint16 values needed to hold an `n x k` weight packed by ck_pack_bf16_strided.
size_t ck_packed_bf16_size(int n, int k);

/// float32 to bfloat16, rounded to nearest even (NaN stays NaN).
uint16_t ck_bf16_round(float x);

/// Packs a row-major `n x k` weight (rows `ldw` floats apart) as bfloat16 in panels of 16
/// output columns with the depth in pairs: pair q of panel p holds, for each column j,
/// W[16p + j][2q] and W[16p + j][2q + 1] side by side (zero-padded). Panel p starts
/// p * 32 * ((k + 1) / 2) values in; pair q of a panel 32 * q values in.
void ck_pack_bf16_strided(const float *w, int n, int k, int ldw, uint16_t *packed);

/// The float32 values of a weight packed by ck_pack_bf16_strided, row-major `n x k`.
void ck_unpack_bf16(const uint16_t *packed, int n, int k, float *w);

/// ck_gemm_packed_panels for a bf16-packed weight (gemm_bf16.c): C = epilogue(A W^T + bias
/// (+ C)), float32 accumulation. `packed` points at the first pair used (a block of depths
/// starts at an even depth), panel p `panel_stride` values further. At level 3 (AVX512-BF16)
/// the rows of A are rounded to bf16 too; below, A stays float32 and only W is rounded.
void ck_gemm_bf16_panels(int m, int n, int k, const float *a, int lda, const uint16_t *packed, size_t panel_stride,
                         const float *bias, float *c, int ldc, int accumulate, int epilogue);

/// float32 to IEEE half, rounded to nearest even (overflow to infinity, NaN stays NaN), and back.
uint16_t ck_f16_round(float x);
float ck_f16_widen(uint16_t h);

/// Packs a row-major `n x k` weight (rows `ldw` floats apart) as IEEE half in ck_pack's layout
/// (panels of 16 output columns, 16 values per depth; ck_packed_size values).
void ck_pack_f16_strided(const float *w, int n, int k, int ldw, uint16_t *packed);

/// The float32 values of a weight packed by ck_pack_f16_strided, row-major `n x k`.
void ck_unpack_f16(const uint16_t *packed, int n, int k, float *w);

/// ck_gemm_packed_panels for an f16-packed weight (gemm_f16.c): the weight widened in registers,
/// float32 A and accumulation at every level (the float32 product with the f16 weight).
void ck_gemm_f16_panels(int m, int n, int k, const float *a, int lda, const uint16_t *packed, size_t panel_stride,
                        const float *bias, float *c, int ldc, int accumulate, int epilogue);

/// C[m x n] = alpha * A[m x k] * op(B) (+ bias) (+ C if accumulate) for a B that is not packed:
/// `b_holds_rows` 1: B is stored n x k (C = A B^T, e.g. q k^T), 0: B is stored k x n (C = A B,
/// e.g. P v); row strides lda, ldb, ldc. B is packed per call into a per-thread buffer and the
/// product runs on the packed kernels (gemm_general.c). Returns 0, computing nothing, when that
/// buffer cannot be allocated.
int ck_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, int b_holds_rows,
            const float *bias, float *c, int ldc, int accumulate);

/// Softmax over n values in place (max-subtracted; exp within about 2 ulp).
void ck_softmax(float *x, int n);

/// x[i] = epilogue(x[i]) for CK_EPILOGUE_* (GELU: erf form, rational erf within 4.3e-7).
void ck_activate(float *x, int n, int epilogue);

/// 1 when a vectorised path (AVX2 + FMA or AVX-512) is in use on this CPU.
int ck_vectorized(void);

/// The instruction set in use: 0 scalar, 1 AVX2 + FMA, 2 AVX-512, 3 AVX-512 with AVX512-BF16
/// dot products (bf16 weights only; float32 products are those of level 2): the best the CPU's
/// feature bits (cpuid) allow, capped for the process by the environment variable
/// EMOTION_KERNELS (`scalar`, `avx2`, `avx512`, `avx512_bf16`) and on the calling thread by
/// ck_force_level.
int ck_level(void);

/// Caps the instruction set on the calling thread (-1: no cap) so tests can run every path;
/// returns the level in use there. Other threads keep the best level.
int ck_force_level(int level);

#endif

/// x[i] = x[i] * sigmoid(x[i]) (SiLU), in place.
void ck_silu(float *x, int n);

/// x[i] = sigmoid(x[i]), in place.
void ck_sigmoid(float *x, int n);

/// h[i] = (h[i] + skip[i] * c[i]) * silu(z[i]) over one row of n values (the mLSTM output gate).
void ck_skip_gate(float *h, const float *skip, const float *c, const float *z, int n);
