#include "plan/passes/matchers.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/passes.hpp"

namespace aiov::passes {

// 2-D aiov.QuantizedConv in NCHW reads and writes NHWC between a transpose of its input and
// one back, as the f32 convolutions do (convolutions_to_nhwc): the integer GEMM works on
// channels-last rows, so in NHWC it transposes nothing, and where one quantized convolution
// feeds another (through aiov.Quantize, dequantization and other layout-blind ops) the
// transposes between them meet and cancel when they sink.
bool quantized_convolutions_to_nhwc(PassContext& ctx) {
  bool changed = false;
  for (const NodePtr& conv : ctx.order()) {
    if (conv->op != op_name::QuantizedConv || !ctx.live(*conv) || conv->attr_str("layout", "nchw") != "nchw" ||
        !const_of(conv->inputs[1]))
      continue;
    const PortInfo& xi = conv->inputs[0].node->outputs[conv->inputs[0].index];
    if (!xi.shape.rank_known || xi.shape.rank() != 4) continue;
    Attrs attrs = conv->attrs;
    attrs["layout"] = std::string("nhwc");
    std::vector<Value> inputs = conv->inputs;
    inputs[0] = Value{transposed_to(conv->inputs[0], kToNhwc), 0};
    NodePtr nhwc = make_node(op_name::QuantizedConv, inputs, attrs, conv->name);
    ctx.replace(Value{conv, 0}, Value{to_nchw(nhwc), 0});
    changed = true;
  }
  return changed;
}

}  // namespace aiov::passes
