#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

namespace {

// v = Multiply(other, c) or Multiply(c, other) with c one constant near `want`.
bool times_scalar(const Value& v, double want, Value& other) {
  const Node& m = *v.node;
  if (m.op != op_name::Multiply) return false;
  for (int i = 0; i < 2; ++i)
    if (scalar_near(m.inputs[i], want)) {
      other = m.inputs[1 - i];
      return true;
    }
  return false;
}

// The argument of erf in x * 0.5 * (1 + erf(x / sqrt(2))): x / sqrt(2) or x * sqrt(1/2).
bool erf_argument(const Node& e, Value& x) {
  const Node& scaled = *e.inputs[0].node;
  if (scaled.op == op_name::Divide && scalar_near(scaled.inputs[1], std::sqrt(2.0))) {
    x = scaled.inputs[0];
    return true;
  }
  return times_scalar(e.inputs[0], std::sqrt(0.5), x);
}

// The argument of tanh in x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
bool tanh_argument(const Node& t, Value& x) {
  Value sum;
  if (!times_scalar(t.inputs[0], std::sqrt(2.0 / M_PI), sum) || sum.node->op != op_name::Add) return false;
  for (int i = 0; i < 2; ++i) {
    Value cube;
    if (!times_scalar(sum.node->inputs[1 - i], 0.044715, cube)) continue;
    const Node& pow = *cube.node;
    if (pow.op == op_name::Power && same(pow.inputs[0], sum.node->inputs[i]) && scalar_near(pow.inputs[1], 3.0)) {
      x = sum.node->inputs[i];
      return true;
    }
  }
  return false;
}

// From the erf or tanh node: (1 + core) times x and 0.5 in the three orders exporters write,
// (x * (1 + core)) * 0.5, (x * 0.5) * (1 + core) and x * (0.5 * (1 + core)). The value that
// stands for the whole GELU, or a null node.
Value gelu_result(PassContext& ctx, const Node& core, const Value& x) {
  Node* plus = ctx.sole_user(core);
  if (!plus || plus->op != op_name::Add || !scalar_near(other_input(*plus, &core), 1.0)) return {};
  Node* prod = ctx.sole_user(*plus);
  if (!prod || prod->op != op_name::Multiply) return {};
  const Value& other = other_input(*prod, plus);
  Value by;
  if (same(other, x)) {  // (x * (1 + core)) * 0.5
    Node* half = ctx.sole_user(*prod);
    if (!half || half->op != op_name::Multiply || !scalar_near(other_input(*half, prod), 0.5)) return {};
    return Value{PassContext::shared(half), 0};
  }
  if (times_scalar(other, 0.5, by) && same(by, x)) return Value{PassContext::shared(prod), 0};  // (x * 0.5) * (..)
  if (scalar_near(other, 0.5)) {  // x * (0.5 * (1 + core))
    Node* outer = ctx.sole_user(*prod);
    if (outer && outer->op == op_name::Multiply && same(other_input(*outer, prod), x))
      return Value{PassContext::shared(outer), 0};
  }
  return {};
}

}  // namespace

// x * 0.5 * (1 + erf(x / sqrt(2))) becomes Gelu, and x * 0.5 * (1 + tanh(sqrt(2/pi) * (x +
// 0.044715 x^3))) (GPT-2's "gelu_new") Gelu with the tanh approximation, in the orders
// exporters write them.
bool recognise_gelu(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& core : ctx.order()) {
    if (!ctx.live(*core)) continue;
    Value x;
    const char* mode = nullptr;
    if (core->op == op_name::Erf && erf_argument(*core, x))
      mode = "ERF";
    else if (core->op == op_name::Tanh && tanh_argument(*core, x))
      mode = "TANH";
    else
      continue;
    const Value result = gelu_result(ctx, *core, x);
    if (!result.node || result.node->outputs[0].shape.dims != x.node->outputs[x.index].shape.dims) continue;
    NodePtr gelu = make_node(op_name::Gelu, {x}, Attrs{{"approximation_mode", std::string(mode)}}, core->name);
    ctx.replace(result, Value{gelu, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
