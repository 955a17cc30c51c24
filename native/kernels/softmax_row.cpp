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

}  // namespace

void softmax_row(const float* x, float* y, int64_t n) {
  static const softmax_detail::SoftmaxFn row = [] {
    softmax_detail::SoftmaxFn f = nullptr;
    if (selected_isa() == Isa::avx512) f = softmax_detail::avx512_softmax();
    return f ? f : &softmax_row_portable;
  }();
  row(x, y, n);
}

}  // namespace aiov
