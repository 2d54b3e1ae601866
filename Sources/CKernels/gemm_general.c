// General products whose right operand is not a pre-packed weight: attention's q k^T and P v,
// the mLSTM's, a convolution's im2col rows by its weight. B is packed into a per-thread buffer
// on each call (n * k floats: a small fraction of the m * n * k multiply-adds once m is more
// than a few rows) and multiplied by the packed kernels, so that these products, too, run on
// kernels chosen by the CPU's feature bits and never on a BLAS library's CPU table.
#include "internal.h"
#include <stdlib.h>

int ck_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, int b_holds_rows,
            const float *bias, float *c, int ldc, int accumulate) {
    if (m <= 0 || n <= 0) return 1;
    if (k < 0) k = 0;
    size_t size = ck_packed_size(n, k);
    float *packed = ck_thread_scratch(CK_SCRATCH_PACK, (size + 16) * sizeof(float));  // never 0 floats: k = 0 gives C = bias (+ C)
    if (!packed) return 0;
    if (b_holds_rows) ck_pack_strided(b, n, k, ldb, packed);
    else ck_pack_columns(b, n, k, ldb, packed);
    // alpha scales B, not C, so that the bias and an accumulated C are not scaled.
    if (alpha != 1.0f) {
        for (size_t i = 0; i < size; i++) packed[i] *= alpha;
    }
    ck_gemm_packed_panels(m, n, k, a, lda, packed, (size_t)16 * k, bias, c, ldc, accumulate, CK_EPILOGUE_NONE);
    return 1;
}
