// The f32 attention head with AVX-512 intrinsics (see attention_f32.hpp for why and
// F32Attention for when). Per head, K^T's panels already made (F32Attention::head), per
// block of up to kRowBlock query rows: the scores, rows x 32 keys at a
// time, in 16 accumulators fed by Q's elements broadcast from its rows; the bias and the
// exponentials in place in the L1 block, their sums kept; P V, rows x 32 values at a time,
// V's rows read where they lie (masked to Dv), and each output row scaled by 1 / its sum.
#include "kernels/attention_f32.hpp"

#if defined(__AVX512F__)
#include <algorithm>
#include <cmath>

#include "kernels/exp_coefficients.hpp"
#include "kernels/softmax_row.hpp"
#include "kernels/x86_intrinsics.hpp"

namespace aiov {
namespace attention_f32_detail {
namespace {

#include "kernels/exp_avx512.inc"

constexpr int64_t kPanel = kPanelKeys;

// Scores of R query rows (ldq apart) against NP panels: out[r][0, 16 NP), rows ld apart.
template <int R, int NP>
[[gnu::always_inline]] inline void score_tile(const float* q, int64_t ldq, const float* panels, int64_t d, float* out,
                                              int64_t ld) {
  __m512 acc[R][NP];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    __m512 b[NP];
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) b[p] = _mm512_loadu_ps(panels + p * d * kPanel + k * kPanel);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(q[r * ldq + k]);
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(a, b[p], acc[r][p]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) _mm512_storeu_ps(out + r * ld + p * kPanel, acc[r][p]);
}

// out[r][0, 16 NV) (the last vector masked to `last`) = inverse[r] * sum over j < sk of
// probs[r][j] * v[j]: R rows of exponentials (ldp apart) times V's rows (ldv apart).
template <int R, int NV>
[[gnu::always_inline]] inline void value_tile(const float* probs, int64_t ldp, int64_t sk, const float* v, int64_t ldv,
                                              __mmask16 last, const float* inverse, float* out, int64_t ldo) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) acc[r][x] = _mm512_setzero_ps();
  for (int64_t j = 0; j < sk; ++j) {
    __m512 b[NV];
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x)
      b[x] = x + 1 < NV ? _mm512_loadu_ps(v + j * ldv + x * kPanel)
                        : _mm512_maskz_loadu_ps(last, v + j * ldv + x * kPanel);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(probs[r * ldp + j]);
#pragma GCC unroll 2
      for (int x = 0; x < NV; ++x) acc[r][x] = _mm512_fmadd_ps(a, b[x], acc[r][x]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 inv = _mm512_set1_ps(inverse[r]);
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) {
      const __m512 y = _mm512_mul_ps(acc[r][x], inv);
      if (x + 1 < NV)
        _mm512_storeu_ps(out + r * ldo + x * kPanel, y);
      else
        _mm512_mask_storeu_ps(out + r * ldo + x * kPanel, last, y);
    }
  }
}

// One row of scores (n values, in a row of whole vectors) plus its bias (one per key, or
// bias[0] for all; null: none) turned into exp(score + bias - max) in place, lanes past n
// zeros; returns 1 / their sum. As softmax_row: NaN scores are skipped by the maximum and make
// the row NaN through their exponentials; exponentials whose probability would be subnormal
// are 0. The row is read and written in whole vectors, and the biased scores are made twice
// rather than stored between the passes: a load that follows a masked store to the same
// bytes is not forwarded the stored data and waits for it to reach the cache (ViT's rows of
// 17 keys ran a third slower).
float exponentiate(float* row, int64_t n, const float* bias, bool per_key, __m512 low) {
  auto biased = [&](int64_t j, __mmask16 m) {
    const __m512 x = _mm512_loadu_ps(row + j);
    if (!bias) return x;
    return _mm512_add_ps(x, per_key ? _mm512_maskz_loadu_ps(m, bias + j) : _mm512_set1_ps(bias[0]));
  };
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += kPanel) {
    const __mmask16 m = tail_mask(n - j);
    mx = _mm512_mask_max_ps(mx, m, biased(j, m), mx);
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += kPanel) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_nonpositive(_mm512_sub_ps(biased(j, m), top), low));
    _mm512_storeu_ps(row + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// Query rows [row0, row0 + R) of the head, K^T already packed.
template <int R>
void row_block(const HeadShape& s, const AttentionHead& h, const AttentionBias& bias, int64_t row0, __m512 low) {
  const float* q = h.q + row0 * h.ldq;
  const int64_t panels = (s.sk + kPanel - 1) / kPanel;
  int64_t p = 0;
  for (; p + 2 <= panels; p += 2)
    score_tile<R, 2>(q, h.ldq, s.k_panels + p * s.d * kPanel, s.d, s.scores + p * kPanel, s.ld_scores);
  if (p < panels) score_tile<R, 1>(q, h.ldq, s.k_panels + p * s.d * kPanel, s.d, s.scores + p * kPanel, s.ld_scores);

  float inverse[R];
  for (int r = 0; r < R; ++r) {
    const float* b = bias.rows ? bias.rows + (row0 + r) * bias.row_step : nullptr;
    inverse[r] = exponentiate(s.scores + r * s.ld_scores, s.sk, b, bias.per_key, low);
  }

  float* out = h.out + row0 * h.ldo;
  int64_t c = 0;
  for (; c + 2 * kPanel <= s.dv; c += 2 * kPanel)
    value_tile<R, 2>(s.scores, s.ld_scores, s.sk, h.v + c, h.ldv, 0xFFFF, inverse, out + c, h.ldo);
  const int64_t left = s.dv - c;
  if (left > kPanel)
    value_tile<R, 2>(s.scores, s.ld_scores, s.sk, h.v + c, h.ldv, tail_mask(left - kPanel), inverse, out + c, h.ldo);
  else if (left > 0)
    value_tile<R, 1>(s.scores, s.ld_scores, s.sk, h.v + c, h.ldv, tail_mask(left), inverse, out + c, h.ldo);
}

static_assert(kRowBlock == 8, "row_block is instantiated for 1 to 8 rows");

void head_avx512(const HeadShape& s, const AttentionHead& h, const AttentionBias& bias) {
  const __m512 low = _mm512_set1_ps(softmax_detail::lowest_kept(s.sk));
  int64_t row0 = 0;
  for (; row0 + kRowBlock <= s.sq; row0 += kRowBlock) row_block<8>(s, h, bias, row0, low);
  switch (s.sq - row0) {
    case 7:
      return row_block<7>(s, h, bias, row0, low);
    case 6:
      return row_block<6>(s, h, bias, row0, low);
    case 5:
      return row_block<5>(s, h, bias, row0, low);
    case 4:
      return row_block<4>(s, h, bias, row0, low);
    case 3:
      return row_block<3>(s, h, bias, row0, low);
    case 2:
      return row_block<2>(s, h, bias, row0, low);
    case 1:
      return row_block<1>(s, h, bias, row0, low);
    default:
      return;
  }
}

}  // namespace

HeadFn avx512_head() { return &head_avx512; }

}  // namespace attention_f32_detail
}  // namespace aiov

#else
namespace aiov {
namespace attention_f32_detail {
HeadFn avx512_head() { return nullptr; }
}  // namespace attention_f32_detail
}  // namespace aiov
#endif
