#include "plan/fold.hpp"
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

// Where the [b, h, s, d] operand of the chain reads its heads: a tensor and its layout as
// aiov.Attention takes it.
struct HeadSource {
  Value v;
  bool heads_first = false;  // v is [b, h, s, d] itself
  int64_t part = -1;         // >= 0: v is [b, s, parts, h, d] and the heads are this part
  bool grouped = false;      // K or V before repeat_kv: each head serves a group of query heads
};

// A part p of packed rows: Gather(Transpose(x, [2, 0, 3, 1, 4]), p, axis 0) with x
// [b, s, parts, h, d] (Swin's qkv reshaped and permuted to [3, b, h, s, d], then unbound):
// the heads are read from x in place instead of transposed apart.
HeadSource packed_part(const Value& v) {
  const Node* g = v.node.get();
  int64_t index = 0, axis = -1;
  if (g->op != op_name::Gather || g->inputs.size() != 3 || g->attr_int("batch_dims", 0) != 0 ||
      !one_int(g->inputs[1], index) || const_of(g->inputs[1])->outputs[0].shape.rank() != 0 ||
      !one_int(g->inputs[2], axis) || axis != 0)
    return {};
  const Node* t = transposed(g->inputs[0], {2, 0, 3, 1, 4});
  if (!t) return {};
  const Value& rows = t->inputs[0];
  const PartialShape& r = rows.node->outputs[rows.index].shape;
  if (rows.node->outputs[rows.index].type != ElementType::f32 || !r.rank_known || r.rank() != 5) return {};
  // The number of parts may be computed by the graph: the fused op checks the part then.
  if (index < 0 && r.dims[2] >= 0) index += r.dims[2];
  if (index < 0 || (r.dims[2] >= 0 && index >= r.dims[2])) return {};
  return HeadSource{rows, false, index};
}

// Grouped-query attention's repeat_kv: Reshape(Broadcast(Unsqueeze(x, 2), [b, hkv, n, s, d]),
// [b, hkv * n, s, d]) with x [b, hkv, s, d]; the fused op reads x's heads, each for n query
// heads, instead. Returns x (or a view of it), else an empty Value. The dims are computed by
// the graph (Llama's cache sizes them), not known here, so where they are not the view checks
// as the model runs what the rewrite rests on: x is first viewed as [its batch, the
// broadcast's heads, seq and head size] (its size holds only if the broadcast grew no dim but
// the repeats and the batch, a batch of 1 the fused op broadcasts itself), then as [its
// batch, hkv, merged seq, merged head size] (its size holds only if the merge kept s * d;
// with the merge's own size, its heads are hkv * n).
Value repeated_kv(const Value& v) {
  const Node* merge = v.node.get();
  if (merge->op != op_name::Reshape) return {};
  const Node* bc = merge->inputs[0].node.get();
  if (bc->op != op_name::Broadcast) return {};
  const std::string mode = bc->attr_str("mode", "numpy");
  if (mode != "numpy" && mode != "bidirectional") return {};
  const Node* un = bc->inputs[0].node.get();
  int64_t axis = 0;
  if (un->op != op_name::Unsqueeze || !one_int(un->inputs[1], axis) || (axis != 2 && axis != -3)) return {};
  const Value& x = un->inputs[0];
  const PartialShape& xs = x.node->outputs[x.index].shape;
  const PartialShape& bs = bc->outputs[0].shape;
  const PartialShape& ms = merge->outputs[0].shape;
  if (!xs.rank_known || xs.rank() != 4 || !bs.rank_known || bs.rank() != 5 || !ms.rank_known || ms.rank() != 4)
    return {};
  const auto differ = [](int64_t a, int64_t b) { return a >= 0 && b >= 0 && a != b; };
  const int kept[4] = {0, 1, 3, 4};
  bool known = bs.dims[2] >= 0 && ms.dims[1] >= 0;
  for (int i = 0; i < 4; ++i) {
    if (differ(xs.dims[i], bs.dims[kept[i]])) return {};
    known = known && xs.dims[i] >= 0 && bs.dims[kept[i]] == xs.dims[i];
  }
  if (differ(ms.dims[0], xs.dims[0]) || differ(ms.dims[2], xs.dims[2]) || differ(ms.dims[3], xs.dims[3])) return {};
  if (xs.dims[1] >= 0 && bs.dims[2] >= 0 && differ(ms.dims[1], xs.dims[1] * bs.dims[2])) return {};
  if (known) return x;
  try {
    const Attrs exact{{"special_zero", int64_t{0}}}, concat0{{"axis", int64_t{0}}};
    const Value unrepeated_dims{
        make_node(op_name::Concat, {dims_of(x, {0}), dims_of(merge->inputs[0], {1, 3, 4})}, concat0, ""), 0};
    NodePtr unrepeated = make_node(op_name::Reshape, {x, unrepeated_dims}, exact, merge->name + "/kv_unrepeated");
    const Value dims{
        make_node(op_name::Concat, {dims_of(x, {0}), dims_of(merge->inputs[0], {1}), dims_of(v, {2, 3})}, concat0, ""),
        0};
    return Value{make_node(op_name::Reshape, {Value{unrepeated, 0}, dims}, exact, merge->name + "/kv_heads"), 0};
  } catch (const std::exception&) {
    return {};
  }
}

// The tensor and layout behind a [b, h, s, d] operand: the head split of [b, s, h, d] rows
// (heads_first), a part of packed rows, K and V repeated for grouped-query attention, else
// the operand itself, heads first (Llama's Q and K after the rotary embedding).
HeadSource heads_of(const Value& v, bool key_or_value) {
  if (Value rows = heads_first(v); rows.node) return HeadSource{rows};
  if (HeadSource packed = packed_part(v); packed.v.node) return packed;
  if (key_or_value)
    if (Value x = repeated_kv(v); x.node) {
      if (Value rows = heads_first(x); rows.node) return HeadSource{rows, false, -1, true};
      return HeadSource{x, true, -1, true};
    }
  const PortInfo& p = v.node->outputs[v.index];
  if (p.type != ElementType::f32 || !p.shape.rank_known || p.shape.rank() != 4) return {};
  return HeadSource{v, true};
}

// n, as a constant when its inputs all are (Swin's bias and window mask: one constant mask).
Value folded(const NodePtr& n) {
  for (const Value& in : n->inputs)
    if (!const_of(in)) return Value{n, 0};
  try {
    const std::vector<NodePtr> c = fold_node(*n, size_t{64} << 20);
    if (!c.empty()) return Value{c[0], 0};
  } catch (const std::exception&) {
    // left to run with the model, which reports the error
  }
  return Value{n, 0};
}

// Swin's shifted windows add their mask through a 5-D view of the scores:
// Reshape(Reshape(s, [b / nW, nW, h, n, n]) + mask, [b, h, n, n]) with mask [1, nW, 1, n, n].
// Returns the split (the view of s) and sets `mask` to the mask as [nW, 1, n, n] (window w of
// the batch is window w % nW of its image) and `period` to nW, else returns null. The view's
// dims are computed by the graph (from the batch): where they are not known here, the mask is
// broadcast to them (dims 1-4, as the model runs; its dims are then known, so the planner
// folds it), which fails unless the view has the mask's windows and sequence lengths.
Node* window_masked(PassContext& ctx, Node* merged, Value& mask, int64_t& period) {
  if (merged->op != op_name::Reshape) return nullptr;
  Node* add = merged->inputs[0].node.get();
  if (add->op != op_name::Add || !numpy_broadcast(*add) || ctx.sole_user(*add) != merged) return nullptr;
  const PartialShape& out = merged->outputs[0].shape;
  const auto differ = [](int64_t a, int64_t b) { return a >= 0 && b >= 0 && a != b; };
  for (int side = 0; side < 2; ++side) {
    Node* split = add->inputs[side].node.get();
    if (split->op != op_name::Reshape || ctx.sole_user(*split) != add) continue;
    const Value& s = split->inputs[0];
    const PartialShape& ss = s.node->outputs[s.index].shape;
    const PartialShape& sp = split->outputs[0].shape;
    const Value& m = add->inputs[1 - side];
    const PortInfo& mi = m.node->outputs[m.index];
    if (!ss.rank_known || ss.rank() != 4 || !sp.rank_known || sp.rank() != 5 || !out.rank_known || out.rank() != 4 ||
        mi.type != ElementType::f32 || !mi.shape.is_static() || mi.shape.rank() > 5)
      continue;
    Dims md = mi.shape.dims;
    md.insert(md.begin(), 5 - md.size(), 1);
    // One mask per window (none per image), over heads and positions of the view.
    bool fits = md[0] == 1;
    for (int d = 1; d < 5; ++d) fits = fits && (md[d] == 1 || !differ(md[d], sp.dims[d]));
    // The view and the merge keep heads and positions; the view splits the batch into
    // [b / nW, nW].
    bool known = sp.dims[1] >= 0;
    for (int d = 1; d < 4; ++d) {
      fits = fits && !differ(sp.dims[d + 1], ss.dims[d]) && !differ(out.dims[d], ss.dims[d]);
      known = known && ss.dims[d] >= 0 && sp.dims[d + 1] == ss.dims[d] && out.dims[d] == ss.dims[d];
    }
    if (!fits) continue;
    try {
      const Attrs exact{{"special_zero", int64_t{0}}};
      mask = folded(make_node(op_name::Reshape, {m, Value{i64_constant({md[1], md[2], md[3], md[4]}, ""), 0}}, exact,
                              add->name + "/window_mask"));
      if (!known)
        mask = Value{make_node(op_name::Broadcast, {mask, dims_of(Value{PassContext::shared(split), 0}, {1, 2, 3, 4})},
                               Attrs{{"mode", std::string("numpy")}}, add->name + "/window_mask_per_head"),
                     0};
    } catch (const std::exception&) {
      continue;
    }
    period = md[1] > 1 ? md[1] : 0;
    return split;
  }
  return nullptr;
}

}  // namespace

// Transpose(MatMul(Softmax(scale * MatMul(Q, K^T) [+ mask]), V), [0, 2, 1, 3]) with Q, K and V
// each Transpose([b, s, h, d], [0, 2, 1, 3]) becomes one aiov.Attention on the untransposed
// Q, K and V. Two masks added one after the other (T5's position bias and padding mask) become
// one mask, their sum. Q and K may each carry their own constant factor (torch's
// scaled_dot_product_attention splits the scale into sqrt(scale) on each), and the heads may be
// split from and merged into sequence-first rows (torch's nn.MultiheadAttention; heads_first).
// Q, K and V are otherwise read where they are (heads_of: heads first, a part of Swin's packed
// qkv rows, K and V before Llama's repeat_kv), the probabilities through f32 Converts, and a
// mask added through Swin's per-window view becomes one mask the op reads per window.
bool fuse_attention(PassContext& ctx) {
  const std::vector<int64_t> heads{0, 2, 1, 3}, swap_last{0, 1, 3, 2};
  bool changed = false;
  for (const NodePtr& pv : ctx.order()) {
    if (pv->op != op_name::MatMul || !ctx.live(*pv) || pv->attr_int("transpose_a", 0) || pv->attr_int("transpose_b", 0))
      continue;
    Node* out = ctx.sole_user(*pv);
    // The probabilities, through the f32 to f32 Converts torch writes (Llama's).
    Node* probs = pv->inputs[0].node.get();
    Node* probs_user = pv.get();
    while (probs->op == op_name::Convert && probs->outputs[0].type == ElementType::f32 &&
           probs->inputs[0].node->outputs[probs->inputs[0].index].type == ElementType::f32 &&
           ctx.sole_user(*probs) == probs_user) {
      probs_user = probs;
      probs = probs->inputs[0].node.get();
    }
    // The heads merged back: [b, s, h, d], or [s, b, h, d] (sequence-first rows, torch's
    // nn.MultiheadAttention), the fused op's output transposed.
    const bool seq_first_out = out && transpose_perm(*out) == std::vector<int64_t>{2, 0, 1, 3};
    if (!out || (transpose_perm(*out) != heads && !seq_first_out) || probs->op != op_name::Softmax ||
        ctx.sole_user(*probs) != probs_user)
      continue;
    const PartialShape& ps = probs->outputs[0].shape;
    const int64_t axis = probs->attr_int("axis", 1);  // the Softmax op's default axis is 1
    if (!ps.rank_known || ps.rank() != 4 || (axis != -1 && axis != 3)) continue;
    Node* scores = probs->inputs[0].node.get();
    Node* consumer = probs;  // the node that must be the scores' only user
    // Swin's shifted windows: a mask added through a view of the scores, one per window.
    Value window_mask;
    int64_t period = 0;
    if (Node* split = window_masked(ctx, scores, window_mask, period)) {
      consumer = split;
      scores = split->inputs[0].node.get();
    }
    std::vector<Value> mask;
    if (scores->op == op_name::Add && numpy_broadcast(*scores) && ctx.sole_user(*scores) == consumer) {
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
    if (window_mask.node) {
      if (!mask.empty()) {
        // The op reads its mask per window: another mask must not vary along batch.
        const PartialShape& other = mask[0].node->outputs[mask[0].index].shape;
        if (other.rank() == 4 && other.dims[0] != 1) continue;
        try {
          mask[0] = folded(make_node(op_name::Add, {mask[0], window_mask}, Attrs{}, probs->name + "/masks"));
        } catch (const std::exception&) {
          continue;  // masks that do not broadcast together
        }
      } else {
        mask.push_back(window_mask);
      }
      // The sum's batch dim is the windows' (the fused op checks it where not known here).
      const PartialShape& ms = mask[0].node->outputs[mask[0].index].shape;
      if (!ms.rank_known || ms.rank() != 4 || (ms.dims[0] >= 0 && ms.dims[0] != std::max<int64_t>(period, 1))) continue;
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
    HeadSource k_in;
    if (qk->attr_int("transpose_b", 0)) {
      k_heads = &k_operand;
    } else if (const Node* kk = transposed(k_operand, swap_last)) {
      k_heads = &kk->inputs[0];
    } else if (const Node* kd = transposed(k_operand, std::vector<int64_t>{0, 2, 3, 1})) {
      k_in.v = kd->inputs[0];  // [b, s, h, d] -> [b, h, d, s] in one transpose
    }
    if (k_heads) k_in = heads_of(*k_heads, true);
    if (!k_in.v.node) continue;
    const HeadSource q_in = heads_of(q_operand, false);
    const HeadSource v_in = heads_of(pv->inputs[1], true);
    if (!q_in.v.node || !v_in.v.node) continue;
    // Factors computed by the graph, (a Q)(b K)^T = a b Q K^T: their product is one more input
    // the op multiplies its scale by as it runs (scale_input), so Q is not scaled on its own.
    Value factor;
    for (const Value& f : factors) {
      try {
        factor = factor.node ? Value{make_node(op_name::Multiply, {factor, f}, {}, qk->name + "/scale"), 0} : f;
      } catch (const std::exception&) {
        factor = Value{};
        break;
      }
    }
    if (!factors.empty() && !factor.node) continue;
    std::vector<Value> ins{q_in.v, k_in.v, v_in.v};
    for (const Value& m : mask) ins.push_back(m);
    Attrs attrs{{"scale", scale}};
    if (factor.node) {
      ins.push_back(factor);
      attrs["scale_input"] = int64_t{1};
    }
    if (q_in.heads_first || k_in.heads_first || v_in.heads_first)
      attrs["heads_first"] = std::vector<int64_t>{q_in.heads_first, k_in.heads_first, v_in.heads_first};
    if (q_in.part >= 0 || k_in.part >= 0 || v_in.part >= 0)
      attrs["part"] = std::vector<int64_t>{q_in.part, k_in.part, v_in.part};
    if (k_in.grouped || v_in.grouped) {
      if (k_in.grouped != v_in.grouped) continue;  // K and V must share their heads' groups
      attrs["grouped_kv"] = int64_t{1};
    }
    if (period > 0) attrs["mask_period"] = period;
    NodePtr att;
    try {
      att = make_node(op_name::Attention, ins, attrs, pv->name);
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
