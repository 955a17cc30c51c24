// Ops about shapes: Squeeze/Unsqueeze (aliases), ShapeOf, Range, Broadcast.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "kernels/dispatch.hpp"
#include "kernels/strided_walk.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

KernelFn no_kernel(const PrepareContext&) { return KernelFn(); }

std::vector<int64_t> axes_operand(const InferContext& c, size_t index, int64_t rank, bool* known) {
  *known = true;
  if (c.in.size() <= index) return {};
  if (!c.in_value[index]) {
    *known = false;
    return {};
  }
  std::vector<int64_t> axes = read_int_tensor(c.node, *c.in_value[index], "axes");
  std::set<int64_t> seen;
  for (auto& a : axes) {
    a = normalize_axis(c.node, a, rank);
    if (!seen.insert(a).second) throw InputError(c.node.describe() + ": axis " + std::to_string(a) + " is repeated");
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

std::vector<PortInfo> infer_squeeze(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  bool known;
  std::vector<int64_t> axes = axes_operand(c, 1, x.shape.rank(), &known);
  if (!known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  Dims out;
  for (int64_t d = 0; d < x.shape.rank(); ++d) {
    int64_t v = x.shape.dims[d];
    bool listed = std::binary_search(axes.begin(), axes.end(), d);
    if (c.in.size() > 1) {
      if (listed) {
        if (v >= 0 && v != 1)
          throw InputError(c.node.describe() + ": cannot squeeze axis " + std::to_string(d) + " of size " +
                           std::to_string(v) + " in " + x.shape.str());
        continue;
      }
    } else if (v == 1) {
      continue;
    } else if (v < 0) {
      return {PortInfo{x.type, PartialShape::dynamic_rank()}};  // might be 1 at run time
    }
    out.push_back(v);
  }
  return {PortInfo{x.type, PartialShape(out)}};
}

std::vector<PortInfo> infer_unsqueeze(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known || !c.in_value[1]) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  std::vector<int64_t> raw = read_int_tensor(c.node, *c.in_value[1], "axes");
  int64_t rank = x.shape.rank() + (int64_t)raw.size();
  std::set<int64_t> axes;
  for (auto a : raw)
    if (!axes.insert(normalize_axis(c.node, a, rank)).second)
      throw InputError(c.node.describe() + ": axis " + std::to_string(a) + " is repeated");
  Dims out;
  size_t src = 0;
  for (int64_t d = 0; d < rank; ++d) out.push_back(axes.count(d) ? 1 : x.shape.dims[src++]);
  return {PortInfo{x.type, PartialShape(out)}};
}

std::vector<PortInfo> infer_shape_of(const InferContext& c) {
  ElementType t = type_from_name(c.node.attr_str("output_type"));
  if (t != ElementType::i64 && t != ElementType::i32)
    throw InputError(c.node.describe() + ": output_type must be i32 or i64");
  if (!c.in[0].shape.rank_known) return {PortInfo{t, PartialShape(Dims{kDynamic})}};
  return {PortInfo{t, PartialShape(Dims{c.in[0].shape.rank()})}};
}

KernelFn prepare_shape_of(const PrepareContext& ctx) {
  Dims shape = ctx.in[0].shape;
  ElementType t = ctx.out[0].type;
  return [shape, t](const KernelArgs& k) {
    for (size_t i = 0; i < shape.size(); ++i) {
      if (t == ElementType::i64)
        k.out[0]->as<int64_t>()[i] = shape[i];
      else
        k.out[0]->as<int32_t>()[i] = (int32_t)shape[i];
    }
  };
}

// ---- Range(start, stop, step) ----------------------------------------------------

double scalar_of(const TensorView& t) {
  return dispatch_type(t.type, "Range", [&](auto tag) -> double {
    using T = decltype(tag);
    return (double)load(t.as<T>()[0]);
  });
}

std::vector<PortInfo> infer_range(const InferContext& c) {
  for (int i = 0; i < 3; ++i)
    if (c.in[i].shape.rank_known && numel(c.in[i].shape.dims) != 1 && c.in[i].shape.is_static())
      throw InputError(c.node.describe() + ": start, stop and step must be scalars");
  ElementType t = c.node.has_attr("output_type") ? type_from_name(c.node.attr_str("output_type")) : c.in[0].type;
  if (!c.in_value[0] || !c.in_value[1] || !c.in_value[2]) return {PortInfo{t, PartialShape(Dims{kDynamic})}};
  double start = scalar_of(*c.in_value[0]), stop = scalar_of(*c.in_value[1]), step = scalar_of(*c.in_value[2]);
  if (!std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    throw InputError(c.node.describe() + ": start, stop and step must be finite, got " + std::to_string(start) + ", " +
                     std::to_string(stop) + ", " + std::to_string(step));
  if (step == 0) throw InputError(c.node.describe() + ": step must not be zero");
  double n = std::max(0.0, std::ceil((stop - start) / step));
  if (!(n <= (double)kMaxTensorElements))  // also catches an overflow to inf
    throw InputError(c.node.describe() + ": range(" + std::to_string(start) + ", " + std::to_string(stop) + ", " +
                     std::to_string(step) + ") has too many elements");
  return {PortInfo{t, PartialShape(Dims{(int64_t)n})}};
}

KernelFn prepare_range(const PrepareContext& ctx) {
  int64_t n = ctx.out[0].count();
  return dispatch_type(ctx.out[0].type, ctx.node.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    using C = typename ComputeOf<T>::type;
    return [n](const KernelArgs& k) {
      double start = scalar_of(*k.in[0]), step = scalar_of(*k.in[2]);
      T* o = k.out[0]->as<T>();
      for (int64_t i = 0; i < n; ++i) o[i] = store<T>((C)(start + step * (double)i));
    };
  });
}

// ---- Broadcast(data, target_shape): "numpy" (to exactly the target) or "bidirectional" (ONNX Expand)

std::vector<PortInfo> infer_broadcast(const InferContext& c) {
  std::string mode = c.node.attr_str("mode");
  if (mode != "numpy" && mode != "bidirectional")
    throw NotSupported(c.node.describe() + ": broadcast mode '" + mode + "'");
  if (!c.in_value[1]) {
    const PartialShape& ts = c.in[1].shape;
    if (mode == "numpy" && ts.is_static())
      return {PortInfo{c.in[0].type, PartialShape(unknown_dims(ts.dims[0], c.node.describe() + ": target_shape"))}};
    // Bidirectional (ONNX Expand) with a target of known length: the rank is still known, which
    // the passes need (the attention mask of exported transformers is such an Expand).
    const PartialShape& xs = c.in[0].shape;
    if (mode == "bidirectional" && ts.is_static() && xs.rank_known) {
      const int64_t rank = std::max<int64_t>(ts.dims[0], (int64_t)xs.rank());
      return {PortInfo{c.in[0].type, PartialShape(unknown_dims(rank, c.node.describe() + ": target_shape"))}};
    }
    return {PortInfo{c.in[0].type, PartialShape::dynamic_rank()}};
  }
  Dims target = read_int_tensor(c.node, *c.in_value[1], "target_shape");
  for (auto d : target)
    if (d < 0) throw InputError(c.node.describe() + ": target shape " + dims_str(target) + " has a negative dimension");
  if (mode == "bidirectional")
    return {PortInfo{c.in[0].type, broadcast_shapes(c.node, c.in[0].shape, PartialShape(target), "numpy")}};
  PartialShape out = broadcast_shapes(c.node, c.in[0].shape, PartialShape(target), "numpy");
  if (out.rank_known && out.dims != target && c.in[0].shape.is_static())
    throw InputError(c.node.describe() + ": cannot broadcast " + c.in[0].shape.str() + " to " + dims_str(target));
  return {PortInfo{c.in[0].type, PartialShape(target)}};
}

KernelFn prepare_broadcast(const PrepareContext& ctx) {
  const Dims full_out = ctx.out[0].shape, in = ctx.in[0].shape;
  size_t es = bit_width(ctx.out[0].type) / 8;
  if (es == 0) throw NotSupported(ctx.node.describe() + ": sub-byte element types");
  // Aligned input strides (0 where broadcast), without the output's size-1 dims.
  Dims out;
  std::vector<int64_t> st;
  int64_t s = 1;
  for (int i = (int)full_out.size() - 1; i >= 0; --i) {
    const int j = i - (int)(full_out.size() - in.size());  // the input dim aligned with it
    const int64_t stride = j >= 0 && in[j] != 1 ? s : 0;
    if (j >= 0) s *= in[j];
    if (full_out[i] == 1) continue;
    out.insert(out.begin(), full_out[i]);
    st.insert(st.begin(), stride);
  }
  // The innermost dims are one run: read contiguously (copied whole) or all broadcast (one
  // value repeated). Copying element by element cost 4 ns a value (Llama's repeat of K and V
  // over grouped query heads, 5 us each for 1280 values).
  int64_t run = 1;
  bool repeat = false;
  size_t outer = out.size();
  if (!out.empty()) {
    repeat = st.back() == 0;
    while (outer > 0 && (repeat ? st[outer - 1] == 0 : st[outer - 1] == run)) run *= out[--outer];
  }
  const Dims outer_shape(out.begin(), out.begin() + (int64_t)outer);
  const std::vector<int64_t> outer_strides(st.begin(), st.begin() + (int64_t)outer);
  return [outer_shape, outer_strides, run, repeat, es](const KernelArgs& k) {
    const char* x = static_cast<const char*>(k.in[0]->data);
    char* o = static_cast<char*>(k.out[0]->data);
    const size_t bytes = (size_t)run * es;
    if (bytes == 0) return;  // an empty output
    walk_strided(outer_shape, outer_strides, 0, [&](int64_t i, int64_t off) {
      char* dst = o + i * bytes;
      const char* src = x + off * es;
      if (!repeat) {
        std::memcpy(dst, src, bytes);
        return;
      }
      // One value, then the filled part copied onto the rest, doubling.
      std::memcpy(dst, src, es);
      for (size_t done = es; done < bytes; done *= 2) std::memcpy(dst + done, dst, std::min(done, bytes - done));
    });
  };
}

}  // namespace

void register_shape_ops(OpRegistry& r) {
  OpDef squeeze = OpDef{"Squeeze", 1, 2, infer_squeeze, no_kernel}.ir({"Squeeze"}, "opset1");
  squeeze.aliases_input0 = true;
  squeeze.value_inputs = {1};
  r.add(squeeze);
  OpDef unsqueeze = OpDef{"Unsqueeze", 2, 2, infer_unsqueeze, no_kernel}.ir({"Unsqueeze"}, "opset1");
  unsqueeze.aliases_input0 = true;
  unsqueeze.value_inputs = {1};
  r.add(unsqueeze);
  OpDef shape_of = OpDef{"ShapeOf", 1, 1, infer_shape_of, prepare_shape_of}
                       .with_attrs({type_attr("output_type", "i64")})
                       .ir({"ShapeOf"}, "opset3");
  shape_of.shape_only = true;
  r.add(shape_of);
  // Without output_type, Range keeps its inputs' type.
  r.add(with_value_inputs(OpDef{"Range", 3, 3, infer_range, prepare_range}
                              .with_attrs({type_attr("output_type", "f32")})
                              .ir({"Range"}, "opset4"),
                          {0, 1, 2}));
  r.add(with_value_inputs(OpDef{"Broadcast", 2, 2, infer_broadcast, prepare_broadcast}
                              .with_attrs({str_attr("mode", "numpy")})
                              .ir({"Broadcast"}, "opset3"),
                          {1}));
}

}  // namespace aiov
