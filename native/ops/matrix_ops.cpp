// Matrix masks and generators over the last two dims: Trilu (keep a triangle) and EyeLike.
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The diagonal offset k: input 1 of Trilu (a scalar, default 0), an attribute of EyeLike.
int64_t trilu_k(const Node& n, const TensorView* k) {
  if (!k) return 0;
  const auto v = read_int_tensor(n, *k, "k");
  if (v.size() != 1) throw InputError(n.describe() + ": k must be a single value, got " + std::to_string(v.size()));
  return v[0];
}

std::vector<PortInfo> infer_trilu(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (x.shape.rank_known && x.shape.rank() < 2)
    throw InputError(c.node.describe() + ": expected an input of rank 2 or more, got " + x.shape.str());
  if (is_packed(x.type))
    throw InputError(c.node.describe() + ": element type " + type_name(x.type) + " is not supported");
  if (c.in.size() > 1 && c.in_value[1]) trilu_k(c.node, c.in_value[1]);
  return {x};
}

// Keeps x[..., i, j] where j - i >= k (upper) or j - i <= k (lower), zero elsewhere.
KernelFn prepare_trilu(const PrepareContext& ctx) {
  const Dims& s = ctx.in[0].shape;
  const int64_t k = trilu_k(ctx.node, ctx.in.size() > 1 ? &ctx.in[1] : nullptr);
  const bool upper = ctx.node.attr_int("upper") != 0;
  const int64_t rows = s[s.size() - 2], cols = s[s.size() - 1];
  const int64_t mats = rows * cols ? numel(s) / (rows * cols) : 0;
  const size_t es = bit_width(ctx.in[0].type) / 8;
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* y = static_cast<char*>(a.out[0]->data);
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t at = (m * rows + i) * cols;
        for (int64_t j = 0; j < cols; ++j) {
          const bool keep = upper ? j - i >= k : j - i <= k;
          if (keep)
            std::memcpy(y + (at + j) * es, x + (at + j) * es, es);
          else
            std::memset(y + (at + j) * es, 0, es);
        }
      }
  };
}

std::vector<PortInfo> infer_eye_like(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (x.shape.rank_known && x.shape.rank() != 2)
    throw InputError(c.node.describe() + ": expected a 2-D input, got " + x.shape.str());
  if (is_packed(x.type))
    throw InputError(c.node.describe() + ": element type " + type_name(x.type) + " is not supported");
  return {x};
}

// Ones where j - i == k, zeros elsewhere, in the input's shape and type.
KernelFn prepare_eye_like(const PrepareContext& ctx) {
  const Dims& s = ctx.out[0].shape;
  const int64_t k = ctx.node.attr_int("k"), rows = s[0], cols = s[1];
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    return [=](const KernelArgs& a) {
      T* y = a.out[0]->as<T>();
      const T zero = store<T>(C(0)), one = store<T>(C(1));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) y[i * cols + j] = j - i == k ? one : zero;
    };
  });
}

}  // namespace

void register_matrix_ops(OpRegistry& r) {
  r.add(with_value_inputs(OpDef{"aiov.Trilu", 1, 2, infer_trilu, prepare_trilu}
                              .with_attrs({bool_attr("upper", true)})
                              .ir({"aiov.Trilu"}, "aiov1")
                              .onnx_op("Trilu", 14)
                              .opset_builder("trilu"),
                          {1}));
  // ONNX's dtype attribute becomes a Convert after it (a converter in frontends/onnx.py).
  r.add(OpDef{"aiov.EyeLike", 1, 1, infer_eye_like, prepare_eye_like}
            .with_attrs({int_attr("k", 0)})
            .ir({"aiov.EyeLike"}, "aiov1")
            .opset_builder("eye_like"));
}

}  // namespace aiov
