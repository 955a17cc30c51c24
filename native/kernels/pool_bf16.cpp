#include "kernels/pool_bf16.hpp"

#include <algorithm>
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"

namespace aiov {
namespace {

// out[c] = max(out[c], v[c]) for c < n, compared as the f32 values they widen to (bf16 is
// f32's upper half) and the winner's bits kept: a loop the AVX clones vectorize.
AIOV_MULTIVERSION void max_bf16_run(uint16_t* __restrict out, const uint16_t* __restrict v, int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    const uint32_t a_bits = (uint32_t)out[c] << 16, b_bits = (uint32_t)v[c] << 16;
    float a, b;
    std::memcpy(&a, &a_bits, sizeof a);
    std::memcpy(&b, &b_bits, sizeof b);
    out[c] = (b > a || (b != b && a == a)) ? v[c] : out[c];
  }
}

// Output rows [r0, r1) (row = n * OH + oy).
void max_pool_rows(const Window2d& g, const uint16_t* x, uint16_t* y, int64_t r0, int64_t r1) {
  constexpr uint16_t kMinusInfinity = 0xFF80;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    uint16_t* out = y + r * g.OW * g.C;
    std::fill_n(out, g.OW * g.C, kMinusInfinity);
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      const uint16_t* row = x + (n * g.H + iy) * g.W * g.C;
      for (int64_t ox = 0; ox < g.OW; ++ox)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
          if (ix >= 0 && ix < g.W) max_bf16_run(out + ox * g.C, row + ix * g.C, g.C);
        }
    }
  }
}

}  // namespace

void max_pool_nhwc_bf16(const Window2d& g, const uint16_t* x, uint16_t* y, ThreadPool* pool, int max_threads) {
  const int64_t R = g.N * g.OH;
  const auto rows = [&](int64_t r0, int64_t r1) { max_pool_rows(g, x, y, r0, r1); };
  if (pool && R > 1)
    // About a tenth of a ns per value and tap (a compare and a blend of 32 values per vector),
    // plus the pixel's store.
    pool->parallel_for_units(R, (double)g.OW * ((double)g.C * (double)(g.kh * g.kw) * 0.1 + 1.0), rows, max_threads);
  else
    rows(0, R);
}

}  // namespace aiov
