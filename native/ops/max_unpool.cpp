// MaxUnpool (ONNX opsets 9 and 11): the inverse of MaxPool with Indices. Each value goes to the
// place its index names in the unpooled tensor (the shape the pooling came from); the optional
// output_shape only pads that tensor at the end of each dim. Indices are run-time data: one
// outside the unpooled tensor is an InputError, never a wild write.
#include <cstring>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The unpooled shape of input X: each spatial dim (in - 1) * stride - pads + kernel.
PartialShape unpooled_shape(const Node& n, const PartialShape& x) {
  if (!x.rank_known) return PartialShape::dynamic_rank();
  const size_t s = (size_t)std::max<int64_t>(x.rank() - 2, 0);
  const std::vector<int64_t> kernel = n.attr_ints("kernel_shape"), pads = n.attr_ints("pads"),
                             strides = n.attr_ints("strides");
  if (s == 0 || kernel.size() != s || (!pads.empty() && pads.size() != 2 * s) ||
      (!strides.empty() && strides.size() != s))
    throw InputError(n.describe() + ": for X " + x.str() + " expected kernel_shape of " + std::to_string(s) +
                     " values, pads of " + std::to_string(2 * s) + " and strides of " + std::to_string(s) + ", got " +
                     dims_str(kernel) + ", " + dims_str(pads) + ", " + dims_str(strides));
  Dims out{x.dims[0], x.dims[1]};
  for (size_t d = 0; d < s; ++d) {
    const int64_t in = x.dims[d + 2];
    if (in < 0) {
      out.push_back(kDynamic);
      continue;
    }
    const std::string what = n.describe() + ": unpooled dimension";
    const int64_t stride = strides.empty() ? 1 : strides[d];
    const int64_t padded = pads.empty() ? 0 : pads[d] + pads[d + s];
    const int64_t len = checked_add(checked_mul(std::max<int64_t>(in - 1, 0), stride, what), kernel[d] - padded, what);
    if (len < 0 || (in == 0 && len != 0))
      throw InputError(n.describe() + ": pads " + dims_str(pads) + " leave no room for X " + x.str());
    out.push_back(in == 0 ? 0 : len);
  }
  return PartialShape(out);
}

std::vector<PortInfo> infer_max_unpool(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &x = c.in[0], &index = c.in[1];
  if (index.type != ElementType::i64 && index.type != ElementType::dynamic)
    throw InputError(n.describe() + ": indices must be i64, got " + type_name(index.type));
  if (x.shape.rank_known && index.shape.rank_known && !x.shape.compatible(index.shape.dims) &&
      !index.shape.compatible(x.shape.dims))
    throw InputError(n.describe() + ": X " + x.shape.str() + " and indices " + index.shape.str() +
                     " must have one shape");
  const PartialShape unpooled = unpooled_shape(n, x.shape);
  if (c.in.size() < 3) return {PortInfo{x.type, unpooled}};
  if (!c.in_value[2]) {
    const PartialShape& s = c.in[2].shape;
    if (s.rank_known && s.rank() == 1 && s.dims[0] >= 0)
      return {PortInfo{x.type, PartialShape(unknown_dims(s.dims[0], n.describe()))}};
    return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  }
  const Dims shape = read_int_tensor(n, *c.in_value[2], "output_shape");
  bool fits = unpooled.rank_known ? shape.size() == unpooled.dims.size() : true;
  for (size_t d = 0; fits && unpooled.rank_known && d < shape.size(); ++d) {
    const int64_t u = unpooled.dims[d];
    fits = d < 2 ? (u < 0 || shape[d] == u) : shape[d] >= 0 && (u < 0 || shape[d] >= u);
  }
  if (!fits)
    throw InputError(n.describe() + ": output_shape " + dims_str(shape) +
                     " must keep X's batch and channels and hold the unpooled shape " + unpooled.str());
  return {PortInfo{x.type, PartialShape(shape)}};
}

KernelFn prepare_max_unpool(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims unpooled = unpooled_shape(n, PartialShape(ctx.in[0].shape)).dims, out = ctx.out[0].shape;
  for (size_t d = 0; d < out.size(); ++d)
    if (out[d] < unpooled[d])
      throw InputError(n.describe() + ": output_shape " + dims_str(out) + " is smaller than the unpooled shape " +
                       dims_str(unpooled));
  const int64_t count = numel(ctx.in[0].shape), total = numel(unpooled);
  const std::vector<int64_t> from = row_strides(unpooled), to = row_strides(out);
  const size_t es = element_bytes(n, ctx.in[0].type);
  const std::string who = n.describe();
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    const int64_t* index = a.in[1]->as<int64_t>();
    char* y = static_cast<char*>(a.out[0]->data);
    std::memset(y, 0, (size_t)a.out[0]->count() * es);
    for (int64_t i = 0; i < count; ++i) {
      int64_t rest = index[i], at = 0;
      if (rest < 0 || rest >= total)
        throw InputError(who + ": index " + std::to_string(rest) + " is outside the unpooled shape " +
                         dims_str(unpooled) + " (expected 0 to " + std::to_string(total - 1) + ")");
      for (size_t d = 0; d < from.size(); ++d) {  // the same place in the (larger) output
        at += rest / from[d] * to[d];
        rest %= from[d];
      }
      std::memcpy(y + at * (int64_t)es, x + i * (int64_t)es, es);
    }
  };
}

}  // namespace

void register_max_unpool_ops(OpRegistry& r) {
  r.add(with_value_inputs(OpDef{"aiov.MaxUnpool", 2, 3, infer_max_unpool, prepare_max_unpool}
                              .with_attrs({ints_attr("kernel_shape").must_be_given().at_least(1),
                                           ints_attr("pads").at_least(0), ints_attr("strides").at_least(1)})
                              .ir({"aiov.MaxUnpool"}, "aiov1")
                              .onnx_op("MaxUnpool", 9)
                              .opset_builder("max_unpool"),
                          {2}));
}

}  // namespace aiov
