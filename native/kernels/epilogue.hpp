// What a producing kernel (GEMM, convolution) applies to its results before storing them:
// a per-column bias, a residual tensor and an activation. Fusing these saves a full pass
// over the output per folded op.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/activations.hpp"

namespace aiov {

struct Activation {
  ActKind kind = ActKind::none;
  float alpha = 0.0f;  // the formula's parameters (see kernels/activations.hpp)
  float beta = 0.0f;
};

struct Epilogue {
  const float* bias = nullptr;      // [N], added to every row
  const float* residual = nullptr;  // [M, N] with row stride ld_residual, added after the bias
  int64_t ld_residual = 0;
  Activation act;  // applied last

  bool empty() const { return !bias && !residual && act.kind == ActKind::none; }
};

// y[0:n] = act(y + bias[0:n] + residual[0:n]) (null bias/residual: skipped), in place.
void apply_epilogue_row(float* y, int64_t n, const float* bias, const float* residual, const Activation& act);

// The same over rows x cols of C (row stride ldc); bias and residual are indexed from
// (row0, col0) of the whole matrix described by `e`.
void apply_epilogue(float* c, int64_t ldc, int64_t rows, int64_t cols, int64_t row0, int64_t col0, const Epilogue& e);

// Parses the names used in fused-op attributes ("relu", "clamp", ...); throws on others.
ActKind act_kind_from_name(const std::string& name);
const char* act_kind_name(ActKind kind);

}  // namespace aiov
