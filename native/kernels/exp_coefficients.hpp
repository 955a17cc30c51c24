// The constants of aiov's f32 exp: exp(x) = 2^k * P(r) with k = round(x * log2(e)),
// r = x - k * ln 2 (ln 2 split in two for precision) and P the Taylor terms up to r^6,
// enough for |r| <= ln2/2. fast_exp (scalar.hpp) and the intrinsics kernels
// (softmax_avx512.cpp) use the same ones. Constants only: safe to include in a translation
// unit compiled for another instruction set.
#pragma once

namespace aiov {
namespace exp_f32 {
constexpr float kLowest = -104.0f;  // below: exp underflows to 0 in f32
constexpr float kHighest = 88.72f;  // above: +inf
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.428606765330187e-06f;
// P(r) = 1 + r + r^2 (c2 + r (c3 + r (c4 + r (c5 + r c6))))
constexpr float kC6 = 1.3888949e-3f;
constexpr float kC5 = 8.3333310e-3f;
constexpr float kC4 = 4.1666638e-2f;
constexpr float kC3 = 1.6666667e-1f;
constexpr float kC2 = 0.5f;
}  // namespace exp_f32
}  // namespace aiov
