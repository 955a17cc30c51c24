#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// MatMul with constant 2-D f32 weights followed by the Add of a bias along its last axis becomes
// one aiov.FusedMatMul.
bool fuse_matmul_bias(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& mm : ctx.order()) {
    if (mm->op != op_name::MatMul || !ctx.live(*mm) || mm->attr_int("transpose_a", 0)) continue;
    const Node* w = const_of(mm->inputs[1]);
    const PortInfo& xi = mm->inputs[0].node->outputs[mm->inputs[0].index];
    const PartialShape& ys = mm->outputs[0].shape;
    if (!w || w->outputs[0].type != ElementType::f32 || w->outputs[0].shape.rank() != 2 || !xi.shape.rank_known ||
        xi.shape.rank() < 2 || !ys.rank_known)
      continue;
    Node* add = ctx.sole_user(*mm);
    std::vector<float> bias;
    if (!add || add->op != op_name::Add || !numpy_broadcast(*add)) continue;
    const Value& other = other_input(*add, mm.get());
    const int64_t N = ys.dims.back();
    if (!channel_vector(other, (int)ys.rank(), (int)ys.rank() - 1, N, bias)) continue;
    Attrs attrs{{"transpose_b", mm->attr_int("transpose_b", 0)}};
    NodePtr fused = make_node(op_name::FusedMatMul,
                              {mm->inputs[0], mm->inputs[1], Value{f32_constant(Dims{N}, bias, mm->name + "/bias"), 0}},
                              attrs, mm->name);
    ctx.replace(Value{PassContext::shared(add), 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
