// Max pooling of bf16 NHWC tensors: a region carrying bf16 between convolutions (the
// carry_bf16 pass) through a MaxPool, as ResNet's stem and SqueezeNet's pools sit between them.
#pragma once
#include <cstdint>

#include "kernels/nhwc_window.hpp"

namespace aiov {

class ThreadPool;

// y[n, oy, ox, c] = the largest x over the window's in-bounds taps (a NaN wins over a number,
// as in max_pool_nhwc, and comes out as the NaN 0x7FFF), x and y bf16 bits in NHWC. Exact: a
// maximum is one of its inputs.
void max_pool_nhwc_bf16(const Window2d& g, const uint16_t* x, uint16_t* y, ThreadPool* pool, int max_threads);

namespace pool_bf16_detail {
// Output rows [r0, r1) (row = n * OH + oy) of max_pool_nhwc_bf16.
using MaxPoolRowsFn = void (*)(const Window2d& g, const uint16_t* x, uint16_t* y, int64_t r0, int64_t r1);
// Null when built without AVX-512 (pool_bf16_avx512.cpp).
MaxPoolRowsFn avx512_max_pool_rows();
}  // namespace pool_bf16_detail

}  // namespace aiov
