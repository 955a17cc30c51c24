// The row loops of MVN, LayerNorm (ops/reduce.cpp) and RMSNorm (ops/rms_norm.cpp) with AVX-512 intrinsics: the portable
// loop (a target clone) kept one chain of dependent adds per pass and folded its 16 partial sums in 16 serial double
// adds, about 110 ns a row of 384 even with the row in L2.
#pragma once
#include <cstdint>

namespace aiov {
namespace normalize_detail {
// Over each of `rows` rows of len floats: y = (x - mean) * scale (* gamma + beta), scale =
// 1 / sqrt(var + eps) (1 / (sqrt(var) + eps) when eps_outside; 1 without norm_var); gamma,
// beta [len] may be null.
using NormalizeRowsFn = void (*)(const float* x, float* y, int64_t rows, int64_t len, bool norm_var, double eps,
                                 bool eps_outside, const float* gamma, const float* beta);
NormalizeRowsFn avx512_normalize_rows();  // null when built without AVX-512 (normalize_avx512.cpp)
// aiov.GroupNorm's rows (ops/normalization.cpp): normalized as above (norm_var), then each run
// of `segment` floats (a channel; len is a multiple of it) times gamma[ch] plus beta[ch] in the
// same pass, ch = ((row0 + r) % groups) * (len / segment) + the run's index in row r.
using GroupNormRowsFn = void (*)(const float* x, float* y, int64_t rows, int64_t len, double eps, bool eps_outside,
                                 int64_t row0, int64_t groups, int64_t segment, const float* gamma, const float* beta);
GroupNormRowsFn avx512_group_norm_rows();  // null when built without AVX-512
// aiov.RMSNorm's rows (ops/rms_norm.cpp): y = x / sqrt(mean(x^2) + eps) (* gamma, may be null).
using RmsNormRowsFn = void (*)(const float* x, float* y, int64_t rows, int64_t len, float eps, const float* gamma);
RmsNormRowsFn avx512_rms_norm_rows();  // null when built without AVX-512
}  // namespace normalize_detail
}  // namespace aiov
