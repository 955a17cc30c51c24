// Gelu (erf form) rows with AVX-512 intrinsics: see gelu_row.hpp.
#include "kernels/gelu_row.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>

#include "kernels/erf_coefficients.hpp"

namespace aiov {
namespace gelu_detail {
namespace {

[[gnu::always_inline]] inline __m512 gelu_erf(__m512 x) {
  using namespace erf_f32;
  const __m512 bound = _mm512_set1_ps(kBound);
  // max and min return their second operand for a NaN, so a NaN x stays NaN through xc (and
  // through 0.5 x below); beyond kBound erf is +-1 in f32.
  __m512 xc = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  xc = _mm512_min_ps(bound, _mm512_max_ps(_mm512_set1_ps(-kBound), xc));
  const __m512 s = _mm512_mul_ps(xc, xc);
  __m512 p = _mm512_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(kP[i]));
  __m512 q = _mm512_set1_ps(kQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(kQ[i]));
  const __m512 erf = _mm512_div_ps(_mm512_mul_ps(xc, p), _mm512_fmadd_ps(s, q, _mm512_set1_ps(1.0f)));
  const __m512 half = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(half, erf, half);
}

void gelu_erf_row_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  // Two vectors per step: the division's latency overlaps the other's polynomial.
  for (; i + 32 <= n; i += 32) {
    const __m512 a = gelu_erf(_mm512_loadu_ps(x + i));
    const __m512 b = gelu_erf(_mm512_loadu_ps(x + i + 16));
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    _mm512_mask_storeu_ps(y + i, m, gelu_erf(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

GeluRowFn avx512_gelu_erf_row() { return &gelu_erf_row_avx512; }

}  // namespace gelu_detail
}  // namespace aiov

#else
namespace aiov {
namespace gelu_detail {
GeluRowFn avx512_gelu_erf_row() { return nullptr; }
}  // namespace gelu_detail
}  // namespace aiov
#endif
