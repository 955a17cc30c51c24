#include <cstring>

#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// A rank-4 constant (dims `d`, already padded) in NHWC order.
NodePtr permuted_constant(const Node& c, const Dims& d) {
  const size_t esize = byte_size(c.outputs[0].type, 1);
  const Dims out{d[0], d[2], d[3], d[1]};
  std::vector<uint8_t> bytes(numel(d) * esize);
  const uint8_t* src = static_cast<const uint8_t*>(c.constant->data());
  for (int64_t n = 0; n < d[0]; ++n)
    for (int64_t ch = 0; ch < d[1]; ++ch)
      for (int64_t h = 0; h < d[2]; ++h)
        for (int64_t w = 0; w < d[3]; ++w) {
          const int64_t s = ((n * d[1] + ch) * d[2] + h) * d[3] + w;
          const int64_t t = ((n * d[2] + h) * d[3] + w) * d[1] + ch;
          std::memcpy(&bytes[t * esize], src + s * esize, esize);
        }
  return make_constant(c.outputs[0].type, out, bytes.data(), bytes.size(), c.name);
}

bool is_reduction(const std::string& op) {
  return op == op_name::ReduceMean || op == op_name::ReduceMax || op == op_name::ReduceMin || op == op_name::ReduceSum;
}

// ShuffleNet's channel shuffle on the NCHW view of y ([N, H, W, C] NHWC, static dims), read by
// u: Reshape to [N, g, C / g, H, W], Transpose [0, 2, 1, 3, 4], Reshape to [N, C (or -1), H, W],
// each the only reader of the one before. Rebuilt on y's channels, the last axis: Reshape to
// [N, H, W, g, C / g], Transpose [0, 1, 2, 4, 3], Reshape to [N, H, W, C]. Null otherwise.
NodePtr channel_shuffle_on_nhwc(PassContext& ctx, const Node& u, const Value& y, NodePtr& shuffled) {
  const PartialShape& ys = y.node->outputs[y.index].shape;
  std::vector<int64_t> split, merged;
  if (u.op != op_name::Reshape || !ys.rank_known || ys.rank() != 4 || !const_ints(u.inputs[1], split) ||
      split.size() != 5)
    return nullptr;
  const int64_t n = ys.dims[0], h = ys.dims[1], w = ys.dims[2], c = ys.dims[3];
  if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || split[0] != n || split[3] != h || split[4] != w || split[1] <= 0 ||
      split[2] <= 0 || split[1] * split[2] != c)
    return nullptr;
  Node* t = ctx.sole_user(u);
  if (!t || transpose_perm(*t) != std::vector<int64_t>{0, 2, 1, 3, 4}) return nullptr;
  Node* back = ctx.sole_user(*t);
  if (!back || back->op != op_name::Reshape || !const_ints(back->inputs[1], merged) || merged.size() != 4 ||
      merged[0] != n || (merged[1] != c && merged[1] != -1) || merged[2] != h || merged[3] != w)
    return nullptr;
  NodePtr groups =
      make_node(op_name::Reshape, {y, Value{i64_constant({n, h, w, split[1], split[2]}, ""), 0}}, u.attrs, u.name);
  NodePtr swapped = transposed_to(Value{groups, 0}, {0, 1, 2, 4, 3});
  shuffled = make_node(op_name::Reshape, {Value{swapped, 0}, Value{i64_constant({n, h, w, c}, ""), 0}}, back->attrs,
                       back->name);
  return PassContext::shared(back);
}

// Moves the NHWC->NCHW transpose feeding u below it: u is rebuilt on the NHWC value (set
// in `rebuilt`, which may in turn read such a transpose) followed by a transpose back to
// NCHW, or a transpose to NHWC cancels it. False when u is not an op that can move.
bool sink_one(PassContext& ctx, const NodePtr& u, NodePtr& rebuilt) {
  rebuilt = nullptr;
  int at = -1;
  for (size_t i = 0; i < u->inputs.size() && at < 0; ++i)
    if (is_to_nchw(u->inputs[i])) at = (int)i;
  if (at < 0) return false;
  const Value y = u->inputs[at].node->inputs[0];  // the NHWC value
  if (transpose_perm(*u) == kToNhwc) {
    ctx.replace(Value{u, 0}, y);
    return true;
  }
  if (kLayoutBlindUnary.count(u->op) && u->inputs.size() == 1) {
    rebuilt = make_node(u->op, {y}, u->attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if (kLayoutBlindPerTensor.count(u->op) && at == 0) {  // (its per-tensor values hold in any layout)
    std::vector<Value> ins = u->inputs;
    ins[0] = y;
    rebuilt = make_node(u->op, ins, u->attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if (kLayoutBlindBinary.count(u->op) && numpy_broadcast(*u)) {
    const Value& other = u->inputs[1 - at];
    Value moved;
    if (is_to_nchw(other)) {
      moved = other.node->inputs[0];
    } else if (const Node* c = const_of(other)) {
      Dims d = c->outputs[0].shape.dims;
      if (d.size() > 4) return false;
      d.insert(d.begin(), 4 - d.size(), 1);
      moved = Value{permuted_constant(*c, d), 0};
    } else {
      return false;
    }
    std::vector<Value> ins(2);
    ins[at] = y;
    ins[1 - at] = moved;
    rebuilt = make_node(u->op, ins, u->attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if (u->op == op_name::Concat && u->outputs.size() == 1) {  // only when every input is NHWC already
    std::vector<Value> ins;
    for (const Value& in : u->inputs) {
      if (!is_to_nchw(in)) return false;
      ins.push_back(in.node->inputs[0]);
    }
    int64_t axis = u->attr_int("axis", 0);
    if (axis < 0) axis += 4;
    if (axis < 0 || axis > 3) return false;
    const int64_t where[4]{0, 3, 1, 2};  // NCHW axis -> NHWC axis
    Attrs attrs = u->attrs;
    attrs["axis"] = where[axis];
    rebuilt = make_node(u->op, ins, attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if (u->op == op_name::Reshape && at == 0) {  // a channel shuffle (see channel_shuffle_on_nhwc)
    NodePtr shuffled;
    const NodePtr back = channel_shuffle_on_nhwc(ctx, *u, y, shuffled);
    if (!back) return false;
    rebuilt = shuffled;
    ctx.replace(Value{back, 0}, Value{to_nchw(shuffled), 0});
    return true;
  }
  if (u->op == op_name::Slice && at == 0 && u->inputs.size() == 5) {  // (ShuffleNet's chunk of the channels)
    std::vector<int64_t> axes;
    if (!const_ints(u->inputs[4], axes)) return false;
    const int64_t where[4]{0, 3, 1, 2};  // NCHW axis -> NHWC axis
    for (int64_t& ax : axes) {
      if (ax < 0) ax += 4;
      if (ax < 0 || ax > 3) return false;
      ax = where[ax];
    }
    std::vector<Value> ins = u->inputs;
    ins[0] = y;
    ins[4] = Value{i64_constant(axes, ""), 0};
    rebuilt = make_node(u->op, ins, u->attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if ((u->op == op_name::MaxPool || u->op == op_name::AvgPool || u->op == op_name::LRN) && at == 0 &&
      u->outputs.size() == 1 && u->attr_str("layout", "nchw") == "nchw") {
    Attrs attrs = u->attrs;
    attrs["layout"] = std::string("nhwc");
    rebuilt = make_node(u->op, {y}, attrs, u->name);
    ctx.replace(Value{u, 0}, Value{to_nchw(rebuilt), 0});
    return true;
  }
  if (is_reduction(u->op) && at == 0 && u->inputs.size() == 2) {
    const Node* axes_node = const_of(u->inputs[1]);
    if (!axes_node || axes_node->outputs[0].type != ElementType::i64) return false;
    const int64_t* a = static_cast<const int64_t*>(axes_node->constant->data());
    const std::vector<int64_t> where{0, 3, 1, 2};  // NCHW axis -> NHWC axis
    std::vector<int64_t> axes;
    std::vector<bool> reduced(4, false);
    for (int64_t i = 0; i < numel(axes_node->outputs[0].shape.dims); ++i) {
      int64_t ax = a[i] < 0 ? a[i] + 4 : a[i];
      if (ax < 0 || ax > 3) return false;
      axes.push_back(where[ax]);
      reduced[ax] = true;
    }
    const bool keep = u->attr_int("keep_dims", 0) != 0;
    if (!keep) {  // without kept dims the remaining axes must stay in order
      int64_t prev = -1;
      for (int ax = 0; ax < 4; ++ax) {
        if (reduced[ax]) continue;
        if (where[ax] < prev) return false;
        prev = where[ax];
      }
    }
    rebuilt = make_node(u->op, {y, Value{i64_constant(axes, ""), 0}}, u->attrs, u->name);
    ctx.replace(Value{u, 0}, keep ? Value{to_nchw(rebuilt), 0} : Value{rebuilt, 0});
    return true;
  }
  return false;
}

}  // namespace

// Moves NHWC->NCHW transposes down past ops that do not care about the layout (layout-blind
// elementwise ops, per-tensor quantization, pooling, LRN, concatenation, reductions, slices,
// a channel shuffle), so that a following NCHW->NHWC
// transpose meets them and both disappear. One walk in topological order: a node is visited after everything it
// reads has moved, and a rebuilt node is tried again at once.
bool sink_layout_changes(PassContext& ctx) {
  return ctx.rewrite_live([&](const NodePtr& n) {
    bool moved = false;
    NodePtr rebuilt;
    for (NodePtr u = n; u && sink_one(ctx, u, rebuilt); u = rebuilt) moved = true;
    return moved;
  });
}

}  // namespace aiov::passes
