#include "kernels/softmax_row.hpp"

#include <cmath>

#include "kernels/dispatch.hpp"
#include "kernels/isa.hpp"
#include "kernels/scalar.hpp"

namespace aiov {
namespace {

// Max and sum over 16 partial lanes: a single float accumulator would not vectorize (GCC
// keeps its order), and the exponentials get a loop of their own.
AIOV_MULTIVERSION
void softmax_row_portable(const float* x, float* y, int64_t n) {
  constexpr int kLanes = 16;
  float part[kLanes];
  for (int l = 0; l < kLanes; ++l) part[l] = -INFINITY;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] = x[j + l] > part[l] ? x[j + l] : part[l];
  float mx = -INFINITY;
  for (; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  for (int l = 0; l < kLanes; ++l) mx = part[l] > mx ? part[l] : mx;
  // No subnormals (softmax_row.hpp), not even in the exp computed for a lane that gives 0.
  const float low = softmax_detail::lowest_kept(n);
  for (j = 0; j < n; ++j) {
    const float d = x[j] - mx;
    y[j] = d < low ? 0.0f : fast_exp(d < low ? low : d);
  }
  for (int l = 0; l < kLanes; ++l) part[l] = 0.0f;
  for (j = 0; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += y[j + l];
  float sum = 0.0f;
  for (; j < n; ++j) sum += y[j];
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  const float inv = 1.0f / sum;
  for (j = 0; j < n; ++j) y[j] *= inv;
}

// The max of each of n columns over len rows, stride apart (inlined into each caller's
// instruction-set clone).
[[gnu::always_inline]] inline void column_max(const float* x, int64_t len, int64_t n, int64_t stride, float* mx) {
  for (int64_t c = 0; c < n; ++c) mx[c] = x[c];
  for (int64_t l = 1; l < len; ++l) {
    const float* row = x + l * stride;
    for (int64_t c = 0; c < n; ++c) mx[c] = row[c] > mx[c] ? row[c] : mx[c];
  }
}

}  // namespace

// As softmax_row_portable, one column per lane of each loop (the same fast_exp and the same
// floor below which a probability is 0).
AIOV_MULTIVERSION
void softmax_columns(const float* x, float* y, int64_t len, int64_t n, int64_t stride) {
  float mx[kSoftmaxColumns], sum[kSoftmaxColumns];
  column_max(x, len, n, stride, mx);
  for (int64_t c = 0; c < n; ++c) sum[c] = 0.0f;
  const float low = softmax_detail::lowest_kept(len);
  for (int64_t l = 0; l < len; ++l) {
    const float* row = x + l * stride;
    float* out = y + l * stride;
    for (int64_t c = 0; c < n; ++c) {
      const float d = row[c] - mx[c];
      const float e = d < low ? 0.0f : fast_exp(d < low ? low : d);
      out[c] = e;
      sum[c] += e;
    }
  }
  for (int64_t c = 0; c < n; ++c) sum[c] = 1.0f / sum[c];
  for (int64_t l = 0; l < len; ++l) {
    float* out = y + l * stride;
    for (int64_t c = 0; c < n; ++c) out[c] *= sum[c];
  }
}

AIOV_MULTIVERSION
void log_softmax_columns(const float* x, float* y, int64_t len, int64_t n, int64_t stride) {
  float mx[kSoftmaxColumns], sum[kSoftmaxColumns];
  column_max(x, len, n, stride, mx);
  for (int64_t c = 0; c < n; ++c) sum[c] = 0.0f;
  // Terms below the floor are dropped: they add nothing a float sum of at least 1 keeps.
  const float low = softmax_detail::lowest_kept(len);
  for (int64_t l = 0; l < len; ++l) {
    const float* row = x + l * stride;
    for (int64_t c = 0; c < n; ++c) {
      const float d = row[c] - mx[c];
      sum[c] += d < low ? 0.0f : fast_exp(d < low ? low : d);
    }
  }
  for (int64_t c = 0; c < n; ++c) sum[c] = mx[c] + std::log(sum[c]);
  for (int64_t l = 0; l < len; ++l) {
    const float* row = x + l * stride;
    float* out = y + l * stride;
    for (int64_t c = 0; c < n; ++c) out[c] = row[c] - sum[c];
  }
}

void softmax_row(const float* x, float* y, int64_t n) {
  static const softmax_detail::SoftmaxFn row = [] {
    softmax_detail::SoftmaxFn f = nullptr;
    if (selected_isa() == Isa::avx512) f = softmax_detail::avx512_softmax();
    return f ? f : &softmax_row_portable;
  }();
  row(x, y, n);
}

}  // namespace aiov
