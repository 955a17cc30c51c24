// Requantization to u8 as aiov.Quantize computes it, for the AVX-512 integer kernels that
// fuse it into their epilogue (gemm_int8_x86.cpp, depthwise_int8_x86.cpp): the same
// operations, so a fused requantization writes the bytes the separate op would. Include it
// after x86_intrinsics.hpp, in files compiled with AVX-512.
#pragma once

namespace aiov {

// y / scale rounded half to even, plus the zero point, saturated to [0, 255] (NaN: 0), as
// s32 lanes (store them with _mm512_mask_cvtusepi32_storeu_epi8).
[[gnu::always_inline]] inline __m512i requantized_u8(__m512 y, __m512 scale, __m512 zero) {
  __m512 v = _mm512_div_ps(y, scale);
  v = _mm512_add_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
  return _mm512_cvtps_epi32(v);
}

}  // namespace aiov
