// Vectorised SiLU / sigmoid / softmax: an exp with Cephes' range reduction and degree-6
// polynomial (relative error about 2 ulp over the float range), 8 lanes at a time with AVX2 +
// FMA (softmax: 16 with AVX-512); and GELU (internal.h) for the product epilogues' level.
#include "internal.h"
#include <math.h>

static inline float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }

#ifdef CK_X86
// exp's polynomial on the reduced argument r (|r| <= ln2 / 2), highest power first; exp8 and exp16
// evaluate it alike.
static const float EXP_P[6] = {1.9875691500E-4f, 1.3981999507E-3f, 8.3334519073E-3f,
                               4.1665795894E-2f, 1.6666665459E-1f, 5.0000001201E-1f};

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    // n = round(x / ln2); r = x - n ln2 (split constant for accuracy).
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(EXP_P[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P[i]));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // Scale by 2^n (n in [-127, 128] after clamping; 2^128 overflows to inf like expf).
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    e = _mm256_max_epi32(e, _mm256_setzero_si256());
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
    return _mm256_mul_ps(p, scale);
}

__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

__attribute__((target("avx2,fma"))) static void silu_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(v, sigmoid8(v)));
    }
    for (; i < n; i++) x[i] = x[i] * sigmoid1(x[i]);
}

__attribute__((target("avx2,fma"))) static void sigmoid_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, sigmoid8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] = sigmoid1(x[i]);
}

__attribute__((target("avx2,fma"))) static void skip_gate_avx2(float *h, const float *skip, const float *c,
                                                              const float *z, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 zv = _mm256_loadu_ps(z + i);
        __m256 g = _mm256_mul_ps(zv, sigmoid8(zv));
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(skip + i), _mm256_loadu_ps(c + i), _mm256_loadu_ps(h + i));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(v, g));
    }
    for (; i < n; i++) h[i] = (h[i] + skip[i] * c[i]) * (z[i] * sigmoid1(z[i]));
}

// exp8's reduction and polynomial on 16 lanes; the scaling by 2^n through _mm512_scalef_ps.
// Below -88.376 the result is 0, as exp8's (and expf's, at the smallest normal).
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-88.3762626647949f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)), _mm512_set1_ps(88.3762626647949f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(EXP_P[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P[i]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

__attribute__((target("avx512f"))) static void softmax_avx512(float *x, int n) {
    int i = 0;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
    float m = _mm512_reduce_max_ps(mv);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m512 mb = _mm512_set1_ps(m), sv = _mm512_setzero_ps();
    float sum = 0;
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mb));
        _mm512_storeu_ps(x + i, e);
        sv = _mm512_add_ps(sv, e);
    }
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), mb));
        _mm512_mask_storeu_ps(x + i, tail, e);
        sv = _mm512_add_ps(sv, _mm512_maskz_mov_ps(tail, e));
    }
    sum = _mm512_reduce_add_ps(sv);
    __m512 inv = _mm512_set1_ps(1 / sum);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1 / sum;
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int n) {
    int i = 0;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float lanes[8], m = -INFINITY;
    _mm256_storeu_ps(lanes, mv);
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m256 mb = _mm256_set1_ps(m), sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
        _mm256_storeu_ps(x + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    _mm256_storeu_ps(lanes, sv);
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    __m256 inv = _mm256_set1_ps(1 / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1 / sum;
}

__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ck_gelu8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] = ck_gelu1(x[i]);
}

__attribute__((target("avx512f"))) static void gelu_avx512(float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, ck_gelu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, tail, ck_gelu16(_mm512_maskz_loadu_ps(tail, x + i)));
    }
}
#endif

void ck_silu(float *x, int n) {
#ifdef CK_X86
    if (ck_vectorized()) { silu_avx2(x, n); return; }
#endif
    for (int i = 0; i < n; i++) x[i] = x[i] * sigmoid1(x[i]);
}

void ck_sigmoid(float *x, int n) {
#ifdef CK_X86
    if (ck_vectorized()) { sigmoid_avx2(x, n); return; }
#endif
    for (int i = 0; i < n; i++) x[i] = sigmoid1(x[i]);
}

void ck_skip_gate(float *h, const float *skip, const float *c, const float *z, int n) {
#ifdef CK_X86
    if (ck_vectorized()) { skip_gate_avx2(h, skip, c, z, n); return; }
#endif
    for (int i = 0; i < n; i++) h[i] = (h[i] + skip[i] * c[i]) * (z[i] * sigmoid1(z[i]));
}

void ck_activate(float *x, int n, int epilogue) {
    if (epilogue == CK_EPILOGUE_RELU) {
        for (int i = 0; i < n; i++) x[i] = x[i] < 0 ? 0 : x[i];  // NaN stays NaN, as torch.relu
        return;
    }
    if (epilogue != CK_EPILOGUE_GELU) return;
#ifdef CK_X86
    int level = ck_level();
    if (level >= 2) { gelu_avx512(x, n); return; }
    if (level == 1) { gelu_avx2(x, n); return; }
#endif
    for (int i = 0; i < n; i++) x[i] = ck_gelu1(x[i]);
}

void ck_softmax(float *x, int n) {
    if (n <= 0) return;
#ifdef CK_X86
    int level = ck_level();
    if (level >= 2) { softmax_avx512(x, n); return; }
    if (level == 1) { softmax_avx2(x, n); return; }
#endif
    float m = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] *= 1 / sum;
}
