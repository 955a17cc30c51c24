// Det: the determinant of each square matrix over the last two dims.
#include <cmath>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "ops/typed_kernel.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_det(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!is_float(x.type))
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(x.type));
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const Dims& d = x.shape.dims;
  if (d.size() < 2) throw InputError(c.node.describe() + ": expected an input of rank 2 or more, got " + x.shape.str());
  const int64_t m = d[d.size() - 2], n = d[d.size() - 1];
  if (m >= 0 && n >= 0 && m != n)
    throw InputError(c.node.describe() + ": expected square matrices [..., M, M], got " + x.shape.str());
  return {PortInfo{x.type, PartialShape(Dims(d.begin(), d.end() - 2))}};
}

// LU decomposition with partial pivoting, in double: the product of the pivots, its sign
// flipped per row swap.
double determinant(std::vector<double>& a, int64_t n) {
  double det = 1.0;
  for (int64_t k = 0; k < n; ++k) {
    int64_t pivot = k;
    for (int64_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i * n + k]) > std::fabs(a[pivot * n + k])) pivot = i;
    if (a[pivot * n + k] == 0.0) return 0.0;
    if (pivot != k) {
      for (int64_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[pivot * n + j]);
      det = -det;
    }
    const double p = a[k * n + k];
    det *= p;
    for (int64_t i = k + 1; i < n; ++i) {
      const double f = a[i * n + k] / p;
      for (int64_t j = k + 1; j < n; ++j) a[i * n + j] -= f * a[k * n + j];
    }
  }
  return det;
}

KernelFn prepare_det(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t n = s.back(), mats = numel(ctx.out[0].shape);
  return same_type_kernel(ctx, [=](const auto* x, auto* y, const KernelArgs& a) {
    using T = std::remove_pointer_t<decltype(y)>;
    using C = typename ComputeOf<T>::type;
    std::vector<double> m((size_t)(n * n));
    for (int64_t i = 0; i < mats; ++i) {
      for (int64_t e = 0; e < n * n; ++e) m[(size_t)e] = (double)load(x[i * n * n + e]);
      y[i] = store<T>((C)determinant(m, n));
    }
  });
}

}  // namespace

void register_det_ops(OpRegistry& r) {
  r.add(OpDef{"aiov.Det", 1, 1, infer_det, prepare_det}
            .ir({"aiov.Det"}, "aiov1")
            .onnx_op("Det", 11)
            .opset_builder("det"));
}

}  // namespace aiov
