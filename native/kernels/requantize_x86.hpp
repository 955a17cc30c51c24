// Requantization to u8 as aiov.Quantize computes it, for AVX-512 kernels: y / scale rounded
// half to even, plus the zero point, saturated to [0, 255] (NaN: 0), the same bytes as the
// portable path. Include it after x86_intrinsics.hpp, in files compiled with AVX-512.
//
// The division is the costly step (a vector divide per 16 values, more than a depthwise
// pixel's products), so it multiplies by the reciprocal instead wherever that cannot change
// the integer: q = y * (1 / scale) is within |q| * 2^-22 of the rounded quotient, so they
// round alike unless q lies within that of a half-integer; a vector with a lane that near
// one (tolerance (|q| + 1) * 2^-20, which also covers every |q| >= 2^19) divides after all.
#pragma once
#include <cmath>

namespace aiov {

struct Requantizer {
  __m512 scale, inverse, zero;
  bool by_inverse;  // the reciprocal is a normal float (else always divide)
};

inline Requantizer requantizer(float scale, int32_t zero) {
  const float inverse = 1.0f / scale;
  return Requantizer{_mm512_set1_ps(scale), _mm512_set1_ps(inverse), _mm512_set1_ps((float)zero),
                     std::isnormal(scale) && std::isnormal(inverse)};
}

// s32 lanes of the bytes (store them with _mm512_mask_cvtusepi32_storeu_epi8).
[[gnu::always_inline]] inline __m512i requantized_u8(__m512 y, const Requantizer& r) {
  __m512 q;
  if (r.by_inverse) {
    q = _mm512_mul_ps(y, r.inverse);
    const __m512 fraction = _mm512_sub_ps(q, _mm512_roundscale_ps(q, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
    const __m512 from_half = _mm512_abs_ps(_mm512_sub_ps(fraction, _mm512_set1_ps(0.5f)));
    const __m512 tolerance = _mm512_mul_ps(_mm512_add_ps(_mm512_abs_ps(q), _mm512_set1_ps(1.0f)),
                                           _mm512_set1_ps(1.0f / 1048576.0f));  // 2^-20
    if (_mm512_cmp_ps_mask(from_half, tolerance, _CMP_LE_OQ)) q = _mm512_div_ps(y, r.scale);
  } else {
    q = _mm512_div_ps(y, r.scale);
  }
  __m512 v = _mm512_add_ps(_mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), r.zero);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
  return _mm512_cvtps_epi32(v);
}

}  // namespace aiov
