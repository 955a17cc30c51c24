// Integer GEMM kernels for x86: AVX512-VNNI dot products (VPDPBUSD: four u8 x s8 products
// added into each s32 lane, with no intermediate saturation; up to 12 rows x 32 columns in
// zmm accumulators) and AMX tiles (TDPBUSD, 2 x 2 tiles of 16 x 16 s32 per call), with the
// zero-point correction and the dequantizing merge into C. Compiled with AVX-512 VNNI and
// (when the compiler has them) AMX flags; reached only after the dispatcher saw the
// instructions in CPUID/XCR0 and Linux granted the tile state.
#include "kernels/gemm_int8.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/x86_intrinsics.hpp"
// (after the intrinsics)
#include "kernels/requantize_x86.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

[[gnu::always_inline]] inline __mmask16 head_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

// Where a tile's merged values go (Int8Tile's c_i32, c_f32 or c_u8).
enum class Dest { i32, f32, u8 };

// 16 s32 lanes stored as bytes, saturated as unsigned (255 for anything above, the conversion's
// 0x80000000 included): narrowed in a register, then stored. Zen 4 runs VPMOVUSDB to memory as
// several slow steps; the register form and a plain or masked byte store are cheap.
[[gnu::always_inline]] inline void store_u8(uint8_t* out, __mmask16 m, __m512i lanes) {
  const __m128i bytes = _mm512_cvtusepi32_epi8(lanes);
  if (m == 0xFFFF)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
  else
    _mm_mask_storeu_epi8(out, m, bytes);
}

// The u8 merge in one multiply-add per 16 outputs (short K, a 1x1 convolution over 16-32
// channels, leaves the merge most of a tile's time): q = v * (scale / out_scale) + (bias /
// out_scale + out_zero), folded per column vector, where aiov.Quantize's bytes round
// float(v) * scale, add the bias (each rounded), then divide by out_scale. q is within 2^-24
// (6 |q - zero| + 6 |bias / out_scale| + 2 zero) of that quotient plus the zero point: under
// 8.7e-4 while |q - zero| < 1300 and |bias / out_scale| <= kFoldedBiasLimit, and past 1300 both
// saturate alike (zero in [0, 255]). So both give the same byte unless q lies within
// kFoldedNearHalf of a half-integer; a row with such a lane (about 3% of rows of 16) takes the
// exact steps. (kernels.md, the direct convolution's merge, has the same bound.)
constexpr float kFoldedNearHalf = 1.0f / 1024.0f;
constexpr float kFoldedBiasLimit = 1024.0f;
constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// Whether the folded merge gives the bytes of NV column vectors: a reciprocal that is a normal
// float, a zero point in [0, 255], and per column a folded scale and bias in range (NaN fails
// too). The folded constants are written to folded_scale and folded_bias.
template <int NV>
bool fold_u8_merge(const float* scales, const float* biases, float out_scale, const Requantizer& rq,
                   const __mmask16 (&cols)[NV], __m512 (&folded_scale)[NV], __m512 (&folded_bias)[NV]) {
  bool foldable = rq.by_inverse && out_scale > 0.0f;
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    const __m512 scale = _mm512_maskz_loadu_ps(cols[v], scales + 16 * v);
    const __m512 bias = biases ? _mm512_maskz_loadu_ps(cols[v], biases + 16 * v) : _mm512_setzero_ps();
    folded_scale[v] = _mm512_mul_ps(scale, rq.inverse);
    const __m512 bias_quotient = _mm512_mul_ps(bias, rq.inverse);
    folded_bias[v] = _mm512_add_ps(bias_quotient, rq.zero);
    foldable = foldable &&
               _mm512_mask_cmp_ps_mask(cols[v], _mm512_abs_ps(bias_quotient), _mm512_set1_ps(kFoldedBiasLimit),
                                       _CMP_LE_OQ) == cols[v] &&
               _mm512_mask_cmp_ps_mask(cols[v], _mm512_abs_ps(folded_scale[v]), _mm512_set1_ps(3.0e38f), _CMP_LE_OQ) ==
                   cols[v];
  }
  return foldable;
}

// The folded u8 merge of a tile (fold_u8_merge said it holds). A row with a lane near a
// half-integer takes the exact steps: float(v) * scale, + bias, each rounded (explicit
// rounding, so the compiler cannot fuse them), relu, then requantized_u8.
template <int NV, bool RELU>
void merge_u8_folded(const int32_t* acc, int acc_row, const Int8Tile& t, const Requantizer& rq,
                     const __mmask16 (&cols)[NV], const __m512i (&add)[NV], const __m512i (&mul)[NV],
                     const __m512 (&folded_scale)[NV], const __m512 (&folded_bias)[NV]) {
  const int32_t* const row_sums = t.row_sum;
  const float* const scales = t.scale;
  const float* const biases = t.bias;
  const int64_t ldc = t.ldc;
  uint8_t* const c_u8 = t.c_u8;
  const int rows = t.rows;
  const __m512 near_half = _mm512_set1_ps(0.5f - kFoldedNearHalf);
  // No clamp at 255: the unsigned narrowing saturates. The floor is 0, or the zero point after
  // a Relu (y >= 0 quantizes to the zero point or above).
  const __m512 floor = RELU ? rq.zero : _mm512_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    const __m512i row_sum = _mm512_set1_epi32(row_sums ? row_sums[r] : 0);
    __m512i x[NV];
    __m512 q[NV];
    __mmask16 near = 0;
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      x[v] = _mm512_add_epi32(_mm512_load_si512(acc + r * acc_row + 16 * v), add[v]);
      if (row_sums) x[v] = _mm512_add_epi32(x[v], _mm512_mullo_epi32(row_sum, mul[v]));
      q[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(x[v]), folded_scale[v], folded_bias[v]);
      // q minus q rounded to the nearest integer
      const __m512 off = _mm512_reduce_ps(q[v], kNearest);
      near |= _mm512_mask_cmp_ps_mask(cols[v], _mm512_abs_ps(off), near_half, _CMP_GE_OQ);
    }
    uint8_t* const out = c_u8 + r * ldc;
    if (!near) {
      AIOV_UNROLL for (int v = 0; v < NV; ++v)
          store_u8(out + 16 * v, cols[v], _mm512_cvt_roundps_epi32(_mm512_max_ps(q[v], floor), kNearest));
      continue;
    }
    __m512 y[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      const __m512 scale = _mm512_maskz_loadu_ps(cols[v], scales + 16 * v);
      y[v] = _mm512_mul_round_ps(_mm512_cvtepi32_ps(x[v]), scale, kNearest);
      if (biases) y[v] = _mm512_add_round_ps(y[v], _mm512_maskz_loadu_ps(cols[v], biases + 16 * v), kNearest);
      if (RELU) y[v] = _mm512_max_ps(y[v], _mm512_setzero_ps());
    }
    __m512i bytes[NV];
    requantized_u8<NV>(y, rq, bytes);
    AIOV_UNROLL for (int v = 0; v < NV; ++v) store_u8(out + 16 * v, cols[v], bytes[v]);
  }
}

// The tile's accumulators (row r, vector v at acc + r * acc_row + 16 * v) corrected for the
// zero points and written as s32, or as f32 scaled (+ bias, relu), or that requantized to u8
// (requantize_x86.hpp: the bytes aiov.Quantize writes, without a division per value), under
// the column masks. The per-column vectors are loaded once per tile and the optional steps
// are template arguments, not tests: with a test per step and per vector the merge cost as
// much as the products at K 16.
template <int NV, Dest D, bool BIAS, bool RELU>
void merge_tile(const int32_t* acc, int acc_row, const Int8Tile& t) {
  __mmask16 cols[NV];
  __m512i add[NV], mul[NV];
  __m512 scale[NV], bias[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    cols[v] = head_mask(t.cols - 16 * v);
    add[v] = _mm512_maskz_loadu_epi32(cols[v], t.col_add + 16 * v);
    mul[v] = t.row_sum ? _mm512_maskz_loadu_epi32(cols[v], t.col_mul + 16 * v) : _mm512_setzero_si512();
    if (D != Dest::i32) scale[v] = _mm512_maskz_loadu_ps(cols[v], t.scale + 16 * v);
    if (BIAS) bias[v] = _mm512_maskz_loadu_ps(cols[v], t.bias + 16 * v);
  }
  const Requantizer rq = requantizer(t.out_scale, t.out_zero);
  if constexpr (D == Dest::u8) {
    __m512 folded_scale[NV], folded_bias[NV];
    if (fold_u8_merge<NV>(t.scale, t.bias, t.out_scale, rq, cols, folded_scale, folded_bias))
      return merge_u8_folded<NV, RELU>(acc, acc_row, t, rq, cols, add, mul, folded_scale, folded_bias);
  }
  // Locals, not t's fields: a store through the u8 output may alias t (char access), which
  // made GCC reload them after every vector.
  const int32_t* const row_sums = t.row_sum;
  const int64_t ldc = t.ldc;
  int32_t* const c_i32 = t.c_i32;
  float* const c_f32 = t.c_f32;
  uint8_t* const c_u8 = t.c_u8;
  const int rows = t.rows;
  for (int r = 0; r < rows; ++r) {
    const __m512i row_sum = _mm512_set1_epi32(row_sums ? row_sums[r] : 0);
    __m512 y[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      __m512i x = _mm512_add_epi32(_mm512_load_si512(acc + r * acc_row + 16 * v), add[v]);
      if (row_sums) x = _mm512_add_epi32(x, _mm512_mullo_epi32(row_sum, mul[v]));
      if (D == Dest::i32) {
        _mm512_mask_storeu_epi32(c_i32 + r * ldc + 16 * v, cols[v], x);
        continue;
      }
      // (explicit rounding: the compiler must not fuse these into one FMA, whose single rounding
      // the portable merge, the folded u8 merge's exact steps and aiov.Quantize's bytes of this
      // output would not share)
      y[v] = _mm512_mul_round_ps(_mm512_cvtepi32_ps(x), scale[v], kNearest);
      if (BIAS) y[v] = _mm512_add_round_ps(y[v], bias[v], kNearest);
      if (RELU) y[v] = _mm512_max_ps(y[v], _mm512_setzero_ps());
      if (D == Dest::f32) _mm512_mask_storeu_ps(c_f32 + r * ldc + 16 * v, cols[v], y[v]);
    }
    if (D == Dest::u8) {
      __m512i bytes[NV];
      requantized_u8<NV>(y, rq, bytes);
      AIOV_UNROLL for (int v = 0; v < NV; ++v) store_u8(c_u8 + r * ldc + 16 * v, cols[v], bytes[v]);
    }
  }
}

template <int NV, Dest D>
void merge_tile(const int32_t* acc, int acc_row, const Int8Tile& t) {
  if (t.bias)
    t.relu ? merge_tile<NV, D, true, true>(acc, acc_row, t) : merge_tile<NV, D, true, false>(acc, acc_row, t);
  else
    t.relu ? merge_tile<NV, D, false, true>(acc, acc_row, t) : merge_tile<NV, D, false, false>(acc, acc_row, t);
}

template <int NV>
void merge_tile(const int32_t* acc, int acc_row, const Int8Tile& t) {
  if (t.c_i32)
    merge_tile<NV, Dest::i32, false, false>(acc, acc_row, t);
  else if (t.c_u8)
    merge_tile<NV, Dest::u8>(acc, acc_row, t);
  else
    merge_tile<NV, Dest::f32>(acc, acc_row, t);
}

// min/max return their second operand for a NaN: a NaN in x never becomes the range, and
// the masked tail loads zeros, which the range includes anyway.
void range(const float* x, int64_t n, float& min, float& max) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    lo = _mm512_min_ps(v, lo);
    hi = _mm512_max_ps(v, hi);
  }
  if (i < n) {
    const __m512 v = _mm512_maskz_loadu_ps(head_mask((int)(n - i)), x + i);
    lo = _mm512_min_ps(v, lo);
    hi = _mm512_max_ps(v, hi);
  }
  min = _mm512_reduce_min_ps(lo);
  max = _mm512_reduce_max_ps(hi);
}

void quantize(const float* x, int64_t n, float scale, int32_t zero, uint8_t* y) {
  const Requantizer r = requantizer(scale, zero);  // (requantize_x86.hpp: no division per value)
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {  // four vectors per exactness test
    const __m512 x4[4] = {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i + 32),
                          _mm512_loadu_ps(x + i + 48)};
    __m512i bytes[4];
    requantized_u8<4>(x4, r, bytes);
    for (int v = 0; v < 4; ++v) _mm512_mask_cvtusepi32_storeu_epi8(y + i + 16 * v, 0xFFFF, bytes[v]);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = head_mask((int)(n - i));
    _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, requantized_u8(_mm512_maskz_loadu_ps(m, x + i), r));
  }
}

// ---- AVX512-VNNI --------------------------------------------------------------------------
constexpr int kVnniMR = 12;

// The K loop alone, its R x NV accumulators in registers, stored to acc (R x NV x 16 s32) at
// the end. Merged in the same function, GCC kept a copy of every accumulator on the stack
// and stored all of them each step: half of VPDPBUSD's rate (Zen 4, 64 x 1024 x 1024).
template <int R, int NV>
[[gnu::noinline]] void vnni_accumulate(const uint8_t* a, int64_t lda, const int8_t* b, int64_t b_panel_stride,
                                       int64_t quads, int32_t* acc_out) {
  __m512i acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  for (int64_t kk = 0; kk < quads; ++kk) {
    __m512i bv[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) bv[v] =
        _mm512_loadu_si512(b + v * b_panel_stride + kk * 4 * kInt8PanelCols);
    AIOV_UNROLL for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * kk, sizeof quad);
      const __m512i av = _mm512_set1_epi32(quad);
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
    }
  }
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v)
      _mm512_store_si512(acc_out + (r * NV + v) * 16, acc[r][v]);
}

template <int R, int NV>
void vnni_rows(const Int8Tile& t) {
  alignas(64) int32_t acc[R * NV * 16];
  vnni_accumulate<R, NV>(t.a, t.lda, t.b, t.b_panel_stride, t.kp / 4, acc);
  merge_tile<NV>(acc, NV * 16, t);
}

template <int NV>
void vnni_tile_cols(const Int8Tile& t) {
  switch (t.rows) {
#define AIOV_VNNI_ROWS(R) \
  case R:                 \
    return vnni_rows<R, NV>(t);
    AIOV_VNNI_ROWS(1)
    AIOV_VNNI_ROWS(2)
    AIOV_VNNI_ROWS(3)
    AIOV_VNNI_ROWS(4)
    AIOV_VNNI_ROWS(5)
    AIOV_VNNI_ROWS(6)
    AIOV_VNNI_ROWS(7)
    AIOV_VNNI_ROWS(8)
    AIOV_VNNI_ROWS(9)
    AIOV_VNNI_ROWS(10)
    AIOV_VNNI_ROWS(11)
#undef AIOV_VNNI_ROWS
    default:
      return vnni_rows<kVnniMR, NV>(t);
  }
}

void vnni_tile(const Int8Tile& t) {
  if (t.cols > kInt8PanelCols)
    vnni_tile_cols<2>(t);
  else
    vnni_tile_cols<1>(t);
}

// ---- VNNI u8 strips: rows-first column blocks merged from the accumulators ----------------

// acc + u8 quads of a times s8 quads of b. GCC 12 copies every accumulator through another
// register around _mm512_dpbusd_epi32 when the merge shares the function (half the rate); the
// instruction written out keeps each in its register.
[[gnu::always_inline]] inline __m512i dot_quads(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

// A strip's per-column constants, made once per strip: the column masks, the zero point's
// term the sums start from, and the folded scale and bias (fold_strip's).
template <int NV>
struct StripColumns {
  __mmask16 cols[NV];
  __m512i add[NV];
  __m512 scale[NV], bias[NV];  // folded
  __m512 near;                 // a lane whose fraction is below it is near a half-integer
  bool folds;                  // else every row takes the exact steps
  // The residual sum's constants (Int8U8Strip's): the bytes' and the residual's zero points and
  // scales, and the sum's requantization; and its folded form (fold_strip_sum's).
  __m512 c_zero, c_scale, r_zero, r_scale;
  Requantizer sum_rq;
  bool sum_folds;
  __m512 sum_c_scale, sum_r_scale, sum_shift;
  __m512 c_low;  // the lowest byte - 128 (the zero point's after a Relu)
};

// A row's NV vectors of bytes stored: all but the last whole (a strip's NV is the fewest
// vectors that hold its columns), the last under its column mask; first summed with the
// residual's row `residual` when the strip has one, by aiov.QuantizedAdd's steps (each
// rounded on its own, no FMA, as quantized_bytes' sum: the same bytes).
template <int NV>
[[gnu::always_inline]] inline void store_u8_row(uint8_t* row, const uint8_t* residual, const StripColumns<NV>& k,
                                                __m128i (&bytes)[NV]) {
  if (residual) {
    __m512 y[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes[v]));
      const __m512 r = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k.cols[v], residual + 16 * v)));
      const __m512 dc = _mm512_mul_round_ps(_mm512_sub_round_ps(c, k.c_zero, kNearest), k.c_scale, kNearest);
      const __m512 dr = _mm512_mul_round_ps(_mm512_sub_round_ps(r, k.r_zero, kNearest), k.r_scale, kNearest);
      y[v] = _mm512_add_round_ps(dc, dr, kNearest);
    }
    __m512i lanes[NV];
    requantized_u8<NV>(y, k.sum_rq, lanes);
    AIOV_UNROLL for (int v = 0; v < NV; ++v) bytes[v] = _mm512_cvtusepi32_epi8(lanes[v]);
  }
  AIOV_UNROLL for (int v = 0; v + 1 < NV; ++v) _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 16 * v), bytes[v]);
  // (an empty asm between them, or GCC fuses the narrowing and a masked store into VPMOVUSDB
  // to memory, slow on Zen 4)
  asm("" : "+v"(bytes[NV - 1]));
  _mm_mask_storeu_epi8(row + 16 * (NV - 1), k.cols[NV - 1], bytes[NV - 1]);
}

// A row's exact steps, from its sums as floats (exact: |sum| < 2^24 is not needed, the
// conversion is the same one the portable merge makes): float(v) * scale, + bias, each
// rounded, relu, then requantized_u8 (and the residual's sum, when the row has one).
template <int NV, bool RELU>
[[gnu::always_inline]] inline void strip_row_exact(const __m512 (&x)[NV], const Int8U8Strip& s,
                                                   const StripColumns<NV>& k, const Requantizer& rq, uint8_t* row,
                                                   const uint8_t* residual) {
  __m512 y[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    y[v] = _mm512_mul_round_ps(x[v], _mm512_maskz_loadu_ps(k.cols[v], s.scale + 16 * v), kNearest);
    if (s.bias) y[v] = _mm512_add_round_ps(y[v], _mm512_maskz_loadu_ps(k.cols[v], s.bias + 16 * v), kNearest);
    if (RELU) y[v] = _mm512_max_ps(y[v], _mm512_setzero_ps());
  }
  __m512i lanes[NV];
  requantized_u8<NV>(y, rq, lanes);
  __m128i bytes[NV];
  AIOV_UNROLL for (int v = 0; v < NV; ++v) bytes[v] = _mm512_cvtusepi32_epi8(lanes[v]);
  store_u8_row<NV>(row, residual, k, bytes);
}

// R rows x NV panels: sums over the strip's K in registers, then each row merged from them
// (folded; a row with a lane near a half-integer takes the exact steps) and summed with its
// residual row when `residual` is set (rows s.ld_residual apart).
template <int R, int NV, bool RELU, bool SUM>
[[gnu::always_inline]] inline void strip_rows(const Int8U8Strip& s, const uint8_t* a, uint8_t* out,
                                              const uint8_t* residual, const StripColumns<NV>& k,
                                              const Requantizer& rq) {
  __m512i acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = k.add[v];
  const int64_t quads = s.kp / 4, stride = s.b_panel_stride, lda = s.lda;
  const int8_t* b = s.b;
  for (int64_t q = 0; q < quads; ++q, b += 4 * kInt8PanelCols) {
    __m512i bv[NV];
    AIOV_UNROLL for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + v * stride);
    AIOV_UNROLL for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      const __m512i av = _mm512_set1_epi32(quad);
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = dot_quads(acc[r][v], av, bv[v]);
    }
  }
  const int64_t ldc = s.ldc;
  if (!k.folds) {
    AIOV_UNROLL for (int r = 0; r < R; ++r) {
      __m512 x[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) x[v] = _mm512_cvtepi32_ps(acc[r][v]);
      strip_row_exact<NV, RELU>(x, s, k, rq, out + r * ldc, SUM ? residual + r * s.ld_residual : nullptr);
    }
    return;
  }
  // q = quotient + zero - 127.5 + window (fold_strip's k.near / 2): a lane whose fraction is
  // below 2 window lies that near a half-integer (the row takes the exact steps);
  // any other rounds half to even as q - 127.5 rounded down does. Its bytes: signed
  // saturation to [-128, 127], then the top bit flipped ([0, 255]); after a Relu, at least
  // the zero point.
  constexpr int kDown = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
  const __m128i flip = _mm_set1_epi8((char)0x80), zero = _mm_set1_epi8((char)(uint8_t)s.out_zero);
  AIOV_UNROLL for (int r = 0; r < R; ++r) {
    __m512 x[NV], q[NV], fraction[NV];
    __mmask16 near = 0;
    uint8_t* const row = out + r * ldc;
    const uint8_t* const residual_row = SUM ? residual + r * s.ld_residual : nullptr;
    AIOV_UNROLL for (int v = 0; v < NV; ++v) {
      x[v] = _mm512_cvtepi32_ps(acc[r][v]);
      q[v] = _mm512_fmadd_ps(x[v], k.scale[v], k.bias[v]);
      fraction[v] = _mm512_reduce_ps(q[v], kDown);
    }
    if (SUM && k.sum_folds) {
      // The bytes less 128 (q rounded down, exactly q less its fraction, clamped as the bytes
      // saturate, after a Relu at least the zero point's), then the sum's folded form from them
      // and the residual's bytes; a lane near a half-integer in either (one window) sends the
      // row to the exact steps.
      __m512 qs[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) {
        const __m512 c =
            _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(q[v], fraction[v]), k.c_low), _mm512_set1_ps(127.0f));
        const __m512 rv =
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k.cols[v], residual_row + 16 * v)));
        qs[v] = _mm512_fmadd_ps(c, k.sum_c_scale, _mm512_fmadd_ps(rv, k.sum_r_scale, k.sum_shift));
        const __m512 nearest = _mm512_min_ps(fraction[v], _mm512_reduce_ps(qs[v], kDown));
        near = _kor_mask16(near, _mm512_mask_cmp_ps_mask(k.cols[v], nearest, k.near, _CMP_LT_OQ));
      }
      if (__builtin_expect(_kortestz_mask16_u8(near, near), 1)) {
        __m128i bytes[NV];
        AIOV_UNROLL for (int v = 0; v < NV; ++v) bytes[v] =
            _mm_xor_si128(_mm512_cvtsepi32_epi8(_mm512_cvt_roundps_epi32(qs[v], kDown)), flip);
        store_u8_row<NV>(row, nullptr, k, bytes);
        continue;
      }
      strip_row_exact<NV, RELU>(x, s, k, rq, row, residual_row);
      continue;
    }
    AIOV_UNROLL for (int v = 0; v < NV; ++v) near =
        _kor_mask16(near, _mm512_mask_cmp_ps_mask(k.cols[v], fraction[v], k.near, _CMP_LT_OQ));
    if (__builtin_expect(_kortestz_mask16_u8(near, near), 1)) {
      __m128i bytes[NV];
      AIOV_UNROLL for (int v = 0; v < NV; ++v) {
        bytes[v] = _mm_xor_si128(_mm512_cvtsepi32_epi8(_mm512_cvt_roundps_epi32(q[v], kDown)), flip);
        if (RELU) bytes[v] = _mm_max_epu8(bytes[v], zero);
      }
      store_u8_row<NV>(row, residual_row, k, bytes);
      continue;
    }
    strip_row_exact<NV, RELU>(x, s, k, rq, row, residual_row);
  }
}

// Rows per call: the R x NV accumulators, a B vector per panel and the broadcast in the 32 zmm
// registers, with a few left for the merge.
constexpr int strip_rows_for(int panels) { return panels == 1 ? 12 : panels == 2 ? 8 : 6; }

template <int NV, bool RELU, bool SUM, int R = strip_rows_for(NV)>
void strip_tail(const Int8U8Strip& s, const uint8_t* a, uint8_t* out, const uint8_t* residual,
                const StripColumns<NV>& k, const Requantizer& rq, int rows) {
  if constexpr (R > 1) {
    if (rows < R) return strip_tail<NV, RELU, SUM, R - 1>(s, a, out, residual, k, rq, rows);
  }
  strip_rows<R, NV, RELU, SUM>(s, a, out, residual, k, rq);
}

// The strips' folded merge, fold_u8_merge's with the bias moved: q = v * (scale / out_scale) +
// (bias / out_scale + (zero - 127.5 + kFoldedNearHalf)) (that constant exact, so the bias is
// still rounded once), within the same bound of the quotient plus that constant. A lane of q
// at least 2 kFoldedNearHalf above an integer n has its quotient plus zero strictly between
// n + 127 and n + 128 (the bound is below kFoldedNearHalf), which rounds to n + 128: to
// nearest (even) needs no tie test. |scale / out_scale| <= 0.5 keeps |q| below 2^31 for any
// sum, so the conversion never overflows.
// The window k.near is kFoldedNearHalf or a smaller power of two (so the constant stays exact)
// still above the bound for this strip's biases (and at least least_window, the residual
// sum's, which shares it): a lane whose |quotient| exceeds 256 saturates
// alike either way (zero in [0, 255]), so the bound needs |q - zero| <= 257 only, and with
// small biases (ResNet's: |bias / out_scale| ~ 50) the window is 2^-12: a quarter as many rows
// take the exact steps (a 1x1 convolution's merge is most of its time).
template <int NV>
bool fold_strip(const Int8U8Strip& s, const Requantizer& rq, StripColumns<NV>& k, double least_window) {
  bool folds = rq.by_inverse && s.out_scale > 0.0f;
  __m512 bias_quotient[NV];
  float largest_bias = 0.0f;
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    const __mmask16 m = k.cols[v];
    const __m512 bias = s.bias ? _mm512_maskz_loadu_ps(m, s.bias + 16 * v) : _mm512_setzero_ps();
    bias_quotient[v] = _mm512_mul_ps(bias, rq.inverse);
    k.scale[v] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s.scale + 16 * v), rq.inverse);
    // (NaN fails the compares too)
    folds = folds &&
            _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(bias_quotient[v]), _mm512_set1_ps(kFoldedBiasLimit), _CMP_LE_OQ) ==
                m &&
            _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(k.scale[v]), _mm512_set1_ps(0.5f), _CMP_LE_OQ) == m;
    largest_bias = std::max(largest_bias, _mm512_reduce_max_ps(_mm512_abs_ps(bias_quotient[v])));
  }
  const double bound = std::ldexp(6.0 * 257 + 6.0 * largest_bias + 2.0 * s.out_zero + 512.0, -24);
  float window = kFoldedNearHalf;
  while (window > 1.0f / 65536.0f && 0.5 * window > bound && 0.5 * window >= least_window) window *= 0.5f;
  while (window < least_window) window *= 2.0f;
  k.near = _mm512_set1_ps(2.0f * window);
  const __m512 shift = _mm512_set1_ps((float)s.out_zero - 127.5f + window);
  AIOV_UNROLL for (int v = 0; v < NV; ++v) k.bias[v] = _mm512_add_ps(bias_quotient[v], shift);
  return folds;
}

// The residual sum's folded form, from the conv's bytes less 128 (t) and the residual's (r):
// q = t * (out_scale / sum_scale) + (r * (residual_scale / sum_scale) + shift), shift =
// (128 - out_zero) * out_scale / sum_scale - residual_zero * residual_scale / sum_scale +
// sum_zero - 127.5 (rounded once from double) + the window (one more rounding); then rounded
// down and saturated as the strips' folded merge is. With a = out_scale / sum_scale, b =
// residual_scale / sum_scale, u = 2^-24 and Q the exact quotient: only lanes with |Q| <= 257
// can round differently (past that both saturate alike: errors stay far below 0.5), and for
// them the separate steps' quotient (two products, their sum, the division, each rounded) is
// within u (255 a + 255 b + 2 * 257) of Q, and q within u (128 a + 510 b + 3 |shift| + 130) of
// Q + shift (the two ratios' and the shift's roundings, the inner multiply-add's over r b +
// shift and the outer one's over |q| <= 129, |t| <= 128, |r| <= 255). Both round alike unless
// q lies within their sum, u (383 a + 765 b + 3 |shift| + 644), of a half-integer. The window
// (shared with the strip's own fold, so one compare tests both) is at least 1.25 times that
// (second-order terms), not kFoldedNearHalf: with scales near one a lane falls in it 1 time
// in 8000, not 1 in 500 (a row of 32 columns would take the exact steps 6% of the time); the
// sum folds while the bound is at most 16000 (a window under 2^-9). Returns that least window
// (0 when the sum does not fold); the caller adds the window to the shift.
template <int NV>
double fold_strip_sum(const Int8U8Strip& s, StripColumns<NV>& k) {
  const double a = (double)s.out_scale / s.sum_scale, b = (double)s.residual_scale / s.sum_scale;
  const double unshifted = (128.0 - s.out_zero) * a - s.residual_zero * b + s.sum_zero - 127.5;
  const double bound = 383.0 * a + 765.0 * b + 3.0 * (std::abs(unshifted) + 1.0) + 644.0;
  k.sum_folds = s.sum_scale > 0.0f && s.sum_zero >= 0 && s.sum_zero <= 255 && a > 0.0 && b > 0.0 &&
                bound <= 16000.0;  // (false for NaN)
  k.sum_c_scale = _mm512_set1_ps((float)a);
  k.sum_r_scale = _mm512_set1_ps((float)b);
  k.sum_shift = _mm512_set1_ps((float)unshifted);
  k.c_low = _mm512_set1_ps(s.relu ? (float)s.out_zero - 128.0f : -128.0f);
  return k.sum_folds ? 1.25 * bound * std::ldexp(1.0, -24) : 0.0;
}

// SUM: the strip adds a residual (instantiated apart, so the strips without one keep the code
// they had).
template <int NV, bool RELU, bool SUM>
void vnni_u8_strip_panels(const Int8U8Strip& s) {
  const Requantizer rq = requantizer(s.out_scale, s.out_zero);
  StripColumns<NV> k;
  AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    k.cols[v] = head_mask(s.cols - 16 * v);
    k.add[v] = _mm512_maskz_loadu_epi32(k.cols[v], s.col_add + 16 * v);
  }
  double least_window = 0.0;
  if (SUM) {
    k.c_zero = _mm512_set1_ps((float)s.out_zero);
    k.c_scale = _mm512_set1_ps(s.out_scale);
    k.r_zero = _mm512_set1_ps((float)s.residual_zero);
    k.r_scale = _mm512_set1_ps(s.residual_scale);
    k.sum_rq = requantizer(s.sum_scale, s.sum_zero);
    least_window = fold_strip_sum<NV>(s, k);
  }
  k.folds = fold_strip<NV>(s, rq, k, least_window);
  if (SUM) {  // (the window: half k.near)
    k.sum_folds = k.sum_folds && k.folds;
    k.sum_shift = _mm512_add_ps(k.sum_shift, _mm512_mul_ps(k.near, _mm512_set1_ps(0.5f)));
  }
  // Calls as even as they go (49 rows as 7 x 7, not 6 x 8 + 1: a one-row call loads each B
  // vector for one product).
  constexpr int R = strip_rows_for(NV);
  const int64_t calls = (s.rows + R - 1) / R, base = s.rows / calls, wider = s.rows % calls;
  int64_t m = 0;
  for (int64_t c = 0; c < calls; ++c) {
    const int rows = (int)(base + (c < wider ? 1 : 0));
    const uint8_t* a = s.a + m * s.lda;
    uint8_t* out = s.c_u8 + m * s.ldc;
    const uint8_t* residual = s.residual ? s.residual + m * s.ld_residual : nullptr;
    if (rows == R)
      strip_rows<R, NV, RELU, SUM>(s, a, out, residual, k, rq);
    else
      strip_tail<NV, RELU, SUM>(s, a, out, residual, k, rq, rows);
    m += rows;
  }
}

template <int NV>
void vnni_u8_strip_panels(const Int8U8Strip& s) {
  if (s.residual)
    s.relu ? vnni_u8_strip_panels<NV, true, true>(s) : vnni_u8_strip_panels<NV, false, true>(s);
  else
    s.relu ? vnni_u8_strip_panels<NV, true, false>(s) : vnni_u8_strip_panels<NV, false, false>(s);
}

constexpr int kStripPanels = 3;

void vnni_u8_strip(const Int8U8Strip& s) {
  if (s.cols > 2 * kInt8PanelCols)
    vnni_u8_strip_panels<3>(s);
  else if (s.cols > kInt8PanelCols)
    vnni_u8_strip_panels<2>(s);
  else
    vnni_u8_strip_panels<1>(s);
}

const Int8KernelSet kVnni{"avx512_vnni", kVnniMR, kInt8Quad, &vnni_tile,     &range,
                          &quantize,     nullptr, nullptr,   &vnni_u8_strip, kStripPanels};

// ---- AMX ----------------------------------------------------------------------------------
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)

// C tiles 0-3 hold 16 x 16 s32, A tiles 4-5 16 rows x 64 u8, B tiles 6-7 16 groups of 4 K x
// 16 columns.
#include "kernels/amx_tiles.inc"

// Each K step's tiles are 16 A rows strided lda apart (too many streams for the hardware
// prefetcher) and 1-2 KB of B from L2: fetched into L1 this many steps ahead, the tile loads
// stop stalling TDPBUSD (one core, 32 x 1024 x 1024: 72 -> 56 us; 64 rows: 100 -> 90).
constexpr int kPrefetchSteps = 2;

template <bool TWO_ROWS, bool TWO_COLS>
void amx_tiles(const Int8Tile& t) {
  zero_result_tiles<TWO_ROWS, TWO_COLS>();
  const long a_bytes = (long)t.lda;
  const uint8_t* a1 = t.a + 16 * t.lda;
  const int8_t* b1 = t.b + t.b_panel_stride;
  for (int64_t k = 0; k < t.kp; k += kInt8AmxKStep) {
    const int64_t bk = k * kInt8PanelCols;  // 16 groups x 16 columns x 4 bytes per K step
    if (k + kPrefetchSteps * kInt8AmxKStep < t.kp) {
      const int64_t ka = k + kPrefetchSteps * kInt8AmxKStep, kb = bk + kPrefetchSteps * kInt8AmxKStep * kInt8PanelCols;
      for (int i = 0; i < 16; ++i) {
        _mm_prefetch((const char*)(t.b + kb + 64 * i), _MM_HINT_T0);
        if (TWO_COLS) _mm_prefetch((const char*)(b1 + kb + 64 * i), _MM_HINT_T0);
        _mm_prefetch((const char*)(t.a + i * t.lda + ka), _MM_HINT_T0);
        if (TWO_ROWS) _mm_prefetch((const char*)(a1 + i * t.lda + ka), _MM_HINT_T0);
      }
    }
    _tile_loadd(4, t.a + k, a_bytes);
    _tile_loadd(6, t.b + bk, 64);
    if (TWO_COLS) _tile_loadd(7, b1 + bk, 64);
    if (TWO_ROWS) _tile_loadd(5, a1 + k, a_bytes);
    _tile_dpbusd(0, 4, 6);
    if (TWO_COLS) _tile_dpbusd(1, 4, 7);
    if (TWO_ROWS) _tile_dpbusd(2, 5, 6);
    if (TWO_ROWS && TWO_COLS) _tile_dpbusd(3, 5, 7);
  }
  alignas(64) int32_t acc[32 * 32];
  store_result_tiles<TWO_ROWS, TWO_COLS>(acc);
  merge_tile<TWO_COLS ? 2 : 1>(acc, 32, t);
}

void amx_tile(const Int8Tile& t) {
  with_tile_counts(t.rows > 16, t.cols > kInt8PanelCols,
                   [&](auto two_rows, auto two_cols) { amx_tiles<two_rows(), two_cols()>(t); });
}

const Int8KernelSet kAmx{"amx", 32, kInt8AmxKStep, &amx_tile, &range, &quantize, &amx_begin, &amx_end, nullptr, 0};
#endif

}  // namespace

const Int8KernelSet* vnni_int8_kernels() { return &kVnni; }
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
const Int8KernelSet* amx_int8_kernels() { return &kAmx; }
#else
const Int8KernelSet* amx_int8_kernels() { return nullptr; }
#endif
#else
const Int8KernelSet* vnni_int8_kernels() { return nullptr; }
const Int8KernelSet* amx_int8_kernels() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
