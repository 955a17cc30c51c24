#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// The node behind `v` when it is a Transpose with this order, else null.
const Node* transposed(const Value& v, const std::vector<int64_t>& perm) {
  return transpose_perm(*v.node) == perm ? v.node.get() : nullptr;
}

// Dims `at` of `v`'s runtime shape, as an i64 vector.
Value dims_of(const Value& v, const std::vector<int64_t>& at) {
  NodePtr shape = make_node(op_name::ShapeOf, {v}, Attrs{{"output_type", std::string("i64")}}, "");
  return Value{make_node(op_name::Gather,
                         {Value{shape, 0}, Value{i64_constant(at, ""), 0}, Value{i64_constant({0}, ""), 0}}, {}, ""),
               0};
}

// The [b, s, h, d] tensor whose head split is `v` ([b, h, s, d]), else an empty Value.
// Two forms: the usual Transpose([b, s, h, d], [0, 2, 1, 3]); and torch's
// nn.MultiheadAttention on sequence-first rows, which splits heads as
// split = Reshape(Transpose(rows, [1, 0, 2]), [b, h, s, d]) with rows = [s', b * h, d']: that
// one becomes Transpose(Reshape(rows, [s', b, h, d]), [1, 0, 2, 3]), one transpose instead of
// the chain. The dims are computed by the graph, not known here, so the rewrite checks as it
// runs what it rests on (s' = s, d' = d): rows is first reshaped to [s', b * h, d] (its size
// holds only when d' = d), then to [s', b, h, d] (with d' = d it holds only when s' = s). A
// graph where they differ is no head split; it fails there instead of mixing heads silently.
Value heads_first(const Value& v) {
  if (const Node* t = transposed(v, {0, 2, 1, 3})) return t->inputs[0];
  const Node* split = v.node.get();
  if (split->op != op_name::Reshape) return {};
  const Node* t = transposed(split->inputs[0], {1, 0, 2});
  if (!t) return {};
  const Value& rows = t->inputs[0];
  const PartialShape& out = split->outputs[0].shape;
  const PartialShape& r = rows.node->outputs[rows.index].shape;
  if (!out.rank_known || out.rank() != 4 || !r.rank_known || r.rank() != 3) return {};
  // Where both sides of s' = s or d' = d are known and differ, this is no head split.
  const auto differ = [](int64_t a, int64_t b) { return a >= 0 && b >= 0 && a != b; };
  if (differ(r.dims[0], out.dims[2]) || differ(r.dims[2], out.dims[3])) return {};
  try {
    const Attrs concat0{{"axis", int64_t{0}}}, exact{{"special_zero", int64_t{0}}};
    // The split's dims, from a view shaped like the transposed rows reshaped as the split is:
    // reading the split itself would keep the transpose running for its shape alone.
    NodePtr like_t = make_node(op_name::Reshape, {rows, dims_of(rows, {1, 0, 2})}, exact, "");
    const Value like_split{make_node(op_name::Reshape, {Value{like_t, 0}, split->inputs[1]}, split->attrs, ""), 0};
    const Value split_dims = dims_of(like_split, {0, 1, 3});  // b, h, d
    const Value rows_dims = dims_of(rows, {0, 1});            // s', b * h
    const Value d = dims_of(like_split, {3});
    const Value s_rows = dims_of(rows, {0});
    NodePtr same_d =
        make_node(op_name::Reshape, {rows, Value{make_node(op_name::Concat, {rows_dims, d}, concat0, ""), 0}}, exact,
                  split->name + "/same_head_size");
    NodePtr heads = make_node(
        op_name::Reshape, {Value{same_d, 0}, Value{make_node(op_name::Concat, {s_rows, split_dims}, concat0, ""), 0}},
        exact, split->name + "/seq_first_heads");
    return Value{transposed_to(Value{heads, 0}, {1, 0, 2, 3}), 0};
  } catch (const std::exception&) {
    return {};
  }
}

// One f32 element, whatever its rank: a factor that scales every score alike.
bool one_element(const Value& v) {
  const PortInfo& p = v.node->outputs[v.index];
  if (p.type != ElementType::f32 || !p.shape.rank_known || p.shape.rank() > 4) return false;
  for (int64_t d : p.shape.dims)
    if (d != 1) return false;
  return true;
}

// `v` without a Multiply by one f32 element read only by `user`: a constant goes into
// `scale`, a computed one (torch's sqrt(1 / sqrt(head size)), from the graph's shapes) into
// `factors`.
Value unscaled(PassContext& ctx, const Value& v, const Node* user, double& scale, std::vector<Value>& factors) {
  const Node* mul = v.node.get();
  if (mul->op != op_name::Multiply || !numpy_broadcast(*mul) || ctx.sole_user(*mul) != user) return v;
  for (int at = 1; at >= 0; --at) {
    float c = 0;
    if (one_float(mul->inputs[at], c)) {
      scale *= c;
      return mul->inputs[1 - at];
    }
    if (one_element(mul->inputs[at])) {
      factors.push_back(mul->inputs[at]);
      return mul->inputs[1 - at];
    }
  }
  return v;
}

}  // namespace

// Transpose(MatMul(Softmax(scale * MatMul(Q, K^T) [+ mask]), V), [0, 2, 1, 3]) with Q, K and V
// each Transpose([b, s, h, d], [0, 2, 1, 3]) becomes one aiov.Attention on the untransposed
// Q, K and V. Two masks added one after the other (T5's position bias and padding mask) become
// one mask, their sum. Q and K may each carry their own constant factor (torch's
// scaled_dot_product_attention splits the scale into sqrt(scale) on each), and the heads may be
// split from and merged into sequence-first rows (torch's nn.MultiheadAttention; heads_first).
bool fuse_attention(PassContext& ctx) {
  const std::vector<int64_t> heads{0, 2, 1, 3}, swap_last{0, 1, 3, 2};
  bool changed = false;
  for (const NodePtr& pv : ctx.order()) {
    if (pv->op != op_name::MatMul || !ctx.live(*pv) || pv->attr_int("transpose_a", 0) || pv->attr_int("transpose_b", 0))
      continue;
    Node* out = ctx.sole_user(*pv);
    Node* probs = pv->inputs[0].node.get();
    // The heads merged back: [b, s, h, d], or [s, b, h, d] (sequence-first rows, torch's
    // nn.MultiheadAttention), the fused op's output transposed.
    const bool seq_first_out = out && transpose_perm(*out) == std::vector<int64_t>{2, 0, 1, 3};
    if (!out || (transpose_perm(*out) != heads && !seq_first_out) || probs->op != op_name::Softmax ||
        ctx.sole_user(*probs) != pv.get())
      continue;
    const PartialShape& ps = probs->outputs[0].shape;
    const int64_t axis = probs->attr_int("axis", 1);  // the Softmax op's default axis is 1
    if (!ps.rank_known || ps.rank() != 4 || (axis != -1 && axis != 3)) continue;
    Node* scores = probs->inputs[0].node.get();
    Node* consumer = probs;  // the node that must be the scores' only user
    std::vector<Value> mask;
    if (scores->op == op_name::Add && numpy_broadcast(*scores) && ctx.sole_user(*scores) == probs) {
      Node* add = scores;
      for (int side = 0; side < 2 && mask.empty(); ++side) {
        Node* s = add->inputs[side].node.get();
        if (s->op == op_name::Divide || s->op == op_name::Multiply || s->op == op_name::MatMul) {
          mask.push_back(add->inputs[1 - side]);
          scores = s;
          consumer = add;
        }
      }
      // T5 adds its position bias, then the padding mask: two Adds become one of the masks.
      for (int side = 0; side < 2 && mask.empty(); ++side) {
        Node* inner = add->inputs[side].node.get();
        if (inner->op != op_name::Add || !numpy_broadcast(*inner) || ctx.sole_user(*inner) != add) continue;
        for (int in_side = 0; in_side < 2 && mask.empty(); ++in_side) {
          Node* s = inner->inputs[in_side].node.get();
          if (s->op != op_name::Divide && s->op != op_name::Multiply && s->op != op_name::MatMul) continue;
          try {
            mask.push_back(Value{make_node(op_name::Add, {inner->inputs[1 - in_side], add->inputs[1 - side]}, Attrs{},
                                           inner->name + "/masks"),
                                 0});
          } catch (const std::exception&) {
            break;  // masks that do not broadcast together: leave the chain as written
          }
          scores = s;
          consumer = inner;
        }
      }
      if (mask.empty()) continue;
      const PortInfo& mi = mask[0].node->outputs[mask[0].index];
      if (mi.type != ElementType::f32 || !mi.shape.rank_known || mi.shape.rank() > 4) continue;
    }
    if (ctx.sole_user(*scores) != consumer) continue;
    double scale = 1.0;
    Node* qk = scores;
    if (scores->op == op_name::Divide || scores->op == op_name::Multiply) {
      const int c = const_of(scores->inputs[1]) ? 1 : 0;
      const Node* k = const_of(scores->inputs[c]);
      if (!k || k->outputs[0].type != ElementType::f32 || numel(k->outputs[0].shape.dims) != 1 ||
          (scores->op == op_name::Divide && c == 0))
        continue;
      const double value = *static_cast<const float*>(k->constant->data());
      scale = scores->op == op_name::Divide ? 1.0 / value : value;
      qk = scores->inputs[1 - c].node.get();
      if (ctx.sole_user(*qk) != scores) continue;
    }
    if (qk->op != op_name::MatMul || qk->attr_int("transpose_a", 0)) continue;
    // torch's scaled_dot_product_attention scales Q and K^T each by sqrt(scale) instead.
    std::vector<Value> factors;
    const Value q_operand = unscaled(ctx, qk->inputs[0], qk, scale, factors);
    const Value k_operand = unscaled(ctx, qk->inputs[1], qk, scale, factors);
    const Value* k_heads = nullptr;  // K as [b, h, s, d]
    Value k_in;
    if (qk->attr_int("transpose_b", 0)) {
      k_heads = &k_operand;
    } else if (const Node* kk = transposed(k_operand, swap_last)) {
      k_heads = &kk->inputs[0];
    } else if (const Node* kd = transposed(k_operand, std::vector<int64_t>{0, 2, 3, 1})) {
      k_in = kd->inputs[0];  // [b, s, h, d] -> [b, h, d, s] in one transpose
    }
    if (k_heads) k_in = heads_first(*k_heads);
    if (!k_in.node) continue;
    Value q_in = heads_first(q_operand);
    const Value v_in = heads_first(pv->inputs[1]);
    if (!q_in.node || !v_in.node) continue;
    // Factors computed by the graph scale Q as it enters: (a Q)(b K)^T = a b Q K^T.
    for (const Value& f : factors) {
      try {
        q_in = Value{make_node(op_name::Multiply, {q_in, f}, {}, qk->name + "/scale"), 0};
      } catch (const std::exception&) {
        q_in = Value{};
        break;
      }
    }
    if (!q_in.node) continue;
    std::vector<Value> ins{q_in, k_in, v_in};
    for (const Value& m : mask) ins.push_back(m);
    NodePtr att;
    try {
      att = make_node(op_name::Attention, ins, Attrs{{"scale", scale}}, pv->name);
    } catch (const std::exception&) {
      continue;  // shapes that do not fit the fused op: leave the chain as written
    }
    Value result{att, 0};
    if (seq_first_out) result = Value{transposed_to(result, {1, 0, 2, 3}), 0};
    ctx.replace(Value{PassContext::shared(out), 0}, result);
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
