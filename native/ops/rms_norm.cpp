// aiov.RMSNorm(x [, gamma]): x / sqrt(mean(x^2 over the last axis) + eps) [* gamma], the
// normalization of T5 and Llama. Exporters write it as six elementwise and reduction ops
// (Pow, ReduceMean, Add, Sqrt, Divide, Multiply); the graph optimizer (passes/fuse_rms_norm)
// makes it this one op, one pass over each row.
#include <cmath>

#include "kernels/dispatch.hpp"
#include "kernels/isa.hpp"
#include "kernels/normalize_row.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_rms_norm(const InferContext& c) {
  for (const PortInfo& in : c.in)
    if (in.type != ElementType::f32 && in.type != ElementType::dynamic)
      throw InputError(c.node.describe() + ": expected f32 inputs, got " + type_name(in.type));
  const PartialShape& x = c.in[0].shape;
  if (x.rank_known && x.rank() < 1)
    throw InputError(c.node.describe() + ": expected a tensor of rank >= 1, got a scalar");
  if (c.in.size() > 1 && x.rank_known && c.in[1].shape.rank_known &&
      (c.in[1].shape.rank() != 1 || c.in[1].shape.dims[0] != x.dims.back()))
    throw InputError(c.node.describe() + ": gamma must be [" + std::to_string(x.dims.back()) + "], got " +
                     c.in[1].shape.str());
  return {PortInfo{ElementType::f32, x}};
}

// One row: the mean square summed in lanes (vectorizes) and finished in double, as the
// LayerNorm rows are.
AIOV_MULTIVERSION void rms_norm_row(const float* __restrict x, float* __restrict y, int64_t len, float eps,
                                    const float* __restrict gamma) {
  constexpr int kLanes = 16;
  float part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += x[i + l] * x[i + l];
  double sum = 0.0;
  for (; i < len; ++i) sum += (double)x[i] * x[i];
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  const float scale = (float)(1.0 / std::sqrt(sum / (double)len + (double)eps));
  if (gamma)
    for (i = 0; i < len; ++i) y[i] = x[i] * scale * gamma[i];
  else
    for (i = 0; i < len; ++i) y[i] = x[i] * scale;
}

KernelFn prepare_rms_norm(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t len = s.back();
  const int64_t rows = len ? numel(s) / len : 0;
  const float eps = (float)ctx.node.attr_float("eps");
  const bool has_gamma = ctx.in.size() > 1;
  return [=](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    float* y = k.out[0]->as<float>();
    const float* gamma = has_gamma ? k.in[1]->as<float>() : nullptr;
    // The rows in blocks with one vector root for the block (normalize_avx512.cpp): the scalar
    // double root and division per row were most of the time of T5's and Llama's short rows.
    static const normalize_detail::RmsNormRowsFn avx512 =
        selected_isa() == Isa::avx512 ? normalize_detail::avx512_rms_norm_rows() : nullptr;
    for_rows(*k.ctx, rows, len, [&](int64_t r0, int64_t r1) {
      if (avx512) return avx512(x + r0 * len, y + r0 * len, r1 - r0, len, eps, gamma);
      for (int64_t r = r0; r < r1; ++r) rms_norm_row(x + r * len, y + r * len, len, eps, gamma);
    });
  };
}

}  // namespace

void register_rms_norm_ops(OpRegistry& r) {
  r.add(OpDef{"aiov.RMSNorm", 1, 2, infer_rms_norm, prepare_rms_norm}.with_attrs({float_attr("eps", 1e-6)}));
}

}  // namespace aiov
