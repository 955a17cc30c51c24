// Depthwise (and narrow-group) int8 kernels for AVX512-VNNI. The row kernel (weights within
// s8): 4 kernel rows' bytes of a channel in each dword, one VPDPBUSD per 4 taps of 16
// channels, each input column built once for every pixel of the row whose window holds it.
// The general one: 16 channels a vector, each tap's u8 values widened to s32 lanes whose
// upper halves are zero, so VPDPWSSD against the s32 weights (|w| < 2^15) adds exactly x * w
// into each lane; four pixels in flight per pass over the taps, sharing each tap's weights.
#include <algorithm>

#include "kernels/depthwise_int8.hpp"
#include "kernels/x86_intrinsics.hpp"
// (after the intrinsics)
#include "kernels/requantize_x86.hpp"

namespace aiov {
namespace depthwise_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

// f32 products and sums rounded each on their own: GCC contracts a plain multiply and add
// into one FMA, which would round once where the portable path (and aiov.Quantize of its f32
// output) rounds twice.
[[gnu::always_inline]] inline __m512 mul_rn(__m512 a, __m512 b) {
  return _mm512_mul_round_ps(a, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
[[gnu::always_inline]] inline __m512 add_rn(__m512 a, __m512 b) {
  return _mm512_add_round_ps(a, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

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
  __m512 y = mul_rn(_mm512_cvtepi32_ps(sum), _mm512_maskz_loadu_ps(m, p.scale + c));
  if (p.bias) y = add_rn(y, _mm512_maskz_loadu_ps(m, p.bias + c));
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
  const __m512 folded_scale = mul_rn(scale, rq.inverse), bias_quotient = mul_rn(bias, rq.inverse);
  const __m512 folded_bias = add_rn(bias_quotient, rq.zero);
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
// never straddles 16 channels); kQuads (groups of 4, 8 or 16, p.quad_weights): 4 of its inputs
// a VPDPBUSD. kFull: m is all 16 lanes (plain loads).
template <int P, bool kGroups, bool kQuads, bool kDirect, bool kFull>
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
    if (kQuads) {
      // Each lane's group inputs 4 q .. 4 q + 3, one dword of the pixel's 16 bytes (a group
      // starts on a dword: width 4, 8 or 16), against that lane's 4 s8 weights.
      const int64_t quads = width / 4;
      __m512i bytes[P];
#pragma GCC unroll 8
      for (int k = 0; k < P; ++k)
        bytes[k] = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(kFull ? (__mmask16)0xFFFF : m, x + k * step));
      for (int64_t q = 0; q < quads; ++q) {
        const __m512i w = _mm512_maskz_loadu_epi32(m, p.quad_weights + (t * quads + q) * C + c);
        const __m512i from = _mm512_add_epi32(_mm512_srli_epi32(first, 2), _mm512_set1_epi32((int)q));
#pragma GCC unroll 8
        for (int k = 0; k < P; ++k) sum[k] = _mm512_dpbusd_epi32(sum[k], _mm512_permutexvar_epi32(from, bytes[k]), w);
      }
      continue;
    }
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

// ---- The row kernel: 4 kernel rows a byte each, VPDPBUSD (see depthwise_int8_row_weights) ----

// The 4 x 4 transpose of 128-bit lanes that takes the unpacks' channel order (vector k, lane L:
// channels 16 L + 4 k ..) to the natural one (vector v: channels 16 v ..), and back.
[[gnu::always_inline]] inline void swap_lanes(__m512i (&v)[4]) {
  const __m512i t0 = _mm512_shuffle_i32x4(v[0], v[1], 0x44), t1 = _mm512_shuffle_i32x4(v[2], v[3], 0x44);
  const __m512i t2 = _mm512_shuffle_i32x4(v[0], v[1], 0xEE), t3 = _mm512_shuffle_i32x4(v[2], v[3], 0xEE);
  v[0] = _mm512_shuffle_i32x4(t0, t1, 0x88);
  v[1] = _mm512_shuffle_i32x4(t0, t1, 0xDD);
  v[2] = _mm512_shuffle_i32x4(t2, t3, 0x88);
  v[3] = _mm512_shuffle_i32x4(t2, t3, 0xDD);
}

[[gnu::always_inline]] inline void swap_lanes(__m512 (&v)[4]) {
  __m512i i[4];
  for (int k = 0; k < 4; ++k) i[k] = _mm512_castps_si512(v[k]);
  swap_lanes(i);
  for (int k = 0; k < 4; ++k) v[k] = _mm512_castsi512_ps(i[k]);
}

// One 64-lane block of a call: its packed weights, how its vectors map onto pixels, and its
// epilogue's constants, permuted as the column vectors are. A vector holds `slots` pixels of
// `width` channels each (1 x 64, or 2 x 32 / 4 x 16 for a last block that narrow).
struct RowBlock {
  const int8_t* weights;  // (row group, kx): 4 vectors
  int64_t c;              // its first channel
  int64_t width;          // lanes per pixel
  int64_t gather;         // bytes between the slots' pixels in a row of the input; 0: one load
  int64_t slot_out;       // output elements between the slots' pixels
  int valid;              // lanes holding outputs (bytes of a column load)
  __mmask64 bytes;        // the first `valid`
  __m512i add[4];
  __m512 folded_scale[4], folded_bias[4];
  __m512i zero_bytes;        // the output's zero point in every byte (the floor after a Relu)
  __m512 scale[4], bias[4];  // write_out's factors, permuted (the exact steps)
  __m512 near;               // 0.5 less the folded quotient's error bound (see finish)
  bool foldable;             // the u8 epilogue may take one multiply-add (see write_u8_folded)
};

// Lanes [16 v, 16 v + 16) of the first `valid`.
inline __mmask16 lanes_of(int valid, int v) {
  const int n = valid - 16 * v;
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// The block of channels [c, ...) for runs of pixels `pixel_bytes` apart in the input and
// `pixel_out` elements apart in the output, or (single) for one pixel at a time.
RowBlock row_block(const DepthwiseInt8& p, const Requantizer& rq, int64_t c, int64_t pixel_bytes, int64_t pixel_out,
                   bool single) {
  const int64_t C = p.channels, slots = row_block_pixels(C, c);
  RowBlock b;
  b.weights = p.row_weights + (c / 64) * ((p.kernel_h + 3) / 4) * p.kernel_w * 256;
  b.c = c;
  b.width = slots > 1 ? row_block_width(C, c) : 64;
  b.gather = slots > 1 && !single && pixel_bytes != b.width ? pixel_bytes : 0;
  b.slot_out = pixel_out;
  b.valid = (int)(single || slots == 1 ? row_block_width(C, c) : 64);
  b.bytes = b.valid >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << b.valid) - 1);
  __m512 scale[4], bias[4];
  __mmask16 in_range = 0xFFFF;
  b.foldable = p.out_u8 && rq.by_inverse && p.out_scale > 0;
  for (int v = 0; v < 4; ++v) {
    // Lane positions 16 v .. hold channels c + 16 v % width .. (of slot 16 v / width)
    const int64_t at = c + 16 * v % b.width;
    const __mmask16 m = slots > 1 ? (__mmask16)0xFFFF : lanes_of(b.valid, v);
    b.add[v] = _mm512_maskz_loadu_epi32(m, p.channel_add + at);
    scale[v] = p.scale ? _mm512_maskz_loadu_ps(m, p.scale + at) : _mm512_setzero_ps();
    bias[v] = p.bias ? _mm512_maskz_loadu_ps(m, p.bias + at) : _mm512_setzero_ps();
    if (!b.foldable) continue;
    const __m512 quotient = mul_rn(bias[v], rq.inverse);
    b.folded_scale[v] = mul_rn(scale[v], rq.inverse);
    b.folded_bias[v] = add_rn(quotient, rq.zero);
    // (NaN or infinite constants fail the compares too)
    in_range &= _mm512_cmp_ps_mask(_mm512_abs_ps(quotient), _mm512_set1_ps(1024.0f), _CMP_LE_OQ) &
                _mm512_cmp_ps_mask(_mm512_abs_ps(b.folded_scale[v]), _mm512_set1_ps(3.0e38f), _CMP_LE_OQ);
  }
  b.foldable = b.foldable && in_range == 0xFFFF;
  float largest_quotient = 0.0f;
  for (int v = 0; v < 4 && b.foldable; ++v)
    largest_quotient =
        std::max(largest_quotient, _mm512_reduce_max_ps(_mm512_abs_ps(_mm512_mul_ps(bias[v], rq.inverse))));
  // write_u8_folded's bound, 2^-24 (6 |q - zero| + 6 |bias / out_scale| + 2 zero), for the
  // quotients whose rounding matters, in [-1, 256] (those outside saturate alike either way).
  const float zero = (float)p.out_zero;
  b.near =
      _mm512_set1_ps(0.5f - (6.0f * (257.0f + zero) + 6.0f * largest_quotient + 2.0f * zero + 16.0f) / 16777216.0f);
  b.zero_bytes = _mm512_set1_epi8((char)(uint8_t)p.out_zero);
  for (int v = 0; v < 4; ++v) b.scale[v] = scale[v], b.bias[v] = bias[v];
  swap_lanes(b.scale);
  swap_lanes(b.bias);
  swap_lanes(b.add);
  if (b.foldable) {
    swap_lanes(b.folded_scale);
    swap_lanes(b.folded_bias);
  }
  return b;
}

// The 4 permuted sums of one column vector's outputs to element `at` of the output (or of
// `raw`, s32 sums as they are): u8 in one multiply-add per vector and the packs (which undo
// the unpacks' order) where write_u8_folded's bound allows, else in natural order through
// write_out.
[[gnu::always_inline]] inline void finish(const DepthwiseInt8& p, const Requantizer& rq, const RowBlock& b,
                                          __m512i (&acc)[4], int64_t at, int32_t* raw) {
  if (b.foldable && !raw) {
    constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    // The largest |q - round(q)| of the 4 vectors, from the rounded integers converted back.
    // Only a quotient nearer a half-integer than the fold's error bound (b.near) may round the
    // other way than write_out's, and only one in [-1, 256] matters (the bytes of those
    // outside are 0 or 255 either way, and the packs saturate them): the bound for that range
    // (about 2^-12 rather than write_u8_folded's 2^-10) sends 4-5x fewer 64-lane pixels to
    // the exact steps; a quotient outside it may go there needlessly, never wrongly. A NaN
    // (only from infinite factors, which are not folded) would convert to 0x80000000: 0.
    const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    __m512 off = _mm512_setzero_ps();
    __m512i q[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[k]), b.folded_scale[k], b.folded_bias[k]);
      // Past 2^31 the conversion's 0x80000000 would pack to 0: capped (an infinity too).
      y = _mm512_min_ps(y, _mm512_set1_ps(256.0f));
      q[k] = _mm512_cvt_roundps_epi32(y, kNearest);
      off = _mm512_max_ps(off, _mm512_and_ps(_mm512_sub_ps(y, _mm512_cvtepi32_ps(q[k])), magnitude));
    }
    if (_mm512_cmp_ps_mask(off, b.near, _CMP_GE_OQ)) {
      // The exact steps (write_out's) on the 4 vectors as they lie.
      __m512 y[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        y[k] = add_rn(mul_rn(_mm512_cvtepi32_ps(acc[k]), b.scale[k]), b.bias[k]);
        if (p.relu) y[k] = _mm512_max_ps(y[k], _mm512_setzero_ps());
      }
      requantized_u8<4>(y, rq, q);
      // (its 0x80000000 for a quotient past 2^31 is 255 as an unsigned minimum)
      for (int k = 0; k < 4; ++k) q[k] = _mm512_min_epu32(q[k], _mm512_set1_epi32(255));
    }
    {
      // The packs saturate to [0, 255]; a Relu's floor, the zero point, is a byte max.
      __m512i bytes = _mm512_packus_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
      if (p.relu) bytes = _mm512_max_epu8(bytes, b.zero_bytes);
      uint8_t* y = p.out_u8 + at;
      if (b.valid < 64) {
        _mm512_mask_storeu_epi8(y, b.bytes, bytes);
      } else if (b.width == 64 || b.slot_out == b.width) {
        _mm512_storeu_si512(y, bytes);
      } else if (b.width == 32) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm512_castsi512_si256(bytes));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + b.slot_out), _mm512_extracti64x4_epi64(bytes, 1));
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y), _mm512_castsi512_si128(bytes));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + b.slot_out), _mm512_extracti32x4_epi32(bytes, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2 * b.slot_out), _mm512_extracti32x4_epi32(bytes, 2));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 3 * b.slot_out), _mm512_extracti32x4_epi32(bytes, 3));
      }
      return;
    }
  }
  swap_lanes(acc);
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    const __mmask16 m = lanes_of(b.valid, v);
    if (!m) break;
    const int64_t o = at + 16 * v / b.width * b.slot_out + 16 * v % b.width;
    if (raw)
      _mm512_mask_storeu_epi32(raw + o, m, acc[v]);
    else
      write_out(p, rq, acc[v], b.c + 16 * v % b.width, m, o);
  }
}

// One column vector: rows[r] + offset for the 4 kernel rows of a group (the unpacks put row r
// in byte r of each channel's dword; `count` 3: the fourth is zero), its slots' pixels
// `gather` bytes apart (0: one load).
[[gnu::always_inline]] inline void column(const RowBlock& b, const uint8_t* const* rows, int count, int64_t offset,
                                          __m512i (&v)[4]) {
  // (plain loads where all 64 bytes are wanted: masked ones cost more on some cores)
  const bool full = b.bytes == ~(__mmask64)0;
  const int64_t gather = b.gather;
  const auto load = [&](const uint8_t* row) {
    const uint8_t* x = row + offset;
    if (gather == 0) return full ? _mm512_loadu_si512(x) : _mm512_maskz_loadu_epi8(b.bytes, x);
    if (b.width == 32)
      return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + gather)), 1);
    __m512i y = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
    y = _mm512_inserti32x4(y, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + gather)), 1);
    y = _mm512_inserti32x4(y, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 2 * gather)), 2);
    return _mm512_inserti32x4(y, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 3 * gather)), 3);
  };
  const __m512i r0 = load(rows[0]);
  const __m512i r1 = count > 1 ? load(rows[1]) : _mm512_setzero_si512();
  const __m512i r2 = count > 2 ? load(rows[2]) : _mm512_setzero_si512();
  const __m512i r3 = count > 3 ? load(rows[3]) : _mm512_setzero_si512();
  const __m512i lo01 = _mm512_unpacklo_epi8(r0, r1), hi01 = _mm512_unpackhi_epi8(r0, r1);
  const __m512i lo23 = _mm512_unpacklo_epi8(r2, r3), hi23 = _mm512_unpackhi_epi8(r2, r3);
  v[0] = _mm512_unpacklo_epi16(lo01, lo23);
  v[1] = _mm512_unpackhi_epi16(lo01, lo23);
  v[2] = _mm512_unpacklo_epi16(hi01, hi23);
  v[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

[[gnu::always_inline]] inline void load_weights(const int8_t* w, __m512i (&v)[4]) {
  for (int k = 0; k < 4; ++k) v[k] = _mm512_loadu_si512(w + 64 * k);
}

// Where a run reads its columns: column x of kernel row ky at rows[ky] + x * tap (rows at the
// input's column 0), columns outside [0, in_w) from `padding` (every row); the run's column
// j is x0 + j.
struct RunRows {
  const uint8_t* const* rows;
  const uint8_t* const* padding;
  int64_t tap, x0, in_w;
};

// A run of n column-vector pixels: pixel i's tap (ky, kx) in column i R + kx, its output from
// element at + i * out_step. Each column is built once and feeds the ceil(KW / R) pixels whose
// windows hold it (kept as accumulators in flight, slot i % L); kOneGroup: at most 4 kernel
// rows, whose weights stay in registers.
template <int KW, int R, bool kOneGroup, bool kTwoRows>
void row_run(const DepthwiseInt8& p, const Requantizer& rq, const RowBlock& b, const RunRows& in, int64_t n, int64_t at,
             int64_t out_step, int64_t next_row) {
  constexpr int L = (KW + R - 1) / R;
  const int64_t kernel_h = p.kernel_h, groups = (kernel_h + 3) / 4;
  // kTwoRows (3 kernel rows, stride 1 down): the column's 4 input rows serve this output row
  // (bytes 0-2, the packed weights) and the next (bytes 1-3: the weights a byte up).
  __m512i w[KW][4], w_next[kTwoRows ? KW : 1][4];
  if (kOneGroup)
    for (int kx = 0; kx < KW; ++kx) load_weights(b.weights + kx * 256, w[kx]);
  if (kTwoRows)
    for (int kx = 0; kx < KW; ++kx)
      for (int k = 0; k < 4; ++k) w_next[kTwoRows ? kx : 0][k] = _mm512_slli_epi32(w[kx][k], 8);
  __m512i acc[L][4], acc_next[kTwoRows ? L : 1][4];
  const int64_t last_column = (n - 1) * R + KW - 1;
  for (int64_t s0 = 0; s0 < n + L - 1; s0 += L) {
#pragma GCC unroll 8
    for (int u = 0; u < L; ++u) {
      const int64_t s = s0 + u;  // the pixel starting at this step
      if (s < n)
        for (int k = 0; k < 4; ++k) {
          acc[u][k] = b.add[k];
          if (kTwoRows) acc_next[kTwoRows ? u : 0][k] = b.add[k];
        }
#pragma GCC unroll 8
      for (int e = 0; e < R && e < KW; ++e) {  // (columns past the window feed no pixel)
        const int64_t j = s * R + e;
        if (j > last_column) break;
        const int64_t x = in.x0 + j;
        const bool inside = (uint64_t)x < (uint64_t)in.in_w;
        const uint8_t* const* rows = inside ? in.rows : in.padding;
        const int64_t offset = inside ? x * in.tap : 0;
        for (int64_t g = 0; g < groups; ++g) {
          __m512i v[4];
          column(b, rows + 4 * g, kTwoRows ? 4 : (int)std::min<int64_t>(4, kernel_h - 4 * g), offset, v);
#pragma GCC unroll 8
          for (int d = 0; d < L; ++d) {  // pixel s - d reads this column as tap kx
            const int kx = d * R + e;
            if (kx >= KW || s - d < 0 || s - d >= n) continue;
            __m512i(&a)[4] = acc[(u - d + L) % L];
            const int8_t* wg = b.weights + (g * KW + kx) * 256;
#pragma GCC unroll 4
            for (int k = 0; k < 4; ++k)
              a[k] = _mm512_dpbusd_epi32(a[k], v[k], kOneGroup ? w[kx][k] : _mm512_loadu_si512(wg + 64 * k));
            if (kTwoRows) {
              __m512i(&a2)[4] = acc_next[kTwoRows ? (u - d + L) % L : 0];
#pragma GCC unroll 4
              for (int k = 0; k < 4; ++k) a2[k] = _mm512_dpbusd_epi32(a2[k], v[k], w_next[kTwoRows ? kx : 0][k]);
            }
          }
          if (kOneGroup) break;
        }
      }
      const int64_t done = s - L + 1;  // its last column was this step's
      if (done >= 0 && done < n) {
        finish(p, rq, b, acc[(u + 1) % L], at + done * out_step, nullptr);
        if (kTwoRows) finish(p, rq, b, acc_next[kTwoRows ? (u + 1) % L : 0], at + next_row + done * out_step, nullptr);
      }
    }
  }
}

// One pixel whose taps lie anywhere (the padding at a border): tap t at taps[t] + offset.
void row_single(const DepthwiseInt8& p, const Requantizer& rq, const RowBlock& b, const uint8_t* const* taps,
                int64_t offset, int64_t at, int32_t* raw) {
  const int64_t KW = p.kernel_w, kernel_h = p.kernel_h, groups = (kernel_h + 3) / 4;
  __m512i acc[4] = {b.add[0], b.add[1], b.add[2], b.add[3]};
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t kx = 0; kx < KW; ++kx) {
      const int count = (int)std::min<int64_t>(4, kernel_h - 4 * g);
      const uint8_t* rows[4];
      for (int r = 0; r < 4; ++r) rows[r] = taps[(4 * g + std::min(r, count - 1)) * KW + kx] + b.c;
      __m512i v[4], w[4];
      column(b, rows, count, offset, v);
      load_weights(b.weights + (g * KW + kx) * 256, w);
      for (int k = 0; k < 4; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], v[k], w[k]);
    }
  finish(p, rq, b, acc, at, raw);
}

template <int KW, bool kTwoRows>
void row_run_rows(const DepthwiseInt8& p, const Requantizer& rq, const RowBlock& b, const RunRows& in, int64_t R,
                  int64_t n, int64_t at, int64_t out_step, int64_t next_row) {
  const bool one = p.kernel_h <= 4;
  switch (R) {
    case 1:
      return one ? row_run<KW, 1, true, kTwoRows>(p, rq, b, in, n, at, out_step, next_row)
                 : row_run<KW, 1, false, false>(p, rq, b, in, n, at, out_step, next_row);
    case 2:
      return one ? row_run<KW, 2, true, kTwoRows>(p, rq, b, in, n, at, out_step, next_row)
                 : row_run<KW, 2, false, false>(p, rq, b, in, n, at, out_step, next_row);
    case 4:
      return one ? row_run<KW, 4, true, kTwoRows>(p, rq, b, in, n, at, out_step, next_row)
                 : row_run<KW, 4, false, false>(p, rq, b, in, n, at, out_step, next_row);
    default:
      return one ? row_run<KW, 8, true, false>(p, rq, b, in, n, at, out_step, next_row)
                 : row_run<KW, 8, false, false>(p, rq, b, in, n, at, out_step, next_row);
  }
}

// Runs of one output row, or (two) of it and the next: 3 kernel rows at stride 1 down, taking
// 4 input rows a column.
template <int KW>
void row_run_any(const DepthwiseInt8& p, const Requantizer& rq, const RowBlock& b, const RunRows& in, int64_t R,
                 int64_t n, int64_t at, int64_t out_step, bool two) {
  if constexpr (KW <= 5)
    if (two && R <= 4) return row_run_rows<KW, true>(p, rq, b, in, R, n, at, out_step, p.out_w * p.pixel_stride);
  row_run_rows<KW, false>(p, rq, b, in, R, n, at, out_step, 0);
}

// `count` pixels of all channels on the row kernel, to `raw` [count, C]: pixel i's tap t at
// taps[t] + i * step (their windows inside the image's width when count > 1).
void pixels_rows(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* raw) {
  const Requantizer rq = requantizer(p.out_scale, p.out_zero);
  const int64_t C = p.channels, KW = p.kernel_w;
  for (int64_t c = 0; c < C; c += 64) {
    const RowBlock one = row_block(p, rq, c, step, C, true);
    for (int64_t i = 0; i < count; ++i) row_single(p, rq, one, taps, i * step, i * C + c, raw);
  }
  (void)KW;
}

// Output rows [oy0, oy1) of channels [c0, c1) (c0 a multiple of 64) on the row kernel,
// straight into a channels-last output: per 64-channel block its constants once, then each
// row as one run of column vectors, columns outside the image reading `padding`; a block of
// several pixels a vector takes the pixels whose windows cross the left or right edge one by
// one instead (its loads span neighbouring columns).
void rows_nhwc_vnni(const DepthwiseInt8& p, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1, const uint8_t* padding) {
  const Requantizer rq = requantizer(p.out_scale, p.out_zero);
  const int64_t C = p.channels, KW = p.kernel_w, KH = p.kernel_h, S = p.stride_w;
  // Columns [x_lo, x_hi) have every tap inside the image's width (dilation 1 along it).
  const int64_t x_lo = std::min(p.out_w, (p.pad_left + S - 1) / S);
  const int64_t x_hi = std::max(
      x_lo, std::min(p.out_w, p.in_w - (KW - 1) + p.pad_left > 0 ? (p.in_w - KW + p.pad_left) / S + 1 : int64_t{0}));
  const uint8_t* taps[64 * 7];
  const uint8_t* rows[65];
  const uint8_t* padding_rows[65];
  for (int64_t ky = 0; ky <= KH; ++ky) padding_rows[ky] = padding;
  for (int64_t c = c0; c < c1; c += 64) {
    const RowBlock b = row_block(p, rq, c, S * C, p.pixel_stride, false);
    const RowBlock one = row_block(p, rq, c, S * C, p.pixel_stride, true);
    const int64_t G = row_block_pixels(C, c);
    // The pixels of each row the run takes: all, or (G > 1) those inside.
    const int64_t first = G > 1 ? x_lo : 0, last = G > 1 ? x_hi : p.out_w, vectors = (last - first) / G;
    // Two output rows at once where their windows are 3 rows of stride 1 (4 input rows), at
    // most 5 columns wide (7 would keep twice 7 accumulators of 4 vectors in flight).
    const bool pairs = KH == 3 && KW <= 5 && p.stride_h == 1 && p.dilation_h == 1;
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const bool two = pairs && oy + 1 < oy1;
      const int64_t at = oy * p.out_w * p.pixel_stride + c;
      // Tap (ky, kx) of the pixel at (row, ox), or padding.
      const auto set_taps_of = [&](int64_t row, int64_t ox) {
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t y = row * p.stride_h - p.pad_top + ky * p.dilation_h;
          for (int64_t kx = 0; kx < KW; ++kx) {
            const int64_t x = ox * S - p.pad_left + kx;
            const bool inside = y >= 0 && y < p.in_h && x >= 0 && x < p.in_w;
            taps[ky * KW + kx] = inside ? p.image + (y * p.in_w + x) * C : padding;
          }
        }
      };
      for (int64_t ky = 0; ky < KH + (two ? 1 : 0); ++ky) {
        const int64_t y = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
        rows[ky] = (y >= 0 && y < p.in_h ? p.image + y * p.in_w * C : padding) + c;
      }
      if (vectors > 0) {
        const RunRows in{rows, padding_rows, C, first * S - p.pad_left, p.in_w};
        const int64_t run_at = at + first * p.pixel_stride, run_step = G * p.pixel_stride;
        if (KW == 3)
          row_run_any<3>(p, rq, b, in, S * G, vectors, run_at, run_step, two);
        else if (KW == 5)
          row_run_any<5>(p, rq, b, in, S * G, vectors, run_at, run_step, two);
        else
          row_run_any<7>(p, rq, b, in, S * G, vectors, run_at, run_step, two);
      }
      for (int64_t r = 0; r < (two ? 2 : 1); ++r) {  // the pixels one by one, of both rows
        const int64_t row = oy + r, row_at = row * p.out_w * p.pixel_stride + c;
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
          if (vectors > 0 && ox == first) ox = first + vectors * G;  // (after the run)
          if (ox >= p.out_w) break;
          set_taps_of(row, ox);
          row_single(p, rq, one, taps, 0, row_at + ox * p.pixel_stride, nullptr);
        }
      }
      if (two) ++oy;
    }
  }
}

// Channels [c0, c1).
template <bool kGroups, bool kQuads, bool kDirect>
void pixels(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc,
            int64_t out_at, int64_t c0, int64_t c1) {
  const Requantizer rq = requantizer(p.out_scale, p.out_zero);
  for (int64_t c = c0; c < c1; c += 16) {
    const __mmask16 m = c1 - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c1 - c)) - 1u);
    int64_t i = 0;
    if (m == 0xFFFF) {
      for (; i + 8 <= count; i += 8) block<8, kGroups, kQuads, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      for (; i + 4 <= count; i += 4) block<4, kGroups, kQuads, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      for (; i < count; ++i) block<1, kGroups, kQuads, kDirect, true>(p, taps, i, step, c, m, acc, out_at, rq);
      continue;
    }
    for (; i + 8 <= count; i += 8) block<8, kGroups, kQuads, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
    for (; i + 4 <= count; i += 4) block<4, kGroups, kQuads, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
    for (; i < count; ++i) block<1, kGroups, kQuads, kDirect, false>(p, taps, i, step, c, m, acc, out_at, rq);
  }
}

void pixels_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int32_t* acc) {
  if (row_kernel_applies(p))
    pixels_rows(p, taps, count, step, acc);
  else if (p.group_width == 1)
    pixels<false, false, false>(p, taps, count, step, acc, 0, 0, p.channels);
  else if (p.quad_weights)
    pixels<true, true, false>(p, taps, count, step, acc, 0, 0, p.channels);
  else
    pixels<true, false, false>(p, taps, count, step, acc, 0, 0, p.channels);
}

void pixels_nhwc_vnni(const DepthwiseInt8& p, const uint8_t* const* taps, int64_t count, int64_t step, int64_t out_at,
                      int64_t c0, int64_t c1) {
  if (p.group_width == 1)
    pixels<false, false, true>(p, taps, count, step, nullptr, out_at, c0, c1);
  else if (p.quad_weights)
    pixels<true, true, true>(p, taps, count, step, nullptr, out_at, c0, c1);
  else
    pixels<true, false, true>(p, taps, count, step, nullptr, out_at, c0, c1);
}

void dequantize_vnni(const DepthwiseInt8& p, const int32_t* sums, float* y) {
  const int64_t C = p.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1u);
    __m512 v = mul_rn(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, sums + c)), _mm512_maskz_loadu_ps(m, p.scale + c));
    if (p.bias) v = add_rn(v, _mm512_maskz_loadu_ps(m, p.bias + c));
    if (p.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(y + c, m, v);
  }
}

const DepthwiseKernels kVnni{"avx512_vnni", &pixels_vnni, &pixels_nhwc_vnni, &dequantize_vnni, &rows_nhwc_vnni};

}  // namespace

const DepthwiseKernels* vnni_depthwise_kernels() { return &kVnni; }
#else
const DepthwiseKernels* vnni_depthwise_kernels() { return nullptr; }
#endif
}  // namespace depthwise_detail
}  // namespace aiov
