// The constants of aiov's erf for Gelu: erf(x) = x * P(x^2) / (1 + x^2 Q(x^2)) on |x| <= kBound
// (beyond it erf rounds to +-1 in f32), P and Q evaluated by Horner from the highest term.
// fast_erf (scalar.hpp) and the bf16 kernels' in-register Gelu (gemm_bf16_x86.cpp) use the same
// ones. Constants only: safe to include in a translation unit compiled for another instruction set.
#pragma once

namespace aiov {
namespace erf_f32 {
constexpr float kBound = 4.0f;
constexpr float kP[6] = {1.974692899e-06f, 2.880372450e-04f, 4.003807069e-03f,
                         5.346795401e-02f, 1.962537926e-01f, 1.128378977e+00f};
constexpr float kQ[5] = {3.747921530e-05f, 1.216384266e-03f, 1.544475303e-02f, 1.164782692e-01f, 5.072565551e-01f};
}  // namespace erf_f32
}  // namespace aiov
