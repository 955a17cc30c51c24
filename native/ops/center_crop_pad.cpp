// CenterCropPad: each listed axis cropped or zero-padded to a target length, centred.
#include <cstring>

#include "executor/executor.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// The target length of every dim of `data` (unlisted axes keep theirs; -1 where unknown).
Dims crop_pad_target(const Node& n, const Dims& data, const TensorView& shape) {
  const auto target = read_int_tensor(n, shape, "shape");
  const int64_t rank = (int64_t)data.size();
  std::vector<int64_t> axes = n.attr_ints("axes");
  if (axes.empty())
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  if (target.size() != axes.size())
    throw InputError(n.describe() + ": shape must hold one length per axis (" + std::to_string(axes.size()) +
                     "), got " + std::to_string(target.size()));
  Dims out = data;
  std::vector<bool> seen((size_t)rank, false);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = normalize_axis(n, axes[i], rank);
    if (seen[(size_t)a]) throw InputError(n.describe() + ": axis " + std::to_string(axes[i]) + " is listed twice");
    seen[(size_t)a] = true;
    if (target[i] < 0)
      throw InputError(n.describe() + ": shape must be >= 0, got " + std::to_string(target[i]) + " for axis " +
                       std::to_string(axes[i]));
    out[(size_t)a] = target[i];
  }
  return out;
}

std::vector<PortInfo> infer_center_crop_pad(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (is_packed(x.type))
    throw InputError(c.node.describe() + ": element type " + type_name(x.type) + " is not supported");
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (!c.in_value[1]) {
    Dims d(x.shape.dims.size(), kDynamic);
    return {PortInfo{x.type, PartialShape(d)}};
  }
  return {PortInfo{x.type, PartialShape(crop_pad_target(c.node, x.shape.dims, *c.in_value[1]))}};
}

// y[i] = x[i + offset] where that lies inside x, else zero; offset > 0 crops, < 0 pads.
KernelFn prepare_center_crop_pad(const PrepareContext& ctx) {
  const Dims& xs = ctx.in[0].shape;
  const Dims ys = crop_pad_target(ctx.node, xs, ctx.in[1]);
  const size_t rank = xs.size(), es = element_bytes(ctx.node, ctx.in[0].type);
  std::vector<int64_t> offset(rank);
  for (size_t d = 0; d < rank; ++d) offset[d] = xs[d] >= ys[d] ? (xs[d] - ys[d]) / 2 : -((ys[d] - xs[d]) / 2);
  const std::vector<int64_t> x_strides = row_strides(xs);
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* y = static_cast<char*>(a.out[0]->data);
    const int64_t total = numel(ys);
    if (total == 0) return;
    if (rank == 0) {
      std::memcpy(y, x, es);
      return;
    }
    // Rows along the last dim: one copy of the overlapping run, zeros around it.
    const int64_t len = ys[rank - 1], rows = total / len;
    const int64_t lo = std::max<int64_t>(0, -offset[rank - 1]);
    const int64_t hi = std::min<int64_t>(len, xs[rank - 1] - offset[rank - 1]);
    std::vector<int64_t> idx(rank, 0);
    for (int64_t r = 0; r < rows; ++r) {
      char* row = y + r * len * es;
      bool inside = hi > lo;
      int64_t at = 0;
      for (size_t d = 0; d + 1 < rank && inside; ++d) {
        const int64_t i = idx[d] + offset[d];
        inside = i >= 0 && i < xs[d];
        at += i * x_strides[d];
      }
      if (!inside) {
        std::memset(row, 0, (size_t)len * es);
      } else {
        std::memset(row, 0, (size_t)lo * es);
        std::memcpy(row + lo * es, x + (at + lo + offset[rank - 1]) * es, (size_t)(hi - lo) * es);
        std::memset(row + hi * es, 0, (size_t)(len - hi) * es);
      }
      for (int64_t d = (int64_t)rank - 2; d >= 0; --d) {
        if (++idx[(size_t)d] < ys[(size_t)d]) break;
        idx[(size_t)d] = 0;
      }
    }
  };
}

}  // namespace

void register_center_crop_pad_ops(OpRegistry& r) {
  r.add(with_value_inputs(OpDef{"aiov.CenterCropPad", 2, 2, infer_center_crop_pad, prepare_center_crop_pad}
                              .with_attrs({ints_attr("axes")})
                              .ir({"aiov.CenterCropPad"}, "aiov1")
                              .onnx_op("CenterCropPad", 18)
                              .opset_builder("center_crop_pad"),
                          {1}));
}

}  // namespace aiov
