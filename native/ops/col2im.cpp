// Col2Im: sliding blocks (columns, as an unfolded convolution input) summed back into an image.
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "ops/typed_kernel.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The geometry of one Col2Im node: image and block dims, pads, strides, dilations and the
// number of block positions along each spatial dim.
struct Col2ImPlan {
  Dims image, block, pad_begin, stride, dilation, blocks;
  int64_t block_size = 1, positions = 1;
};

Col2ImPlan col2im_plan(const Node& n, const TensorView& image, const TensorView& block) {
  Col2ImPlan p;
  p.image = read_int_tensor(n, image, "image_shape");
  p.block = read_int_tensor(n, block, "block_shape");
  const size_t s = p.image.size();
  if (s == 0 || p.block.size() != s)
    throw InputError(n.describe() + ": image_shape and block_shape must hold one length per spatial dim, got " +
                     std::to_string(s) + " and " + std::to_string(p.block.size()));
  auto per_dim = [&](const char* name, int64_t fill, size_t count) {
    std::vector<int64_t> v = n.attr_ints(name);
    if (v.empty()) v.assign(count, fill);
    if (v.size() != count)
      throw InputError(n.describe() + ": " + name + " must hold " + std::to_string(count) + " values, got " +
                       std::to_string(v.size()));
    return v;
  };
  const auto pads = per_dim("pads", 0, 2 * s);
  p.stride = per_dim("strides", 1, s);
  p.dilation = per_dim("dilations", 1, s);
  p.pad_begin.assign(pads.begin(), pads.begin() + (long)s);
  for (size_t d = 0; d < s; ++d) {
    if (p.image[d] < 1 || p.block[d] < 1)
      throw InputError(n.describe() + ": image_shape and block_shape must be >= 1, got " + dims_str(p.image) + " and " +
                       dims_str(p.block));
    const int64_t span = p.dilation[d] * (p.block[d] - 1) + 1;
    const int64_t room = p.image[d] + pads[d] + pads[d + s] - span;
    if (room < 0)
      throw InputError(n.describe() + ": a block of " + dims_str(p.block) + " does not fit in the padded image " +
                       dims_str(p.image));
    p.blocks.push_back(room / p.stride[d] + 1);
    p.block_size *= p.block[d];
    p.positions *= p.blocks.back();
  }
  return p;
}

std::vector<PortInfo> infer_col2im(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!is_float(x.type))
    throw InputError(c.node.describe() + ": expected a floating-point input, got " + type_name(x.type));
  if (x.shape.rank_known && x.shape.rank() != 3)
    throw InputError(c.node.describe() + ": expected an input [N, C * prod(block_shape), L], got " + x.shape.str());
  if (!c.in_value[1] || !c.in_value[2]) {
    if (c.in[1].shape.rank_known && c.in[1].shape.rank() == 1 && c.in[1].shape.dims[0] >= 0)
      return {PortInfo{x.type, PartialShape(Dims((size_t)c.in[1].shape.dims[0] + 2, kDynamic))}};
    return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  }
  const Col2ImPlan p = col2im_plan(c.node, *c.in_value[1], *c.in_value[2]);
  Dims out{kDynamic, kDynamic};
  if (x.shape.rank_known) {
    const int64_t n = x.shape.dims[0], cols = x.shape.dims[1], len = x.shape.dims[2];
    if (cols >= 0 && cols % p.block_size != 0)
      throw InputError(c.node.describe() + ": dim 1 of " + x.shape.str() + " is not a multiple of the block size " +
                       std::to_string(p.block_size));
    if (len >= 0 && len != p.positions)
      throw InputError(c.node.describe() + ": dim 2 of " + x.shape.str() + " must be the number of blocks " +
                       std::to_string(p.positions));
    out[0] = n;
    out[1] = cols >= 0 ? cols / p.block_size : kDynamic;
  }
  out.insert(out.end(), p.image.begin(), p.image.end());
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_col2im(const PrepareContext& ctx) {
  const Col2ImPlan p = col2im_plan(ctx.node, ctx.in[1], ctx.in[2]);
  const Dims& xs = ctx.in[0].shape;
  const int64_t planes = xs[0] * (xs[1] / p.block_size), image_size = numel(p.image);
  const size_t s = p.image.size();
  return same_type_kernel(ctx, [=](const auto* x, auto* y, const KernelArgs& a) {
    using T = std::remove_pointer_t<decltype(y)>;
    using C = typename ComputeOf<T>::type;
    std::vector<C> acc((size_t)image_size);
    std::vector<int64_t> k(s), l(s);
    for (int64_t plane = 0; plane < planes; ++plane) {
      std::fill(acc.begin(), acc.end(), C(0));
      const T* col = x + plane * p.block_size * p.positions;
      for (int64_t kb = 0; kb < p.block_size; ++kb) {
        for (int64_t rest = kb, d = (int64_t)s - 1; d >= 0; --d) {
          k[(size_t)d] = rest % p.block[(size_t)d];
          rest /= p.block[(size_t)d];
        }
        for (int64_t lb = 0; lb < p.positions; ++lb) {
          int64_t at = 0;
          bool inside = true;
          for (int64_t rest = lb, d = (int64_t)s - 1; d >= 0; --d) {
            l[(size_t)d] = rest % p.blocks[(size_t)d];
            rest /= p.blocks[(size_t)d];
          }
          for (size_t d = 0; d < s && inside; ++d) {
            const int64_t i = l[d] * p.stride[d] - p.pad_begin[d] + k[d] * p.dilation[d];
            inside = i >= 0 && i < p.image[d];
            at = at * p.image[d] + i;
          }
          if (inside) acc[(size_t)at] += (C)load(col[kb * p.positions + lb]);
        }
      }
      for (int64_t i = 0; i < image_size; ++i) y[plane * image_size + i] = store<T>(acc[(size_t)i]);
    }
  });
}

}  // namespace

void register_col2im_ops(OpRegistry& r) {
  r.add(with_value_inputs(OpDef{"aiov.Col2Im", 3, 3, infer_col2im, prepare_col2im}
                              .with_attrs({ints_attr("dilations").at_least(1), ints_attr("pads").at_least(0),
                                           ints_attr("strides").at_least(1)})
                              .ir({"aiov.Col2Im"}, "aiov1")
                              .onnx_op("Col2Im", 18)
                              .opset_builder("col2im"),
                          {1, 2}));
}

}  // namespace aiov
