// bf16 GEMM kernels for x86: AMX tiles (TDPBF16PS, 2 x 2 tiles of 16 x 16 f32 per call) and
// AVX512_BF16 dot products (VDPBF16PS, up to 12 rows x 32 columns in zmm accumulators),
// with the f32 -> bf16 rounding both use to pack A, and the merge into C. Compiled with
// AVX-512, AVX512_BF16 and (when the compiler has them) AMX flags; only reached after the
// dispatcher saw the instructions in CPUID/XCR0 and Linux granted the tile state.
// Everything here stays in an anonymous namespace (see gemm_avx512.cpp).
#include "kernels/gemm_bf16.hpp"

#include <cstring>
#include <type_traits>

#include "kernels/erf_coefficients.hpp"
#include "kernels/exp_coefficients.hpp"
#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace gemm_detail {
#if defined(AIOV_X86) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
namespace {

#define AIOV_UNROLL _Pragma("GCC unroll 16")

#include "kernels/gemm_merge_avx512.inc"
#include "kernels/exp_avx512.inc"

// Round to nearest even (VCVTNEPS2BF16; NaN stays NaN, denormals become zero).
void convert(const float* src, int64_t n, float scale, uint16_t* dst) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(src + i);
    if (scale != 1.0f) x = _mm512_mul_ps(x, s);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)_mm512_cvtneps_pbh(x));
  }
  if (i < n) {
    const __mmask16 m = head_mask((int)(n - i));
    __m512 x = _mm512_maskz_loadu_ps(m, src + i);
    if (scale != 1.0f) x = _mm512_mul_ps(x, s);
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(x));
  }
}

// Gelu's erf form in the merge, on registers: 0.5 x (1 + erf(x / sqrt 2)) with fast_erf's
// rational fit (erf_coefficients.hpp). The pass over each finished block it replaces cost
// BERT's FFN product a tenth of its time (a call per row of 32 values).
struct GeluErfMerged {
  __m512 operator()(__m512 x) const {
    using namespace erf_f32;
    const __m512 bound = _mm512_set1_ps(kBound);
    // max/min return their second operand for a NaN: it stays NaN.
    __m512 xc = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    xc = _mm512_min_ps(bound, _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), bound), xc));
    const __m512 s = _mm512_mul_ps(xc, xc);
    __m512 p = _mm512_set1_ps(kP[0]);
    AIOV_UNROLL for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(kP[i]));
    __m512 q = _mm512_set1_ps(kQ[0]);
    AIOV_UNROLL for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(kQ[i]));
    const __m512 erf = _mm512_div_ps(_mm512_mul_ps(xc, p), _mm512_fmadd_ps(s, q, _mm512_set1_ps(1.0f)));
    const __m512 half = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(half, erf, half);
  }
};

// ---- AVX512_BF16 ----------------------------------------------------------------------
// R rows x NV zmm of columns: per pair of K, NV panel loads and R broadcasts of a row's
// pair feed R * NV dot products (24 accumulators at R = 12, NV = 2).
constexpr int kDpMR = 12;

template <int R, int NV, bool GELU>
void dp_rows(const Bf16Tile& t) {
  __m512 acc[R][NV];
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const uint16_t* b0 = t.b;
  const uint16_t* b1 = t.b + t.b_panel_stride;
  const uint16_t* a = t.a;
  const int64_t lda = t.lda, pairs = t.kp / 2;
  for (int64_t kk = 0; kk < pairs; ++kk) {
    __m512bh bv[NV];
    bv[0] = (__m512bh)_mm512_loadu_si512(b0 + kk * 2 * kBf16PanelCols);
    if (NV > 1) bv[NV - 1] = (__m512bh)_mm512_loadu_si512(b1 + kk * 2 * kBf16PanelCols);
    AIOV_UNROLL for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * kk, sizeof pair);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      AIOV_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  AIOV_UNROLL for (int r = 0; r < R; ++r) AIOV_UNROLL for (int v = 0; v < NV; ++v) {
    if (GELU)
      merge_vec(acc[r][v], t.out, r, v, GeluErfMerged{});
    else
      merge_vec(acc[r][v], t.out, r, v);
  }
}

template <int NV, bool GELU>
void dp_tile_cols(const Bf16Tile& t) {
  switch (t.out.rows) {
#define AIOV_DP_ROWS(R) \
  case R:               \
    return dp_rows<R, NV, GELU>(t);
    AIOV_DP_ROWS(1)
    AIOV_DP_ROWS(2)
    AIOV_DP_ROWS(3)
    AIOV_DP_ROWS(4)
    AIOV_DP_ROWS(5)
    AIOV_DP_ROWS(6)
    AIOV_DP_ROWS(7)
    AIOV_DP_ROWS(8)
    AIOV_DP_ROWS(9)
    AIOV_DP_ROWS(10)
    AIOV_DP_ROWS(11)
#undef AIOV_DP_ROWS
    default:
      return dp_rows<kDpMR, NV, GELU>(t);
  }
}

void dp_tile(const Bf16Tile& t) {
  const bool two = t.out.cols > kBf16PanelCols;
  if (t.gelu_erf)
    two ? dp_tile_cols<2, true>(t) : dp_tile_cols<1, true>(t);
  else
    two ? dp_tile_cols<2, false>(t) : dp_tile_cols<1, false>(t);
}

const Bf16KernelSet kAvx512Bf16{"avx512_bf16", kDpMR, &dp_tile, &convert, nullptr, nullptr, true};

// ---- the attention's steps -------------------------------------------------------------

// Row n of K is column n of K^T: 16 rows are rounded into `rows` (16 x kp values, pairs of d
// as 32-bit words), then each pair row of the panel is one gather of a word from each of
// them, where scattering 4-byte pairs cost a store each.
void pack_keys(const float* k, int64_t ldk, int64_t sk, int64_t d, int64_t kp, uint16_t* panels, uint16_t* rows) {
  const int64_t words = kp / 2;
  const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)words));
  for (int64_t n0 = 0; n0 < sk; n0 += kBf16PanelCols) {
    for (int64_t j = 0; j < kBf16PanelCols; ++j) {
      uint16_t* row = rows + j * kp;
      for (int64_t c = 0; c < kp; c += 16) {  // past d and past sk: zeros
        const __mmask16 m = n0 + j < sk ? head_mask((int)(d - c)) : (__mmask16)0;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + c),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, k + (n0 + j) * ldk + c)));
      }
    }
    uint16_t* panel = panels + (n0 / kBf16PanelCols) * kp * kBf16PanelCols;
    for (int64_t w = 0; w < words; ++w)
      _mm512_storeu_si512(panel + w * 2 * kBf16PanelCols, _mm512_i32gather_epi32(index, rows + 2 * w, 4));
  }
}

// Rows 2i and 2i + 1 rounded together (VCVTNE2PS2BF16) and interleaved by one word permute:
// a pair row of a panel per 16 columns.
void pack_values(const float* v, int64_t ldv, int64_t sk, int64_t dv, int64_t kp, uint16_t* panels) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t k = 0; k < sk; k += 2) {
    const float* even = v + k * ldv;
    const float* odd = even + ldv;
    const bool has_odd = k + 1 < sk;
    for (int64_t c = 0; c < dv; c += kBf16PanelCols) {
      const __mmask16 m = head_mask((int)(dv - c));
      const __m512 lo = _mm512_maskz_loadu_ps(m, even + c);
      const __m512 hi = has_odd ? _mm512_maskz_loadu_ps(m, odd + c) : _mm512_setzero_ps();
      const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // lo in words 0-15, hi in 16-31
      _mm512_storeu_si512(panels + c * kp + (k / 2) * 2 * kBf16PanelCols, _mm512_permutexvar_epi16(interleave, both));
    }
  }
}

// Bias and max, then the exponentials rounded as they are summed: two passes over a row in
// L1, where the bias, softmax_row's three and the rounding were five. The division by the sum
// is left to the product's output (Dv values a row, not Sk).
void probabilities(float* scores, int64_t ld, int64_t rows, int64_t n, const float* bias, int64_t bias_step,
                   bool per_score, float low_exp, uint16_t* dst, int64_t ldd, float* inverse_sums) {
  const __m512 low = _mm512_set1_ps(low_exp);
  for (int64_t r = 0; r < rows; ++r) {
    float* x = scores + r * ld;
    const float* b = bias ? bias + r * bias_step : nullptr;
    const __m512 row_bias = b && !per_score ? _mm512_set1_ps(b[0]) : _mm512_setzero_ps();
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      __m512 s = _mm512_maskz_loadu_ps(m, x + j);
      s = _mm512_add_ps(s, b && per_score ? _mm512_maskz_loadu_ps(m, b + j) : row_bias);
      _mm512_mask_storeu_ps(x + j, m, s);
      // NaN scores are skipped here and make the row NaN through their exponential.
      mx = _mm512_mask_max_ps(mx, m, s, mx);
    }
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    uint16_t* p = dst + r * ldd;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), top), low);
      sum = _mm512_mask_add_ps(sum, m, sum, e);
      _mm256_mask_storeu_epi16(p + j, m, (__m256i)_mm512_cvtneps_pbh(e));
    }
    inverse_sums[r] = 1.0f / _mm512_reduce_add_ps(sum);
  }
}

const Bf16AttentionKernels kAttention{&pack_keys, &pack_values, &probabilities};

// ---- AMX --------------------------------------------------------------------------------
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)

// C tiles 0-3 hold 16 x 16 f32, A tiles 4-5 16 rows x 32 bf16, B tiles 6-7 16 pairs of K x 16
// columns.
#include "kernels/amx_tiles.inc"

// Up to 32 rows (two A tiles) x 32 columns (two B tiles): TWO_ROWS / TWO_COLS say whether
// the second tile of each is needed.
template <bool TWO_ROWS, bool TWO_COLS>
void amx_tiles(const Bf16Tile& t) {
  zero_result_tiles<TWO_ROWS, TWO_COLS>();
  const long a_bytes = (long)(t.lda * 2);
  const uint16_t* a1 = t.a + 16 * t.lda;
  const uint16_t* b1 = t.b + t.b_panel_stride;
  for (int64_t k = 0; k < t.kp; k += kBf16KStep) {
    const int64_t bk = k * kBf16PanelCols;  // 16 pairs x 16 columns x 2 per K step
    _tile_loadd(4, t.a + k, a_bytes);
    _tile_loadd(6, t.b + bk, 64);
    if (TWO_COLS) _tile_loadd(7, b1 + bk, 64);
    if (TWO_ROWS) _tile_loadd(5, a1 + k, a_bytes);
    _tile_dpbf16ps(0, 4, 6);
    if (TWO_COLS) _tile_dpbf16ps(1, 4, 7);
    if (TWO_ROWS) _tile_dpbf16ps(2, 5, 6);
    if (TWO_ROWS && TWO_COLS) _tile_dpbf16ps(3, 5, 7);
  }
  const Tile& o = t.out;
  if (!o.load_c && !o.bias && !o.residual && !o.clamp && !t.gelu_erf && o.rows == (TWO_ROWS ? 32 : 16) &&
      o.cols == (TWO_COLS ? 32 : 16)) {
    // Whole tiles with nothing to merge (the attention's products): stored straight into C,
    // not through a copy and a second pass.
    char* c = reinterpret_cast<char*>(o.c);
    const long ld = (long)(o.ldc * 4);
    _tile_stored(0, c, ld);
    if (TWO_COLS) _tile_stored(1, c + 64, ld);
    if (TWO_ROWS) _tile_stored(2, c + 16 * ld, ld);
    if (TWO_ROWS && TWO_COLS) _tile_stored(3, c + 16 * ld + 64, ld);
    return;
  }
  alignas(64) float acc[32 * 32];
  store_result_tiles<TWO_ROWS, TWO_COLS>(acc);
  const int vecs = TWO_COLS ? 2 : 1;
  for (int r = 0; r < t.out.rows; ++r)
    for (int v = 0; v < vecs; ++v) {
      const __m512 x = _mm512_load_ps(acc + r * 32 + 16 * v);
      if (t.gelu_erf)
        merge_vec(x, t.out, r, v, GeluErfMerged{});
      else
        merge_vec(x, t.out, r, v);
    }
}

void amx_tile(const Bf16Tile& t) {
  with_tile_counts(t.out.rows > 16, t.out.cols > kBf16PanelCols,
                   [&](auto two_rows, auto two_cols) { amx_tiles<two_rows(), two_cols()>(t); });
}

const Bf16KernelSet kAmx{"amx", 32, &amx_tile, &convert, &amx_begin, &amx_end, true};
#endif

}  // namespace

const Bf16KernelSet* avx512_bf16_kernels() { return &kAvx512Bf16; }
const Bf16AttentionKernels* avx512_bf16_attention_kernels() { return &kAttention; }
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
const Bf16KernelSet* amx_bf16_kernels() { return &kAmx; }
#else
const Bf16KernelSet* amx_bf16_kernels() { return nullptr; }
#endif
#else
const Bf16KernelSet* avx512_bf16_kernels() { return nullptr; }
const Bf16AttentionKernels* avx512_bf16_attention_kernels() { return nullptr; }
const Bf16KernelSet* amx_bf16_kernels() { return nullptr; }
#endif

}  // namespace gemm_detail
}  // namespace aiov
