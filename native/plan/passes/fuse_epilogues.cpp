#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// Same rank and the same dims wherever known (a residual must match the output exactly;
// the fused op checks the concrete shapes again when planned).
bool same_shape(const Value& a, const Value& b) {
  const PartialShape& x = a.node->outputs[a.index].shape;
  const PartialShape& y = b.node->outputs[b.index].shape;
  if (!x.rank_known || !y.rank_known || x.rank() != y.rank()) return false;
  if (a.node->outputs[a.index].type != ElementType::f32) return false;
  for (size_t i = 0; i < x.dims.size(); ++i)
    if (x.dims[i] != y.dims[i]) return false;
  return true;
}

bool is_view(const Node& n) {
  return n.op == op_name::Reshape || n.op == op_name::Squeeze || n.op == op_name::Unsqueeze;
}

// f with the activation after a view of its output (its sole reader, read only by the
// activation) applied as it writes, the view then reading f: GPT-2's MLP multiplies [B*S, C]
// rows (Conv1D as Gemm), reshapes them to [B, S, C'] and then applies its Gelu. An activation
// is elementwise, so it commutes with the view. Null when the pattern is not there.
NodePtr absorb_activation_after_view(PassContext& ctx, const NodePtr& f, Node& view) {
  Node* a = ctx.sole_user(view);
  Attrs attrs = f->attrs;
  if (!a || !activation_of(*a, attrs)) return nullptr;
  NodePtr nf = make_node(f->op, f->inputs, attrs, f->name);
  std::vector<Value> view_ins = view.inputs;
  view_ins[0] = Value{nf, 0};
  ctx.replace(Value{PassContext::shared(a), 0}, Value{make_node(view.op, view_ins, view.attrs, view.name), 0});
  return nf;
}

// Fused op f with the activation or residual Add that is its sole user applied as it writes
// its output: the new fused op, or null when f's user is neither (or f already has an
// activation).
NodePtr absorb_user(PassContext& ctx, const NodePtr& f) {
  if ((f->op != op_name::FusedConv && f->op != op_name::FusedMatMul) || f->attr_str("act", "none") != "none")
    return nullptr;
  Node* u = ctx.sole_user(*f);
  if (!u) return nullptr;
  if (is_view(*u)) return absorb_activation_after_view(ctx, f, *u);
  std::vector<Value> ins = f->inputs;
  Attrs attrs = f->attrs;
  if (activation_of(*u, attrs)) {
    // fused: activation applied last
  } else if (u->op == op_name::Add && numpy_broadcast(*u) && ins.size() == 3) {
    const Value& other = other_input(*u, f.get());
    if (same(other, Value{f, 0}) || !same_shape(other, Value{f, 0})) return nullptr;
    ins.push_back(other);  // the residual
  } else {
    return nullptr;
  }
  NodePtr nf = make_node(f->op, ins, attrs, f->name);
  ctx.replace(Value{PassContext::shared(u), 0}, Value{nf, 0});
  return nf;
}

}  // namespace

// A residual Add and then an activation after aiov.FusedConv or aiov.FusedMatMul (or after a
// Reshape, Squeeze or Unsqueeze of its output) are applied by the fused op as it writes its
// output. Each fused op takes what follows it in one go (a
// residual, then an activation), before the walk moves on.
bool fuse_epilogues(PassContext& ctx) {
  return ctx.rewrite_live([&](const NodePtr& n) {
    bool absorbed = false;
    for (NodePtr f = absorb_user(ctx, n); f; f = absorb_user(ctx, f)) absorbed = true;
    return absorbed;
  });
}

}  // namespace aiov::passes
