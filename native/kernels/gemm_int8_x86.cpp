// Integer GEMM kernels for x86: AVX512-VNNI dot products (VPDPBUSD: four u8 x s8 products
// added into each s32 lane, with no intermediate saturation; up to 12 rows x 32 columns in
// zmm accumulators) and AMX tiles (TDPBUSD, 2 x 2 tiles of 16 x 16 s32 per call), with the
// zero-point correction and the dequantizing merge into C. Compiled with AVX-512 VNNI and
// (when the compiler has them) AMX flags; reached only after the dispatcher saw the
// instructions in CPUID/XCR0 and Linux granted the tile state.
#include "kernels/gemm_int8.hpp"

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
      y[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(x), scale[v]);
      if (BIAS) y[v] = _mm512_add_ps(y[v], bias[v]);
      if (RELU) y[v] = _mm512_max_ps(y[v], _mm512_setzero_ps());
      if (D == Dest::f32) _mm512_mask_storeu_ps(c_f32 + r * ldc + 16 * v, cols[v], y[v]);
    }
    if (D == Dest::u8) {
      __m512i bytes[NV];
      requantized_u8<NV>(y, rq, bytes);
      AIOV_UNROLL for (int v = 0; v < NV; ++v)
          _mm512_mask_cvtusepi32_storeu_epi8(c_u8 + r * ldc + 16 * v, cols[v], bytes[v]);
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

const Int8KernelSet kVnni{"avx512_vnni", kVnniMR, kInt8Quad, &vnni_tile, &range, &quantize, nullptr, nullptr};

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

const Int8KernelSet kAmx{"amx", 32, kInt8AmxKStep, &amx_tile, &range, &quantize, &amx_begin, &amx_end};
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
