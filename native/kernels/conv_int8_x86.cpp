// Direct integer convolution kernel for AVX512-VNNI: rows x panels accumulators (up to 12 x 2,
// 8 x 3 or 6 x 4 zmm of s32); per segment quad, one weight load per panel and one broadcast
// per row feed rows x panels VPDPBUSD; then the merge (s32, f32 or requantized u8) into C.
#include "kernels/conv_int8.hpp"

#include <cstring>

#include "kernels/gemm_int8.hpp"
#include "kernels/x86_intrinsics.hpp"
// (after the intrinsics)
#include "kernels/requantize_x86.hpp"

namespace aiov {
namespace conv_int8_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

// acc + u8 quads of a times s8 quads of b. GCC 12 copies every accumulator through another
// register around _mm512_dpbusd_epi32 (half the rate in a 12 x 2 loop: ~106 against ~225 GMAC/s
// on one Zen 4 core); the instruction written out keeps each in its register.
[[gnu::always_inline]] inline __m512i dot_quads(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

[[gnu::always_inline]] inline __mmask16 head_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

// Row r, vector v of the sums plus col_add, written as s32, or f32 scaled (+ bias, relu), or
// that requantized to u8 (rq: requantize_x86.hpp), under the column mask.
[[gnu::always_inline]] inline void merge_vec(__m512i acc, const ConvTile& t, const Requantizer& rq, int r, int v) {
  const __mmask16 m = head_mask(t.cols - 16 * v);
  const __m512i x = _mm512_add_epi32(acc, _mm512_maskz_loadu_epi32(m, t.col_add + 16 * v));
  if (t.c_i32) {
    _mm512_mask_storeu_epi32(t.c_i32 + r * t.ldc + 16 * v, m, x);
    return;
  }
  __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_maskz_loadu_ps(m, t.scale + 16 * v));
  if (t.bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, t.bias + 16 * v));
  if (t.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
  if (t.c_u8)
    _mm512_mask_cvtusepi32_storeu_epi8(t.c_u8 + r * t.ldc + 16 * v, m, requantized_u8(y, rq));
  else
    _mm512_mask_storeu_ps(t.c_f32 + r * t.ldc + 16 * v, m, y);
}

template <int R, int NV>
void tile_rows(const ConvTile& t) {
  __m512i acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  const int64_t quads = t.quads, stride = t.b_panel_stride;
  const int8_t* b = t.b;
  for (int64_t s = 0; s < t.segments; ++s) {
    const uint8_t* a[R];
    AIOV_UNROLL for (int r = 0; r < R; ++r) a[r] = t.a[s * kMaxRows + r];
    for (int64_t q = 0; q < quads; ++q, b += 64) {
      __m512i bv[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + v * stride);
      AIOV_UNROLL for (int r = 0; r < R; ++r) {
        int32_t quad;
        std::memcpy(&quad, a[r] + 4 * q, sizeof quad);
        const __m512i av = _mm512_set1_epi32(quad);
        AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = dot_quads(acc[r][v], av, bv[v]);
      }
    }
  }
  const Requantizer rq = requantizer(t.out_scale, t.out_zero);
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) merge_vec(acc[r][v], t, rq, r, v);
}

// Rows per call: the accumulators (rows x panels) plus a weight vector per panel and the
// broadcast fit the 32 zmm registers.
constexpr int max_rows(int panels) { return panels <= 2 ? 12 : panels == 3 ? 8 : 6; }
int rows_for(int panels) { return max_rows(panels); }

template <int NV, int R = max_rows(NV)>
void tile_panels(const ConvTile& t) {
  if constexpr (R > 1) {
    if (t.rows < R) return tile_panels<NV, R - 1>(t);
  }
  tile_rows<R, NV>(t);
}

void tile(const ConvTile& t) {
  switch (t.panels) {
    case 1:
      return tile_panels<1>(t);
    case 2:
      return tile_panels<2>(t);
    case 3:
      return tile_panels<3>(t);
    default:
      return tile_panels<4>(t);
  }
}

const ConvInt8Kernels kVnni{"avx512_vnni", &rows_for, &tile};

}  // namespace

const ConvInt8Kernels* vnni_conv_int8_kernels() { return &kVnni; }
#else
const ConvInt8Kernels* vnni_conv_int8_kernels() { return nullptr; }
#endif

}  // namespace conv_int8_detail
}  // namespace aiov
