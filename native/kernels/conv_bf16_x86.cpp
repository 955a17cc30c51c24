// The direct bf16 convolution's kernel on AVX512_BF16 (VDPBF16PS): up to 12 output pixels x
// 32 output channels in zmm accumulators, each pixel's input read where it lies, tap after
// tap, with no im2col copy and no K padding between taps. Compiled with the bf16 flags; only
// called after the dispatcher chose the avx512_bf16 set. Everything stays in an anonymous
// namespace (see gemm_avx512.cpp).
#include "kernels/conv_bf16_tile.hpp"

#include <cstring>
#include <type_traits>

#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

// The lowest n of 16 lanes, n clamped to [0, 16].
[[gnu::always_inline]] inline __mmask16 head_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

// The tile's results merged as the GEMM tiles merge them: x (+ beta * C) (+ bias)
// (+ residual), clamped with NaN kept, stored under the column mask as f32 to out.c or, with
// c16, rounded to bf16 (nearest even) there (a bf16 output is written, never accumulated
// into). The tile's fields, masks and bias are read once: a store through a pointer may
// alias anything, and re-reading them per vector cost as much as a 16-channel tile's products.
template <int R, int NV>
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
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    __m512 x = acc[r][v];
    float* c = o.c + r * o.ldc + 16 * v;
    if (!c16 && o.load_c) x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], c), x);
    x = _mm512_add_ps(x, bias[v]);
    if (o.residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], o.residual + r * o.ld_residual + 16 * v));
    if (o.clamp) {  // max/min return their second operand for a NaN: x stays NaN
      x = _mm512_max_ps(lo, x);
      x = _mm512_min_ps(hi, x);
    }
    if (c16)
      _mm256_mask_storeu_epi16(c16 + r * ldc16 + 16 * v, mask[v], (__m256i)_mm512_cvtneps_pbh(x));
    else
      _mm512_mask_storeu_ps(c, mask[v], x);
  }
}

// R pixels x NV zmm of output channels: per channel pair, NV panel loads and R broadcasts of
// a pixel's pair feed R * NV dot products (24 accumulators at 12 x 2 and 6 x 4).
template <int R, int NV>
void conv_rows(const Bf16ConvTile& t) {
  __m512 acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int64_t pairs = t.pairs, stride = t.b_panel_stride;
  const uint16_t* b = t.b;
  for (int tap = 0; tap < t.taps; ++tap, b += pairs * 32) {
    const uint16_t* a[R];
    AIOV_UNROLL for (int r = 0; r < R; ++r) a[r] = t.rows[tap * t.rows_ld + r];
    // Pair kk of every row: both values, or (half) the first alone, the second taken as zero.
    auto step = [&](int64_t kk, auto half) {
      __m512bh bv[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * stride + kk * 32);
      AIOV_UNROLL for (int r = 0; r < R; ++r) {
        int32_t pair;
        if constexpr (half())
          pair = a[r][2 * kk];
        else
          std::memcpy(&pair, a[r] + 2 * kk, sizeof pair);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
      }
    };
    const int64_t whole = pairs - (t.odd ? 1 : 0);
    for (int64_t kk = 0; kk < whole; ++kk) step(kk, std::false_type{});
    if (t.odd) step(whole, std::true_type{});
  }
  merge_tile<R, NV>(acc, t);
}

// Rows 1 .. MR (the most for NV vectors of columns; more rows are an error of the driver).
template <int NV, int MR>
void conv_tile_cols(const Bf16ConvTile& t) {
  switch (t.out.rows) {
#define AIOV_CONV_ROWS(R)         \
  case R:                         \
    if constexpr (R <= MR) {      \
      return conv_rows<R, NV>(t); \
    }                             \
    break;
    AIOV_CONV_ROWS(1)
    AIOV_CONV_ROWS(2)
    AIOV_CONV_ROWS(3)
    AIOV_CONV_ROWS(4)
    AIOV_CONV_ROWS(5)
    AIOV_CONV_ROWS(6)
    AIOV_CONV_ROWS(7)
    AIOV_CONV_ROWS(8)
    AIOV_CONV_ROWS(9)
    AIOV_CONV_ROWS(10)
    AIOV_CONV_ROWS(11)
    AIOV_CONV_ROWS(12)
#undef AIOV_CONV_ROWS
    default:
      break;
  }
}

void conv_tile(const Bf16ConvTile& t) {
  switch ((t.out.cols + 15) / 16) {
    case 1:
      return conv_tile_cols<1, kBf16ConvRows[0]>(t);
    case 2:
      return conv_tile_cols<2, kBf16ConvRows[1]>(t);
    case 3:
      return conv_tile_cols<3, kBf16ConvRows[2]>(t);
    default:
      return conv_tile_cols<4, kBf16ConvRows[3]>(t);
  }
}

}  // namespace

Bf16ConvTileFn avx512_bf16_conv_tile() { return &conv_tile; }
#else
Bf16ConvTileFn avx512_bf16_conv_tile() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
