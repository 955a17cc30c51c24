// Requantization to u8 as aiov.Quantize computes it, for AVX-512 kernels: y / scale rounded
// half to even, plus the zero point, saturated to [0, 255] (NaN: 0), the same bytes as the
// portable path. Include it after x86_intrinsics.hpp, in files compiled with AVX-512.
//
// The division is the costly step (a vector divide per 16 values, more than a depthwise
// pixel's products), so it multiplies by the reciprocal instead wherever that cannot change
// the byte: q = y * (1 / scale) is within |q| * 2^-22 of the exact quotient, so for |q| <
// 1023 (error < 2^-12) both round alike unless q lies within 2^-10 of a half-integer, and
// past that both saturate alike (with a zero point in [0, 255]); a vector with a lane that
// near a half divides after all. The test reuses q's rounding, so it costs a subtraction,
// an absolute value and a compare.
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
                     std::isnormal(scale) && std::isnormal(inverse) && zero >= 0 && zero <= 255};
}

// s32 lanes of the bytes of NV vectors, from 0 up (store them with
// _mm512_mask_cvtusepi32_storeu_epi8, whose unsigned saturation makes 255 of anything above,
// the conversion's 0x80000000 for a value past 2^31 included). One test for all NV: a lane
// near a half-integer (rare) makes them all divide.
template <int NV>
[[gnu::always_inline]] inline void requantized_u8(const __m512 (&y)[NV], const Requantizer& r, __m512i (&out)[NV]) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m512 rounded[NV];
  bool divide = !r.by_inverse;
  if (r.by_inverse) {
    __mmask16 near = 0;
    for (int v = 0; v < NV; ++v) {
      const __m512 q = _mm512_mul_ps(y[v], r.inverse);
      rounded[v] = _mm512_roundscale_ps(q, kNearest);
      // |q - rounded| is 0.5 at a half-integer (NaN for an infinite q, which then saturates).
      const __m512 off = _mm512_abs_ps(_mm512_sub_ps(q, rounded[v]));
      near |= _mm512_cmp_ps_mask(off, _mm512_set1_ps(0.5f - 1.0f / 1024.0f), _CMP_GE_OQ);
    }
    divide = near != 0;
  }
  if (divide)
    for (int v = 0; v < NV; ++v) rounded[v] = _mm512_roundscale_ps(_mm512_div_ps(y[v], r.scale), kNearest);
  // (max returns its second operand, 0, for a NaN)
  for (int v = 0; v < NV; ++v)
    out[v] = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_add_ps(rounded[v], r.zero), _mm512_setzero_ps()));
}

[[gnu::always_inline]] inline __m512i requantized_u8(__m512 y, const Requantizer& r) {
  const __m512 ys[1] = {y};
  __m512i bytes[1];
  requantized_u8<1>(ys, r, bytes);
  return bytes[0];
}

}  // namespace aiov
