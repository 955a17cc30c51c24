// Softmax of one contiguous f32 row, shared by the Softmax op and the fused attention.
#pragma once
#include <cmath>
#include <cstdint>

namespace aiov {

// y[0:n] = softmax(x[0:n]); x and y may be the same row.
void softmax_row(const float* x, float* y, int64_t n);

// The softmax down each of n <= kSoftmaxColumns contiguous columns of len values whose rows lie
// `stride` floats apart (a softmax over a non-last axis: NCHW's channels), y laid out as x:
// max, exponentials and sums run along the rows, so every pass is a contiguous vector loop.
constexpr int64_t kSoftmaxColumns = 256;
void softmax_columns(const float* x, float* y, int64_t len, int64_t n, int64_t stride);
// The same for log-softmax: y = x - max - log(sum of exp(x - max)) down each column.
void log_softmax_columns(const float* x, float* y, int64_t len, int64_t n, int64_t stride);

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
