// Depthwise int8 kernel for AVX512-VNNI: 16 channels a step, each tap's u8 values widened to
// s32 lanes whose upper halves are zero, so VPDPWSSD against the s32 weights (|w| < 2^15)
// adds exactly x * w into each lane; sixty-four channels in flight per pass over the taps.
#include "kernels/depthwise_int8.hpp"
#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace depthwise_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

template <int V>
[[gnu::always_inline]] inline void block(const DepthwiseInt8& p, const uint8_t* const* taps, int32_t* acc, int64_t c0,
                                         int64_t count) {
  const int64_t C = p.channels;
  __m512i sum[V];
  for (int v = 0; v < V; ++v) sum[v] = _mm512_loadu_si512(p.channel_add + c0 + 16 * v);
  for (int64_t t = 0; t < count; ++t) {
    const uint8_t* x = taps[t] + c0;
    const int32_t* w = p.weights + t * C + c0;
    for (int v = 0; v < V; ++v) {
      const __m512i xv = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16 * v)));
      sum[v] = _mm512_dpwssd_epi32(sum[v], xv, _mm512_loadu_si512(w + 16 * v));
    }
  }
  for (int v = 0; v < V; ++v) _mm512_storeu_si512(acc + c0 + 16 * v, sum[v]);
}

void pixel_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int32_t* acc) {
  const int64_t C = p.channels, count = p.kernel_h * p.kernel_w;
  int64_t c = 0;
  for (; c + 64 <= C; c += 64) block<4>(p, taps, acc, c, count);
  for (; c + 16 <= C; c += 16) block<1>(p, taps, acc, c, count);
  if (c == C) return;
  // The last channels under a mask (no reads past the image's end).
  const __mmask16 m = (__mmask16)((1u << (C - c)) - 1u);
  __m512i sum = _mm512_maskz_loadu_epi32(m, p.channel_add + c);
  for (int64_t t = 0; t < count; ++t) {
    const __m512i xv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, taps[t] + c));
    sum = _mm512_dpwssd_epi32(sum, xv, _mm512_maskz_loadu_epi32(m, p.weights + t * C + c));
  }
  _mm512_mask_storeu_epi32(acc + c, m, sum);
}

}  // namespace

PixelFn vnni_depthwise_pixel() { return &pixel_vnni; }
#else
PixelFn vnni_depthwise_pixel() { return nullptr; }
#endif
}  // namespace depthwise_detail
}  // namespace aiov
