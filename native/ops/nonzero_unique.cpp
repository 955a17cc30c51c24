// Ops whose output sizes depend on the input values: NonZero, Unique and Compress. When the
// inputs are known at plan time they fold to exact shapes; otherwise the kernel finds the sizes
// and emits its outputs (OpDef::data_dependent, output_memory), and the nodes after it are
// planned for those sizes.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// Positions (row-major flat) of the non-zero elements of t.
std::vector<int64_t> nonzero_positions(const Node& n, const TensorView& t) {
  std::vector<int64_t> hits;
  dispatch_type(t.type, n.describe(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.as<T>();
    const int64_t count = t.count();
    for (int64_t i = 0; i < count; ++i)
      if (load(p[i]) != 0) hits.push_back(i);  // NaN counts, -0.0 does not
  });
  return hits;
}

// ---- NonZero ------------------------------------------------------------------------------

ElementType index_type(const Node& n, const char* attr) {
  ElementType t = type_from_name(n.attr_str(attr));
  if (t != ElementType::i32 && t != ElementType::i64)
    throw InputError(n.describe() + ": " + attr + " must be i32 or i64, got " + type_name(t));
  return t;
}

// The rank NonZero reports for an input: a scalar counts as one element of a 1-D tensor.
int64_t nonzero_rank(const PartialShape& s) { return std::max<int64_t>(s.rank(), 1); }

std::vector<PortInfo> infer_nonzero(const InferContext& c) {
  const ElementType t = index_type(c.node, "output_type");
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{t, PartialShape(Dims{kDynamic, kDynamic})}};
  const int64_t rank = nonzero_rank(x.shape);
  if (c.in_value[0])
    return {PortInfo{t, PartialShape(Dims{rank, (int64_t)nonzero_positions(c.node, *c.in_value[0]).size()})}};
  if (x.shape.is_static() && numel(x.shape.dims) == 0) return {PortInfo{t, PartialShape(Dims{rank, 0})}};
  return {PortInfo{t, PartialShape(Dims{rank, kDynamic})}};
}

void store_index(const TensorView& out_type, void* out, int64_t i, int64_t v) {
  if (out_type.type == ElementType::i64)
    static_cast<int64_t*>(out)[i] = v;
  else
    static_cast<int32_t*>(out)[i] = (int32_t)v;
}

KernelFn prepare_nonzero(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  Dims dims = ctx.in[0].shape;
  if (dims.empty()) dims = {1};
  const int64_t rank = (int64_t)dims.size();
  const std::vector<int64_t> strides = row_strides(dims);
  return [&n, dims, rank, strides](const KernelArgs& a) {
    const std::vector<int64_t> hits = nonzero_positions(n, *a.in[0]);
    const int64_t count = (int64_t)hits.size();
    void* out = output_memory(a, 0, Dims{rank, count});
    for (int64_t j = 0; j < count; ++j)
      for (int64_t d = 0; d < rank; ++d) store_index(*a.out[0], out, d * count + j, hits[j] / strides[d] % dims[d]);
  };
}

// ---- Compress -----------------------------------------------------------------------------

// Slices of data along axis whose condition entry is true; a condition longer than the axis
// may only have false entries past its end (ONNX).
std::vector<int64_t> selected_slices(const std::string& who, const TensorView& cond, int64_t axis_len) {
  std::vector<int64_t> keep;
  const int64_t len = cond.count();
  for (int64_t i = 0; i < len; ++i) {
    if (!cond.as<bool>()[i]) continue;
    if (i >= axis_len)
      throw InputError(who + ": condition selects entry " + std::to_string(i) + " of an axis of length " +
                       std::to_string(axis_len));
    keep.push_back(i);
  }
  return keep;
}

std::vector<PortInfo> infer_compress(const InferContext& c) {
  const PortInfo &x = c.in[0], &cond = c.in[1];
  if (cond.type != ElementType::boolean && cond.type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": condition must be boolean, got " + type_name(cond.type));
  if (cond.shape.rank_known && cond.shape.rank() != 1)
    throw InputError(c.node.describe() + ": condition must be 1-D, got " + cond.shape.str());
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), x.shape.rank());
  Dims out = x.shape.dims;
  out[axis] = kDynamic;
  if (c.in_value[1] && x.shape.dims[axis] >= 0)
    out[axis] = (int64_t)selected_slices(c.node.describe(), *c.in_value[1], x.shape.dims[axis]).size();
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_compress(const PrepareContext& ctx) {
  const Dims dims = ctx.in[0].shape;
  const int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)dims.size());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= dims[d];
  for (size_t d = axis + 1; d < dims.size(); ++d) inner *= dims[d];
  const size_t row = element_bytes(ctx.node, ctx.in[0].type) * (size_t)inner;
  const std::string who = ctx.node.describe();
  return [=](const KernelArgs& a) {
    const std::vector<int64_t> keep = selected_slices(who, *a.in[1], dims[axis]);
    Dims shape = dims;
    shape[axis] = (int64_t)keep.size();
    char* out = static_cast<char*>(output_memory(a, 0, shape));
    const char* x = static_cast<const char*>(a.in[0]->data);
    for (int64_t o = 0; o < outer; ++o)
      for (size_t j = 0; j < keep.size(); ++j)
        std::memcpy(out + (o * (int64_t)keep.size() + (int64_t)j) * row, x + (o * dims[axis] + keep[j]) * row, row);
  };
}

// ---- Unique -------------------------------------------------------------------------------

// The data seen as [outer, len, inner] around the axis (flattened: [1, count, 1]); slice i is
// every element with index i on the axis.
struct UniqueLayout {
  int64_t outer = 1, len = 0, inner = 1;
  int64_t axis = -1;  // -1: flattened
};

UniqueLayout unique_layout(const Node& n, const Dims& dims, const TensorView* axis_value) {
  UniqueLayout l;
  if (!axis_value) {
    l.len = numel(dims);
    return l;
  }
  auto axis = read_int_tensor(n, *axis_value, "axis");
  if (axis.size() != 1) throw InputError(n.describe() + ": axis must be one integer");
  l.axis = normalize_axis(n, axis[0], (int64_t)dims.size());
  for (int64_t d = 0; d < l.axis; ++d) l.outer *= dims[d];
  for (size_t d = l.axis + 1; d < dims.size(); ++d) l.inner *= dims[d];
  l.len = dims[l.axis];
  return l;
}

// Unique slices: per group its first index (in output order), and per slice its group.
struct UniqueGroups {
  std::vector<int64_t> first, group_of, counts;
};

template <class T>
UniqueGroups find_unique(const T* x, const UniqueLayout& l, bool sorted) {
  auto less = [&](int64_t i, int64_t j) {  // lexicographic over the slices' elements
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t k = 0; k < l.inner; ++k) {
        auto a = load(x[(o * l.len + i) * l.inner + k]), b = load(x[(o * l.len + j) * l.inner + k]);
        // NaN after every number and equal to NaN (numpy's order): a strict weak order, which
        // sorting needs.
        const bool a_nan = a != a, b_nan = b != b;
        if (a_nan || b_nan) {
          if (a_nan != b_nan) return b_nan;
          continue;
        }
        if (a < b) return true;
        if (b < a) return false;
      }
    return false;
  };
  std::vector<int64_t> order((size_t)l.len);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), less);
  UniqueGroups g;
  g.group_of.assign((size_t)l.len, 0);
  for (size_t r = 0; r < order.size(); ++r) {
    if (r == 0 || less(order[r - 1], order[r])) {
      g.first.push_back(order[r]);  // stable: the smallest index of its run
      g.counts.push_back(0);
    }
    g.group_of[order[r]] = (int64_t)g.first.size() - 1;
    ++g.counts.back();
  }
  if (!sorted) {
    // Groups in the order of their first occurrence.
    std::vector<int64_t> by_first(g.first.size());
    std::iota(by_first.begin(), by_first.end(), 0);
    std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return g.first[a] < g.first[b]; });
    std::vector<int64_t> rank(by_first.size());
    UniqueGroups u;
    for (size_t r = 0; r < by_first.size(); ++r) {
      rank[by_first[r]] = (int64_t)r;
      u.first.push_back(g.first[by_first[r]]);
      u.counts.push_back(g.counts[by_first[r]]);
    }
    for (int64_t& gi : g.group_of) gi = rank[gi];
    u.group_of = std::move(g.group_of);
    return u;
  }
  return g;
}

UniqueGroups unique_groups(const Node& n, const TensorView& x, const UniqueLayout& l) {
  const bool sorted = n.attr_int("sorted") != 0;
  return dispatch_type(x.type, n.describe(), [&](auto tag) { return find_unique(x.as<decltype(tag)>(), l, sorted); });
}

Dims unique_values_shape(const Dims& dims, const UniqueLayout& l, int64_t groups) {
  if (l.axis < 0) return {groups};
  Dims d = dims;
  d[l.axis] = groups;
  return d;
}

std::vector<PortInfo> infer_unique(const InferContext& c) {
  const PortInfo& x = c.in[0];
  const ElementType it = index_type(c.node, "index_element_type"), ct = index_type(c.node, "count_element_type");
  const bool has_axis = c.in.size() > 1;
  if (has_axis && !c.in_value[1])
    throw NotSupported(c.node.describe() + ": the axis must be known when the model is read");
  if (!x.shape.rank_known) {
    PartialShape any = PartialShape::dynamic_rank();
    return {PortInfo{x.type, any}, PortInfo{it, Dims{kDynamic}}, PortInfo{it, Dims{kDynamic}},
            PortInfo{ct, Dims{kDynamic}}};
  }
  Dims dims = x.shape.dims;
  UniqueLayout l;
  if (has_axis) {
    l = unique_layout(c.node, Dims(dims.size(), 1), c.in_value[1]);
    l.len = dims[l.axis];
  } else {
    l.len = numel(dims);
  }
  int64_t groups = kDynamic;
  if (c.in_value[0] && x.shape.is_static()) {
    l = unique_layout(c.node, dims, has_axis ? c.in_value[1] : nullptr);
    groups = (int64_t)unique_groups(c.node, *c.in_value[0], l).first.size();
  } else if (l.len == 0) {
    groups = 0;
  }
  return {PortInfo{x.type, PartialShape(unique_values_shape(dims, l, groups))},
          PortInfo{it, PartialShape(Dims{groups})}, PortInfo{it, PartialShape(Dims{l.len})},
          PortInfo{ct, PartialShape(Dims{groups})}};
}

KernelFn prepare_unique(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const Dims dims = ctx.in[0].shape;
  const UniqueLayout l = unique_layout(n, dims, ctx.in.size() > 1 ? &ctx.in[1] : nullptr);
  const size_t row = element_bytes(n, ctx.in[0].type) * (size_t)l.inner;
  return [&n, dims, l, row](const KernelArgs& a) {
    const UniqueGroups g = unique_groups(n, *a.in[0], l);
    const int64_t groups = (int64_t)g.first.size();
    char* y = static_cast<char*>(output_memory(a, 0, unique_values_shape(dims, l, groups)));
    const char* x = static_cast<const char*>(a.in[0]->data);
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t j = 0; j < groups; ++j)
        std::memcpy(y + (o * groups + j) * row, x + (o * l.len + g.first[j]) * row, row);
    void* first = output_memory(a, 1, Dims{groups});
    void* inverse = output_memory(a, 2, Dims{l.len});
    void* counts = output_memory(a, 3, Dims{groups});
    for (int64_t j = 0; j < groups; ++j) {
      store_index(*a.out[1], first, j, g.first[j]);
      store_index(*a.out[3], counts, j, g.counts[j]);
    }
    for (int64_t i = 0; i < l.len; ++i) store_index(*a.out[2], inverse, i, g.group_of[i]);
  };
}

}  // namespace

void register_data_dependent_ops(OpRegistry& r) {
  r.add(with_data_dependent_shape(OpDef{"NonZero", 1, 1, infer_nonzero, prepare_nonzero}
                                      .with_attrs({type_attr("output_type", "i64").onnx_name("-")})
                                      .ir({"NonZero"}, "opset3")
                                      .onnx_op("NonZero", 9)
                                      .opset_builder("non_zero")));
  // ONNX's Compress without an axis flattens first: its converter is hand-written.
  r.add(with_data_dependent_shape(OpDef{"aiov.Compress", 2, 2, infer_compress, prepare_compress}
                                      .with_attrs({int_attr("axis", 0)})
                                      .ir({"aiov.Compress"}, "aiov1")
                                      .opset_builder("compress")));
  // The axis is an input (OpenVINO's form); ONNX's attribute becomes a constant.
  r.add(with_data_dependent_shape(
      with_value_inputs(OpDef{"Unique", 1, 2, infer_unique, prepare_unique}
                            .with_attrs({bool_attr("sorted", true), type_attr("index_element_type", "i64"),
                                         type_attr("count_element_type", "i64")})
                            .ir({"Unique"}, "opset10")
                            .opset_builder("unique"),
                        {1})));
}

}  // namespace aiov
