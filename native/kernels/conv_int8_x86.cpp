// Direct integer convolution kernel for AVX512-VNNI: rows x panels accumulators (up to 12 x 2,
// 8 x 3 or 6 x 4 zmm of s32); per segment quad, one weight load per panel and one broadcast
// per row feed rows x panels VPDPBUSD; then the merge (s32, f32 or requantized u8) into C.
#include "kernels/conv_int8.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

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

// 16 s32 lanes stored as bytes, saturated as unsigned (255 for anything above, the conversion's
// 0x80000000 included): narrowed in a register, then stored. Zen 4 runs VPMOVUSDB to memory
// as several slow steps; the register form and a masked byte store are cheap (a full mask
// costs what a plain store does, and a test for it put a jump around every store).
[[gnu::always_inline]] inline void store_u8(uint8_t* out, __mmask16 m, __m512i lanes) {
  _mm_mask_storeu_epi8(out, m, _mm512_cvtusepi32_epi8(lanes));
}

// y requantized to u8 lanes as requantized_u8 (requantize_x86.hpp) gives them, in fewer steps
// for a positive scale and a zero point in [0, 255]: q = y * (1 / scale) is within |q| * 2^-22
// of the quotient, so the two round alike unless q lies that near a half-integer; below
// |q| = 1024 that is within kNearHalf of one (a vector with such a lane divides), and from 1024
// on both saturate alike.
constexpr float kNearHalf = 1025.0f / 1048576.0f;  // 1025 * 2^-20

[[gnu::always_inline]] inline __m512i requantized_u8_in_range(__m512 y, const Requantizer& r) {
  const __m512 q = _mm512_mul_ps(y, r.inverse);
  __m512 rounded = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 off = _mm512_abs_ps(_mm512_sub_ps(q, rounded));
  if (_mm512_cmp_ps_mask(off, _mm512_set1_ps(0.5f - kNearHalf), _CMP_GE_OQ))
    rounded = _mm512_roundscale_ps(_mm512_div_ps(y, r.scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 v = _mm512_add_ps(rounded, r.zero);
  return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f)));
}

// float(sum) * scale, rounded before any bias is added: written with explicit rounding so the
// compiler cannot fuse the two into one FMA in one merge and not in another (the u8 bytes must
// be those aiov.Quantize makes of the f32 output, which the portable merge rounds twice too).
constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
[[gnu::always_inline]] inline __m512 scaled(__m512i sum, __m512 scale) {
  return _mm512_mul_round_ps(_mm512_cvtepi32_ps(sum), scale, kNearest);
}

// Where a tile's sums go, read out of the ConvTile once: stores through a u8 pointer may
// alias anything, so fields read from `t` at each store would be loaded again.
struct Merge {
  int32_t* c_i32;
  float* c_f32;
  uint8_t* c_u8;
  int64_t ldc;
  const float* scale;
  const float* bias;
  bool relu, fast_requantize;
  Requantizer rq;
  const float* folded;  // fold's tables from the tile's first column, folded_stride apart
  int64_t folded_stride;
};

// Vector v of rows [0, R): the sums (col_add is in them from the start) written as s32, or
// f32 scaled (+ bias, relu), or that requantized to u8, under the column mask m.
template <int R, int NV>
[[gnu::always_inline]] inline void merge_column(const __m512i (&acc)[R][NV], const Merge& o, int v, __mmask16 m) {
  if (o.c_i32) {
    AIOV_UNROLL for (int r = 0; r < R; ++r) _mm512_mask_storeu_epi32(o.c_i32 + r * o.ldc + 16 * v, m, acc[r][v]);
    return;
  }
  const __m512 scale = _mm512_maskz_loadu_ps(m, o.scale + 16 * v);
  const __m512 bias = o.bias ? _mm512_maskz_loadu_ps(m, o.bias + 16 * v) : _mm512_setzero_ps();
  AIOV_UNROLL for (int r = 0; r < R; ++r) {
    __m512 y = scaled(acc[r][v], scale);
    if (o.bias) y = _mm512_add_round_ps(y, bias, kNearest);
    if (o.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
    if (o.c_u8)
      store_u8(o.c_u8 + r * o.ldc + 16 * v, m,
               o.fast_requantize ? requantized_u8_in_range(y, o.rq) : requantized_u8(y, o.rq));
    else
      _mm512_mask_storeu_ps(o.c_f32 + r * o.ldc + 16 * v, m, y);
  }
}

// The merge QDQ convolutions run (u8 out, a bias, the requantization in range), with the
// constants in registers and no test per vector: with few quads per sum (1x1 over 16 to 64
// channels, the stems) the merge is most of a tile's time. Per 16 outputs it is one multiply-add
// q = sum * (scale / out_scale) + (bias / out_scale + zero), folded per column vector, where
// aiov.Quantize's bytes round (sum * scale) + bias, then divide by out_scale. Both round alike
// unless q lies near a half-integer: q is within 2^-24 (6 |q - zero| + 6 |bias / out_scale| +
// 2 zero) of the quotient plus the zero point, under 8.7e-4 for |q - zero| < 1300 with
// |bias / out_scale| <= 1024 (columns past that take the exact steps), and past 1300 both
// saturate alike; a column vector with a lane within kFoldedNearHalf of a half-integer takes
// the exact steps (about 3% of vectors of 16), found by one test per tile row.
constexpr float kFoldedNearHalf = 1.0f / 1024.0f;
constexpr float kFoldedBiasLimit = 1024.0f;

// The exact steps: scale, add the bias, each rounded, then requantize by the reciprocal, with
// the division where the quotient lies near a half-integer.
template <bool RELU>
[[gnu::always_inline]] inline __m512i exact_u8(__m512i sum, __m512 scale, __m512 bias, const Requantizer& rq) {
  __m512 y = _mm512_add_round_ps(scaled(sum, scale), bias, kNearest);
  if (RELU) y = _mm512_max_ps(y, _mm512_setzero_ps());
  return requantized_u8_in_range(y, rq);
}

template <int R, int NV, bool RELU>
[[gnu::always_inline]] inline void merge_u8(const __m512i (&acc)[R][NV], const Merge& o, int cols) {
  const __m512 near_half = _mm512_set1_ps(0.5f - kFoldedNearHalf);
  // No clamp at 255: an integer past it (or past 2^31, which converts to 0x80000000) saturates
  // in the unsigned narrowing store. The floor is 0, or the zero point after a Relu (y >= 0).
  const __m512 floor = RELU ? o.rq.zero : _mm512_setzero_ps();
  __m512 folded_scale[NV], folded_bias[NV];
  __mmask16 m[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    m[v] = head_mask(cols - 16 * v);
    folded_scale[v] = _mm512_maskz_loadu_ps(m[v], o.folded + 16 * v);
    folded_bias[v] = _mm512_maskz_loadu_ps(m[v], o.folded + o.folded_stride + 16 * v);
  }
  AIOV_UNROLL for (int r = 0; r < R; ++r) {
    uint8_t* out = o.c_u8 + r * o.ldc;
    // One branch per row in the common case, where no lane of its vectors lies near a
    // half-integer; else the vectors with such a lane (or a column that does not fold: its
    // NaN scale fails the test) take the exact steps.
    __m512 q[NV];
    __mmask16 near[NV], any_near = 0;
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      q[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), folded_scale[v], folded_bias[v]);
      // q minus q rounded to the nearest integer
      const __m512 off = _mm512_reduce_ps(q[v], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      near[v] = _mm512_cmp_ps_mask(_mm512_abs_ps(off), near_half, _CMP_NLT_UQ);
      any_near |= near[v];
    }
    if (!any_near) {
      AIOV_UNROLL for (int v = 0; v < NV; ++v)
          store_u8(out + 16 * v, m[v], _mm512_cvt_roundps_epi32(_mm512_max_ps(q[v], floor), kNearest));
      continue;
    }
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      if (!near[v]) {
        store_u8(out + 16 * v, m[v], _mm512_cvt_roundps_epi32(_mm512_max_ps(q[v], floor), kNearest));
        continue;
      }
      const __m512 scale = _mm512_maskz_loadu_ps(m[v], o.scale + 16 * v);
      const __m512 bias = _mm512_maskz_loadu_ps(m[v], o.bias + 16 * v);
      store_u8(out + 16 * v, m[v], exact_u8<RELU>(acc[r][v], scale, bias, o.rq));
    }
  }
}

// The merge's per-column constants, once per convolution (ConvInt8Kernels::fold): the folded
// scale (scale / out_scale, as the reciprocal's product) and bias (bias / out_scale + zero),
// each product and sum rounded on its own as merge_u8's bound assumes. A column that does not
// fold (its bias past kFoldedBiasLimit quanta, NaN or infinite constants) gets a NaN scale,
// which sends its sums the exact way.
void fold(const Int8Output& out, int64_t n, float* folded, int64_t folded_stride) {
  const Requantizer rq = requantizer(out.out_scale, out.out_zero);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = head_mask((int)std::min<int64_t>(16, n - j));
    const __m512 folded_scale = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, out.scale + j), rq.inverse);
    const __m512 bias_quotient = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, out.bias + j), rq.inverse);
    // (NaN or infinite constants fail the compares too)
    const __mmask16 folds =
        _mm512_cmp_ps_mask(_mm512_abs_ps(bias_quotient), _mm512_set1_ps(kFoldedBiasLimit), _CMP_LE_OQ) &
        _mm512_cmp_ps_mask(_mm512_abs_ps(folded_scale), _mm512_set1_ps(3.0e38f), _CMP_LE_OQ);
    _mm512_mask_storeu_ps(
        folded + j, m,
        _mm512_mask_mov_ps(_mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()), folds, folded_scale));
    _mm512_mask_storeu_ps(folded + folded_stride + j, m, _mm512_add_ps(bias_quotient, rq.zero));
  }
}

template <int R, int NV>
void tile_rows(const ConvTile& t) {
  // The accumulators start from col_add (the zero point's term), so the merge adds nothing.
  __m512i acc[R][NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    const __m512i add = _mm512_maskz_loadu_epi32(head_mask(t.cols - 16 * v), t.col_add + 16 * v);
    AIOV_UNROLL for (int r = 0; r < R; ++r) acc[r][v] = add;
  }
  const int64_t quads = t.quads, stride = t.b_panel_stride;
  const int8_t* b = t.b;
  for (int64_t s = 0; s < t.segments; ++s) {
    const uint8_t* a[R];
    const int64_t in_image = t.offsets[s], in_copy = s * quads * 4;
    AIOV_UNROLL for (int r = 0; r < R; ++r) a[r] = t.first[r] + ((t.copied >> r) & 1 ? in_copy : in_image);
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
  const Int8Output& out = t.out;
  const Requantizer rq = requantizer(out.out_scale, out.out_zero);
  const Merge o{out.c_i32,
                out.c_f32,
                out.c_u8,
                out.ldc,
                out.scale,
                out.bias,
                out.relu,
                rq.by_inverse && out.out_scale > 0 && out.out_zero >= 0 && out.out_zero <= 255,
                rq,
                t.folded,
                t.folded_stride};
  if (o.c_u8 && o.bias && o.fast_requantize && o.folded) {
    if (o.relu)
      merge_u8<R, NV, true>(acc, o, t.cols);
    else
      merge_u8<R, NV, false>(acc, o, t.cols);
    return;
  }
  AIOV_UNROLL for (int v = 0; v < NV; ++v) merge_column<R, NV>(acc, o, v, head_mask(t.cols - 16 * v));
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

const ConvInt8Kernels kVnni{"avx512_vnni", &rows_for, &tile, 2, &fold};

}  // namespace

const ConvInt8Kernels* vnni_conv_int8_kernels() { return &kVnni; }
#else
const ConvInt8Kernels* vnni_conv_int8_kernels() { return nullptr; }
#endif

}  // namespace conv_int8_detail
}  // namespace aiov
