// bf16 NHWC max pooling with AVX-512 intrinsics (dispatch: pool_bf16.cpp): per output pixel
// and block of 32 channels, the order keys of its in-bounds taps (see pool_bf16.cpp) folded
// in one register with VPMAXSW, the last block under a mask; then turned back and stored.
#include "kernels/pool_bf16.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace aiov {
namespace pool_bf16_detail {
namespace {

inline __mmask32 head_mask(int64_t n) { return n >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n) - 1); }

// 32 bf16 values' order keys: a negative's magnitude bits flipped, any NaN 0x7FFF.
inline __m512i order_keys(__m512i bits) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const __m512i key = _mm512_xor_si512(bits, _mm512_and_si512(_mm512_srai_epi16(bits, 15), magnitude));
  const __mmask32 nan = _mm512_cmpgt_epi16_mask(_mm512_and_si512(bits, magnitude), _mm512_set1_epi16(0x7F80));
  return _mm512_mask_mov_epi16(key, nan, magnitude);
}

// The inverse of order_keys (0x7FFF, a NaN, stays itself).
inline __m512i from_keys(__m512i key) {
  return _mm512_xor_si512(key, _mm512_and_si512(_mm512_srai_epi16(key, 15), _mm512_set1_epi16(0x7FFF)));
}

// The same on 16 values (ymm: a whole vector for 16 channels, where a zmm op of which half is
// masked costs a full one; Zen 4 runs ymm integer ops at twice the zmm rate).
inline __m256i order_keys(__m256i bits) {
  const __m256i magnitude = _mm256_set1_epi16(0x7FFF);
  const __m256i key = _mm256_xor_si256(bits, _mm256_and_si256(_mm256_srai_epi16(bits, 15), magnitude));
  const __mmask16 nan = _mm256_cmpgt_epi16_mask(_mm256_and_si256(bits, magnitude), _mm256_set1_epi16(0x7F80));
  return _mm256_mask_mov_epi16(key, nan, magnitude);
}
inline __m256i from_keys(__m256i key) {
  return _mm256_xor_si256(key, _mm256_and_si256(_mm256_srai_epi16(key, 15), _mm256_set1_epi16(0x7FFF)));
}

// The window at `window` (its first tap's first channel) over the taps at offsets[0, taps),
// all inside the image, 32 channels under mask m: no bound tests.
inline __m512i window_max(const uint16_t* window, const int64_t* offsets, int64_t taps, __mmask32 m, __m512i acc) {
  for (int64_t t = 0; t < taps; ++t)
    acc = _mm512_max_epi16(acc, order_keys(_mm512_maskz_loadu_epi16(m, window + offsets[t])));
  return acc;
}

void max_pool_rows_avx512(const Window2d& g, const uint16_t* x, uint16_t* y, int64_t r0, int64_t r1) {
  const int64_t C = g.C, taps = g.kh * g.kw;
  // -inf's key: what a window of padding alone gives.
  const __m512i lowest = order_keys(_mm512_set1_epi16((short)0xFF80));
  // Where each tap reads from its window's first point, for windows inside the image.
  int64_t offsets_small[16];
  std::vector<int64_t> offsets_large(taps > 16 ? (size_t)taps : 0);
  int64_t* offsets = taps > 16 ? offsets_large.data() : offsets_small;
  for (int64_t ky = 0, t = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx, ++t) offsets[t] = (ky * g.dh * g.W + kx * g.dw) * C;
  // Output columns [lo, hi) whose windows lie inside the image across.
  const int64_t x_span = (g.kw - 1) * g.dw;
  const int64_t lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t hi = g.W + g.pw > x_span ? std::clamp((g.W + g.pw - 1 - x_span) / g.sw + 1, lo, g.OW) : lo;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.OH, oy = r % g.OH;
    const int64_t iy0 = oy * g.sh - g.ph;
    const bool rows_inside = iy0 >= 0 && iy0 + (g.kh - 1) * g.dh < g.H;
    const uint16_t* image = x + n * g.H * g.W * C;
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      const int64_t ix0 = ox * g.sw - g.pw;
      uint16_t* out = y + (r * g.OW + ox) * C;
      if (rows_inside && ox >= lo && ox < hi) {
        const uint16_t* window = image + (iy0 * g.W + ix0) * C;
        if (C <= 16) {  // one ymm
          const __mmask16 m = (__mmask16)head_mask(C);
          __m256i acc = _mm512_castsi512_si256(lowest);
          for (int64_t t = 0; t < taps; ++t)
            acc = _mm256_max_epi16(acc, order_keys(_mm256_maskz_loadu_epi16(m, window + offsets[t])));
          _mm256_mask_storeu_epi16(out, m, from_keys(acc));
          continue;
        }
        for (int64_t c = 0; c < C; c += 32) {
          const __mmask32 m = head_mask(C - c);
          _mm512_mask_storeu_epi16(out + c, m, from_keys(window_max(window + c, offsets, taps, m, lowest)));
        }
        continue;
      }
      for (int64_t c = 0; c < C; c += 32) {
        const __mmask32 m = head_mask(C - c);
        __m512i acc = lowest;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = iy0 + ky * g.dh;
          if (iy < 0 || iy >= g.H) continue;
          const uint16_t* line = image + iy * g.W * C + c;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = ix0 + kx * g.dw;
            if (ix < 0 || ix >= g.W) continue;
            acc = _mm512_max_epi16(acc, order_keys(_mm512_maskz_loadu_epi16(m, line + ix * C)));
          }
        }
        _mm512_mask_storeu_epi16(out + c, m, from_keys(acc));
      }
    }
  }
}

}  // namespace

MaxPoolRowsFn avx512_max_pool_rows() { return &max_pool_rows_avx512; }

}  // namespace pool_bf16_detail
}  // namespace aiov

#else

namespace aiov::pool_bf16_detail {
MaxPoolRowsFn avx512_max_pool_rows() { return nullptr; }
}  // namespace aiov::pool_bf16_detail

#endif
