// Softmax of one row with AVX-512 intrinsics (see softmax_row.cpp for the dispatch). The
// portable loop spent ~3 cycles per element: its exponential builds 2^k from integer fields
// in two factors and each pass reloads partial sums. Here max, exp-and-sum and the scaling
// are three passes over registers, and 2^k is one vscalefps, which also takes care of
// arguments far below zero (every x - max is <= 0).
#include "kernels/softmax_row.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>

#include <cmath>

#include "kernels/exp_coefficients.hpp"

namespace aiov {
namespace softmax_detail {
namespace {

#include "kernels/exp_avx512.inc"

void softmax_row_avx512(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  // Pass 1: the maximum (NaN elements are skipped here, as in the portable loop, and turn
  // the row into NaN through their exponential).
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(_mm512_loadu_ps(x + j), mx);
  if (j < n) mx = _mm512_mask_max_ps(mx, tail_mask(n - j), _mm512_maskz_loadu_ps(tail_mask(n - j), x + j), mx);
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  const __m512 low = _mm512_set1_ps(lowest_kept(n));
  // Pass 2: the exponentials and their sum.
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j + 16 <= n; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + j), m), low);
    _mm512_storeu_ps(y + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < n) {
    const __mmask16 t = tail_mask(n - j);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + j), m), low);
    _mm512_mask_storeu_ps(y + j, t, e);
    sum = _mm512_mask_add_ps(sum, t, sum, e);
  }
  // Pass 3: normalise.
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), inv));
  if (j < n) {
    const __mmask16 t = tail_mask(n - j);
    _mm512_mask_storeu_ps(y + j, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, y + j), inv));
  }
}

}  // namespace

SoftmaxFn avx512_softmax() { return &softmax_row_avx512; }

}  // namespace softmax_detail
}  // namespace aiov

#else
namespace aiov {
namespace softmax_detail {
SoftmaxFn avx512_softmax() { return nullptr; }
}  // namespace softmax_detail
}  // namespace aiov
#endif
