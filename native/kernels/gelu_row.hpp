// Gelu's erf form, 0.5 x (1 + erf(x / sqrt 2)), over a contiguous f32 run with AVX-512
// intrinsics (dispatch: ops/elementwise.cpp). The target-cloned loop of fast_erf clamped with
// four compares and three masked moves per vector (it must keep NaN) and spent ~1.4 cycles a
// value; here the clamp is a max and a min (which keep NaN by operand order) and the result
// one FMA: about two thirds of the instructions. Same rational fit (erf_coefficients.hpp).
#pragma once
#include <cstdint>

namespace aiov {
namespace gelu_detail {
using GeluRowFn = void (*)(const float* x, float* y, int64_t n);
GeluRowFn avx512_gelu_erf_row();  // null when built without AVX-512 (gelu_avx512.cpp)
}  // namespace gelu_detail
}  // namespace aiov
