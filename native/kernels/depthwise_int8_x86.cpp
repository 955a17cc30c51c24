// Depthwise (and narrow-group) int8 kernels for AVX512-VNNI: 16 channels a vector, each tap's u8 values widened
// to s32 lanes whose upper halves are zero, so VPDPWSSD against the s32 weights (|w| < 2^15)
// adds exactly x * w into each lane; four pixels in flight per pass over the taps, sharing
// each tap's weights.
#include "kernels/depthwise_int8.hpp"
#include "kernels/x86_intrinsics.hpp"
// (after the intrinsics)
#include "kernels/requantize_x86.hpp"

namespace aiov {
namespace depthwise_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

// 16 bytes widened to s32 lanes (one VPMOVZXBD from memory when all 16 are wanted).
template <bool kFull>
[[gnu::always_inline]] inline __m512i widened(const uint8_t* x, __mmask16 m) {
  if (kFull) return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x));
}

// Output channels [c, c + 16) under mask m of one pixel's sum, through the epilogue, to
// element o of the output: s32 as it is, or float(sum) * scale (+ bias) (relu) as f32 or
// requantized to u8 (no FMA: the f32 values of the portable path, which requantization
// depends on).
[[gnu::always_inline]] inline void write_out(const DepthwiseInt8& p, const Requantizer& rq, __m512i sum, int64_t c,
                                             __mmask16 m, int64_t o) {
  if (p.out_i32) {
    _mm512_mask_storeu_epi32(p.out_i32 + o, m, sum);
    return;
  }
  __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_maskz_loadu_ps(m, p.scale + c));
  if (p.bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, p.bias + c));
  if (p.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
  if (p.out_u8)
    _mm512_mask_cvtusepi32_storeu_epi8(p.out_u8 + o, m, requantized_u8(y, rq));
  else
    _mm512_mask_storeu_ps(p.out_f32 + o, m, y);
}

// The u8 epilogue of P pixels of output channels [c, c + 16) in one multiply-add each where that
// gives write_out's bytes: q = sum * (scale / out_scale) + (bias / out_scale + zero) is within
// 2^-24 (6 |q - zero| + 6 |bias / out_scale| + 2 zero) of write_out's quotient plus the zero
// point, under 8.7e-4 for |q - zero| < 1300 with |bias / out_scale| <= 1024 (past 1300 both
// saturate alike), so only a pixel with a lane within 2^-10 of a half-integer, or channels
// whose bias passes that range, take write_out's steps.
template <int P>
[[gnu::always_inline]] inline void write_u8_folded(const DepthwiseInt8& p, const Requantizer& rq,
                                                   const __m512i (&sum)[P], int64_t c, __mmask16 m, int64_t at,
                                                   int64_t stride) {
  const __m512 scale = _mm512_maskz_loadu_ps(m, p.scale + c);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(m, p.bias + c) : _mm512_setzero_ps();
  const __m512 folded_scale = _mm512_mul_ps(scale, rq.inverse), bias_quotient = _mm512_mul_ps(bias, rq.inverse);
  const __m512 folded_bias = _mm512_add_ps(bias_quotient, rq.zero);
  // (NaN or infinite constants fail the compares too)
  const bool foldable =
      rq.by_inverse && p.out_scale > 0 &&
      _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(bias_quotient), _mm512_set1_ps(1024.0f), _CMP_LE_OQ) == m &&
      _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(folded_scale), _mm512_set1_ps(3.0e38f), _CMP_LE_OQ) == m;
  // The floor is 0, or the zero point after a Relu; 255 and above saturate in the narrowing.
  const __m512 floor = p.relu ? rq.zero : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int k = 0; k < P; ++k) {
    if (foldable) {
      const __m512 q = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[k]), folded_scale, folded_bias);
      const __m512 off = _mm512_reduce_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      if (!_mm512_cmp_ps_mask(_mm512_abs_ps(off), _mm512_set1_ps(0.5f - 1.0f / 1024.0f), _CMP_GE_OQ)) {
        const __m128i bytes = _mm512_cvtusepi32_epi8(
            _mm512_cvt_roundps_epi32(_mm512_max_ps(q, floor), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_mask_storeu_epi8(p.out_u8 + at + k * stride, m, bytes);
        continue;
      }
    }
    write_out(p, rq, sum[k], c, m, at + k * stride);
  }
}

// Pixels [i, i + P) of output channels [c, c + 16) under mask m, to acc [count, C] or, with
// kDirect, through the epilogue to the output from element out_at (pixel_stride apart).
// With groups, lane l takes input `in` of its group from lane l - l % width + in (a group
// never straddles 16 channels). kFull: m is all 16 lanes (plain loads).
template <int P, bool kGroups, bool kDirect, bool kFull>
[[gnu::always_inline]] inline void block(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t i, int64_t step,
                                         int64_t c, __mmask16 lanes, int32_t* acc, int64_t out_at,
                                         const Requantizer& rq) {
  const __mmask16 m = kFull ? (__mmask16)0xFFFF : lanes;
  const int64_t C = p.channels, kernel = p.kernel_h * p.kernel_w, width = p.group_width;
  __m512i sum[P];
  const __m512i add = _mm512_maskz_loadu_epi32(m, p.channel_add + c);
  // Every loop over the P pixels unrolled: left as loops, GCC keeps sum[] in memory and
  // stores all P accumulators on every tap (a 512-bit store each, twice the products' cost).
#pragma GCC unroll 8
  for (int k = 0; k < P; ++k) sum[k] = add;
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i first = _mm512_sub_epi32(lane, _mm512_and_si512(lane, _mm512_set1_epi32((int)width - 1)));
  for (int64_t t = 0; t < kernel; ++t) {
    const uint8_t* x = taps[t] + i * step + c;
    __m512i xv[P];
#pragma GCC unroll 8
    for (int k = 0; k < P; ++k) xv[k] = widened<kFull>(x + k * step, m);
    if (!kGroups) {
      const __m512i w = _mm512_maskz_loadu_epi32(m, p.weights + t * C + c);
#pragma GCC unroll 8
      for (int k = 0; k < P; ++k) sum[k] = _mm512_dpwssd_epi32(sum[k], xv[k], w);
      continue;
    }
    for (int64_t in = 0; in < width; ++in) {
      const __m512i w = _mm512_maskz_loadu_epi32(m, p.weights + (t * width + in) * C + c);
      const __m512i from = _mm512_add_epi32(first, _mm512_set1_epi32((int)in));
#pragma GCC unroll 8
      for (int k = 0; k < P; ++k) sum[k] = _mm512_dpwssd_epi32(sum[k], _mm512_permutexvar_epi32(from, xv[k]), w);
    }
  }
  if (kDirect && p.out_u8) {
    write_u8_folded<P>(p, rq, sum, c, m, out_at + i * p.pixel_stride + c, p.pixel_stride);
    return;
  }
#pragma GCC unroll 8
  for (int k = 0; k < P; ++k) {
    if (kDirect)
      write_out(p, rq, sum[k], c, m, out_at + (i + k) * p.pixel_stride + c);
    else
      _mm512_mask_storeu_epi32(acc + (i + k) * C + c, m, sum[k]);
  }
}

// Channels [c0, c1).
template <bool kGroups, bool kDirect>
void pixels(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc,
            int64_t out_at, int64_t c0, int64_t c1) {
  const Requantizer rq = requantizer(p.out_scale, p.out_zero);
  for (int64_t c = c0; c < c1; c += 16) {
    const __mmask16 m = c1 - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c1 - c)) - 1u);
    int64_t i = 0;
    if (m == 0xFFFF) {
      for (; i + 8 <= count; i += 8) block<8, kGroups, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      for (; i + 4 <= count; i += 4) block<4, kGroups, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      for (; i < count; ++i) block<1, kGroups, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      continue;
    }
    for (; i + 8 <= count; i += 8) block<8, kGroups, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
    for (; i + 4 <= count; i += 4) block<4, kGroups, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
    for (; i < count; ++i) block<1, kGroups, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
  }
}

void pixels_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc) {
  if (p.group_width == 1)
    pixels<false, false>(p, taps, count, step, acc, 0, 0, p.channels);
  else
    pixels<true, false>(p, taps, count, step, acc, 0, 0, p.channels);
}

void pixels_nhwc_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int64_t out_at,
                      int64_t c0, int64_t c1) {
  if (p.group_width == 1)
    pixels<false, true>(p, taps, count, step, nullptr, out_at, c0, c1);
  else
    pixels<true, true>(p, taps, count, step, nullptr, out_at, c0, c1);
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

const DepthwiseKernels kVnni{"avx512_vnni", &pixels_vnni, &pixels_nhwc_vnni, &dequantize_vnni};

}  // namespace

const DepthwiseKernels* vnni_depthwise_kernels() { return &kVnni; }
#else
const DepthwiseKernels* vnni_depthwise_kernels() { return nullptr; }
#endif
}  // namespace depthwise_detail
}  // namespace aiov
