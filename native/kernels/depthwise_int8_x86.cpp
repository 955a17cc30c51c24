// Depthwise int8 kernels for AVX512-VNNI: 16 channels a vector, each tap's u8 values widened
// to s32 lanes whose upper halves are zero, so VPDPWSSD against the s32 weights (|w| < 2^15)
// adds exactly x * w into each lane; four pixels in flight per pass over the taps, sharing
// each tap's weights.
#include "kernels/depthwise_int8.hpp"
#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace depthwise_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

[[gnu::always_inline]] inline __m512i widened(const uint8_t* x, __mmask16 m) {
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x));
}

// Pixels [i, i + P) of channels [c, c + 16) under mask m.
template <int P>
[[gnu::always_inline]] inline void block(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t i, int64_t step,
                                         int64_t c, __mmask16 m, int32_t* acc) {
  const int64_t C = p.channels, kernel = p.kernel_h * p.kernel_w;
  __m512i sum[P];
  const __m512i add = _mm512_maskz_loadu_epi32(m, p.channel_add + c);
  for (int k = 0; k < P; ++k) sum[k] = add;
  for (int64_t t = 0; t < kernel; ++t) {
    const __m512i w = _mm512_maskz_loadu_epi32(m, p.weights + t * C + c);
    const uint8_t* x = taps[t] + i * step + c;
    for (int k = 0; k < P; ++k) sum[k] = _mm512_dpwssd_epi32(sum[k], widened(x + k * step, m), w);
  }
  for (int k = 0; k < P; ++k) _mm512_mask_storeu_epi32(acc + (i + k) * C + c, m, sum[k]);
}

void pixels_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc) {
  const int64_t C = p.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1u);
    int64_t i = 0;
    for (; i + 4 <= count; i += 4) block<4>(p, taps, i, step, c, m, acc);
    for (; i < count; ++i) block<1>(p, taps, i, step, c, m, acc);
  }
}

void dequantize_vnni(const DepthwiseInt8& p, const int32_t* sums, float* y) {
  const int64_t C = p.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1u);
    __m512 v =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, sums + c)), _mm512_maskz_loadu_ps(m, p.scale + c));
    if (p.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, p.bias + c));
    if (p.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(y + c, m, v);
  }
}

const DepthwiseKernels kVnni{"avx512_vnni", &pixels_vnni, &dequantize_vnni};

}  // namespace

const DepthwiseKernels* vnni_depthwise_kernels() { return &kVnni; }
#else
const DepthwiseKernels* vnni_depthwise_kernels() { return nullptr; }
#endif
}  // namespace depthwise_detail
}  // namespace aiov
