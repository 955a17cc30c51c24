// The portable bf16 max pooling (pool_bf16.hpp) and the choice of kernel; the AVX-512 one is in
// pool_bf16_avx512.cpp.
#include "kernels/pool_bf16.hpp"

#include <algorithm>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/isa.hpp"

namespace aiov {
namespace {

// bf16 bits as 16-bit integers ordered as the values are: a negative value's magnitude bits
// flipped (the sign keeps it below the positives), and any NaN the largest (0x7FFF, still a
// NaN when turned back), so that it wins as in the f32 kernel. Integer maxima of 32 lanes
// where comparing widened f32 values took 16 and did not vectorize.
[[gnu::always_inline]] inline int16_t order_key(uint16_t bits) {
  const int16_t s = (int16_t)bits;
  const int16_t key = (int16_t)(s ^ ((s >> 15) & 0x7FFF));
  return (bits & 0x7FFF) > 0x7F80 ? (int16_t)0x7FFF : key;
}
// The inverse (of a non-NaN key; 0x7FFF stays 0x7FFF).
[[gnu::always_inline]] inline uint16_t from_key(int16_t key) { return (uint16_t)(key ^ ((key >> 15) & 0x7FFF)); }

// Output rows [r0, r1) (row = n * OH + oy): each output row's keys accumulated in place over
// its in-bounds taps, then turned back into bits. Cloned per ISA with the loops inlined; the
// AVX-512 kernel (pool_bf16_avx512.cpp) keeps a pixel's keys in registers instead, under a
// mask for any channel count (this loop's vectors left 16 channels to its scalar tail).
AIOV_MULTIVERSION void max_pool_rows(const Window2d& g, const uint16_t* x, uint16_t* y, int64_t r0, int64_t r1) {
  const int16_t lowest = order_key(0xFF80);  // -inf: what a window of padding alone gives
  const int64_t C = g.C, line = g.OW * C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    int16_t* __restrict out = reinterpret_cast<int16_t*>(y + r * line);
    std::fill_n(out, line, lowest);
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      const uint16_t* __restrict row = x + (n * g.H + iy) * g.W * C;
      for (int64_t ox = 0; ox < g.OW; ++ox)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
          if (ix < 0 || ix >= g.W) continue;
          int16_t* __restrict o = out + ox * C;
          const uint16_t* __restrict v = row + ix * C;
          for (int64_t c = 0; c < C; ++c) o[c] = std::max(o[c], order_key(v[c]));
        }
    }
    for (int64_t i = 0; i < line; ++i) y[r * line + i] = from_key(out[i]);
  }
}

}  // namespace

void max_pool_nhwc_bf16(const Window2d& g, const uint16_t* x, uint16_t* y, ThreadPool* pool, int max_threads) {
  const int64_t R = g.N * g.OH;
  static const pool_bf16_detail::MaxPoolRowsFn avx512 =
      selected_isa() == Isa::avx512 ? pool_bf16_detail::avx512_max_pool_rows() : nullptr;
  const pool_bf16_detail::MaxPoolRowsFn kernel = avx512 ? avx512 : &max_pool_rows;
  const auto rows = [&](int64_t r0, int64_t r1) { kernel(g, x, y, r0, r1); };
  if (pool && R > 1)
    // About a twentieth of a ns per value and tap (a few integer operations on 32 values per
    // vector), plus the pixel's store.
    pool->parallel_for_units(R, (double)g.OW * ((double)g.C * (double)(g.kh * g.kw) * 0.05 + 1.0), rows, max_threads);
  else
    rows(0, R);
}

}  // namespace aiov
