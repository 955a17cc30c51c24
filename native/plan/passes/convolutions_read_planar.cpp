#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// Convolutions left reading a transpose of NCHW data to NHWC (the model's image, at the
// start of a region) read the NCHW data as it lies when it has few channels: their GEMM
// copies or gathers such narrow input anyway, and the transpose is a pass over the image
// before any work starts (10 us of a 224 px stem's 145). Wide inputs stay NHWC, where a
// pixel's channels are one run.
bool convolutions_read_planar(PassContext& ctx) {
  constexpr int64_t kMaxPlanarChannels = 4;
  bool changed = false;
  for (const NodePtr& conv : ctx.order()) {
    if (conv->op != op_name::FusedConv || !ctx.live(*conv) || conv->has_attr("input_layout") ||
        transpose_perm(*conv->inputs[0].node) != kToNhwc)
      continue;
    const Value nchw = conv->inputs[0].node->inputs[0];
    const PartialShape& shape = nchw.node->outputs[nchw.index].shape;
    if (!shape.rank_known || shape.rank() != 4 || shape.dims[1] < 1 || shape.dims[1] > kMaxPlanarChannels) continue;
    ctx.set_input(*conv, 0, nchw);
    conv->attrs["input_layout"] = std::string("nchw");
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
