// MVN / LayerNorm rows (dispatch: ops/reduce.cpp) and RMSNorm rows (ops/rms_norm.cpp) with
// AVX-512 intrinsics. The mean and then
// the variance of x - mean (two passes, as the portable loop: no cancellation of a sum of
// squares) each over four independent accumulators, folded in f32; the output pass in L1.
// Rows go in blocks of up to 16 that fit in L1: the block's means and scales come from one
// vector division and root, where a scalar double division, root and division per row were a
// serial chain of ~100 cycles, most of the time of a row of 8 to 64 floats (ConvNeXt's and
// Swin's layer norms); the rows' sums are independent, so their reductions overlap. Rows of
// 2, 4, 8 or 16 floats lie whole in a vector: each vector's rows are normalized at once, the
// sums of each row's lanes made by in-register swaps (segment_sum). GroupNorm's rows
// (ops/normalization.cpp) go in the same blocks.
#include "kernels/normalize_row.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>

#include <algorithm>

namespace aiov {
namespace normalize_detail {
namespace {

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u); }

// Sum over the row of f(x) (f of 16 floats at a time), masked lanes adding zero.
template <class F>
inline float row_sum(const float* x, int64_t len, F f) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= len; i += 64) {
    s0 = _mm512_add_ps(s0, f(_mm512_loadu_ps(x + i)));
    s1 = _mm512_add_ps(s1, f(_mm512_loadu_ps(x + i + 16)));
    s2 = _mm512_add_ps(s2, f(_mm512_loadu_ps(x + i + 32)));
    s3 = _mm512_add_ps(s3, f(_mm512_loadu_ps(x + i + 48)));
  }
  for (; i < len; i += 16) {
    const __mmask16 m = tail_mask(len - i);
    s0 = _mm512_mask_add_ps(s0, m, s0, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// Each lane gets the sum of its aligned group of `len` lanes (len 1, 2, 4, 8 or 16).
inline __m512 segment_sum(__m512 v, int64_t len) {
  if (len >= 2) v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));         // neighbours
  if (len >= 4) v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));         // pairs in a 128-bit lane
  if (len >= 8) v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));   // neighbouring 128-bit lanes
  if (len >= 16) v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // the two 256-bit halves
  return v;
}

// 1 / sqrt(a) within an ulp or two of the rounded quotient: the 14-bit estimate and one Newton
// step. A vector division and root per vector of rows (one row at len 16) took longer than
// everything else together: their throughput is one per ~10 cycles.
inline __m512 reciprocal_sqrt(__m512 a) {
  const __m512 r = _mm512_rsqrt14_ps(a);
  const __m512 half_a_r = _mm512_mul_ps(_mm512_mul_ps(a, _mm512_set1_ps(0.5f)), r);
  // r * (1.5 - 0.5 * a * r * r)
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(half_a_r, r, _mm512_set1_ps(1.5f)));
}

// Rows of len 2, 4, 8 or 16, 16 / len of them per vector; gamma and beta repeated to 16 lanes.
void normalize_short_rows(const float* x, float* y, int64_t rows, int64_t len, bool norm_var, double eps,
                          bool eps_outside, const float* gamma, const float* beta) {
  alignas(64) float g[16], b[16];
  for (int i = 0; i < 16; ++i) {
    g[i] = gamma ? gamma[i % len] : 1.0f;
    b[i] = beta ? beta[i % len] : 0.0f;
  }
  const __m512 gv = _mm512_load_ps(g), bv = _mm512_load_ps(b);
  const __m512 inv_n = _mm512_set1_ps(1.0f / (float)len), e = _mm512_set1_ps((float)eps);
  const __m512 one = _mm512_set1_ps(1.0f);
  const int64_t total = rows * len;
  for (int64_t i = 0; i < total; i += 16) {
    // A partial last vector holds whole rows (16 is a multiple of len); its other lanes are 0.
    const __mmask16 k = tail_mask(total - i);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    // Times 1 / len (a power of two: exact) rather than divided.
    const __m512 d = _mm512_sub_ps(v, _mm512_mul_ps(segment_sum(v, len), inv_n));
    __m512 out = d;
    if (norm_var) {
      const __m512 var = _mm512_mul_ps(segment_sum(_mm512_mul_ps(d, d), len), inv_n);
      const __m512 sc = eps_outside ? _mm512_div_ps(one, _mm512_add_ps(_mm512_sqrt_ps(var), e))
                                    : reciprocal_sqrt(_mm512_add_ps(var, e));
      out = _mm512_mul_ps(d, sc);
    }
    if (gamma) out = _mm512_mul_ps(out, gv);
    if (beta) out = _mm512_add_ps(out, bv);
    _mm512_mask_storeu_ps(y + i, k, out);
  }
}

// Rows per block: up to 16 (one vector of means), their floats within 24 KiB of L1.
constexpr int64_t kBlockRows = 16;
constexpr int64_t kBlockFloats = 6144;

// The means and 1 / deviations (1 without norm_var) of nb <= kBlockRows rows of len floats.
void block_statistics(const float* xb, int64_t nb, int64_t len, bool norm_var, double eps, bool eps_outside,
                      float* mean, float* scale) {
  const __m512 n = _mm512_set1_ps((float)len), e = _mm512_set1_ps((float)eps), one = _mm512_set1_ps(1.0f);
  for (int64_t j = 0; j < nb; ++j) mean[j] = row_sum(xb + j * len, len, [](__m512 v) { return v; });
  _mm512_store_ps(mean, _mm512_div_ps(_mm512_load_ps(mean), n));
  __m512 sc = one;
  if (norm_var) {
    for (int64_t j = 0; j < nb; ++j) {
      const __m512 m = _mm512_set1_ps(mean[j]);
      scale[j] = row_sum(xb + j * len, len, [m](__m512 v) {
        const __m512 d = _mm512_sub_ps(v, m);
        return _mm512_mul_ps(d, d);
      });
    }
    const __m512 var = _mm512_div_ps(_mm512_load_ps(scale), n);
    sc = eps_outside ? _mm512_div_ps(one, _mm512_add_ps(_mm512_sqrt_ps(var), e))
                     : _mm512_div_ps(one, _mm512_sqrt_ps(_mm512_add_ps(var, e)));
  }
  _mm512_store_ps(scale, sc);
}

void normalize_rows_avx512(const float* x, float* y, int64_t rows, int64_t len, bool norm_var, double eps,
                           bool eps_outside, const float* gamma, const float* beta) {
  if (len == 2 || len == 4 || len == 8 || len == 16)
    return normalize_short_rows(x, y, rows, len, norm_var, eps, eps_outside, gamma, beta);
  const int64_t block = std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(len, 1), 1, kBlockRows);
  alignas(64) float mean[kBlockRows] = {}, scale[kBlockRows] = {};
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    const float* xb = x + r0 * len;
    float* yb = y + r0 * len;
    block_statistics(xb, nb, len, norm_var, eps, eps_outside, mean, scale);
    for (int64_t j = 0; j < nb; ++j) {
      const __m512 m = _mm512_set1_ps(mean[j]), s = _mm512_set1_ps(scale[j]);
      const float* xr = xb + j * len;
      float* yr = yb + j * len;
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 k = tail_mask(len - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + i), m), s);
        if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, gamma + i));
        if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, beta + i));
        _mm512_mask_storeu_ps(yr + i, k, v);
      }
    }
  }
}

// GroupNorm in the same blocks: each row's mean and scale as above, then each channel's run of
// the row in one pass, x * k + d with k = scale * gamma, d = beta - mean * k (a masked tail per
// run, where a separate scale-shift loop over wav2vec2's 79-float channels ran a scalar one).
void group_norm_rows_avx512(const float* x, float* y, int64_t rows, int64_t len, double eps, bool eps_outside,
                            int64_t row0, int64_t groups, int64_t segment, const float* gamma, const float* beta) {
  const int64_t block = std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(len, 1), 1, kBlockRows);
  const int64_t per_row = segment > 0 ? len / segment : 0;
  alignas(64) float mean[kBlockRows] = {}, scale[kBlockRows] = {};
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    const float* xb = x + r0 * len;
    float* yb = y + r0 * len;
    block_statistics(xb, nb, len, true, eps, eps_outside, mean, scale);
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t c0 = (row0 + r0 + j) % groups * per_row;
      for (int64_t c = 0; c < per_row; ++c) {
        const float k = scale[j] * gamma[c0 + c], d = beta[c0 + c] - mean[j] * k;
        const __m512 kv = _mm512_set1_ps(k), dv = _mm512_set1_ps(d);
        const float* xr = xb + j * len + c * segment;
        float* yr = yb + j * len + c * segment;
        for (int64_t i = 0; i < segment; i += 16) {
          const __mmask16 mk = tail_mask(segment - i);
          _mm512_mask_storeu_ps(yr + i, mk, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, xr + i), kv, dv));
        }
      }
    }
  }
}

// RMSNorm in the same blocks: each row's sum of squares, then the block's 16 scales at once.
void rms_norm_rows_avx512(const float* x, float* y, int64_t rows, int64_t len, float eps, const float* gamma) {
  const int64_t block = std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(len, 1), 1, kBlockRows);
  const __m512 n = _mm512_set1_ps((float)len), e = _mm512_set1_ps(eps), one = _mm512_set1_ps(1.0f);
  alignas(64) float scale[kBlockRows] = {};
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    const float* xb = x + r0 * len;
    float* yb = y + r0 * len;
    for (int64_t j = 0; j < nb; ++j)
      scale[j] = row_sum(xb + j * len, len, [](__m512 v) { return _mm512_mul_ps(v, v); });
    const __m512 mean_square = _mm512_div_ps(_mm512_load_ps(scale), n);
    _mm512_store_ps(scale, _mm512_div_ps(one, _mm512_sqrt_ps(_mm512_add_ps(mean_square, e))));
    for (int64_t j = 0; j < nb; ++j) {
      const __m512 s = _mm512_set1_ps(scale[j]);
      const float* xr = xb + j * len;
      float* yr = yb + j * len;
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 k = tail_mask(len - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xr + i), s);
        if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, gamma + i));
        _mm512_mask_storeu_ps(yr + i, k, v);
      }
    }
  }
}

}  // namespace

NormalizeRowsFn avx512_normalize_rows() { return &normalize_rows_avx512; }
GroupNormRowsFn avx512_group_norm_rows() { return &group_norm_rows_avx512; }
RmsNormRowsFn avx512_rms_norm_rows() { return &rms_norm_rows_avx512; }

}  // namespace normalize_detail
}  // namespace aiov

#else
namespace aiov {
namespace normalize_detail {
NormalizeRowsFn avx512_normalize_rows() { return nullptr; }
GroupNormRowsFn avx512_group_norm_rows() { return nullptr; }
RmsNormRowsFn avx512_rms_norm_rows() { return nullptr; }
}  // namespace normalize_detail
}  // namespace aiov
#endif
