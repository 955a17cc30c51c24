// What the GEMM drivers (gemm.cpp: matrices and rows made on demand; gemm_sources.cpp:
// runs and grids read in place) share: the merge of a tile into C and the row step.
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/epilogue.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/gemm_pack.hpp"
#include "kernels/gemm_threads.hpp"

namespace aiov {
namespace gemm_detail {

// What the micro-kernel merges itself (beta, bias, residual, ReLU/clamp) and what is left
// for a pass over the finished tile while it is still in L1 (the other activations).
inline bool needs_post(const Epilogue& e) {
  return e.act.kind != ActKind::none && e.act.kind != ActKind::relu && e.act.kind != ActKind::clamp;
}
inline Epilogue post_part(const Epilogue& e) {
  Epilogue p = e;
  p.bias = nullptr;
  p.residual = nullptr;
  return p;
}

// A residual that is C itself (the plan gave the output the residual's memory): C holds the
// residual already, so it is dropped from `e` and the product is accumulated into C.
inline bool residual_is_c(Epilogue& e, const float* C, int64_t ldc) {
  if (e.residual != C || e.ld_residual != ldc) return false;
  e.residual = nullptr;
  return true;
}

// A tile at (row, col) of C with its merge set; the caller sets the rest. The first K slice
// applies beta, the bias and the residual (read before C is written, so a residual may alias
// C); the last one clamps.
inline Tile tile_at(const Epilogue& e, float beta, bool first, bool last, int64_t row, int64_t col) {
  Tile f;
  if (first && e.bias) f.bias = e.bias + col;
  f.beta = first ? beta : 1.0f;
  f.load_c = first ? beta != 0.0f : true;
  if (first && e.residual) {
    f.residual = e.residual + row * e.ld_residual + col;
    f.ld_residual = e.ld_residual;
  }
  if (last && e.act.kind == ActKind::relu) {
    f.clamp = true;
    f.lo = 0.0f;
    f.hi = std::numeric_limits<float>::infinity();
  } else if (last && e.act.kind == ActKind::clamp) {
    f.clamp = true;
    f.lo = e.act.alpha;
    f.hi = e.act.beta;
  }
  return f;
}

// Rows per A panel: M spread evenly over ceil(M / mr) panels, so no panel is left with 1-3 rows.
// Rows per step: M split evenly into steps of at most mr rows (mr for an empty product, which
// runs no step: ceil_div(0, 0) would divide by zero).
inline int row_step(const KernelSet& ks, int64_t M) { return M <= 0 ? ks.mr : (int)ceil_div(M, ceil_div(M, ks.mr)); }

}  // namespace gemm_detail
}  // namespace aiov
