#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// x * sigmoid(x) (SiLU as exporters write it) becomes one Swish: x then has one reader, so
// fuse_epilogues can fold the activation into the convolution or MatMul producing x.
bool recognise_swish(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& sig : ctx.order()) {
    if (!ctx.live(*sig) || sig->op != op_name::Sigmoid || sig->outputs[0].type != ElementType::f32) continue;
    Node* prod = ctx.sole_user(*sig);
    if (!prod || prod->op != op_name::Multiply || !numpy_broadcast(*prod)) continue;
    const Value& x = sig->inputs[0];
    if (!same(other_input(*prod, sig.get()), x)) continue;
    NodePtr swish = make_node(op_name::Swish, {x}, {}, prod->name);
    ctx.replace(Value{PassContext::shared(prod), 0}, Value{swish, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
