#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

const PartialShape& shape_of(const Value& v) { return v.node->outputs[v.index].shape; }
ElementType type_of(const Value& v) { return v.node->outputs[v.index].type; }

// Steps that carry one integer unchanged: exporters wrap a shape's dimension in them
// (Unsqueeze to [1], Casts to i64).
const Value& through_int_wrappers(const Value& v) {
  const Value* at = &v;
  for (int i = 0; i < 8; ++i) {
    const Node& n = *at->node;
    const bool integer = type_of(*at) == ElementType::i64 || type_of(*at) == ElementType::i32;
    if (!integer || (n.op != op_name::Unsqueeze && n.op != op_name::Squeeze && n.op != op_name::Convert)) break;
    const ElementType from = type_of(n.inputs[0]);
    if (from != ElementType::i64 && from != ElementType::i32) break;
    at = &n.inputs[0];
  }
  return *at;
}

// Whether v is half of x's last dimension: the constant half of a known even size, or
// computed from x's shape as torch exports `x.shape[-1] // 2` (Gather(ShapeOf(x), last) / 2).
bool half_of_last_dim(const Value& v, const Value& x, int64_t rank, int64_t known_size) {
  int64_t half = 0;
  if (one_int(v, half)) return known_size > 0 && known_size % 2 == 0 && half * 2 == known_size;
  const Node& div = *through_int_wrappers(v).node;
  int64_t two = 0;
  if (div.op != op_name::Divide || !one_int(div.inputs[1], two) || two != 2) return false;
  const Node& g = *through_int_wrappers(div.inputs[0]).node;
  int64_t index = 0, axis = -1;
  if (g.op != op_name::Gather || g.inputs.size() < 3 || !one_int(g.inputs[1], index) || !one_int(g.inputs[2], axis) ||
      axis != 0 || (index != -1 && index != rank - 1))
    return false;
  const Node& shape = *g.inputs[0].node;
  return shape.op == op_name::ShapeOf && same(shape.inputs[0], x);
}

// Slice(x, start, stop, step 1, axes [last]) with its start and stop.
bool last_axis_slice(const Node& s, const Value& x, int64_t rank, Value& start, Value& stop) {
  if (s.op != op_name::Slice || s.inputs.size() != 5 || !same(s.inputs[0], x)) return false;
  int64_t step = 0, axis = 0;
  if (!one_int(s.inputs[3], step) || step != 1 || !one_int(s.inputs[4], axis) || (axis != -1 && axis != rank - 1))
    return false;
  start = s.inputs[1];
  stop = s.inputs[2];
  return true;
}

// x[..., h:], then x[..., :h] concatenated after its negation: rotate_half(x) = cat(-x2, x1).
bool rotated_half_of(const PassContext& ctx, const Node& concat, const Value& x, int64_t rank, int64_t known_size) {
  if (concat.op != op_name::Concat || concat.inputs.size() != 2 || !ctx.sole_user(concat)) return false;
  const int64_t axis = concat.attr_int("axis", 0);
  if (axis != -1 && axis != rank - 1) return false;
  const Node& neg = *concat.inputs[0].node;
  const Node& low = *concat.inputs[1].node;
  if (neg.op != op_name::Negative || ctx.sole_user(neg) != &concat || ctx.sole_user(low) != &concat) return false;
  const Node& high = *neg.inputs[0].node;
  if (ctx.sole_user(high) != &neg) return false;
  Value low_start, low_stop, high_start, high_stop;
  if (!last_axis_slice(low, x, rank, low_start, low_stop) || !last_axis_slice(high, x, rank, high_start, high_stop))
    return false;
  int64_t zero = -1, end = 0;
  if (!one_int(low_start, zero) || zero != 0 || !one_int(high_stop, end)) return false;
  // The high half runs to the end: torch writes INT64_MAX; a known size may be given as is.
  if (!(end >= std::numeric_limits<int32_t>::max() || (known_size > 0 && end >= known_size))) return false;
  return half_of_last_dim(low_stop, x, rank, known_size) && half_of_last_dim(high_start, x, rank, known_size);
}

// The first half along the last axis of v, built as nodes, when v's two halves are provably
// equal: v is f(Concat(a, a)) for f a chain of elementwise steps (Cos, Sin, f32 Converts,
// scaling by one constant), as Llama's rotary cache is cos(cat(freqs, freqs)) * scaling; or a
// constant whose halves are equal. The half is f(a). Empty when not provable.
Value half_of_doubled(const Value& v, int depth = 0) {
  const Node& n = *v.node;
  const PartialShape& s = shape_of(v);
  if (depth > 8 || type_of(v) != ElementType::f32 || !s.rank_known || s.rank() < 1) return {};
  const int64_t rank = s.rank();
  if (const Node* c = const_of(v)) {
    const Dims& d = c->outputs[0].shape.dims;
    const int64_t last = d.back(), count = numel(d);
    if (last < 2 || last % 2 != 0 || count <= 0) return {};
    const float* p = static_cast<const float*>(c->constant->data());
    const int64_t half = last / 2, rows = count / last;
    std::vector<float> first((size_t)(rows * half));
    for (int64_t r = 0; r < rows; ++r) {
      if (std::memcmp(p + r * last, p + r * last + half, (size_t)half * sizeof(float)) != 0) return {};
      std::memcpy(first.data() + r * half, p + r * last, (size_t)half * sizeof(float));
    }
    Dims halved = d;
    halved.back() = half;
    return Value{f32_constant(halved, first, c->name + "/half"), 0};
  }
  if (n.op == op_name::Concat) {
    const int64_t axis = n.attr_int("axis", 0);
    if (n.inputs.size() == 2 && same(n.inputs[0], n.inputs[1]) && (axis == -1 || axis == rank - 1)) return n.inputs[0];
    return {};
  }
  if (n.op == op_name::Cos || n.op == op_name::Sin || n.op == op_name::Negative ||
      (n.op == op_name::Convert && type_of(n.inputs[0]) == ElementType::f32)) {
    const Value half = half_of_doubled(n.inputs[0], depth + 1);
    if (!half.node) return {};
    return Value{make_node(n.op, {half}, n.attrs, n.name + "/half"), 0};
  }
  if ((n.op == op_name::Multiply || n.op == op_name::Add || n.op == op_name::Subtract || n.op == op_name::Divide) &&
      numpy_broadcast(n)) {
    float unused = 0;
    const int scalar_at = one_float(n.inputs[1], unused) ? 1 : one_float(n.inputs[0], unused) ? 0 : -1;
    if (scalar_at < 0) return {};
    const Value half = half_of_doubled(n.inputs[1 - scalar_at], depth + 1);
    if (!half.node || shape_of(half).rank() != rank) return {};
    std::vector<Value> inputs = n.inputs;
    inputs[1 - scalar_at] = half;
    return Value{make_node(n.op, inputs, n.attrs, n.name + "/half"), 0};
  }
  return {};
}

// The rotary cache RotaryEmbedding takes ([batch or 1, seq or 1, head_size / 2]) for a cos or
// sin `v` that multiplies x ([batch, heads, seq, head_size]): v is [b, 1, s, d] (Llama's
// cos.unsqueeze(1), or a constant) or [1, s, d], with halves equal along d. Empty otherwise.
Value rotary_cache_of(const Value& v) {
  const PartialShape& s = shape_of(v);
  if (type_of(v) != ElementType::f32 || !s.rank_known) return {};
  if (s.rank() == 3 && s.dims[0] == 1) return half_of_doubled(v);
  if (s.rank() != 4 || s.dims[1] != 1) return {};
  const Node& n = *v.node;
  std::vector<int64_t> axes;
  if (n.op == op_name::Unsqueeze && const_ints(n.inputs[1], axes) && axes == std::vector<int64_t>{1} &&
      shape_of(n.inputs[0]).rank() == 3)
    return half_of_doubled(n.inputs[0]);
  if (const_of(v)) {
    const Value half = half_of_doubled(v);
    if (!half.node) return {};
    return Value{squeezed(half, 1), 0};
  }
  return {};
}

// The same, built once per cos or sin value that several rotations share (Llama's queries and
// keys in every layer).
Value rotary_cache(const Value& v, std::map<NodePtr, Value>& built) {
  if (auto at = built.find(v.node); at != built.end() && v.index == 0) return at->second;
  const Value cache = rotary_cache_of(v);
  if (cache.node && v.index == 0) built[v.node] = cache;
  return cache;
}

// The head count of y ([b, s, heads, head_size]): its known dim 2; or the constant third entry
// of the Reshape target that made it (a constant, or a Concat of one-value pieces as torch
// exports `view(b, s, heads, d)`); or, for `view(b, s, -1, d)` of rows of a known width, that
// width over the head size. 0 when unknown. (A wrong count could only fail: the kernel checks
// that the rows hold heads of the caches' size.)
int64_t heads_of(const Value& y, int64_t head_size) {
  const PartialShape& ys = shape_of(y);
  if (!ys.rank_known || ys.rank() != 4) return 0;
  if (ys.dims[2] > 0) return ys.dims[2];
  const Node& reshape = *y.node;
  if (reshape.op != op_name::Reshape) return 0;
  std::vector<int64_t> target;
  int64_t heads = 0;
  if (const_ints(reshape.inputs[1], target)) {
    if (target.size() != 4) return 0;
    heads = target[2];
  } else {
    const Node& pieces = *reshape.inputs[1].node;
    if (pieces.op != op_name::Concat || pieces.inputs.size() != 4 || !one_int(pieces.inputs[2], heads)) return 0;
  }
  if (heads > 0) return heads;
  const PartialShape& rows = shape_of(reshape.inputs[0]);
  if (heads != -1 || head_size <= 0 || !rows.rank_known || rows.rank() != 3 || rows.dims[2] <= 0 ||
      rows.dims[2] % head_size != 0)
    return 0;
  return rows.dims[2] / head_size;
}

// When x is the head split Transpose(y, [0, 2, 1, 3]) of y [b, s, heads, d] that only the
// rotation reads (and ShapeOfs, for its half), the rotation on y's rows, before the split:
// Transpose(Reshape(RotaryEmbedding(Reshape(y, [b, s, heads * d]), num_heads), [b, s, heads, d])),
// d the known head size (else -1), the reshapes views. The split then stands right before the
// attention that reads it, as in an encoder, for fuse_attention to take in. Null when x is no
// such split.
NodePtr rotated_before_split(PassContext& ctx, const Value& x, const std::vector<const Node*>& chain, int64_t head_size,
                             const Value& cos_cache, const Value& sin_cache, const std::string& name) {
  if (transpose_perm(*x.node) != std::vector<int64_t>{0, 2, 1, 3}) return nullptr;
  for (const Value& out : ctx.graph().outputs)
    if (out.node == x.node) return nullptr;
  for (const Node* user : ctx.users(*x.node))
    if (user->op != op_name::ShapeOf && std::find(chain.begin(), chain.end(), user) == chain.end()) return nullptr;
  const Value& y = x.node->inputs[0];
  const int64_t heads = heads_of(y, head_size);
  if (heads <= 0) return nullptr;
  const Attrs zero_copies{{"special_zero", int64_t{1}}};
  NodePtr rows = make_node(op_name::Reshape, {y, Value{i64_constant({0, 0, -1}, ""), 0}}, zero_copies, name + "/rows");
  NodePtr rope =
      make_node(op_name::RotaryEmbedding, {Value{rows, 0}, cos_cache, sin_cache}, Attrs{{"num_heads", heads}}, name);
  NodePtr split = make_node(op_name::Reshape,
                            {Value{rope, 0}, Value{i64_constant({0, 0, heads, head_size > 0 ? head_size : -1}, ""), 0}},
                            zero_copies, "");
  return transposed_to(Value{split, 0}, {0, 2, 1, 3});
}

// Whether every dim `wanted` knows, `got` knows the same.
bool knows_all_of(const PartialShape& got, const PartialShape& wanted) {
  if (!wanted.rank_known) return true;
  if (!got.rank_known || got.rank() != wanted.rank()) return false;
  for (size_t d = 0; d < wanted.dims.size(); ++d)
    if (wanted.dims[d] >= 0 && got.dims[d] != wanted.dims[d]) return false;
  return true;
}

}  // namespace

// Llama's rotary position embedding as torch exports it, per query and key:
// x * cos + cat(-x[..., h:], x[..., :h]) * sin with h half of x's last dimension (any operand
// order of the Add and the Multiplies), x [batch, heads, seq, head_size] and cos, sin broadcast
// over the heads, becomes one RotaryEmbedding (ONNX's op, without position ids: its caches are
// the first halves of cos and sin, which must be provably equal to their second halves). Where x
// is a head split only the rotation reads, the rotation runs on the rows before it.
bool fuse_rotary_embedding(PassContext& ctx) {
  std::map<NodePtr, Value> caches;  // holds the cos and sin nodes it maps
  return ctx.rewrite_live([&](const NodePtr& add) {
    if (add->op != op_name::Add || !numpy_broadcast(*add) || type_of(Value{add, 0}) != ElementType::f32) return false;
    for (int side = 0; side < 2; ++side) {
      const Node& direct = *add->inputs[side].node;      // x * cos
      const Node& turned = *add->inputs[1 - side].node;  // rotate_half(x) * sin
      if (direct.op != op_name::Multiply || turned.op != op_name::Multiply || !numpy_broadcast(direct) ||
          !numpy_broadcast(turned) || ctx.sole_user(direct) != add.get() || ctx.sole_user(turned) != add.get() ||
          &direct == &turned)
        continue;
      for (int sin_at = 0; sin_at < 2; ++sin_at) {
        const Node& concat = *turned.inputs[1 - sin_at].node;
        if (concat.op != op_name::Concat) continue;
        const Value& sin = turned.inputs[sin_at];
        for (int cos_at = 0; cos_at < 2; ++cos_at) {
          const Value& x = direct.inputs[1 - cos_at];
          const Value& cos = direct.inputs[cos_at];
          const PartialShape& xs = shape_of(x);
          if (type_of(x) != ElementType::f32 || !xs.rank_known || xs.rank() != 4) continue;
          // A known head size, from x or else from the cache it multiplies.
          int64_t known = xs.dims[3];
          if (known < 0 && shape_of(cos).rank_known && shape_of(cos).rank() > 0) known = shape_of(cos).dims.back();
          if (!rotated_half_of(ctx, concat, x, 4, known)) continue;
          const Value cos_cache = rotary_cache(cos, caches);
          if (!cos_cache.node) continue;
          const Value sin_cache = rotary_cache(sin, caches);
          if (!sin_cache.node) continue;
          const std::vector<const Node*> chain{&direct, concat.inputs[1].node.get(),
                                               concat.inputs[0].node->inputs[0].node.get()};
          NodePtr rope = rotated_before_split(ctx, x, chain, known, cos_cache, sin_cache, add->name);
          if (!rope || !knows_all_of(rope->outputs[0].shape, add->outputs[0].shape))
            rope = make_node(op_name::RotaryEmbedding, {x, cos_cache, sin_cache}, {}, add->name);
          // Readers keep the dims they inferred from the Add: the op must know them too.
          if (!knows_all_of(rope->outputs[0].shape, add->outputs[0].shape)) return false;
          ctx.replace(Value{add, 0}, Value{rope, 0});
          return true;
        }
      }
    }
    return false;
  });
}

}  // namespace aiov::passes
