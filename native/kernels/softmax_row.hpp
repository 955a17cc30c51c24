// Softmax of one contiguous f32 row, shared by the Softmax op and the fused attention.
#pragma once
#include <cstdint>

namespace aiov {

// y[0:n] = softmax(x[0:n]); x and y may be the same row.
void softmax_row(const float* x, float* y, int64_t n);

namespace softmax_detail {
using SoftmaxFn = void (*)(const float* x, float* y, int64_t n);
SoftmaxFn avx512_softmax();  // null when built without AVX-512 (softmax_avx512.cpp)
}  // namespace softmax_detail

}  // namespace aiov
