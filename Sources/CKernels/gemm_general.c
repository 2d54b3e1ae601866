// General products whose right operand is not a pre-packed weight: attention's q k^T and P v,
// the mLSTM's, a convolution's im2col rows by its weight. B is packed into a per-thread buffer
// on each call (n * k floats: a small fraction of the m * n * k multiply-adds once m is more
// than a few rows) and multiplied by the packed kernels, so that these products, too, run on
// kernels chosen by the CPU's feature bits and never on a BLAS library's CPU table.
#include "internal.h"
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    float *floats;
    size_t capacity;
} pack_buffer;

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

static void release_pack_buffer(void *p) {
    pack_buffer *buffer = p;
    free(buffer->floats);
    free(buffer);
}

static void make_pack_key(void) { pthread_key_create(&pack_key, release_pack_buffer); }

// The calling thread's buffer, grown to `floats` (never shrunk; freed at thread exit).
static float *pack_space(size_t floats) {
    pthread_once(&pack_once, make_pack_key);
    pack_buffer *buffer = pthread_getspecific(pack_key);
    if (!buffer) {
        buffer = calloc(1, sizeof *buffer);
        if (!buffer) return NULL;
        pthread_setspecific(pack_key, buffer);
    }
    if (buffer->capacity < floats) {
        void *p = NULL;
        if (posix_memalign(&p, 64, floats * sizeof(float)) != 0) return NULL;
        free(buffer->floats);
        buffer->floats = p;
        buffer->capacity = floats;
    }
    return buffer->floats;
}

int ck_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, int b_holds_rows,
            const float *bias, float *c, int ldc, int accumulate) {
    if (m <= 0 || n <= 0) return 1;
    if (k < 0) k = 0;
    size_t size = ck_packed_size(n, k);
    float *packed = pack_space(size + 16);  // never 0 floats: k = 0 gives C = bias (+ C)
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
