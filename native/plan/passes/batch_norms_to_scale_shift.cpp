#include <cmath>

#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// A BatchNorm with constant parameters that no convolution took in (DenseNet's pre-activation
// after a Concat, say) becomes x * scale + shift with per-channel constants: plain layout-blind
// Multiply and Add, which layout changes sink past and which fuse_elementwise_chains runs
// in one pass over memory together with the activation after them.
bool batch_norms_to_scale_shift(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& bn : ctx.order()) {
    if (bn->op != op_name::BatchNormInference || !ctx.live(*bn)) continue;
    const PortInfo& xi = bn->inputs[0].node->outputs[bn->inputs[0].index];
    if (xi.type != ElementType::f32 || !xi.shape.rank_known || xi.shape.rank() < 2) continue;
    const int64_t C = xi.shape.dims[1];
    const int rank = (int)xi.shape.rank();
    std::vector<float> p[4];  // gamma, beta, mean, variance
    bool ok = C >= 0;
    for (int i = 0; i < 4 && ok; ++i) ok = channel_vector(bn->inputs[i + 1], 1, 0, C, p[i]);
    if (!ok) continue;
    const double eps = bn->attr_float("epsilon", 1e-5);
    std::vector<float> scale(C), shift(C);
    for (int64_t c = 0; c < C; ++c) {
      const double inv = (double)p[0][c] / std::sqrt((double)p[3][c] + eps);
      scale[c] = (float)inv;
      shift[c] = (float)((double)p[1][c] - (double)p[2][c] * inv);
    }
    Dims along(rank, 1);  // [1, C, 1, ...]: broadcasts along the channel axis
    along[1] = C;
    NodePtr scaled = make_node(
        op_name::Multiply, {bn->inputs[0], Value{f32_constant(along, scale, bn->name + "/scale"), 0}}, {}, bn->name);
    NodePtr shifted = make_node(
        op_name::Add, {Value{scaled, 0}, Value{f32_constant(along, shift, bn->name + "/shift"), 0}}, {}, bn->name);
    ctx.replace(Value{bn, 0}, Value{shifted, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
