// MVN / LayerNorm rows with AVX-512 intrinsics (dispatch: ops/reduce.cpp). The mean and then
// the variance of x - mean (two passes, as the portable loop: no cancellation of a sum of
// squares) each over four independent accumulators, folded in f32; the output pass in L1.
#include "kernels/normalize_row.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>

#include <cmath>

namespace aiov {
namespace normalize_detail {
namespace {

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u); }

// Sum over the row of f(x) (f of 16 floats at a time), masked lanes adding zero.
template <class F>
inline float row_sum(const float* x, int64_t len, F f) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= len; i += 64) {
    s0 = _mm512_add_ps(s0, f(_mm512_loadu_ps(x + i)));
    s1 = _mm512_add_ps(s1, f(_mm512_loadu_ps(x + i + 16)));
    s2 = _mm512_add_ps(s2, f(_mm512_loadu_ps(x + i + 32)));
    s3 = _mm512_add_ps(s3, f(_mm512_loadu_ps(x + i + 48)));
  }
  for (; i < len; i += 16) {
    const __mmask16 m = tail_mask(len - i);
    s0 = _mm512_mask_add_ps(s0, m, s0, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

void normalize_row_avx512(const float* x, float* y, int64_t len, bool norm_var, double eps, bool eps_outside,
                          const float* gamma, const float* beta) {
  const float mean = (float)((double)row_sum(x, len, [](__m512 v) { return v; }) / (double)len);
  const __m512 m = _mm512_set1_ps(mean);
  float scale = 1.0f;
  if (norm_var) {
    const double var = (double)row_sum(x, len,
                                       [m](__m512 v) {
                                         const __m512 d = _mm512_sub_ps(v, m);
                                         return _mm512_mul_ps(d, d);
                                       }) /
                       (double)len;
    scale = (float)(eps_outside ? 1.0 / (std::sqrt(var) + eps) : 1.0 / std::sqrt(var + eps));
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 k = tail_mask(len - i);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), sc);
    if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, gamma + i));
    if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, beta + i));
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

}  // namespace

NormalizeRowFn avx512_normalize_row() { return &normalize_row_avx512; }

}  // namespace normalize_detail
}  // namespace aiov

#else
namespace aiov {
namespace normalize_detail {
NormalizeRowFn avx512_normalize_row() { return nullptr; }
}  // namespace normalize_detail
}  // namespace aiov
#endif
