// Ops that rearrange elements by rules of their attributes or small inputs: DepthToSpace,
// SpaceToDepth, ReverseSequence, OneHot.
#include <cmath>
#include <cstring>

#include "kernels/dispatch.hpp"
#include "kernels/strided_walk.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// Copies `in`, viewed with shape `view`, permuted by `perm` into dense output.
KernelFn permuted_copy(const Dims& view, const std::vector<int>& perm, size_t es) {
  const auto src = row_strides(view);
  Dims shape;
  std::vector<int64_t> st;
  for (int p : perm) {
    shape.push_back(view[p]);
    st.push_back(src[p]);
  }
  // The innermost run when it stays contiguous in the input: one memcpy per run.
  int64_t inner = 1;
  while (!shape.empty() && st.back() == inner) {
    inner *= shape.back();
    shape.pop_back();
    st.pop_back();
  }
  return [shape, st, inner, es](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* o = static_cast<char*>(a.out[0]->data);
    const size_t run = (size_t)inner * es;
    if (run == 0) return;
    walk_strided(shape, st, 0, [&](int64_t i, int64_t off) { std::memcpy(o + i * run, x + off * es, run); });
  };
}

// ---- DepthToSpace / SpaceToDepth (data; mode, block_size) ------------------------------

// b^e, or InputError when that exceeds any tensor's size (block_size comes from the model).
int64_t block_count(const Node& n, int64_t b, int64_t e) {
  int64_t p = 1;
  while (e-- > 0) {
    if (p > (int64_t(1) << 48) / b)
      throw InputError(n.describe() + ": block_size " + std::to_string(b) + " is too large");
    p *= b;
  }
  return p;
}

template <bool ToSpace>
std::vector<PortInfo> infer_block_move(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, x.shape}};
  const int64_t r = x.shape.rank(), b = c.node.attr_int("block_size");
  if (r < 3)
    throw InputError(c.node.describe() + ": data must have rank 3 or more (N, C, spatial...), got " + x.shape.str());
  const int64_t blocks = block_count(c.node, b, r - 2);
  Dims out = x.shape.dims;
  if (ToSpace) {
    if (out[1] != kDynamic) {
      if (out[1] % blocks)
        throw InputError(c.node.describe() + ": channels " + std::to_string(out[1]) +
                         " must be a multiple of block_size^" + std::to_string(r - 2) + " = " + std::to_string(blocks));
      out[1] /= blocks;
    }
    for (int64_t d = 2; d < r; ++d)
      if (out[d] != kDynamic) {
        if (out[d] > (int64_t(1) << 48) / b) throw InputError(c.node.describe() + ": the output would be too large");
        out[d] *= b;
      }
  } else {
    if (out[1] != kDynamic) out[1] *= blocks;
    for (int64_t d = 2; d < r; ++d)
      if (out[d] != kDynamic) {
        if (out[d] % b)
          throw InputError(c.node.describe() + ": spatial dimension " + std::to_string(d) + " (" +
                           std::to_string(out[d]) + ") must be a multiple of block_size " + std::to_string(b));
        out[d] /= b;
      }
  }
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_depth_to_space(const PrepareContext& ctx) {
  const Dims& in = ctx.in[0].shape;
  const int s = (int)in.size() - 2;
  const int64_t b = ctx.node.attr_int("block_size"), c = in[1] / block_count(ctx.node, b, s);
  const bool blocks_first = ctx.node.attr_str("mode") == "blocks_first";
  // View: [N, b.. (s), C', D..] (blocks first) or [N, C', b.., D..]; out: [N, C', D1, b, D2, b, ...].
  Dims view{in[0]};
  if (!blocks_first) view.push_back(c);
  for (int i = 0; i < s; ++i) view.push_back(b);
  if (blocks_first) view.push_back(c);
  for (int i = 0; i < s; ++i) view.push_back(in[2 + i]);
  const int cpos = blocks_first ? 1 + s : 1, bpos = blocks_first ? 1 : 2;
  std::vector<int> perm{0, cpos};
  for (int i = 0; i < s; ++i) {
    perm.push_back(2 + s + i);
    perm.push_back(bpos + i);
  }
  return permuted_copy(view, perm, element_bytes(ctx.node, ctx.in[0].type));
}

KernelFn prepare_space_to_depth(const PrepareContext& ctx) {
  const Dims& in = ctx.in[0].shape;
  const int s = (int)in.size() - 2;
  const int64_t b = ctx.node.attr_int("block_size");
  const bool blocks_first = ctx.node.attr_str("mode") == "blocks_first";
  // View: [N, C, D1', b, D2', b, ...]; out: [N, b.., C, D'..] (blocks first) or [N, C, b.., D'..].
  Dims view{in[0], in[1]};
  for (int i = 0; i < s; ++i) {
    view.push_back(in[2 + i] / b);
    view.push_back(b);
  }
  std::vector<int> perm{0};
  if (!blocks_first) perm.push_back(1);
  for (int i = 0; i < s; ++i) perm.push_back(3 + 2 * i);
  if (blocks_first) perm.push_back(1);
  for (int i = 0; i < s; ++i) perm.push_back(2 + 2 * i);
  return permuted_copy(view, perm, element_bytes(ctx.node, ctx.in[0].type));
}

// ---- ReverseSequence(data, seq_lengths; batch_axis, seq_axis) ------------------------------

std::vector<PortInfo> infer_reverse_sequence(const InferContext& c) {
  const PortInfo& x = c.in[0];
  const PortInfo& len = c.in[1];
  if (len.type != ElementType::i32 && len.type != ElementType::i64 && len.type != ElementType::dynamic)
    throw InputError(c.node.describe() + ": seq_lengths must be i32 or i64, got " + type_name(len.type));
  if (x.shape.rank_known) {
    const int64_t r = x.shape.rank();
    if (r < 2) throw InputError(c.node.describe() + ": data must have rank 2 or more, got " + x.shape.str());
    const int64_t ba = normalize_axis(c.node, c.node.attr_int("batch_axis"), r),
                  sa = normalize_axis(c.node, c.node.attr_int("seq_axis"), r);
    if (ba == sa) throw InputError(c.node.describe() + ": batch_axis and seq_axis must differ");
    if (len.shape.rank_known &&
        (len.shape.rank() != 1 ||
         (len.shape.dims[0] != kDynamic && x.shape.dims[ba] != kDynamic && len.shape.dims[0] != x.shape.dims[ba])))
      throw InputError(c.node.describe() + ": seq_lengths must have shape [" + std::to_string(x.shape.dims[ba]) +
                       "] (the batch dimension), got " + len.shape.str());
  }
  return {PortInfo{x.type, x.shape}};
}

KernelFn prepare_reverse_sequence(const PrepareContext& ctx) {
  const Dims in = ctx.in[0].shape;
  const int64_t r = (int64_t)in.size();
  const int64_t ba = normalize_axis(ctx.node, ctx.node.attr_int("batch_axis"), r),
                sa = normalize_axis(ctx.node, ctx.node.attr_int("seq_axis"), r);
  const auto st = row_strides(in);
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  const std::string who = ctx.node.describe();
  return [=](const KernelArgs& a) {
    const char* x = static_cast<const char*>(a.in[0]->data);
    char* o = static_cast<char*>(a.out[0]->data);
    const int64_t total = numel(in);
    if (total == 0) return;
    std::vector<int64_t> lens(in[ba]);
    for (int64_t b = 0; b < in[ba]; ++b) {
      int64_t l = a.in[1]->type == ElementType::i64 ? a.in[1]->as<int64_t>()[b] : (int64_t)a.in[1]->as<int32_t>()[b];
      if (l < 0 || l > in[sa])
        throw InputError(who + ": seq_lengths[" + std::to_string(b) + "] is " + std::to_string(l) + ", expected 0 to " +
                         std::to_string(in[sa]));
      lens[b] = l;
    }
    std::vector<int64_t> pos(in.size(), 0);
    for (int64_t i = 0; i < total; ++i) {
      const int64_t t = pos[sa], l = lens[pos[ba]];
      const int64_t src = t < l ? i + (l - 1 - 2 * t) * st[sa] : i;
      std::memcpy(o + i * es, x + src * es, es);
      for (int d = (int)in.size() - 1; d >= 0; --d) {
        if (++pos[d] < in[d]) break;
        pos[d] = 0;
      }
    }
  };
}

// ---- OneHot(indices, depth, on_value, off_value; axis) ----------------------------------

// A scalar of any numeric type as an integer (ONNX allows float depths and indices).
int64_t scalar_int(const Node& n, const TensorView& t, const char* what) {
  if (t.count() != 1)
    throw InputError(n.describe() + ": " + what + " must hold one value, got shape " + dims_str(t.shape));
  return dispatch_type(t.type, n.describe(), [&](auto v) -> int64_t {
    using T = decltype(v);
    double d = (double)load(t.as<T>()[0]);
    if (!std::isfinite(d) || d < 0 || d > 9.0e15)
      throw InputError(n.describe() + ": " + what + " must be a count, got " + std::to_string(d));
    return (int64_t)d;
  });
}

std::vector<PortInfo> infer_one_hot(const InferContext& c) {
  const PortInfo& idx = c.in[0];
  expect_type_match(c.node, c.in[2], c.in[3]);
  const ElementType t = c.in[2].type;
  if (!idx.shape.rank_known) return {PortInfo{t, PartialShape::dynamic_rank()}};
  const int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), idx.shape.rank() + 1);
  const int64_t depth = c.in_value[1] ? scalar_int(c.node, *c.in_value[1], "depth") : kDynamic;
  Dims out = idx.shape.dims;
  out.insert(out.begin() + axis, depth);
  return {PortInfo{t, PartialShape(out)}};
}

KernelFn prepare_one_hot(const PrepareContext& ctx) {
  const Dims& I = ctx.in[0].shape;
  const int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)I.size() + 1);
  const int64_t depth = scalar_int(ctx.node, ctx.in[1], "depth");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= I[d];
  for (size_t d = axis; d < I.size(); ++d) inner *= I[d];
  const size_t es = element_bytes(ctx.node, ctx.in[2].type);
  const bool wrap_negative = ctx.node.attr_str("negative_indices_mode") == "normalize";
  // Indices of any numeric type, as integers (fractions truncate, as ONNX casts them).
  using ReadFn = int64_t (*)(const void*, int64_t);
  ReadFn read = dispatch_type(ctx.in[0].type, ctx.node.describe(), [](auto v) -> ReadFn {
    using T = decltype(v);
    return [](const void* p, int64_t i) -> int64_t {
      double d = (double)load(static_cast<const T*>(p)[i]);
      return std::isfinite(d) && std::fabs(d) < 9.0e18 ? (int64_t)d : INT64_MIN;
    };
  });
  return [=](const KernelArgs& a) {
    char* o = static_cast<char*>(a.out[0]->data);
    const char* on = static_cast<const char*>(a.in[2]->data);
    const char* off = static_cast<const char*>(a.in[3]->data);
    for (int64_t i = 0; i < outer * depth * inner; ++i) std::memcpy(o + i * es, off, es);
    for (int64_t p = 0; p < outer; ++p)
      for (int64_t q = 0; q < inner; ++q) {
        int64_t v = read(a.in[0]->data, p * inner + q);
        if (v < 0 && v != INT64_MIN && wrap_negative) v += depth;
        // Out of range: the whole row stays off (ONNX's and OpenVINO's rule).
        if (v < 0 || v >= depth) continue;
        std::memcpy(o + ((p * depth + v) * inner + q) * es, on, es);
      }
  };
}

}  // namespace

void register_layout_ops(OpRegistry& r) {
  const std::vector<std::string> modes{"blocks_first", "depth_first"};
  r.add(OpDef{"DepthToSpace", 1, 1, infer_block_move<true>, prepare_depth_to_space}
            .with_attrs({str_attr("mode", "blocks_first", modes), int_attr("block_size", 1).at_least(1)})
            .ir({"DepthToSpace"}, "opset1")
            .opset_builder("depth_to_space"));
  // ONNX spells the modes DCR/CRD: both converters are hand-written (frontends/onnx.py).
  r.add(OpDef{"SpaceToDepth", 1, 1, infer_block_move<false>, prepare_space_to_depth}
            .with_attrs({str_attr("mode", "blocks_first", modes), int_attr("block_size", 1).at_least(1)})
            .ir({"SpaceToDepth"}, "opset1")
            .opset_builder("space_to_depth"));
  // ONNX's ReverseSequence has other defaults (batch 1, time 0): its converter is hand-written.
  r.add(OpDef{"ReverseSequence", 2, 2, infer_reverse_sequence, prepare_reverse_sequence}
            .with_attrs({int_attr("batch_axis", 0), int_attr("seq_axis", 1)})
            .ir({"ReverseSequence"}, "opset1")
            .opset_builder("reverse_sequence"));
  // OpenVINO's opset1 OneHot leaves negative indices off; opset16 (and ONNX) can wrap them.
  r.add(with_value_inputs(OpDef{"OneHot", 4, 4, infer_one_hot, prepare_one_hot}
                              .with_attrs({int_attr("axis", -1), str_attr("negative_indices_mode", "ignore_negative",
                                                                          {"ignore_negative", "normalize"})})
                              .ir({"OneHot"}, "opset16"),
                          {1}));
}

}  // namespace aiov
