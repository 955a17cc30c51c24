#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// MVN over the last axis -> Multiply(gamma) [-> Add(beta)], constants along that axis, becomes
// one aiov.LayerNorm.
bool fuse_layer_norm(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& mvn : ctx.order()) {
    if (mvn->op != op_name::MVN || !ctx.live(*mvn) || mvn->inputs.size() != 2 ||
        !mvn->attr_int("normalize_variance", 1))
      continue;
    const PartialShape& xs = mvn->outputs[0].shape;
    const Node* axes = const_of(mvn->inputs[1]);
    if (!xs.rank_known || xs.rank() < 1 || !axes || axes->outputs[0].type != ElementType::i64 ||
        numel(axes->outputs[0].shape.dims) != 1 || xs.dims.back() < 0)
      continue;
    const int64_t axis = *static_cast<const int64_t*>(axes->constant->data());
    const int rank = (int)xs.rank();
    if (axis != -1 && axis != rank - 1) continue;
    const int64_t len = xs.dims.back();
    Node* mul = ctx.sole_user(*mvn);
    std::vector<float> gamma, beta;
    if (!mul || mul->op != op_name::Multiply || !numpy_broadcast(*mul)) continue;
    const Value& g = other_input(*mul, mvn.get());
    if (!channel_vector(g, rank, rank - 1, len, gamma)) continue;
    Node* last = mul;
    Node* add = ctx.sole_user(*mul);
    if (add && add->op == op_name::Add && numpy_broadcast(*add)) {
      const Value& b = other_input(*add, mul);
      if (channel_vector(b, rank, rank - 1, len, beta)) last = add;
    }
    if (beta.empty()) beta.assign(len, 0.0f);
    Attrs attrs{{"eps", mvn->attr_float("eps", 1e-9)}, {"eps_mode", mvn->attr_str("eps_mode", "inside_sqrt")}};
    NodePtr ln = make_node(op_name::LayerNorm,
                           {mvn->inputs[0], Value{f32_constant(Dims{len}, gamma, mvn->name + "/gamma"), 0},
                            Value{f32_constant(Dims{len}, beta, mvn->name + "/beta"), 0}},
                           attrs, mvn->name);
    ctx.replace(Value{PassContext::shared(last), 0}, Value{ln, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
