#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// The node behind `v` when it is a Transpose with this order, else null.
const Node* transposed(const Value& v, const std::vector<int64_t>& perm) {
  return transpose_perm(*v.node) == perm ? v.node.get() : nullptr;
}

}  // namespace

// Transpose(MatMul(Softmax(scale * MatMul(Q, K^T) [+ mask]), V), [0, 2, 1, 3]) with Q, K and V
// each Transpose([b, s, h, d], [0, 2, 1, 3]) becomes one aiov.Attention on the untransposed
// Q, K and V. Two masks added one after the other (T5's position bias and padding mask) become
// one mask, their sum.
bool fuse_attention(PassContext& ctx) {
  const std::vector<int64_t> heads{0, 2, 1, 3}, swap_last{0, 1, 3, 2};
  bool changed = false;
  for (const NodePtr& pv : ctx.order()) {
    if (pv->op != op_name::MatMul || !ctx.live(*pv) || pv->attr_int("transpose_a", 0) || pv->attr_int("transpose_b", 0))
      continue;
    Node* out = ctx.sole_user(*pv);
    const Node* vt = transposed(pv->inputs[1], heads);
    Node* probs = pv->inputs[0].node.get();
    if (!out || transpose_perm(*out) != heads || !vt || probs->op != op_name::Softmax ||
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
    const Node* qt = transposed(qk->inputs[0], heads);
    const Node* kt = nullptr;
    if (qk->attr_int("transpose_b", 0)) {
      kt = transposed(qk->inputs[1], heads);
    } else if (const Node* kk = transposed(qk->inputs[1], swap_last)) {
      kt = transposed(kk->inputs[0], heads);
    } else if (const Node* kd = transposed(qk->inputs[1], std::vector<int64_t>{0, 2, 3, 1})) {
      // [b, s, h, d] -> [b, h, d, s] in one transpose
      kt = kd;
    }
    if (!qt || !kt) continue;
    std::vector<Value> ins{qt->inputs[0], kt->inputs[0], vt->inputs[0]};
    for (const Value& m : mask) ins.push_back(m);
    NodePtr att;
    try {
      att = make_node(op_name::Attention, ins, Attrs{{"scale", scale}}, pv->name);
    } catch (const std::exception&) {
      continue;  // shapes that do not fit the fused op: leave the chain as written
    }
    ctx.replace(Value{PassContext::shared(out), 0}, Value{att, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
