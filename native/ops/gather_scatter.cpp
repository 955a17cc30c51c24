// Index-driven gathers and scatters: GatherND, GatherElements, ScatterNDUpdate,
// ScatterElementsUpdate. Index values are run-time input: every one is range-checked (negative
// ones count from the end) before it addresses memory.
#include <algorithm>
#include <cstring>

#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

void expect_index_type(const Node& n, const PortInfo& p, const char* what) {
  if (p.type != ElementType::i32 && p.type != ElementType::i64 && p.type != ElementType::dynamic)
    throw InputError(n.describe() + ": " + what + " must be i32 or i64, got " + type_name(p.type));
}

// Reads index j of an i32/i64 tensor.
inline int64_t index_at(const TensorView& t, int64_t j) {
  return t.type == ElementType::i64 ? t.as<int64_t>()[j] : (int64_t)t.as<int32_t>()[j];
}

// `i` wrapped into [0, dim), or InputError naming the node and the offending value.
inline int64_t checked_index(const std::string& who, int64_t i, int64_t dim) {
  int64_t w = i < 0 ? i + dim : i;
  if (w < 0 || w >= dim)
    throw InputError(who + ": index " + std::to_string(i) + " is out of range for a dimension of " +
                     std::to_string(dim) + " (expected " + std::to_string(-dim) + " to " + std::to_string(dim - 1) +
                     ")");
  return w;
}

int64_t prod(const Dims& d, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < d.size(); ++i) p *= d[i];
  return p;
}

// Two dims that must agree, either possibly unknown: the known one (error when both known and differ).
int64_t merge_dim(const Node& n, int64_t a, int64_t b, const std::string& what) {
  if (a == kDynamic) return b;
  if (b != kDynamic && a != b)
    throw InputError(n.describe() + ": " + what + " (" + std::to_string(a) + " vs " + std::to_string(b) + ")");
  return a;
}

// ---- reductions of the scatters ---------------------------------------------------------

enum class Reduce { none, sum, sub, prod, min, max, mean };

Reduce reduce_of(const std::string& s) {
  if (s == "sum" || s == "mean") return s == "sum" ? Reduce::sum : Reduce::mean;
  if (s == "sub") return Reduce::sub;
  if (s == "prod") return Reduce::prod;
  if (s == "min") return Reduce::min;
  if (s == "max") return Reduce::max;
  return Reduce::none;
}

// dst[0..n) = dst op src, element by element, in the compute type of T.
template <class T>
void combine(Reduce r, T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    auto a = load(dst[i]), b = load(src[i]);
    using C = decltype(a);
    C v;
    switch (r) {
      case Reduce::sum:
      case Reduce::mean:
        v = (C)(a + b);
        break;
      case Reduce::sub:
        v = (C)(a - b);
        break;
      case Reduce::prod:
        v = (C)(a * b);
        break;
      case Reduce::min:
        v = b < a ? b : a;
        break;
      case Reduce::max:
        v = b > a ? b : a;
        break;
      default:
        v = b;
        break;
    }
    dst[i] = store<T>(v);
  }
}

// Copies or combines `n` elements of size `es` at src into dst.
using CombineFn = void (*)(Reduce, void*, const void*, int64_t);

template <class T>
void combine_erased(Reduce r, void* dst, const void* src, int64_t n) {
  combine<T>(r, static_cast<T*>(dst), static_cast<const T*>(src), n);
}

CombineFn combine_for(const Node& n, ElementType t) {
  return dispatch_type(t, n.describe(), [](auto v) -> CombineFn { return combine_erased<decltype(v)>; });
}

// ---- GatherND(data, indices; batch_dims) ------------------------------------------------

std::vector<PortInfo> infer_gather_nd(const InferContext& c) {
  const PortInfo& x = c.in[0];
  const PortInfo& idx = c.in[1];
  expect_index_type(c.node, idx, "indices");
  int64_t b = c.node.attr_int("batch_dims");
  if (!x.shape.rank_known || !idx.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  int64_t r = x.shape.rank(), q = idx.shape.rank();
  if (q < 1 || b >= std::min(r, q))
    throw InputError(c.node.describe() + ": batch_dims " + std::to_string(b) +
                     " must be less than the ranks of data (" + std::to_string(r) + ") and indices (" +
                     std::to_string(q) + ")");
  int64_t k = idx.shape.dims[q - 1];
  if (k == kDynamic) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (k < 1 || k > r - b)
    throw InputError(c.node.describe() + ": the last dimension of indices is " + std::to_string(k) +
                     ", expected 1 to " + std::to_string(r - b) + " (data rank minus batch_dims)");
  Dims out;
  for (int64_t d = 0; d < b; ++d)
    out.push_back(
        merge_dim(c.node, idx.shape.dims[d], x.shape.dims[d], "data and indices differ in a batch dimension"));
  out.insert(out.end(), idx.shape.dims.begin() + b, idx.shape.dims.end() - 1);
  out.insert(out.end(), x.shape.dims.begin() + b + k, x.shape.dims.end());
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_gather_nd(const PrepareContext& ctx) {
  const Dims& D = ctx.in[0].shape;
  const Dims& I = ctx.in[1].shape;
  const size_t b = (size_t)ctx.node.attr_int("batch_dims");
  const size_t q = I.size();
  const int64_t k = I[q - 1];
  const int64_t batches = prod(D, 0, b), tuples = prod(I, b, q - 1);
  const int64_t slice = prod(D, b + k, D.size()), batch_stride = prod(D, b, D.size());
  std::vector<int64_t> dims(D.begin() + b, D.begin() + b + k), strides(k);
  for (int64_t t = 0; t < k; ++t) strides[t] = prod(D, b + t + 1, D.size());
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  std::string who = ctx.node.describe();
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* o = static_cast<char*>(a.out[0]->data);
    const size_t run = (size_t)slice * es;
    for (int64_t bi = 0; bi < batches; ++bi)
      for (int64_t j = 0; j < tuples; ++j) {
        const int64_t tuple = bi * tuples + j;
        int64_t off = bi * batch_stride;
        for (int64_t t = 0; t < k; ++t)
          off += checked_index(who, index_at(*a.in[1], tuple * k + t), dims[t]) * strides[t];
        std::memcpy(o + tuple * run, x + off * es, run);
      }
  };
}

// ---- element-wise index walks (GatherElements, ScatterElementsUpdate) ---------------------

// The axis of an element-wise indexed op, with its indices' dims (other than the axis) within data's.
int64_t elements_axis(const Node& n, int64_t axis, const PartialShape& data, const PartialShape& idx,
                      const char* what) {
  if (data.rank() != idx.rank())
    throw InputError(n.describe() + ": " + what + " must have the rank of data (" + std::to_string(data.rank()) +
                     "), got rank " + std::to_string(idx.rank()));
  if (data.rank() == 0) throw InputError(n.describe() + ": data must have rank 1 or more");
  int64_t a = normalize_axis(n, axis, data.rank());
  for (int64_t d = 0; d < data.rank(); ++d)
    if (d != a && data.dims[d] != kDynamic && idx.dims[d] != kDynamic && idx.dims[d] > data.dims[d])
      throw InputError(n.describe() + ": " + what + " " + idx.str() + " exceed data " + data.str() + " in dimension " +
                       std::to_string(d));
  return a;
}

// fn(i, data_offset) for each element i of an index tensor of shape I: data_offset is where
// that element points in data of shape D when its value replaces the coordinate on `axis`.
template <class F>
void walk_elements(const std::string& who, const Dims& D, const Dims& I, int64_t axis, const TensorView& idx, F&& fn) {
  const int64_t total = numel(I);
  if (total == 0) return;
  const auto ds = row_strides(D);
  std::vector<int64_t> pos(I.size(), 0);
  int64_t base = 0;  // offset of pos in data, without the axis coordinate
  for (int64_t i = 0; i < total; ++i) {
    fn(i, base + checked_index(who, index_at(idx, i), D[axis]) * ds[axis]);
    for (int d = (int)I.size() - 1; d >= 0; --d) {
      if (d != axis) base += ds[d];
      if (++pos[d] < I[d]) break;
      if (d != axis) base -= ds[d] * I[d];
      pos[d] = 0;
    }
  }
}

std::vector<PortInfo> infer_gather_elements(const InferContext& c) {
  const PortInfo& x = c.in[0];
  const PortInfo& idx = c.in[1];
  expect_index_type(c.node, idx, "indices");
  if (!x.shape.rank_known || !idx.shape.rank_known) return {PortInfo{x.type, idx.shape}};
  elements_axis(c.node, c.node.attr_int("axis"), x.shape, idx.shape, "indices");
  return {PortInfo{x.type, idx.shape}};
}

KernelFn prepare_gather_elements(const PrepareContext& ctx) {
  const Dims D = ctx.in[0].shape, I = ctx.in[1].shape;
  const int64_t axis = elements_axis(ctx.node, ctx.node.attr_int("axis"), PartialShape(D), PartialShape(I), "indices");
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  std::string who = ctx.node.describe();
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* o = static_cast<char*>(a.out[0]->data);
    walk_elements(who, D, I, axis, *a.in[1],
                  [&](int64_t i, int64_t off) { std::memcpy(o + i * es, x + off * es, es); });
  };
}

// The (data, indices, updates) inputs both scatters open with, their element types checked.
struct ScatterInputs {
  const PortInfo &data, &indices, &updates;
};

ScatterInputs scatter_inputs(const InferContext& c) {
  expect_index_type(c.node, c.in[1], "indices");
  expect_type_match(c.node, c.in[0], c.in[2]);
  return {c.in[0], c.in[1], c.in[2]};
}

// Whether two shapes of known rank can be equal once their unknown dims are known.
bool may_be_equal(const Dims& a, const Dims& b) {
  if (a.size() != b.size()) return false;
  for (size_t d = 0; d < a.size(); ++d)
    if (a[d] != kDynamic && b[d] != kDynamic && a[d] != b[d]) return false;
  return true;
}

// ---- ScatterNDUpdate(data, indices, updates; reduction) ----------------------------------

std::vector<PortInfo> infer_scatter_nd(const InferContext& c) {
  const auto [x, idx, upd] = scatter_inputs(c);
  if (x.shape.rank_known && idx.shape.rank_known && upd.shape.rank_known && idx.shape.rank() >= 1) {
    int64_t r = x.shape.rank(), q = idx.shape.rank(), k = idx.shape.dims[q - 1];
    if (k != kDynamic) {
      if (k < 1 || k > r)
        throw InputError(c.node.describe() + ": the last dimension of indices is " + std::to_string(k) +
                         ", expected 1 to the data rank " + std::to_string(r));
      Dims want(idx.shape.dims.begin(), idx.shape.dims.end() - 1);
      want.insert(want.end(), x.shape.dims.begin() + k, x.shape.dims.end());
      if (!may_be_equal(want, upd.shape.dims))
        throw InputError(c.node.describe() + ": updates must have shape " + PartialShape(want).str() + " (indices " +
                         idx.shape.str() + " without its last dim, then data " + x.shape.str() + " from dim " +
                         std::to_string(k) + "), got " + upd.shape.str());
    }
  } else if (idx.shape.rank_known && idx.shape.rank() == 0) {
    throw InputError(c.node.describe() + ": indices must have rank 1 or more");
  }
  return {PortInfo{x.type, x.shape}};
}

KernelFn prepare_scatter_nd(const PrepareContext& ctx) {
  const Dims& D = ctx.in[0].shape;
  const Dims& I = ctx.in[1].shape;
  const int64_t k = I.back();
  const int64_t tuples = prod(I, 0, I.size() - 1), slice = prod(D, k, D.size());
  std::vector<int64_t> dims(D.begin(), D.begin() + k), strides(k);
  for (int64_t t = 0; t < k; ++t) strides[t] = prod(D, t + 1, D.size());
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  const size_t total = ctx.in[0].bytes();
  const Reduce red = reduce_of(ctx.node.attr_str("reduction"));
  const CombineFn comb = red == Reduce::none ? nullptr : combine_for(ctx.node, ctx.in[0].type);
  std::string who = ctx.node.describe();
  return [=](const KernelArgs& a) {
    char* o = static_cast<char*>(a.out[0]->data);
    const char* u = static_cast<const char*>(a.in[2]->data);
    std::memmove(o, a.in[0]->data, total);
    for (int64_t j = 0; j < tuples; ++j) {
      int64_t off = 0;
      for (int64_t t = 0; t < k; ++t) off += checked_index(who, index_at(*a.in[1], j * k + t), dims[t]) * strides[t];
      if (comb)
        comb(red, o + off * es, u + j * slice * es, slice);
      else
        std::memcpy(o + off * es, u + j * slice * es, (size_t)slice * es);
    }
  };
}

// ---- ScatterElementsUpdate(data, indices, updates, axis; reduction) -----------------------

std::vector<PortInfo> infer_scatter_elements(const InferContext& c) {
  const auto [x, idx, upd] = scatter_inputs(c);
  if (idx.shape.rank_known && upd.shape.rank_known && !may_be_equal(idx.shape.dims, upd.shape.dims))
    throw InputError(c.node.describe() + ": updates must have the shape of indices " + idx.shape.str() + ", got " +
                     upd.shape.str());
  if (x.shape.rank_known && idx.shape.rank_known && c.in_value[3]) {
    auto axis = read_int_tensor(c.node, *c.in_value[3], "axis");
    if (axis.size() != 1) throw InputError(c.node.describe() + ": axis must be one integer");
    elements_axis(c.node, axis[0], x.shape, idx.shape, "indices");
  }
  return {PortInfo{x.type, x.shape}};
}

// ScatterElementsUpdate's reductions: without use_init_val a target's first update replaces
// it; mean divides each target's sum by the number of values it combined.
template <class T>
void scatter_elements_reduce(const std::string& who, Reduce red, bool use_init, const Dims& D, const Dims& I,
                             int64_t axis, const TensorView& idx, const T* upd, T* out) {
  std::vector<int64_t> count;
  if (!use_init || red == Reduce::mean) count.assign((size_t)numel(D), use_init ? 1 : 0);
  walk_elements(who, D, I, axis, idx, [&](int64_t i, int64_t off) {
    if (!count.empty() && count[off]++ == 0)
      out[off] = upd[i];
    else
      combine<T>(red, out + off, upd + i, 1);
  });
  if (red == Reduce::mean)
    for (size_t off = 0; off < count.size(); ++off)
      if (count[off] > 1) {
        auto v = load(out[off]);
        out[off] = store<T>((decltype(v))(v / (decltype(v))count[off]));
      }
}

KernelFn prepare_scatter_elements(const PrepareContext& ctx) {
  const Dims D = ctx.in[0].shape, I = ctx.in[1].shape;
  auto axes = read_int_tensor(ctx.node, ctx.in[3], "axis");
  if (axes.size() != 1) throw InputError(ctx.node.describe() + ": axis must be one integer");
  const int64_t axis = elements_axis(ctx.node, axes[0], PartialShape(D), PartialShape(I), "indices");
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  const size_t total = ctx.in[0].bytes();
  const Reduce red = reduce_of(ctx.node.attr_str("reduction"));
  const bool use_init = ctx.node.attr_int("use_init_val") != 0;
  std::string who = ctx.node.describe();
  if (red == Reduce::none)
    return [=](const KernelArgs& a) {
      char* o = static_cast<char*>(a.out[0]->data);
      const char* u = static_cast<const char*>(a.in[2]->data);
      std::memmove(o, a.in[0]->data, total);
      walk_elements(who, D, I, axis, *a.in[1],
                    [&](int64_t i, int64_t off) { std::memcpy(o + off * es, u + i * es, es); });
    };
  return dispatch_type(ctx.in[0].type, who, [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [=](const KernelArgs& a) {
      std::memmove(a.out[0]->data, a.in[0]->data, total);
      scatter_elements_reduce<T>(who, red, use_init, D, I, axis, *a.in[1], a.in[2]->as<T>(), a.out[0]->as<T>());
    };
  });
}

}  // namespace

void register_gather_scatter_ops(OpRegistry& r) {
  r.add(OpDef{"GatherND", 2, 2, infer_gather_nd, prepare_gather_nd}
            .with_attrs({int_attr("batch_dims", 0).at_least(0)})
            .ir({"GatherND"}, "opset8")
            .onnx_op("GatherND", 11)
            .opset_builder("gather_nd"));
  r.add(OpDef{"GatherElements", 2, 2, infer_gather_elements, prepare_gather_elements}
            .with_attrs({int_attr("axis", 0)})
            .ir({"GatherElements"}, "opset6")
            .onnx_op("GatherElements", 11)
            .opset_builder("gather_elements"));
  // ONNX spells the reductions add/mul: its converters are hand-written (frontends/onnx.py).
  r.add(OpDef{"ScatterNDUpdate", 3, 3, infer_scatter_nd, prepare_scatter_nd}
            .with_attrs({str_attr("reduction", "none", {"none", "sum", "sub", "prod", "min", "max"})})
            .ir({"ScatterNDUpdate"}, "opset15")
            .opset_builder("scatter_nd_update"));
  r.add(with_value_inputs(OpDef{"ScatterElementsUpdate", 4, 4, infer_scatter_elements, prepare_scatter_elements}
                              .with_attrs({str_attr("reduction", "none", {"none", "sum", "prod", "min", "max", "mean"}),
                                           bool_attr("use_init_val", true)})
                              .ir({"ScatterElementsUpdate"}, "opset12"),
                          {3}));
}

}  // namespace aiov
