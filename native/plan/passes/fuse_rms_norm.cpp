#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// A Convert of f32 to f32 (a Cast to float of a float, as torch exports around norms) changes
// nothing: matching looks through it.
const Value& through_f32_convert(const Value& v) {
  const Node& n = *v.node;
  if (n.op == op_name::Convert && n.outputs[0].type == ElementType::f32 &&
      n.inputs[0].node->outputs[n.inputs[0].index].type == ElementType::f32)
    return n.inputs[0];
  return v;
}

bool is_square_of(const Node& p, Value& x) {
  if (p.op == op_name::Power && scalar_near(p.inputs[1], 2.0)) {
    x = p.inputs[0];
    return true;
  }
  if (p.op == op_name::Multiply && same(p.inputs[0], p.inputs[1])) {
    x = p.inputs[0];
    return true;
  }
  return false;
}

// ReduceMean over the last axis only, keeping it.
bool mean_over_last_axis(const Node& m, int rank) {
  if (m.op != op_name::ReduceMean || !m.attr_int("keep_dims", 0)) return false;
  std::vector<int64_t> axes;
  if (m.inputs.size() > 1) {
    const Node* c = const_of(m.inputs[1]);
    if (!c || c->outputs[0].type != ElementType::i64) return false;
    const int64_t* p = static_cast<const int64_t*>(c->constant->data());
    axes.assign(p, p + numel(c->outputs[0].shape.dims));
  } else {
    axes = m.attr_ints("axes");
  }
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

}  // namespace

// x * (1 / sqrt(mean(x^2, last axis) + eps)) [* gamma] (or x / sqrt(..)), as T5 and Llama
// export it, with x^2 as Pow(x, 2) or x * x and f32->f32 Converts around it, becomes one
// aiov.RMSNorm.
bool fuse_rms_norm(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& mean : ctx.order()) {
    if (mean->op != op_name::ReduceMean || !ctx.live(*mean)) continue;
    Value x;
    if (!is_square_of(*mean->inputs[0].node, x) || !ctx.sole_user(*mean->inputs[0].node)) continue;
    const PartialShape& xs = x.node->outputs[x.index].shape;
    if (x.node->outputs[x.index].type != ElementType::f32 || !xs.rank_known || xs.rank() < 1 || xs.dims.back() <= 0 ||
        !mean_over_last_axis(*mean, (int)xs.rank()))
      continue;
    Node* add = ctx.sole_user(*mean);
    float eps = 0;
    if (!add || add->op != op_name::Add || !one_float(other_input(*add, mean.get()), eps) || !(eps >= 0)) continue;
    Node* root = ctx.sole_user(*add);
    if (!root || root->op != op_name::Sqrt) continue;
    Node* use = ctx.sole_user(*root);
    if (!use || use->op != op_name::Divide) continue;
    Node* normed = nullptr;  // the node whose value is x / sqrt(..)
    if (same(through_f32_convert(use->inputs[0]), through_f32_convert(x)) && use->inputs[1].node.get() == root) {
      normed = use;
    } else if (scalar_near(use->inputs[0], 1.0) && use->inputs[1].node.get() == root) {
      Node* mul = ctx.sole_user(*use);
      if (mul && mul->op == op_name::Multiply &&
          same(through_f32_convert(other_input(*mul, use)), through_f32_convert(x)))
        normed = mul;
    }
    if (!normed || normed->outputs[0].shape.dims != xs.dims) continue;
    // An optional per-channel gamma, maybe after a Convert of f32 to f32.
    const Value normed_value{PassContext::shared(normed), 0};
    Node* last = normed;
    Node* after = ctx.sole_user(*normed);
    if (after && same(through_f32_convert(Value{PassContext::shared(after), 0}), normed_value))
      after = ctx.sole_user(*after);
    const int rank = (int)xs.rank();
    const int64_t len = xs.dims.back();
    std::vector<Value> inputs{x};
    if (after && after->op == op_name::Multiply && numpy_broadcast(*after) && after->outputs[0].shape.dims == xs.dims) {
      const int at = same(through_f32_convert(after->inputs[0]), normed_value) ? 0 : 1;
      std::vector<float> gamma;
      if (same(through_f32_convert(after->inputs[at]), normed_value) &&
          channel_vector(after->inputs[1 - at], rank, rank - 1, len, gamma)) {
        inputs.push_back(Value{f32_constant(Dims{len}, gamma, mean->name + "/gamma"), 0});
        last = after;
      }
    }
    NodePtr fused = make_node(op_name::RMSNorm, inputs, Attrs{{"eps", (double)eps}}, mean->name);
    ctx.replace(Value{PassContext::shared(last), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
