// The epilogue loops, included by one translation unit per instruction set (epilogue.cpp,
// epilogue_avx2.cpp, epilogue_avx512.cpp) so each is compiled with that set's flags: GCC's
// target clones left the erf/tanh loops unvectorized. Not for use elsewhere.
#pragma once
#include "kernels/epilogue.hpp"
#include "kernels/scalar.hpp"

namespace aiov {
namespace epilogue_detail {
namespace {

// One loop per activation so each vectorizes on its own.
template <class F>
inline void rows_loop(float* __restrict y, int64_t n, const float* __restrict bias, const float* __restrict res, F f) {
  if (bias && res)
    for (int64_t j = 0; j < n; ++j) y[j] = f(y[j] + bias[j] + res[j]);
  else if (bias)
    for (int64_t j = 0; j < n; ++j) y[j] = f(y[j] + bias[j]);
  else if (res)
    for (int64_t j = 0; j < n; ++j) y[j] = f(y[j] + res[j]);
  else
    for (int64_t j = 0; j < n; ++j) y[j] = f(y[j]);
}

inline void epilogue_row(float* y, int64_t n, const float* bias, const float* res, const Activation& act) {
  const float a = act.alpha, b = act.beta;
  switch (act.kind) {
    case ActKind::none: return rows_loop(y, n, bias, res, [](float x) { return x; });
    // ReLU and clamp keep NaN and clamp as min(max(x, lo), hi) (see ReluF, ClampF).
    case ActKind::relu: return rows_loop(y, n, bias, res, [](float x) { return x < 0.0f ? 0.0f : x; });
    case ActKind::leaky_relu: return rows_loop(y, n, bias, res, [a](float x) { return x > 0.0f ? x : a * x; });
    case ActKind::clamp:
      return rows_loop(y, n, bias, res, [a, b](float x) {
        x = x < a ? a : x;
        return x > b ? b : x;
      });
    case ActKind::sigmoid: return rows_loop(y, n, bias, res, [](float x) { return fast_sigmoid(x); });
    case ActKind::tanh: return rows_loop(y, n, bias, res, [](float x) { return fast_tanh(x); });
    case ActKind::hswish:
      return rows_loop(y, n, bias, res, [](float x) {
        float r = x + 3.0f;
        r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);
        return x * r * (1.0f / 6.0f);
      });
    case ActKind::gelu_erf:
      return rows_loop(y, n, bias, res,
                       [](float x) { return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f)); });
    case ActKind::gelu_tanh:
      return rows_loop(y, n, bias, res, [](float x) {
        return 0.5f * x * (1.0f + fast_tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
      });
    case ActKind::swish: return rows_loop(y, n, bias, res, [](float x) { return x * fast_sigmoid(x); });
  }
}

}  // namespace

using RowFn = void (*)(float*, int64_t, const float*, const float*, const Activation&);
RowFn avx512_row();  // null when built without the instruction set
RowFn avx2_row();

}  // namespace epilogue_detail
}  // namespace aiov
