// Softmax of one contiguous f32 row, shared by the Softmax op and the fused attention.
#pragma once
#include <cmath>
#include <cstdint>

namespace aiov {

// y[0:n] = softmax(x[0:n]); x and y may be the same row.
void softmax_row(const float* x, float* y, int64_t n);

namespace softmax_detail {
// Subnormal probabilities cost a microcode assist in every instruction that makes or reads
// them (the fused attention's PV product ran dozens of times slower under a padding or causal
// mask). exp(x - max) is subnormal below kLowestNormalExp, and after the division by the
// row's sum (at most n) below that plus log(n): the softmax gives 0 there, which is within an
// ulp of what it would give next to the sum, at least 1.
constexpr float kLowestNormalExp = -87.33f;
inline float lowest_kept(int64_t n) { return kLowestNormalExp + std::log((float)n); }
using SoftmaxFn = void (*)(const float* x, float* y, int64_t n);
SoftmaxFn avx512_softmax();  // null when built without AVX-512 (softmax_avx512.cpp)
}  // namespace softmax_detail

}  // namespace aiov
