#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// x * 0.5 * (1 + erf(x / sqrt(2))) in the two shapes exporters write it becomes one Gelu.
bool recognise_gelu(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& e : ctx.order()) {
    if (e->op != op_name::Erf || !ctx.live(*e)) continue;
    const Node& scaled = *e->inputs[0].node;
    Value x;
    if (scaled.op == op_name::Divide && scalar_near(scaled.inputs[1], std::sqrt(2.0)))
      x = scaled.inputs[0];
    else if (scaled.op == op_name::Multiply && scalar_near(scaled.inputs[1], std::sqrt(0.5)))
      x = scaled.inputs[0];
    else if (scaled.op == op_name::Multiply && scalar_near(scaled.inputs[0], std::sqrt(0.5)))
      x = scaled.inputs[1];
    else
      continue;
    Node* plus = ctx.sole_user(*e);
    if (!plus || plus->op != op_name::Add) continue;
    const Value& one = other_input(*plus, e.get());
    if (!scalar_near(one, 1.0)) continue;
    Node* prod = ctx.sole_user(*plus);
    if (!prod || prod->op != op_name::Multiply) continue;
    const Value& other = other_input(*prod, plus);
    Value result;
    if (same(other, x)) {  // (x * (1 + erf)) * 0.5
      Node* half = ctx.sole_user(*prod);
      if (!half || half->op != op_name::Multiply) continue;
      const Value& h = other_input(*half, prod);
      if (!scalar_near(h, 0.5)) continue;
      result = Value{PassContext::shared(half), 0};
    } else {  // (x * 0.5) * (1 + erf)
      const Node& xh = *other.node;
      if (xh.op != op_name::Multiply) continue;
      bool ok = (same(xh.inputs[0], x) && scalar_near(xh.inputs[1], 0.5)) ||
                (same(xh.inputs[1], x) && scalar_near(xh.inputs[0], 0.5));
      if (!ok) continue;
      result = Value{PassContext::shared(prod), 0};
    }
    if (result.node->outputs[0].shape.dims != x.node->outputs[x.index].shape.dims) continue;
    NodePtr gelu = make_node(op_name::Gelu, {x}, Attrs{{"approximation_mode", std::string("ERF")}}, e->name);
    ctx.replace(result, Value{gelu, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
