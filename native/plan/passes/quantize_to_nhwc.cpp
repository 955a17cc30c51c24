#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// A QDQ model's image enters its first convolution region as aiov.Quantize over the NCHW
// floats, then quantized_convolutions_to_nhwc's transpose of those bytes to NHWC (or, where
// the transpose came first, a quantization of transposed floats): two passes over the image
// before any work starts. Per tensor, quantizing and transposing commute, so one
// aiov.Quantize reading the NCHW floats and writing the NHWC bytes (to_nhwc) gives the same
// bytes in one pass. The last pass: every pass that moves layout changes through aiov.Quantize
// as a layout-blind op has run.
bool quantize_to_nhwc(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& n : ctx.order()) {
    if (!ctx.live(*n)) continue;
    const Node* quantize = nullptr;  // the two nodes, n the later; the earlier one read by n alone
    Value x;                         // the NCHW floats
    if (n->op == op_name::Transpose && n->inputs[0].node->op == op_name::Quantize && transpose_perm(*n) == kToNhwc) {
      quantize = n->inputs[0].node.get();
      x = quantize->inputs[0];
    } else if (n->op == op_name::Quantize && transpose_perm(*n->inputs[0].node) == kToNhwc) {
      quantize = n.get();
      x = n->inputs[0].node->inputs[0];
    } else {
      continue;
    }
    const Node& earlier = *n->inputs[0].node;
    const PartialShape& shape = x.node->outputs[x.index].shape;
    if (ctx.sole_user(earlier) != n.get() || quantize->attr_int("to_nhwc", 0) || !shape.rank_known || shape.rank() != 4)
      continue;
    Attrs attrs = quantize->attrs;
    attrs["to_nhwc"] = int64_t{1};
    NodePtr fused = make_node(op_name::Quantize, {x, quantize->inputs[1], quantize->inputs[2]}, attrs, quantize->name);
    ctx.replace(Value{n, 0}, Value{fused, 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
