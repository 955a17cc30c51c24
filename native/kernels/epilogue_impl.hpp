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
  switch (act.kind) {
#define AIOV_ACT_CASE(kind, F) \
  case ActKind::kind:          \
    return rows_loop(y, n, bias, res, act::F{act.alpha, act.beta});
    AIOV_ACTIVATIONS(AIOV_ACT_CASE)
#undef AIOV_ACT_CASE
  }
}

}  // namespace

using RowFn = void (*)(float*, int64_t, const float*, const float*, const Activation&);
RowFn avx512_row();  // null when built without the instruction set
RowFn avx2_row();

}  // namespace epilogue_detail
}  // namespace aiov
