// Softmax of one contiguous f32 row, shared by the Softmax op and the fused attention.
#pragma once
#include <cstdint>

namespace aiov {

// y[0:n] = softmax(x[0:n]); x and y may be the same row.
void softmax_row(const float* x, float* y, int64_t n);

}  // namespace aiov
