// The direct bf16 convolution's kernel on AVX512_BF16 (VDPBF16PS): up to 12 output pixels x
// 32 output channels in zmm accumulators, each pixel's input read where it lies, tap after
// tap, with no im2col copy and no K padding between taps. Compiled with the bf16 flags; only
// called after the dispatcher chose the avx512_bf16 set. Everything stays in an anonymous
// namespace (see gemm_avx512.cpp).
#include "kernels/conv_bf16_tile.hpp"

#include <cstring>
#include <type_traits>

#include "kernels/exp_coefficients.hpp"
#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

#include "kernels/exp_avx512.inc"

// The lowest n of 16 lanes, n clamped to [0, 16].
[[gnu::always_inline]] inline __mmask16 head_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

// x after the tile's activation (Bf16TileAct), each as its epilogue functor computes it:
// sigmoid from e = exp(-|x|) (exp_nonpositive), 1 / (1 + e) or e / (1 + e) by the sign.
[[gnu::always_inline]] inline __m512 tile_act(__m512 x, Bf16TileAct act) {
  if (act == Bf16TileAct::hswish) {
    __m512 r = _mm512_add_ps(x, _mm512_set1_ps(3.0f));
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    return _mm512_mul_ps(_mm512_mul_ps(x, r), _mm512_set1_ps(1.0f / 6.0f));
  }
  if (act == Bf16TileAct::none) return x;
  const __m512 negative_abs =
      _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  const __m512 e = exp_nonpositive(negative_abs, _mm512_set1_ps(-87.0f));
  const __m512 one_plus = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 sigmoid = _mm512_div_ps(_mm512_mask_mov_ps(_mm512_set1_ps(1.0f), negative, e), one_plus);
  return act == Bf16TileAct::sigmoid ? sigmoid : _mm512_mul_ps(x, sigmoid);
}

// The tile's results merged as the GEMM tiles merge them: x (+ beta * C) (+ bias)
// (+ residual), clamped with NaN kept, then (Act) the tile's activation, stored under the
// column mask as f32 to out.c or, with c16, rounded to bf16 (nearest even) there (a bf16
// output is written, never accumulated into). The tile's fields, masks and bias are read
// once: a store through a pointer may alias anything, and re-reading them per vector cost as
// much as a 16-channel tile's products.
template <int R, int NV, bool Act>
[[gnu::always_inline]] inline void merge_tile(__m512 (&acc)[R][NV], const Bf16ConvTile& t) {
  const Tile o = t.out;
  __mmask16 mask[NV];
  __m512 bias[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    mask[v] = head_mask(o.cols - 16 * v);
    bias[v] = o.bias ? _mm512_maskz_loadu_ps(mask[v], o.bias + 16 * v) : _mm512_setzero_ps();
  }
  const __m512 lo = _mm512_set1_ps(o.lo), hi = _mm512_set1_ps(o.hi), beta = _mm512_set1_ps(o.beta);
  uint16_t* const c16 = t.c16;
  const int64_t ldc16 = t.ldc16;
  const uint16_t* const residual16 = t.residual16;
  const int64_t ld_residual16 = t.ld_residual16;
  const Bf16TileAct act = t.act;
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    __m512 x = acc[r][v];
    float* c = o.c + r * o.ldc + 16 * v;
    if (!c16 && o.load_c) x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], c), x);
    x = _mm512_add_ps(x, bias[v]);
    if (o.residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], o.residual + r * o.ld_residual + 16 * v));
    if (residual16) {  // bf16 widened by a shift
      const __m256i bits = _mm256_maskz_loadu_epi16(mask[v], residual16 + r * ld_residual16 + 16 * v);
      x = _mm512_add_ps(x, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)));
    }
    if (o.clamp) {  // max/min return their second operand for a NaN: x stays NaN
      x = _mm512_max_ps(lo, x);
      x = _mm512_min_ps(hi, x);
    }
    if constexpr (Act) x = tile_act(x, act);
    if (c16)
      _mm256_mask_storeu_epi16(c16 + r * ldc16 + 16 * v, mask[v], (__m256i)_mm512_cvtneps_pbh(x));
    else
      _mm512_mask_storeu_ps(c, mask[v], x);
  }
}

// Tap `tap`'s input rows of the tile's R pixels into a; false when every one of them reads the
// padding (t.zeros), whose products are all zero.
template <int R>
[[gnu::always_inline]] inline bool tap_rows(const Bf16ConvTile& t, int tap, const uint16_t* (&a)[R]) {
  AIOV_UNROLL for (int r = 0; r < R; ++r) a[r] = t.rows[tap * t.rows_ld + r];
  if (!t.zeros) return true;
  bool padding = true;
  AIOV_UNROLL for (int r = 0; r < R; ++r) padding = padding && a[r] == t.zeros;
  return !padding;
}

// Channel pair kk of a row as one 32-bit word: both values, or (Half) the first alone, the
// second taken as zero (an odd channel count's last pair, whose second value is not there).
template <bool Half>
[[gnu::always_inline]] inline int32_t pair_at(const uint16_t* row, int64_t kk) {
  int32_t pair;
  if constexpr (Half)
    pair = row[2 * kk];
  else
    std::memcpy(&pair, row + 2 * kk, sizeof pair);
  return pair;
}

// R pixels x NV zmm of output channels: per channel pair, NV panel loads and R broadcasts of
// a pixel's pair feed R * NV dot products (24 accumulators at 12 x 2 and 6 x 4).
template <int R, int NV, bool Act>
void conv_rows(const Bf16ConvTile& t) {
  __m512 acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int64_t pairs = t.pairs, stride = t.b_panel_stride;
  const uint16_t* b = t.b;
  for (int tap = 0; tap < t.taps; ++tap, b += pairs * 32) {
    const uint16_t* a[R];
    if (!tap_rows(t, tap, a)) continue;  // every product would be zero
    // Pair kk of every row: both values, or (half) the first alone, the second taken as zero.
    auto step = [&](int64_t kk, auto half) {
      __m512bh bv[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * stride + kk * 32);
      AIOV_UNROLL for (int r = 0; r < R; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair_at<half()>(a[r], kk));
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
      }
    };
    const int64_t whole = pairs - (t.odd ? 1 : 0);
    for (int64_t kk = 0; kk < whole; ++kk) step(kk, std::false_type{});
    if (t.odd) step(whole, std::true_type{});
  }
  merge_tile<R, NV, Act>(acc, t);
}

// R pixels x up to 8 output channels in ymm accumulators, from half of each pair row of the
// panel: Zen 4 runs two ymm VDPBF16PS a cycle where a zmm one takes both halves, and a zmm
// tile over SqueezeNet's 4- and 8-channel squeeze convolutions multiplied mostly padding.
// Merged as merge_tile merges.
template <int R>
void conv_rows_narrow(const Bf16ConvTile& t) {
  __m256 acc[R];
  AIOV_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const int64_t pairs = t.pairs;
  const uint16_t* b = t.b;
  for (int tap = 0; tap < t.taps; ++tap, b += pairs * 32) {
    const uint16_t* a[R];
    if (!tap_rows(t, tap, a)) continue;  // every product would be zero
    auto step = [&](int64_t kk, auto half) {
      const __m256bh bv = (__m256bh)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kk * 32));
      AIOV_UNROLL for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_dpbf16_ps(acc[r], (__m256bh)_mm256_set1_epi32(pair_at<half()>(a[r], kk)), bv);
      }
    };
    const int64_t whole = pairs - (t.odd ? 1 : 0);
    for (int64_t kk = 0; kk < whole; ++kk) step(kk, std::false_type{});
    if (t.odd) step(whole, std::true_type{});
  }
  const Tile o = t.out;
  const __mmask8 mask = (__mmask8)((1u << (o.cols < 8 ? o.cols : 8)) - 1u);
  const __m256 bias = o.bias ? _mm256_maskz_loadu_ps(mask, o.bias) : _mm256_setzero_ps();
  const __m256 lo = _mm256_set1_ps(o.lo), hi = _mm256_set1_ps(o.hi), beta = _mm256_set1_ps(o.beta);
  uint16_t* const c16 = t.c16;
  const int64_t ldc16 = t.ldc16;
  const uint16_t* const residual16 = t.residual16;
  const int64_t ld_residual16 = t.ld_residual16;
  AIOV_UNROLL for (int r = 0; r < R; ++r) {
    __m256 x = acc[r];
    float* c = o.c + r * o.ldc;
    if (!c16 && o.load_c) x = _mm256_fmadd_ps(beta, _mm256_maskz_loadu_ps(mask, c), x);
    x = _mm256_add_ps(x, bias);
    if (o.residual) x = _mm256_add_ps(x, _mm256_maskz_loadu_ps(mask, o.residual + r * o.ld_residual));
    if (residual16) {
      const __m128i bits = _mm_maskz_loadu_epi16(mask, residual16 + r * ld_residual16);
      x = _mm256_add_ps(x, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16)));
    }
    if (o.clamp) {  // max/min return their second operand for a NaN: x stays NaN
      x = _mm256_max_ps(lo, x);
      x = _mm256_min_ps(hi, x);
    }
    if (t.act != Bf16TileAct::none) x = _mm512_castps512_ps256(tile_act(_mm512_castps256_ps512(x), t.act));
    if (c16)
      _mm_mask_storeu_epi16(c16 + r * ldc16, mask, (__m128i)_mm256_cvtneps_pbh(x));
    else
      _mm256_mask_storeu_ps(c, mask, x);
  }
}

// Calls run(std::integral_constant<int, R>()) for R = rows, 1 <= R <= MR (more rows are an
// error of the driver): each row count its own compiled kernel.
template <int MR, int R = 1, typename Run>
void with_rows(int rows, const Run& run) {
  if constexpr (R <= MR) {
    if (rows == R) return run(std::integral_constant<int, R>());
    with_rows<MR, R + 1>(rows, run);
  }
}

template <int MR>
void conv_tile_narrow(const Bf16ConvTile& t) {
  with_rows<MR>(t.out.rows, [&](auto rows) { conv_rows_narrow<decltype(rows)::value>(t); });
}

// NV vectors of columns.
// (Act: the tile's activation, in kernels of its own: a merge with it in every kernel made
// some run slower, GoogLeNet's 4x4x18 3x3 13 -> 15 us.)
template <int NV, int MR, bool Act>
void conv_tile_cols(const Bf16ConvTile& t) {
  with_rows<MR>(t.out.rows, [&](auto rows) { conv_rows<decltype(rows)::value, NV, Act>(t); });
}

template <bool Act>
void conv_tile_wide(const Bf16ConvTile& t) {
  switch ((t.out.cols + 15) / 16) {
    case 1:
      return conv_tile_cols<1, kBf16ConvRows[0], Act>(t);
    case 2:
      return conv_tile_cols<2, kBf16ConvRows[1], Act>(t);
    case 3:
      return conv_tile_cols<3, kBf16ConvRows[2], Act>(t);
    default:
      return conv_tile_cols<4, kBf16ConvRows[3], Act>(t);
  }
}

void conv_tile(const Bf16ConvTile& t) {
  if (t.out.cols <= 8) return conv_tile_narrow<kBf16ConvRows[0]>(t);
  return t.act == Bf16TileAct::none ? conv_tile_wide<false>(t) : conv_tile_wide<true>(t);
}

// ---- depthwise ---------------------------------------------------------------------------

// Local, not std::min / std::max: an out-of-line copy built with these flags must never be
// the one the linker hands to portable code.
[[gnu::always_inline]] inline int64_t smaller(int64_t a, int64_t b) { return a < b ? a : b; }
[[gnu::always_inline]] inline int64_t larger(int64_t a, int64_t b) { return a < b ? b : a; }

// 16 channels of a pixel as f32 (lanes past the mask read as zero): bf16 widened by a shift.
template <bool IN16, bool FULL = false>
[[gnu::always_inline]] inline __m512 load_pixel(const Bf16DepthwiseJob& j, int64_t at, __mmask16 m) {
  if constexpr (IN16) {
    const __m256i bits = FULL ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.x16 + at))
                              : _mm256_maskz_loadu_epi16(m, j.x16 + at);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  } else {
    return FULL ? _mm512_loadu_ps(j.x + at) : _mm512_maskz_loadu_ps(m, j.x + at);
  }
}

// x stored at `at` of the output, as bf16 or f32, under the mask unless FULL.
template <bool OUT16, bool FULL>
[[gnu::always_inline]] inline void store_pixel(const Bf16DepthwiseJob& j, int64_t at, __mmask16 m, __m512 x) {
  if constexpr (OUT16) {
    const __m256i bits = (__m256i)_mm512_cvtneps_pbh(x);
    if (FULL)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(j.y16 + at), bits);
    else
      _mm256_mask_storeu_epi16(j.y16 + at, m, bits);
  } else {
    if (FULL)
      _mm512_storeu_ps(j.y + at, x);
    else
      _mm512_mask_storeu_ps(j.y + at, m, x);
  }
}

// One output pixel's NV x 16 channels from channel c0 on: the window's in-bounds taps
// [ky0, ky1) x [kx0, kx1), then the merge and the store.
template <int NV, bool IN16, bool OUT16>
[[gnu::always_inline]] inline void depthwise_pixel(const Bf16DepthwiseJob& j, int64_t in, int64_t pixel, int64_t c0,
                                                   int64_t ky0, int64_t ky1, int64_t kx0, int64_t kx1,
                                                   const __mmask16 (&mask)[4], __m512 lo, __m512 hi) {
  __m512 acc[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[v] =
      j.bias ? _mm512_maskz_loadu_ps(mask[v], j.bias + c0 + 16 * v) : _mm512_setzero_ps();
  for (int64_t ky = ky0; ky < ky1; ++ky)
    for (int64_t kx = kx0; kx < kx1; ++kx) {
      const int64_t src = in + ((ky * j.dh) * j.W + kx * j.dw) * j.C + c0;
      const float* w = j.w + (ky * j.kw + kx) * j.C + c0;
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[v] = _mm512_fmadd_ps(
          load_pixel<IN16>(j, src + 16 * v, mask[v]), _mm512_maskz_loadu_ps(mask[v], w + 16 * v), acc[v]);
    }
  const int64_t out = pixel * j.C;
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    __m512 x = acc[v];
    if (j.residual)
      x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], j.residual + pixel * j.ld_residual + c0 + 16 * v));
    if (j.clamp) {  // max/min return their second operand for a NaN: x stays NaN
      x = _mm512_max_ps(lo, x);
      x = _mm512_min_ps(hi, x);
    }
    if constexpr (OUT16)
      _mm256_mask_storeu_epi16(j.y16 + out + c0 + 16 * v, mask[v], (__m256i)_mm512_cvtneps_pbh(x));
    else
      _mm512_mask_storeu_ps(j.y + out + c0 + 16 * v, mask[v], x);
  }
}

// One pixel's NV x 16 channels from c0 on over its in-bounds taps, the window's bounds found
// per pixel (border windows, and any window of a kernel other than 3x3).
template <int NV, bool IN16, bool OUT16>
[[gnu::always_inline]] inline void depthwise_border(const Bf16DepthwiseJob& j, int64_t row, int64_t ox, int64_t c0,
                                                    const __mmask16 (&mask)[4], __m512 lo, __m512 hi) {
  const int64_t n = row / j.OH, iy0 = row % j.OH * j.sh - j.ph, ix0 = ox * j.sw - j.pw;
  // Kernel rows and columns inside the image: iy0 + ky * dh in [0, H), ix0 + kx * dw in [0, W).
  const int64_t ky0 = iy0 >= 0 ? 0 : smaller(j.kh, (-iy0 + j.dh - 1) / j.dh);
  const int64_t ky1 = j.H > iy0 ? larger(ky0, smaller(j.kh, (j.H - 1 - iy0) / j.dh + 1)) : ky0;
  const int64_t kx0 = ix0 >= 0 ? 0 : smaller(j.kw, (-ix0 + j.dw - 1) / j.dw);
  const int64_t kx1 = j.W > ix0 ? larger(kx0, smaller(j.kw, (j.W - 1 - ix0) / j.dw + 1)) : kx0;
  // The window's first point (an offset; only in-bounds taps are formed from it).
  const int64_t in = ((n * j.H + iy0) * j.W + ix0) * j.C;
  depthwise_pixel<NV, IN16, OUT16>(j, in, row * j.OW + ox, c0, ky0, ky1, kx0, kx1, mask, lo, hi);
}

template <bool IN16, bool OUT16>
void depthwise_border_any(const Bf16DepthwiseJob& j, int64_t row, int64_t ox, int64_t c0, int nv,
                          const __mmask16 (&mask)[4], __m512 lo, __m512 hi) {
  switch (nv) {
    case 1:
      return depthwise_border<1, IN16, OUT16>(j, row, ox, c0, mask, lo, hi);
    case 2:
      return depthwise_border<2, IN16, OUT16>(j, row, ox, c0, mask, lo, hi);
    case 3:
      return depthwise_border<3, IN16, OUT16>(j, row, ox, c0, mask, lo, hi);
    default:
      return depthwise_border<4, IN16, OUT16>(j, row, ox, c0, mask, lo, hi);
  }
}

// Output pixels of a 3x3 row run taken together: each input column is loaded (and widened)
// once for every pixel whose window holds it.
constexpr int kRun = 4;

// kRun neighbouring pixels (inside windows, undilated, stride SW) from the window at src on,
// 32 channels from c0 (w, bias and mask as depthwise_rows holds them).
template <int SW, bool IN16, bool OUT16, bool FULL>
[[gnu::always_inline]] inline void depthwise_run(const Bf16DepthwiseJob& j, int64_t src, int64_t pixel, int64_t c0,
                                                 const __m512 (&w)[9][2], const __m512 (&bias)[2],
                                                 const __mmask16 (&mask)[4], __m512 lo, __m512 hi) {
  constexpr int kColumns = (kRun - 1) * SW + 3;
  __m512 acc[kRun][2];
  AIOV_UNROLL for (int p = 0; p < kRun; ++p) AIOV_UNROLL for (int v = 0; v < 2; ++v) acc[p][v] = bias[v];
  AIOV_UNROLL for (int ky = 0; ky < 3; ++ky) {
    const int64_t line = src + ky * j.dh * j.W * j.C;
    AIOV_UNROLL for (int col = 0; col < kColumns; ++col) AIOV_UNROLL for (int v = 0; v < 2; ++v) {
      const __m512 in = load_pixel<IN16, FULL>(j, line + col * j.C + 16 * v, mask[v]);
      AIOV_UNROLL for (int p = 0; p < kRun; ++p) {
        const int kx = col - p * SW;
        if (kx >= 0 && kx < 3) acc[p][v] = _mm512_fmadd_ps(in, w[ky * 3 + kx][v], acc[p][v]);
      }
    }
  }
  AIOV_UNROLL for (int p = 0; p < kRun; ++p) AIOV_UNROLL for (int v = 0; v < 2; ++v) {
    __m512 x = acc[p][v];
    const int64_t at = (pixel + p) * j.C + c0 + 16 * v;
    if (j.residual)
      x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], j.residual + (pixel + p) * j.ld_residual + c0 + 16 * v));
    if (j.clamp) {
      x = _mm512_max_ps(lo, x);
      x = _mm512_min_ps(hi, x);
    }
    store_pixel<OUT16, FULL>(j, at, mask[v], x);
  }
}

// ---- depthwise over bf16 input, channels as even and odd pairs ----------------------------
//
// Widening 16 bf16 channels (a zero-extension, a shuffle-port op on Zen 4, then a shift) took
// two ops per 16 products' input where the f32 kernel takes a plain load, and left the bf16
// kernel slower than f32 at stride 1. One zmm load holds 32 channels as 16 pairs: a shift
// turns the even channels into f32 lanes and a mask the odd ones, one op per 16 channels.
// Depthwise channels are independent, so the run keeps its accumulators, weights and bias in
// that even / odd order and interleaves only what it stores.

// Lane permutations: the even and odd lanes of a pair of vectors, and the two halves back.
[[gnu::always_inline]] inline __m512i even_lanes() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
[[gnu::always_inline]] inline __m512i odd_lanes() {
  return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
[[gnu::always_inline]] inline __m512i interleave_low() {
  return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
[[gnu::always_inline]] inline __m512i interleave_high() {
  return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

// A block of up to 32 channels from c0: its masks as 32 bf16 words and as two f32 halves.
struct PairBlock {
  int64_t c0;
  __mmask32 words;
  __mmask16 low, high;
};

// f32 values at p (32 channels under the block's masks) as even and odd lanes.
[[gnu::always_inline]] inline void split_pairs(const float* p, const PairBlock& b, __m512& even, __m512& odd) {
  const __m512 a = _mm512_maskz_loadu_ps(b.low, p), c = _mm512_maskz_loadu_ps(b.high, p + 16);
  even = _mm512_permutex2var_ps(a, even_lanes(), c);
  odd = _mm512_permutex2var_ps(a, odd_lanes(), c);
}

// P neighbouring output pixels (stride SW, undilated 3x3 windows) of one output row, the
// block's channels: NV 2, up to 32 as even and odd lanes; NV 1, a last block of up to 16 in
// channel order, widened as they load (in pairs half of each vector would be empty, and its
// products cost as much as a whole block's). `src` is the input offset of the first pixel's
// window at kernel row 0 (column 0 may lie in the padding); kernel rows [ky0, ky1) and input
// columns [i_lo, i_hi) of the run's (P - 1) * SW + 3 are inside the image (MASKED; otherwise
// all are). FULL: the block has all its channels (32 or 16).
template <int P, int SW, int NV, bool OUT16, bool FULL, bool MASKED>
[[gnu::always_inline]] inline void pair_run(const Bf16DepthwiseJob& j, int64_t src, int64_t pixel, int64_t ky0,
                                            int64_t ky1, int i_lo, int i_hi, const PairBlock& b,
                                            const __m512 (&w)[9][2], const __m512 (&bias)[2], __m512 lo, __m512 hi) {
  constexpr int kColumns = (P - 1) * SW + 3;
  const __m512i odd_bits = _mm512_set1_epi32((int)0xFFFF0000u);
  __m512 acc[P][NV];
  AIOV_UNROLL for (int p = 0; p < P; ++p) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[p][v] = bias[v];
  const int64_t row_step = j.W * j.C;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const int64_t line = src + ky * row_step;
    __m512 wk[3][NV];
    AIOV_UNROLL for (int kx = 0; kx < 3; ++kx) AIOV_UNROLL for (int v = 0; v < NV; ++v) wk[kx][v] = w[ky * 3 + kx][v];
    AIOV_UNROLL for (int col = 0; col < kColumns; ++col) {
      if (MASKED && (col < i_lo || col >= i_hi)) continue;
      const uint16_t* at = j.x16 + line + col * j.C;
      __m512 x[NV];
      if constexpr (NV == 2) {
        const __m512i bits = FULL ? _mm512_loadu_si512(at) : _mm512_maskz_loadu_epi16(b.words, at);
        x[0] = _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16));
        x[NV - 1] = _mm512_castsi512_ps(_mm512_and_si512(bits, odd_bits));
      } else {
        const __m256i bits =
            FULL ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)) : _mm256_maskz_loadu_epi16(b.low, at);
        x[0] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
      }
      AIOV_UNROLL for (int p = 0; p < P; ++p) {
        const int kx = col - p * SW;
        if (kx >= 0 && kx < 3)
          AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_fmadd_ps(x[v], wk[kx][v], acc[p][v]);
      }
    }
  }
  AIOV_UNROLL for (int p = 0; p < P; ++p) {
    __m512 y[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) y[v] = acc[p][v];
    const int64_t at = (pixel + p) * j.C + b.c0;
    if (j.residual) {
      const float* r = j.residual + (pixel + p) * j.ld_residual + b.c0;
      __m512 add[NV];
      if constexpr (NV == 2)
        split_pairs(r, b, add[0], add[NV - 1]);
      else
        add[0] = _mm512_maskz_loadu_ps(b.low, r);
      AIOV_UNROLL for (int v = 0; v < NV; ++v) y[v] = _mm512_add_ps(y[v], add[v]);
    }
    if (j.clamp)  // max/min return their second operand for a NaN: y stays NaN
      AIOV_UNROLL for (int v = 0; v < NV; ++v) y[v] = _mm512_min_ps(hi, _mm512_max_ps(lo, y[v]));
    if constexpr (NV == 1) {
      if constexpr (OUT16) {
        const __m256i bits = (__m256i)_mm512_cvtneps_pbh(y[0]);
        if (FULL)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(j.y16 + at), bits);
        else
          _mm256_mask_storeu_epi16(j.y16 + at, b.low, bits);
      } else {
        _mm512_mask_storeu_ps(j.y + at, b.low, y[0]);
      }
    } else if constexpr (OUT16) {
      // Rounded as two halves (even channels low, odd high), then the words interleaved back.
      const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(y[NV - 1], y[0]);
      const __m512i words =
          _mm512_permutexvar_epi16(_mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                    22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0),
                                   halves);
      if (FULL)
        _mm512_storeu_si512(j.y16 + at, words);
      else
        _mm512_mask_storeu_epi16(j.y16 + at, b.words, words);
    } else {
      _mm512_mask_storeu_ps(j.y + at, b.low, _mm512_permutex2var_ps(y[0], interleave_low(), y[NV - 1]));
      _mm512_mask_storeu_ps(j.y + at + 16, b.high, _mm512_permutex2var_ps(y[0], interleave_high(), y[NV - 1]));
    }
  }
}

template <int P, int SW, bool OUT16>
[[gnu::always_inline]] inline void pair_run_any(const Bf16DepthwiseJob& j, int64_t src, int64_t pixel, int64_t ky0,
                                                int64_t ky1, int i_lo, int i_hi, const PairBlock& b,
                                                const __m512 (&w)[9][2], const __m512 (&bias)[2], __m512 lo,
                                                __m512 hi) {
  const bool inside = i_lo == 0 && i_hi == (P - 1) * SW + 3;
  const int64_t n_ch = smaller(32, j.C - b.c0);
#define AIOV_PAIR_RUN(NV, FULL)                                                                              \
  (inside ? pair_run<P, SW, NV, OUT16, FULL, false>(j, src, pixel, ky0, ky1, i_lo, i_hi, b, w, bias, lo, hi) \
          : pair_run<P, SW, NV, OUT16, FULL, true>(j, src, pixel, ky0, ky1, i_lo, i_hi, b, w, bias, lo, hi))
  if (n_ch == 32)
    AIOV_PAIR_RUN(2, true);
  else if (n_ch > 16)
    AIOV_PAIR_RUN(2, false);
  else if (n_ch == 16)
    AIOV_PAIR_RUN(1, true);
  else
    AIOV_PAIR_RUN(1, false);
#undef AIOV_PAIR_RUN
}

// Output rows [r0, r1) of an undilated 3x3 window at stride SW over bf16 input: runs of 8
// pixels (then 4, 2, 1), each through up to kPairGroupBlocks blocks of 32 channels in turn, so
// the input is read pixel after pixel in address order (one block at a time along a whole row,
// a line of each pixel, ran MobileNetV2's depthwise nodes 5-20% slower); border pixels ride in
// the same runs with the columns and kernel rows outside the image skipped. Rows go in bands
// of at least 64 pixels with the groups of blocks outside the band's rows: a block's weights
// are split into even and odd lanes once per band (per row, they cost an 8-pixel row as much
// as its products), and a band's input rows stay in cache while its groups pass.
constexpr int64_t kPairGroupBlocks = 8;

template <int SW, bool OUT16>
void depthwise_pair_rows(const Bf16DepthwiseJob& job, int64_t r0, int64_t r1) {
  const Bf16DepthwiseJob j = job;  // a copy the stores cannot alias: its fields stay in registers
  const __m512 lo = _mm512_set1_ps(j.lo), hi = _mm512_set1_ps(j.hi);
  const int64_t band = larger(1, (64 + j.OW - 1) / j.OW);
  for (int64_t b0 = r0; b0 < r1; b0 += band)
    for (int64_t g0 = 0; g0 < j.C; g0 += 32 * kPairGroupBlocks) {
      const int64_t blocks = smaller(kPairGroupBlocks, (j.C - g0 + 31) / 32);
      PairBlock b[kPairGroupBlocks];
      __m512 w[kPairGroupBlocks][9][2], bias[kPairGroupBlocks][2];
      for (int64_t k = 0; k < blocks; ++k) {
        const int64_t c0 = g0 + 32 * k, n_ch = smaller(32, j.C - c0);
        b[k] = PairBlock{c0, n_ch >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << n_ch) - 1u), head_mask((int)n_ch),
                         head_mask((int)(n_ch - 16))};
        if (n_ch > 16) {
          AIOV_UNROLL for (int t = 0; t < 9; ++t) split_pairs(j.w + t * j.C + c0, b[k], w[k][t][0], w[k][t][1]);
        } else {  // channel order (pair_run's NV 1)
          AIOV_UNROLL for (int t = 0; t < 9; ++t) w[k][t][0] = w[k][t][1] =
              _mm512_maskz_loadu_ps(b[k].low, j.w + t * j.C + c0);
        }
        bias[k][0] = bias[k][1] = _mm512_setzero_ps();
        if (j.bias && n_ch > 16)
          split_pairs(j.bias + c0, b[k], bias[k][0], bias[k][1]);
        else if (j.bias)
          bias[k][0] = _mm512_maskz_loadu_ps(b[k].low, j.bias + c0);
      }
      for (int64_t row = b0; row < smaller(r1, b0 + band); ++row) {
        const int64_t n = row / j.OH, iy0 = row % j.OH * j.sh - j.ph;
        const int64_t ky0 = iy0 >= 0 ? 0 : smaller(3, -iy0), ky1 = larger(ky0, smaller(3, j.H - iy0));
        for (int64_t ox = 0; ox < j.OW;) {
          const int64_t ix0 = ox * SW - j.pw;
          const int64_t pixel = row * j.OW + ox;
          const int64_t left = j.OW - ox;
          const int p = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
          const int columns = (p - 1) * SW + 3;
          const int i_lo = (int)smaller(columns, larger(0, -ix0));
          const int i_hi = (int)larger(i_lo, smaller(columns, j.W - ix0));
          for (int64_t k = 0; k < blocks; ++k) {
            const int64_t src = ((n * j.H + iy0) * j.W + ix0) * j.C + b[k].c0;
            if (p == 8)
              pair_run_any<8, SW, OUT16>(j, src, pixel, ky0, ky1, i_lo, i_hi, b[k], w[k], bias[k], lo, hi);
            else if (p == 4)
              pair_run_any<4, SW, OUT16>(j, src, pixel, ky0, ky1, i_lo, i_hi, b[k], w[k], bias[k], lo, hi);
            else if (p == 2)
              pair_run_any<2, SW, OUT16>(j, src, pixel, ky0, ky1, i_lo, i_hi, b[k], w[k], bias[k], lo, hi);
            else
              pair_run_any<1, SW, OUT16>(j, src, pixel, ky0, ky1, i_lo, i_hi, b[k], w[k], bias[k], lo, hi);
          }
          ox += p;
        }
      }
    }
}

// Output rows [r0, r1). Over bf16 data an undilated 3x3 at stride 1 or 2 takes the
// channel-pair runs (depthwise_pair_rows). Other 3x3 windows (f32 data, dilated ones): per
// block of 32 channels, the 9 taps' weights held in registers while the row's pixels pass,
// inside windows with no bound tests and, undilated at stride 1 or 2, kRun at a time
// (reloading the weights per pixel, and each input once per product, ran at half the f32
// kernel's speed). Other windows: per pixel, the channels in blocks of 64, each tap's inputs
// and weights loaded once.
template <bool IN16, bool OUT16>
void depthwise_rows(const Bf16DepthwiseJob& job, int64_t r0, int64_t r1) {
  // (Over f32 data the pairs cost two permutes per loaded column and measured no faster than
  // the runs below.)
  if constexpr (IN16) {
    if (job.kh == 3 && job.kw == 3 && job.dh == 1 && job.dw == 1 && (job.sw == 1 || job.sw == 2))
      return job.sw == 1 ? depthwise_pair_rows<1, OUT16>(job, r0, r1) : depthwise_pair_rows<2, OUT16>(job, r0, r1);
  }
  const Bf16DepthwiseJob j = job;  // a copy the stores cannot alias: its fields stay in registers
  const __m512 lo = _mm512_set1_ps(j.lo), hi = _mm512_set1_ps(j.hi);
  const int64_t taps = j.kh * j.kw;
  if (j.kh != 3 || j.kw != 3) {
    for (int64_t row = r0; row < r1; ++row)
      for (int64_t ox = 0; ox < j.OW; ++ox)
        for (int64_t c0 = 0; c0 < j.C; c0 += 64) {
          __mmask16 mask[4];
          AIOV_UNROLL for (int v = 0; v < 4; ++v) mask[v] = head_mask((int)smaller(16, j.C - c0 - 16 * v));
          depthwise_border_any<IN16, OUT16>(j, row, ox, c0, (int)smaller(4, (j.C - c0 + 15) / 16), mask, lo, hi);
        }
    return;
  }
  // Output columns [x_lo, x_hi) whose windows lie inside the image across.
  const int64_t x_span = 2 * j.dw;
  const int64_t x_lo = smaller(j.OW, (j.pw + j.sw - 1) / j.sw);
  const int64_t x_hi = j.W + j.pw > x_span ? larger(x_lo, smaller(j.OW, (j.W + j.pw - 1 - x_span) / j.sw + 1)) : x_lo;
  int64_t offsets[9];
  for (int64_t t = 0; t < taps; ++t) offsets[t] = ((t / 3) * j.dh * j.W + (t % 3) * j.dw) * j.C;
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t n = row / j.OH, iy0 = row % j.OH * j.sh - j.ph;
    const bool rows_inside = iy0 >= 0 && iy0 + 2 * j.dh < j.H;
    const int64_t in_lo = rows_inside ? x_lo : j.OW, in_hi = rows_inside ? x_hi : j.OW;
    const int64_t line = ((n * j.H + iy0) * j.W - j.pw) * j.C;  // window of column ox: line + ox * sw * C
    for (int64_t c0 = 0; c0 < j.C; c0 += 32) {
      __mmask16 mask[4];
      AIOV_UNROLL for (int v = 0; v < 4; ++v) mask[v] = v < 2 ? head_mask((int)smaller(16, j.C - c0 - 16 * v)) : 0;
      const int nv = j.C - c0 > 16 ? 2 : 1;
      __m512 w[9][2], bias[2];
      AIOV_UNROLL for (int t = 0; t < 9; ++t) AIOV_UNROLL for (int v = 0; v < 2; ++v) w[t][v] =
          _mm512_maskz_loadu_ps(mask[v], j.w + t * j.C + c0 + 16 * v);
      AIOV_UNROLL for (int v = 0; v < 2; ++v) bias[v] =
          j.bias ? _mm512_maskz_loadu_ps(mask[v], j.bias + c0 + 16 * v) : _mm512_setzero_ps();
      for (int64_t ox = 0; ox < j.OW; ++ox) {
        if (ox < in_lo || ox >= in_hi) {
          depthwise_border_any<IN16, OUT16>(j, row, ox, c0, nv, mask, lo, hi);
          continue;
        }
        if (j.dw == 1 && (j.sw == 1 || j.sw == 2) && ox + kRun <= in_hi) {
          const int64_t src = line + ox * j.sw * j.C + c0;
          // Whole blocks of 32 channels with plain loads and stores (masked ones cost a third of
          // a 112x112x32 layer's time).
          const bool full = j.C - c0 >= 32;
          if (j.sw == 1 && full)
            depthwise_run<1, IN16, OUT16, true>(j, src, row * j.OW + ox, c0, w, bias, mask, lo, hi);
          else if (j.sw == 1)
            depthwise_run<1, IN16, OUT16, false>(j, src, row * j.OW + ox, c0, w, bias, mask, lo, hi);
          else if (full)
            depthwise_run<2, IN16, OUT16, true>(j, src, row * j.OW + ox, c0, w, bias, mask, lo, hi);
          else
            depthwise_run<2, IN16, OUT16, false>(j, src, row * j.OW + ox, c0, w, bias, mask, lo, hi);
          ox += kRun - 1;
          continue;
        }
        const int64_t src = line + ox * j.sw * j.C + c0, pixel = row * j.OW + ox;
        __m512 acc[2] = {bias[0], bias[1]};
        AIOV_UNROLL for (int t = 0; t < 9; ++t) AIOV_UNROLL for (int v = 0; v < 2; ++v) acc[v] =
            _mm512_fmadd_ps(load_pixel<IN16>(j, src + offsets[t] + 16 * v, mask[v]), w[t][v], acc[v]);
        AIOV_UNROLL for (int v = 0; v < 2; ++v) {
          __m512 x = acc[v];
          if (j.residual)
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], j.residual + pixel * j.ld_residual + c0 + 16 * v));
          if (j.clamp) {
            x = _mm512_max_ps(lo, x);
            x = _mm512_min_ps(hi, x);
          }
          if constexpr (OUT16)
            _mm256_mask_storeu_epi16(j.y16 + pixel * j.C + c0 + 16 * v, mask[v], (__m256i)_mm512_cvtneps_pbh(x));
          else
            _mm512_mask_storeu_ps(j.y + pixel * j.C + c0 + 16 * v, mask[v], x);
        }
      }
    }
  }
}

void depthwise_any(const Bf16DepthwiseJob& j, int64_t r0, int64_t r1) {
  if (j.x16) return j.y16 ? depthwise_rows<true, true>(j, r0, r1) : depthwise_rows<true, false>(j, r0, r1);
  return j.y16 ? depthwise_rows<false, true>(j, r0, r1) : depthwise_rows<false, false>(j, r0, r1);
}

}  // namespace

Bf16ConvTileFn avx512_bf16_conv_tile() { return &conv_tile; }
Bf16DepthwiseFn avx512_bf16_depthwise_rows() { return &depthwise_any; }
#else
Bf16ConvTileFn avx512_bf16_conv_tile() { return nullptr; }
Bf16DepthwiseFn avx512_bf16_depthwise_rows() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
